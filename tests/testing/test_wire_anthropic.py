"""The Anthropic Messages protocol, proved with the real ``anthropic`` SDK and ``ChatAnthropic``."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessageChunk

from modelforge.testing import Fault, ProviderServer, Reply, ToolCall, Usage

KEY = "sk-ant-test-wire"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hello"}]


def _client(server: ProviderServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=KEY, max_retries=0)


def _chat(server: ProviderServer) -> ChatAnthropic:
    return ChatAnthropic(
        model_name="claude-sonnet-4-6", base_url=server.anthropic_base_url, api_key=KEY, max_retries=0
    )  # type: ignore[call-arg]


def test_non_streamed_text_and_usage(server: ProviderServer) -> None:
    server.script(Reply(text="Hi there", usage=Usage(12, 2)))
    message = _client(server).messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES)
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hi there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 2)
    recorded = server.requests[-1]
    assert recorded.protocol == "anthropic"
    # anthropic 2.x sends the key as a bearer token; older releases use x-api-key. The server takes both.
    assert KEY in (recorded.headers.get("x-api-key"), recorded.headers.get("authorization", "")[7:])
    assert "anthropic-version" in recorded.headers


def test_streamed_text_events(server: ProviderServer) -> None:
    server.script(Reply(text="one two three", usage=Usage(4, 3)))
    with _client(server).messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start"
    assert "content_block_start" in events and "content_block_stop" in events
    assert events[-2:] == ["message_delta", "message_stop"]
    assert final.content[0].text == "one two three"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 3)


def test_tool_use_non_streamed(server: ProviderServer) -> None:
    server.script(Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="toolu_fixed")]))
    message = _client(server).messages.create(
        model="m",
        max_tokens=10,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert message.stop_reason == "tool_use"
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_fixed", "get_weather", {"city": "Paris"})


def test_tool_use_streamed_reassembles(server: ProviderServer) -> None:
    args = {"city": "Paris", "days": 3, "nested": {"k": [1, 2]}}
    server.script(Reply(text="Let me check.", tool_calls=[ToolCall("get_weather", args)]))
    with _client(server).messages.stream(
        model="m",
        max_tokens=10,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as stream:
        json_deltas = [
            e for e in stream if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
        ]
        final = stream.get_final_message()
    assert len(json_deltas) > 1
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == args  # type: ignore[union-attr]
    assert final.content[1].id.startswith("toolu_")  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


def test_chat_anthropic_stream_with_tools_and_usage(server: ProviderServer) -> None:
    server.script(
        Reply(text="Sure.", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})], usage=Usage(9, 5))
    )
    model = _chat(server).bind_tools([WEATHER_TOOL])
    full: AIMessageChunk | None = None
    for chunk in model.stream("weather in Oslo?"):
        assert isinstance(chunk, AIMessageChunk)
        full = chunk if full is None else full + chunk
    assert full is not None
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert full.usage_metadata is not None
    assert (full.usage_metadata["input_tokens"], full.usage_metadata["output_tokens"]) == (9, 5)


def test_chat_anthropic_invoke_text(server: ProviderServer) -> None:
    server.script(Reply(text="plain answer"))
    assert _chat(server).invoke("hi").content == "plain answer"


async def test_async_sdk_stream(server: ProviderServer) -> None:
    server.script(Reply(text="async streamed text"))
    client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key=KEY, max_retries=0)
    async with client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "async streamed text"


def test_length_maps_to_max_tokens(server: ProviderServer) -> None:
    server.script(Reply(text="cut", finish_reason="length"))
    assert (
        _client(server).messages.create(model="m", max_tokens=1, messages=MESSAGES).stop_reason
        == "max_tokens"
    )


@pytest.mark.parametrize(
    ("fault", "error", "kind"),
    [
        (Fault(401), anthropic.AuthenticationError, "authentication_error"),
        (Fault(404), anthropic.NotFoundError, "not_found_error"),
        (Fault(429, "too many", retry_after="2"), anthropic.RateLimitError, "rate_limit_error"),
        (Fault(500), anthropic.InternalServerError, "api_error"),
        (Fault(529, "overloaded"), anthropic.APIStatusError, "overloaded_error"),
    ],
)
def test_faults_surface_as_sdk_errors(
    server: ProviderServer, fault: Fault, error: type[anthropic.APIStatusError], kind: str
) -> None:
    server.script(fault)
    with pytest.raises(error) as info:
        _client(server).messages.create(model="m", max_tokens=1, messages=MESSAGES)
    assert info.value.status_code == fault.status
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == kind
    if fault.retry_after is not None:
        assert info.value.response.headers["retry-after"] == "2"


def test_require_api_key(server: ProviderServer) -> None:
    server.require_api_key = KEY
    wrong = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="m", max_tokens=1, messages=MESSAGES)
    assert _client(server).messages.create(model="m", max_tokens=1, messages=MESSAGES).content


def test_models_list_in_anthropic_shape(server: ProviderServer) -> None:
    server.anthropic_models = ["claude-a"]
    page = _client(server).models.list()
    assert [m.id for m in page.data] == ["claude-a"]
    assert server.requests[-1].protocol == "anthropic"


def test_raw_stream_has_event_lines(server: ProviderServer) -> None:
    body = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client() as client:
        text = client.post(server.anthropic_base_url + "/v1/messages", json=body).text
    assert text.startswith("event: message_start\ndata: {")
    assert text.rstrip().endswith('event: message_stop\ndata: {"type":"message_stop"}')
