"""OpenAI's Responses API as a path of the OpenAI-compatible family: chosen per model in the config
(``api: responses`` / ``chat``, or langchain-openai's own ``use_responses_api``), or by langchain-openai
itself when the call needs it; previous_response_id and built-in tools pass through; a wrong setting is
refused when the model is made. (Stream faults, retries and stream events run on it with every other family:
``conftest.CASES`` has an ``openai_responses`` case; recorded real answers: ``tests/conformance``.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelforge.exceptions import (
    ConfigurationError,
    ConfigurationValidationError,
    ProviderServerError,
    StreamInterruptedError,
)
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Recorded, Reply, ToolCall, Usage
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY


def registry(server: ProviderServer, **model: Any) -> ModelForgeRegistry:
    provider = {"llm_type": "openai", "base_url": server.openai_base_url, "models": {"gpt-5.5": model}}
    return ModelForgeRegistry.from_config(
        {"providers": {"openai": provider}}, api_keys={"openai": OPENAI_KEY}
    )


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ({"api": "responses"}, "/v1/responses"),
        ({"use_responses_api": True}, "/v1/responses"),
        ({"api": "chat"}, "/v1/chat/completions"),
        ({}, "/v1/chat/completions"),
    ],
)
def test_the_config_chooses_the_api(server: ProviderServer, model: dict[str, Any], path: str) -> None:
    server.script(Reply(text="Hi there", usage=Usage(9, 2)))
    answer = registry(server, **model).get_llm("openai", "gpt-5.5").invoke("hi")
    assert answer.text == "Hi there"
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 2
    assert server.requests[-1].path == path


def test_api_chat_wins_over_langchains_automatic_choice(server: ProviderServer) -> None:
    """previous_response_id would make langchain-openai pick the Responses API; api: chat says no."""
    server.script(Reply(text="ok"))
    registry(server, api="chat").get_llm("openai", "gpt-5.5").invoke("hi")
    assert server.requests[-1].path == "/v1/chat/completions"
    server.script(Reply(text="ok"))
    registry(server).get_llm("openai", "gpt-5.5").invoke("hi", previous_response_id="resp_earlier")
    assert server.requests[-1].path == "/v1/responses"  # unset: langchain-openai's choice


def test_previous_response_id_and_builtin_tools_reach_the_request(server: ProviderServer) -> None:
    llm = registry(server, api="responses").get_llm("openai", "gpt-5.5")
    server.script(Reply(text="Found it"))
    answer = llm.bind_tools([{"type": "web_search"}]).invoke("news?", previous_response_id="resp_earlier")
    assert answer.text == "Found it"
    sent = server.requests[-1].json
    assert sent["previous_response_id"] == "resp_earlier"
    assert sent["tools"] == [{"type": "web_search"}]


def test_tool_calls_come_back_from_the_responses_api(server: ProviderServer) -> None:
    llm = registry(server, api="responses").get_llm("openai", "gpt-5.5")
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    server.script(Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    answer = llm.bind_tools([weather]).invoke("weather in Paris?")
    assert [(call["name"], call["args"]) for call in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    server.script(Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Lyon"})]))
    chunks = list(llm.bind_tools([weather]).stream("weather in Lyon?"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert [(call["name"], call["args"]) for call in merged.tool_calls] == [("get_weather", {"city": "Lyon"})]


def test_a_max_tokens_stop_ends_as_an_incomplete_response(server: ProviderServer) -> None:
    """status: incomplete (max_output_tokens) is a finished stream, reported as cut by length."""
    llm = registry(server, api="responses").get_llm("openai", "gpt-5.5")
    server.script(Reply(text="one two three", finish_reason="length"))
    chunks = list(llm.stream("count"))
    assert "".join(chunk.text for chunk in chunks) == "one two three"
    last = chunks[-1].response_metadata
    assert last["status"] == "incomplete" and last["incomplete_details"] == {"reason": "max_output_tokens"}


def test_disagreeing_switches_are_refused_naming_both(server: ProviderServer) -> None:
    with pytest.raises(ConfigurationValidationError) as info:
        registry(server, api="chat", use_responses_api=True)
    assert "api: chat" in str(info.value) and "use_responses_api: true" in str(info.value)


def test_only_openai_compatible_providers_take_the_switch(server: ProviderServer) -> None:
    provider = {
        "llm_type": "anthropic",
        "base_url": server.anthropic_base_url,
        "models": {"claude-haiku-4-5": {"api": "responses"}},
    }
    forge = ModelForgeRegistry.from_config(
        {"providers": {"anthropic": provider}}, api_keys={"anthropic": ANTHROPIC_KEY}
    )
    with pytest.raises(ConfigurationError) as info:
        forge.get_llm("anthropic", "claude-haiku-4-5")
    assert info.value.error_code == "RESPONSES_API_UNSUPPORTED"
    assert "anthropic/claude-haiku-4-5" in str(info.value)


def test_the_response_cache_serves_a_responses_api_answer(server: ProviderServer) -> None:
    provider = {
        "llm_type": "openai",
        "base_url": server.openai_base_url,
        "models": {"gpt-5.5": {"api": "responses"}},
        "cache": {"backend": "memory", "ttl": 60},
    }
    llm = ModelForgeRegistry.from_config(
        {"providers": {"openai": provider}}, api_keys={"openai": OPENAI_KEY}
    ).get_llm("openai", "gpt-5.5")
    server.script(Reply(text="Cached once", usage=Usage(9, 2)))
    first = llm.invoke("same question")
    second = llm.invoke("same question")
    assert first.text == second.text == "Cached once"
    assert len([r for r in server.requests if r.path == "/v1/responses"]) == 1
    assert second.response_metadata.get("modelforge_cache") == "hit"


def sse(kind: str, number: int, **fields: Any) -> str:
    """One Responses API server-sent event, framed as the API sends it."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': number, **fields})}\n\n"


@pytest.mark.parametrize("text_before", [False, True])
def test_a_failed_response_event_is_typed_and_keeps_the_text(
    server: ProviderServer, text_before: bool
) -> None:
    """``response.failed`` (the Responses API's way to end a stream in error), as the API sends it."""
    response = {"id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-5.5", "output": []}
    created = sse("response.created", 0, response={**response, "status": "in_progress", "usage": None})
    delta = sse(
        "response.output_text.delta",
        1,
        item_id="msg_1",
        output_index=0,
        content_index=0,
        delta="Half an ans",
        logprobs=[],
    )
    error = {"code": "server_error", "message": "The model failed to answer"}
    failed = sse(
        "response.failed", 2, response={**response, "status": "failed", "usage": None, "error": error}
    )
    body = created + (delta if text_before else "") + failed
    llm = registry(server, api="responses").get_llm("openai", "gpt-5.5")
    server.script(Recorded(body.encode()), Reply(text="On the second try."))
    if not text_before:  # nothing reached the caller: retried (the default retry section)
        assert "".join(chunk.text for chunk in llm.stream("answer")) == "On the second try."
        assert len([r for r in server.requests if r.path == "/v1/responses"]) == 2
        return
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in llm.stream("answer"):
            received.append(chunk.text)
    assert info.value.partial_text == "".join(received) == "Half an ans"
    assert isinstance(info.value.__cause__, ProviderServerError) and info.value.retryable
    assert "The model failed to answer" in str(info.value.__cause__)
