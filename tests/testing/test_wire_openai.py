"""The OpenAI chat-completions protocol, proved with the real ``openai`` SDK and ``ChatOpenAI``."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI

from modelforge.testing import Fault, ProviderServer, Reply, ToolCall, Usage

KEY = "sk-test-openai-wire"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _client(server: ProviderServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0)


def _chat(server: ProviderServer, **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=server.openai_base_url, api_key=KEY, max_retries=0, **kwargs
    )


def test_non_streamed_text_and_usage(server: ProviderServer) -> None:
    server.script(Reply(text="Hi there", usage=Usage(11, 2), model="gpt-4o-2024-08-06"))
    result = _client(server).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert result.choices[0].message.content == "Hi there"
    assert result.choices[0].finish_reason == "stop"
    assert result.model == "gpt-4o-2024-08-06"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (
        11,
        2,
        13,
    )
    recorded = server.requests[-1]
    assert recorded.protocol == "openai"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.json["messages"][0]["content"] == "hello"


def test_streamed_text_with_include_usage(server: ProviderServer) -> None:
    server.script(Reply(text="one two three four", usage=Usage(5, 4)))
    stream = _client(server).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 9


def test_stream_without_include_usage_has_no_usage_chunk(server: ProviderServer) -> None:
    chunks = list(
        _client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_custom_chunks_are_streamed_as_given(server: ProviderServer) -> None:
    server.script(Reply(text="abcdef", chunks=["ab", "cd", "ef"]))
    chunks = list(_chat(server).stream("go"))
    assert [c.content for c in chunks if c.content] == ["ab", "cd", "ef"]


def test_tool_call_non_streamed(server: ProviderServer) -> None:
    server.script(Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_fixed")]))
    result = _client(server).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL]
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "call_fixed"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_calls_streamed_reassemble(server: ProviderServer) -> None:
    args = {"city": "Paris", "days": 3, "units": {"temp": "C"}}
    server.script(Reply(text="Checking.", tool_calls=[ToolCall("get_weather", args), ToolCall("noop", {})]))
    model = _chat(server).bind_tools([WEATHER_TOOL])
    full: AIMessageChunk | None = None
    for chunk in model.stream("weather?"):
        assert isinstance(chunk, AIMessageChunk)
        full = chunk if full is None else full + chunk
    assert full is not None
    assert full.content == "Checking."
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", args), ("noop", {})]
    assert all(c["id"] and c["id"].startswith("call_") for c in full.tool_calls)
    assert full.response_metadata["finish_reason"] == "tool_calls"


def test_raw_tool_call_deltas_are_split(server: ProviderServer) -> None:
    server.script(Reply(text="", tool_calls=[ToolCall("f", {"a": "long argument value"})]))
    with httpx.Client() as client:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        text = client.post(server.openai_base_url + "/chat/completions", json=body).text
    events = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]
    deltas = [e["choices"][0]["delta"].get("tool_calls") for e in events]
    calls = [d[0] for d in deltas if d]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"] == {"name": "f", "arguments": ""}
    fragments = [c["function"]["arguments"] for c in calls[1:]]
    assert len(fragments) > 1 and all("id" not in c for c in calls[1:])
    assert json.loads("".join(fragments)) == {"a": "long argument value"}
    assert text.rstrip().endswith("data: [DONE]")


def test_chat_openai_usage_and_finish(server: ProviderServer) -> None:
    server.script(Reply(text="fine", usage=Usage(7, 1)), Reply(text="streamed", usage=Usage(3, 2)))
    result = _chat(server).invoke("hi")
    assert result.usage_metadata is not None
    assert result.usage_metadata["input_tokens"] == 7
    assert result.usage_metadata["output_tokens"] == 1
    full = None
    for chunk in _chat(server, stream_usage=True).stream("hi"):
        full = chunk if full is None else full + chunk
    assert full is not None and full.usage_metadata is not None
    assert full.usage_metadata["total_tokens"] == 5
    assert server.requests[-1].json["stream_options"] == {"include_usage": True}


def test_estimated_usage_is_deterministic(server: ProviderServer) -> None:
    client = _client(server)
    messages = [{"role": "user", "content": "three little words"}]
    server.script(Reply(text="a b c d"), Reply(text="a b c d"))
    first = client.chat.completions.create(model="m", messages=messages).usage
    second = client.chat.completions.create(model="m", messages=messages).usage
    assert first == second
    assert first is not None and (first.prompt_tokens, first.completion_tokens) == (3, 4)


async def test_async_invoke_and_stream(server: ProviderServer) -> None:
    server.script(Reply(text="async hello"), Reply(text="async stream"))
    model = _chat(server)
    assert (await model.ainvoke("hi")).content == "async hello"
    parts = [c.content async for c in model.astream("hi")]
    assert "".join(str(p) for p in parts) == "async stream"


def test_length_finish_reason(server: ProviderServer) -> None:
    server.script(Reply(text="truncated", finish_reason="length"))
    result = _client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert result.choices[0].finish_reason == "length"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(401, "bad key"), openai.AuthenticationError),
        (Fault(404, "no such model"), openai.NotFoundError),
        (Fault(429, "slow down", retry_after="2"), openai.RateLimitError),
        (Fault(500, "boom"), openai.InternalServerError),
    ],
)
def test_faults_surface_as_sdk_errors(server: ProviderServer, fault: Fault, error: type[Exception]) -> None:
    server.script(fault)
    with pytest.raises(error) as info:
        _client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert isinstance(info.value, openai.APIStatusError)
    assert info.value.status_code == fault.status
    assert fault.message in info.value.message
    if fault.retry_after is not None:
        assert info.value.response.headers["retry-after"] == "2"


def test_fault_headers_and_retry_after_ms(server: ProviderServer) -> None:
    server.script(
        Fault(429, retry_after=2.5, retry_after_ms=2500, headers={"x-ratelimit-remaining-requests": "0"})
    )
    with pytest.raises(openai.RateLimitError) as info:
        _chat(server).invoke("hi")
    headers = info.value.response.headers
    assert headers["retry-after"] == "2.5"
    assert headers["retry-after-ms"] == "2500"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.body == {
        "message": "Rate limit exceeded. Please retry later.",
        "type": "rate_limit_exceeded",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_fault_raw_body_override(server: ProviderServer) -> None:
    server.script(Fault(502, body="<html>bad gateway</html>"))
    with httpx.Client() as client:
        response = client.post(server.openai_base_url + "/chat/completions", json={"messages": []})
    assert response.status_code == 502
    assert response.text == "<html>bad gateway</html>"


def test_reply_headers_are_sent(server: ProviderServer) -> None:
    server.script(Reply(text="ok", headers={"x-ratelimit-remaining-requests": "41"}))
    raw = _client(server).chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-ratelimit-remaining-requests"] == "41"
    assert raw.parse().choices[0].message.content == "ok"


def test_require_api_key(server: ProviderServer) -> None:
    server.require_api_key = KEY
    wrong = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "invalid_api_key"
    ok = _client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert ok.choices[0].message.content


def test_models_list(server: ProviderServer) -> None:
    server.openai_models = ["gpt-a", "gpt-b"]
    assert [m.id for m in _client(server).models.list()] == ["gpt-a", "gpt-b"]


def test_bad_request_body(server: ProviderServer) -> None:
    with pytest.raises(openai.BadRequestError):
        _client(server).chat.completions.create(model="m", messages=None)  # type: ignore[arg-type]
