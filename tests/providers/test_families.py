"""Every provider family, through the real LangChain client over HTTP, against its wire protocol.

For each of the six families: invoke, stream, a tool call, usage read back, and a 401 / 404 / 429 / 500
answer each ending as the right ``modelforge.exceptions`` type with its fields filled in.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from modelforge.exceptions import (
    InvalidApiKeyError,
    ModelForgeError,
    ModelNotFoundError,
    ProviderServerError,
    RateLimitError,
)
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply, ToolCall, Usage
from tests.providers.conftest import FamilyCase


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


def llm_for(case: FamilyCase):  # type: ignore[no-untyped-def]
    return ModelForgeRegistry().get_llm(case.provider, case.model)


def test_invoke_reads_text_and_usage(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="The sky is blue.", usage=Usage(input_tokens=11, output_tokens=5)))
    message = llm_for(case).invoke("Why is the sky blue?")
    assert message.content == "The sky is blue." or message.text == "The sky is blue."
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 11
    assert message.usage_metadata["output_tokens"] == 5


def test_stream_reassembles_the_text_and_reports_usage(case: FamilyCase, server: ProviderServer) -> None:
    text = "Once upon a time there was a lighthouse."
    server.script(Reply(text=text, usage=Usage(input_tokens=7, output_tokens=9)))
    chunks = list(llm_for(case).stream("Tell me a story"))
    assert len(chunks) > 2
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.text == text
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["output_tokens"] == 9


async def test_async_stream(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="one two three"))
    pieces = [chunk.text async for chunk in llm_for(case).astream("count")]
    assert "".join(pieces) == "one two three"


def test_tool_call_round_trip(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]))
    message = llm_for(case).bind_tools([get_weather]).invoke("Weather in Paris?")
    assert [call["name"] for call in message.tool_calls] == ["get_weather"]
    assert message.tool_calls[0]["args"] == {"city": "Paris"}
    sent = server.requests[-1].json or {}
    assert "get_weather" in str(sent), "the tool definition reached the provider"


def test_streamed_tool_call_arguments_reassemble(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})]))
    merged = None
    for chunk in llm_for(case).bind_tools([get_weather]).stream("Weather in Oslo?"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    assert [(call["name"], call["args"]) for call in merged.tool_calls] == [("get_weather", {"city": "Oslo"})]


def test_works_inside_an_lcel_chain(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="Bonjour"))
    chain = ChatPromptTemplate.from_messages([("user", "Translate {word} to French")]) | llm_for(case)
    assert chain.invoke({"word": "hello"}).text == "Bonjour"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, InvalidApiKeyError), (404, ModelNotFoundError), (429, RateLimitError), (500, ProviderServerError)],
)
def test_http_errors_become_modelforge_errors(
    case: FamilyCase, server: ProviderServer, status: int, expected: type[ModelForgeError]
) -> None:
    fault = Fault(status=status, message=f"scripted {status}", retry_after="7" if status == 429 else None)
    # A 401 from Copilot makes ModelForge exchange the OAuth token again and retry once: script two.
    attempts = 2 if (case.provider == "github_copilot" and status == 401) else 1
    server.script(*[fault] * attempts)
    with pytest.raises(expected) as info:
        llm_for(case).invoke("hello")
    err = info.value
    assert err.provider == case.provider
    assert err.status_code == status
    assert err.retryable is (status in (429, 500))
    if status == 429 and case.errors_carry_headers:
        assert err.retry_after == 7.0
    model_requests = [r for r in server.requests if r.protocol != "github"]
    assert len(model_requests) == attempts, "no hidden SDK retries"


async def test_async_errors_are_translated_too(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Fault(status=429, message="slow down", retry_after="3"))
    with pytest.raises(RateLimitError):
        await llm_for(case).ainvoke("hello")


def test_stream_errors_are_translated(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Fault(status=500, message="boom"))
    with pytest.raises(ProviderServerError):
        list(llm_for(case).stream("hello"))


def test_revoked_copilot_token_is_exchanged_again_once(
    server: ProviderServer, monkeypatch, configured
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", "gho_" + "x" * 36)
    llm = ModelForgeRegistry().get_llm("github_copilot", "gpt-4o")
    server.script(Reply(text="first"), Fault(status=401, message="token revoked"), Reply(text="second"))
    assert llm.invoke("one").text == "first"
    assert llm.invoke("two").text == "second"
    assert server.copilot_token_exchanges == 2


def test_copilot_login_change_is_picked_up(server: ProviderServer, monkeypatch, configured) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", "gho_" + "a" * 36)
    ModelForgeRegistry().get_llm("github_copilot", "gpt-4o").invoke("one")
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", "gho_" + "b" * 36)
    ModelForgeRegistry().get_llm("github_copilot", "gpt-4o").invoke("two")
    exchanges = [r for r in server.requests if r.path.startswith("/copilot_internal")]
    assert [r.headers["authorization"][-1] for r in exchanges] == ["a", "b"]
