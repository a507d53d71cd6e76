"""Connection faults: cut streams, abrupt disconnects, stalls, malformed events, latency, slow chunks."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from modelforge.testing import Disconnect, Fault, ProviderServer, Reply, ToolCall

TEXT = "alpha beta gamma delta epsilon"


def _stream_request(server: ProviderServer, protocol: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """URL, JSON body and query of a streamed chat request in ``protocol``."""
    messages = [{"role": "user", "content": "hi"}]
    if protocol == "openai":
        return (
            server.openai_base_url + "/chat/completions",
            {"model": "m", "stream": True, "messages": messages},
            {},
        )
    if protocol == "anthropic":
        body = {"model": "m", "max_tokens": 5, "stream": True, "messages": messages}
        return server.anthropic_base_url + "/v1/messages", body, {}
    if protocol == "ollama":
        return server.ollama_base_url + "/api/chat", {"model": "qwen3:1.7b", "messages": messages}, {}
    url = server.gemini_base_url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    return url, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {"alt": "sse"}


TERMINATORS = {
    "openai": ["data: [DONE]", '"finish_reason":"stop"'],
    "anthropic": ["message_stop", "message_delta", '"stop_reason":"end_turn"'],
    "ollama": ['"done":true', "done_reason"],
    "gemini": ["finishReason"],
}
TEXT_MARKERS = {
    "openai": '"content":"beta "',
    "anthropic": '"text":"beta "',
    "ollama": '"content":"beta "',
    "gemini": '"text":"beta "',
}


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "ollama", "gemini"])
def test_cut_stream_ends_cleanly_without_terminator(server: ProviderServer, protocol: str) -> None:
    server.script(Reply(text=TEXT, cut_after=2), Reply(text="next"))
    url, body, query = _stream_request(server, protocol)
    with httpx.Client() as client:
        response = client.post(url, json=body, params=query)
        assert response.status_code == 200
        for marker in TERMINATORS[protocol]:
            assert marker not in response.text
        assert TEXT_MARKERS[protocol] in response.text
        assert '"gamma ' not in response.text
        # The HTTP response itself was complete, so the connection is reused.
        assert client.post(url, json=body, params=query).status_code == 200
    assert server.connections_opened == 1
    assert server.client_disconnects == 0


def test_cut_stream_seen_by_the_openai_sdk(server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, cut_after=3))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    chunks = list(
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "alpha beta gamma "
    assert all(c.choices[0].finish_reason is None for c in chunks)


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "ollama", "gemini"])
def test_disconnect_mid_stream(server: ProviderServer, protocol: str) -> None:
    server.script(Reply(text=TEXT, disconnect_after=2))
    url, body, query = _stream_request(server, protocol)
    received = b""
    with (
        httpx.Client() as client,
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", url, json=body, params=query) as response,
    ):
        for data in response.iter_raw():
            received += data
    assert TEXT_MARKERS[protocol].encode() in received
    assert b'"gamma ' not in received
    assert server.server_disconnects == 1
    assert server.client_disconnects == 0


def test_disconnect_seen_by_the_openai_sdk(server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, disconnect_after=1))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen: list[str] = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "alpha "


@pytest.mark.parametrize("item", [Disconnect(), Fault(status=0)])
def test_disconnect_without_answer(server: ProviderServer, item: Disconnect | Fault) -> None:
    server.script(item)
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert server.server_disconnects == 1
    assert server.requests[-1].path == "/v1/chat/completions"


def test_stall_then_client_timeout_counts_a_disconnect(server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, stall_after=1))
    url, body, query = _stream_request(server, "openai")
    received = b""
    with (
        httpx.Client(timeout=httpx.Timeout(5.0, read=0.2)) as client,
        pytest.raises(httpx.ReadTimeout),
        client.stream("POST", url, json=body, params=query) as response,
    ):
        for data in response.iter_raw():
            received += data
    assert b'"content":"alpha "' in received and b"beta" not in received
    assert server.wait_for_disconnects(1, timeout=2.0)
    assert server.client_disconnects == 1


def test_stall_seen_by_the_sdk_as_a_timeout(server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, stall_after=0))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert server.wait_for_disconnects(1)


def test_client_closing_a_slow_stream_is_counted(server: ProviderServer) -> None:
    server.script(Reply(text=" ".join(["word"] * 50), chunk_delay=0.02))
    url, body, query = _stream_request(server, "ollama")
    with httpx.Client() as client, client.stream("POST", url, json=body, params=query) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["message"]["content"] == "word "
    assert server.wait_for_disconnects(1)


def test_client_leaving_during_latency_is_counted(server: ProviderServer) -> None:
    server.script(Reply(text="late", latency=5.0))
    started = time.monotonic()
    with httpx.Client(timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
        client.post(server.openai_base_url + "/chat/completions", json={"model": "m", "messages": []})
    assert server.wait_for_disconnects(1)
    assert time.monotonic() - started < 2.0


def test_stop_ends_a_stalled_stream_without_counting_it(server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, stall_after=1))
    url, body, query = _stream_request(server, "openai")
    with httpx.Client() as client, client.stream("POST", url, json=body, params=query) as response:
        chunks = response.iter_raw()
        assert next(chunks)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in chunks:
                pass
    assert server.client_disconnects == 0


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "ollama", "gemini"])
def test_malformed_event_then_the_stream_goes_on(server: ProviderServer, protocol: str) -> None:
    server.script(Reply(text=TEXT, malformed_after=1))
    url, body, query = _stream_request(server, protocol)
    with httpx.Client() as client:
        text = client.post(url, json=body, params=query).text
    separator = "\n" if protocol == "ollama" else ("\r\n\r\n" if protocol == "gemini" else "\n\n")
    payloads = []
    for block in text.split(separator):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        payloads.append(data[0] if data else block)
    bad = []
    for payload in filter(None, payloads):
        if payload == "[DONE]":
            continue
        try:
            json.loads(payload)
        except ValueError:
            bad.append(payload)
    assert len(bad) == 1
    assert TERMINATORS[protocol][0] in text


def test_non_streamed_faults(server: ProviderServer) -> None:
    url = server.openai_base_url + "/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    server.script(Reply(cut_after=0), Reply(malformed_after=0), Reply(disconnect_after=0))
    with httpx.Client() as client:
        cut = client.post(url, json=body)
        with pytest.raises(ValueError):
            cut.json()
        assert cut.text.startswith('{"id"')
        with pytest.raises(ValueError):
            client.post(url, json=body).json()
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(url, json=body)
    assert server.server_disconnects == 1


def test_latency_is_honoured(server: ProviderServer) -> None:
    server.script(Reply(text="slow", latency=0.2), Fault(503, latency=0.2))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "x"}]
    started = time.monotonic()
    client.chat.completions.create(model="m", messages=messages)
    assert 0.2 <= time.monotonic() - started < 1.5
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=messages)
    assert 0.2 <= time.monotonic() - started < 1.5


def test_chunk_delay_is_honoured(server: ProviderServer) -> None:
    server.script(Reply(text="a b c d e", chunk_delay=0.05))
    url, body, query = _stream_request(server, "openai")
    arrivals: list[float] = []
    with httpx.Client() as client, client.stream("POST", url, json=body, params=query) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 0.18  # four gaps of 0.05 s, with a little scheduling slack
    assert arrivals[-1] - arrivals[0] < 1.5


def test_fault_after_tool_call_only_reply(server: ProviderServer) -> None:
    server.script(Reply(text="", tool_calls=[ToolCall("f", {"a": 1})], cut_after=0))
    url, body, query = _stream_request(server, "anthropic")
    with httpx.Client() as client:
        text = client.post(url, json=body, params=query).text
    assert "message_start" in text and "tool_use" not in text and "message_stop" not in text
