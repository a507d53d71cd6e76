"""The Ollama protocol, proved with the real ``ollama`` SDK and ``ChatOllama``."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_ollama import ChatOllama

from modelforge.testing import Fault, ProviderServer, Reply, ToolCall, Usage

MODEL = "qwen3:1.7b"
MESSAGES = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _client(server: ProviderServer) -> ollama.Client:
    return ollama.Client(host=server.ollama_base_url)


def test_non_streamed_chat(server: ProviderServer) -> None:
    server.script(Reply(text="Hi there", usage=Usage(8, 2)))
    response = _client(server).chat(model=MODEL, messages=MESSAGES, stream=False)
    assert response.message.role == "assistant"
    assert response.message.content == "Hi there"
    assert response.done is True and response.done_reason == "stop"
    assert (response.prompt_eval_count, response.eval_count) == (8, 2)
    assert server.requests[-1].protocol == "ollama"
    assert server.requests[-1].json["stream"] is False


def test_streams_by_default(server: ProviderServer) -> None:
    server.script(Reply(text="one two three"))
    with httpx.Client() as client:
        response = client.post(
            server.ollama_base_url + "/api/chat", json={"model": MODEL, "messages": MESSAGES}
        )
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["done"] for line in lines] == [False, False, False, True]
    assert "".join(line["message"]["content"] for line in lines) == "one two three"
    assert lines[-1]["done_reason"] == "stop"


def test_streamed_chat_with_sdk(server: ProviderServer) -> None:
    server.script(Reply(text="streamed words here", usage=Usage(3, 3)))
    parts = list(_client(server).chat(model=MODEL, messages=MESSAGES, stream=True))
    assert "".join(p.message.content or "" for p in parts) == "streamed words here"
    assert parts[-1].done and parts[-1].eval_count == 3


def test_tool_calls(server: ProviderServer) -> None:
    args = {"city": "Paris", "days": 2}
    server.script(
        Reply(text="", tool_calls=[ToolCall("get_weather", args)]),
        Reply(text="", tool_calls=[ToolCall("get_weather", args)]),
    )
    response = _client(server).chat(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], stream=False)
    assert response.message.tool_calls is not None
    assert response.message.tool_calls[0].function.name == "get_weather"
    assert response.message.tool_calls[0].function.arguments == args
    streamed = [
        p for p in _client(server).chat(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], stream=True)
    ]
    calls = [c for p in streamed for c in (p.message.tool_calls or [])]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", args)]


def test_chat_ollama_invoke_stream_tools_usage(server: ProviderServer) -> None:
    model = ChatOllama(model=MODEL, base_url=server.ollama_base_url)
    server.script(
        Reply(text="plain", usage=Usage(5, 1)),
        Reply(text="Checking", tool_calls=[ToolCall("get_weather", {"city": "Rome"})]),
    )
    result = model.invoke("hi")
    assert result.content == "plain"
    assert result.usage_metadata is not None and result.usage_metadata["input_tokens"] == 5
    full: AIMessageChunk | None = None
    for chunk in model.bind_tools([WEATHER_TOOL]).stream("weather?"):
        assert isinstance(chunk, AIMessageChunk)
        full = chunk if full is None else full + chunk
    assert full is not None and full.content == "Checking"
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Rome"})]


async def test_async_chat_ollama(server: ProviderServer) -> None:
    server.script(Reply(text="async ollama"), Reply(text="async stream"))
    model = ChatOllama(model=MODEL, base_url=server.ollama_base_url)
    assert (await model.ainvoke("hi")).content == "async ollama"
    assert "".join([str(c.content) async for c in model.astream("hi")]) == "async stream"


def test_unknown_model_is_404(server: ProviderServer) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        _client(server).chat(model="missing-model", messages=MESSAGES, stream=False)
    assert info.value.status_code == 404
    assert info.value.error == 'model "missing-model" not found, try pulling it first'


def test_latest_tag_is_implied(server: ProviderServer) -> None:
    server.ollama_models = ["llama3.2"]
    assert _client(server).chat(model="llama3.2:latest", messages=MESSAGES, stream=False).message.content


def test_tags_version_show(server: ProviderServer) -> None:
    server.ollama_models = ["qwen3:1.7b", "llama3.2:1b"]
    client = _client(server)
    assert [m.model for m in client.list().models] == ["qwen3:1.7b", "llama3.2:1b"]
    assert "tools" in (client.show("qwen3:1.7b").capabilities or [])
    with pytest.raises(ollama.ResponseError):
        client.show("nope")
    with httpx.Client() as raw:
        assert raw.get(server.ollama_base_url + "/api/version").json()["version"]


@pytest.mark.parametrize("status", [401, 429, 500])
def test_faults_surface_as_response_error(server: ProviderServer, status: int) -> None:
    server.script(Fault(status, "it failed", retry_after="3"))
    with pytest.raises(ollama.ResponseError) as info:
        _client(server).chat(model=MODEL, messages=MESSAGES, stream=False)
    assert info.value.status_code == status
    assert info.value.error == "it failed"


def test_fault_on_stream_and_header_visible(server: ProviderServer) -> None:
    server.script(Fault(429, "busy", retry_after="3"), Fault(503, "down"))
    with httpx.Client() as client:
        response = client.post(
            server.ollama_base_url + "/api/chat", json={"model": MODEL, "messages": MESSAGES}
        )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"error": "busy"}
    with pytest.raises(ollama.ResponseError) as info:
        list(_client(server).chat(model=MODEL, messages=MESSAGES, stream=True))
    assert info.value.status_code == 503
