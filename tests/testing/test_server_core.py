"""The server itself: life cycle, addresses, keep-alive accounting, records, routing, reset, models.dev."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from modelforge.testing import Fault, ProviderServer, Reply, ToolCall


def test_context_manager_and_addresses() -> None:
    server = ProviderServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server as running:
        assert running is server
        base = server.base_url
        assert base.startswith("http://127.0.0.1:") and server.port > 0
        assert server.openai_base_url == base + "/v1"
        assert server.anthropic_base_url == server.ollama_base_url == server.gemini_base_url == base
        assert server.github_base_url == base
        assert server.copilot_base_url == base + "/copilot"
        assert server.modelsdev_url == base + "/api.json"
        assert server.start() is server  # idempotent
        assert httpx.get(server.modelsdev_url).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/api.json")
    server.stop()  # stopping twice is harmless


def test_start_stop_methods() -> None:
    server = ProviderServer().start()
    try:
        assert httpx.get(server.base_url + "/api/version").status_code == 200
    finally:
        server.stop()


def test_keep_alive_reuses_one_connection(server: ProviderServer) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            client.post(server.openai_base_url + "/chat/completions", json={"messages": []})
    assert server.connections_opened == 1
    with httpx.Client() as other:
        other.get(server.base_url + "/api/tags")
    assert server.connections_opened == 2
    assert {r.connection_id for r in server.requests} == {1, 2}
    assert server.client_disconnects == 0


def test_connection_close_header_is_honoured(server: ProviderServer) -> None:
    with httpx.Client(headers={"Connection": "close"}) as client:
        client.get(server.base_url + "/api/tags")
        client.get(server.base_url + "/api/tags")
    assert server.connections_opened == 2


async def test_async_client_keep_alive(server: ProviderServer) -> None:
    server.script(Reply(text="one"), Reply(text="two"))
    async with httpx.AsyncClient() as client:
        for expected in ("one", "two"):
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
            response = await client.post(server.openai_base_url + "/chat/completions", json=body)
            assert response.json()["choices"][0]["message"]["content"] == expected
    assert server.connections_opened == 1


@pytest.mark.parametrize(
    ("method", "path", "protocol"),
    [
        ("POST", "/v1/chat/completions", "openai"),
        ("GET", "/v1/models", "openai"),
        ("POST", "/v1/messages", "anthropic"),
        ("POST", "/api/chat", "ollama"),
        ("GET", "/api/tags", "ollama"),
        ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
        ("POST", "/login/device/code", "github"),
        ("GET", "/copilot_internal/v2/token", "github"),
        ("POST", "/copilot/chat/completions", "copilot"),
        ("GET", "/api.json", "modelsdev"),
        ("GET", "/nowhere", "other"),
    ],
)
def test_requests_are_recorded_with_their_protocol(
    server: ProviderServer, method: str, path: str, protocol: str
) -> None:
    before = time.monotonic()
    httpx.request(method, server.base_url + path + "?x=1", json={"probe": True})
    (record,) = server.requests
    assert (record.method, record.path, record.protocol) == (method, path, protocol)
    assert record.query == {"x": "1"}
    assert record.target == path + "?x=1"
    assert record.json == {"probe": True}
    assert json.loads(record.body) == {"probe": True}
    assert record.headers["content-type"] == "application/json"
    assert before <= record.received_at <= time.monotonic()
    assert server.requests_for(protocol) == [record]  # type: ignore[arg-type]


def test_non_json_body_is_recorded_raw(server: ProviderServer) -> None:
    httpx.post(server.base_url + "/login/device/code", data={"client_id": "abc"})
    record = server.requests[-1]
    assert record.json is None
    assert record.body == b"client_id=abc"


def test_unknown_path_is_404_json(server: ProviderServer) -> None:
    response = httpx.get(server.base_url + "/v2/whatever")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_script_is_fifo_then_default_reply(server: ProviderServer) -> None:
    server.default_reply = Reply(text="default")
    server.script(Reply(text="first"), Fault(500), Reply(text="third"))
    assert server.script_remaining == 3
    url = server.openai_base_url + "/chat/completions"
    body = {"model": "m", "messages": []}
    with httpx.Client() as client:
        answers = [client.post(url, json=body) for _ in range(4)]
    assert answers[1].status_code == 500
    contents = [a.json()["choices"][0]["message"]["content"] for a in answers if a.status_code == 200]
    assert contents == ["first", "third", "default"]
    assert server.script_remaining == 0


def test_script_is_shared_across_protocols(server: ProviderServer) -> None:
    server.script(Reply(text="to openai"), Reply(text="to ollama"))
    with httpx.Client() as client:
        first = client.post(server.openai_base_url + "/chat/completions", json={"messages": []})
        second = client.post(
            server.ollama_base_url + "/api/chat",
            json={"model": "qwen3:1.7b", "messages": [], "stream": False},
        )
    assert first.json()["choices"][0]["message"]["content"] == "to openai"
    assert second.json()["message"]["content"] == "to ollama"


def test_script_rejects_other_objects(server: ProviderServer) -> None:
    with pytest.raises(TypeError):
        server.script("not a reply")  # type: ignore[arg-type]


def test_reset(server: ProviderServer) -> None:
    server.script(Reply())
    httpx.get(server.base_url + "/api/tags")
    server.reset()
    assert server.requests == []
    assert server.script_remaining == 0
    assert (server.connections_opened, server.client_disconnects, server.server_disconnects) == (0, 0, 0)
    assert server.copilot_token_exchanges == 0 and server.device_polls == []


def test_wait_for_disconnects_times_out(server: ProviderServer) -> None:
    started = time.monotonic()
    assert server.wait_for_disconnects(1, timeout=0.05) is False
    assert time.monotonic() - started < 1.0
    assert server.wait_for_disconnects(0, timeout=0.05) is True


def test_malformed_http_gets_400(server: ProviderServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 400")


def test_large_request_body(server: ProviderServer) -> None:
    text = "word " * 200_000
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(server.openai_base_url + "/chat/completions", json=body)
    assert response.json()["usage"]["prompt_tokens"] == 200_000
    assert server.requests[-1].json == body


def test_handler_errors_become_500_and_the_server_survives(server: ProviderServer) -> None:
    server.script(Reply(tool_calls=[ToolCall("f", {"bad": object()})]))  # not JSON-serialisable
    url = server.openai_base_url + "/chat/completions"
    assert httpx.post(url, json={"messages": []}).status_code == 500
    assert httpx.post(url, json={"messages": []}).status_code == 200


def test_modelsdev_catalog(server: ProviderServer) -> None:
    catalog = httpx.get(server.modelsdev_url).json()
    model = catalog["openai"]["models"]["gpt-4o-mini"]
    assert {"id", "name", "env", "npm", "doc", "models"} <= set(catalog["openai"])
    assert {"cost", "limit", "modalities", "tool_call", "reasoning", "attachment", "temperature"} <= set(
        model
    )
    assert set(model["limit"]) == {"context", "output"}
    server.modelsdev_catalog = {"custom": {"id": "custom", "models": {}}}
    assert httpx.get(server.modelsdev_url).json() == {"custom": {"id": "custom", "models": {}}}
    assert server.requests[-1].protocol == "modelsdev"
