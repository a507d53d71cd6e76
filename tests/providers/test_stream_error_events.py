"""Errors a provider sends inside a stream that already answered HTTP 200, for every protocol: OpenAI's
``data: {"error": ...}``, the Responses API's ``error`` event, Anthropic's ``event: error``
(``overloaded_error``...), Ollama's ``{"error": ...}`` line and Gemini's error payload.

Each becomes the ModelForge error the same failure answered up front would be, with its ``retryable``.
After text, it is a ``StreamInterruptedError`` that keeps the text and the error's ``retryable``. Before
any text, nothing has reached the caller, so it is retried, as is a stream that ends before any text
without a finish reason. A fallback chain moves on to the next model in both cases: it restarts the
answer when text had been delivered.

The shapes of the error events follow the providers' API references (no public recording of an in-stream
error exists in the LangChain partner packages' cassettes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelforge.exceptions import (
    BadRequestError,
    ProviderOverloadedError,
    ProviderServerError,
    RateLimitError,
    StreamInterruptedError,
)
from modelforge.registry import ModelForgeRegistry
from modelforge.streaming import StreamEnd, StreamError, StreamRestart, TextDelta, stream_events
from modelforge.testing import Fault, ProviderServer, Recorded, Reply, Usage
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.providers.conftest import FamilyCase, provider_config

TEXT = "one two three four"
# What each protocol calls "overloaded": the status the server renders the error event from.
OVERLOADED = {"anthropic": 529}
OVERLOADED_TYPE = {"ollama": ProviderServerError}  # Ollama's error line carries no type: a server failure


def registry(server: ProviderServer, case: FamilyCase, **settings: Any) -> ModelForgeRegistry:
    data = provider_config(server)
    data["providers"][case.provider].update(settings)
    return ModelForgeRegistry.from_config(data)


def overloaded(case: FamilyCase) -> Fault:
    return Fault(OVERLOADED.get(case.provider, 503), "Overloaded")


def test_an_error_event_after_text_keeps_the_text(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, error_after=2, error=overloaded(case)))
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in registry(server, case).get_llm(case.provider, case.model).stream("count"):
            received.append(chunk.text)
    assert "".join(received) == info.value.partial_text == "one two "
    assert info.value.retryable is True
    assert "Overloaded" in str(info.value)
    expected = OVERLOADED_TYPE.get(case.provider, ProviderOverloadedError)
    assert isinstance(info.value.__cause__, expected)
    assert info.value.details["provider_error"] == info.value.__cause__.error_code


def test_an_error_event_before_any_text_is_the_providers_error(
    case: FamilyCase, server: ProviderServer
) -> None:
    server.script(Reply(text=TEXT, error_after=0, error=overloaded(case)))
    with pytest.raises(OVERLOADED_TYPE.get(case.provider, ProviderOverloadedError)) as info:
        list(registry(server, case).get_llm(case.provider, case.model).stream("count"))
    assert info.value.retryable is True


def chat_requests(server: ProviderServer) -> int:
    """Requests to the model (not Copilot's token exchange)."""
    return len([request for request in server.requests if request.protocol != "github"])


def test_an_error_event_before_any_text_is_retried(case: FamilyCase, server: ProviderServer) -> None:
    """Nothing of the failed attempt reaches the caller, not even its opening chunk's usage."""
    failing = Reply(text=TEXT, error_after=0, error=overloaded(case), usage=Usage(7, 4))
    server.script(failing, Reply(text="fine now", usage=Usage(7, 2)))
    retry = {"max_attempts": 2, "initial_wait": 0.01, "max_wait": 0.01}
    llm = registry(server, case, retry=retry).get_llm(case.provider, case.model)
    chunks = list(llm.stream("count"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.text == "fine now"
    assert merged.usage_metadata is not None
    assert (merged.usage_metadata["input_tokens"], merged.usage_metadata["output_tokens"]) == (7, 2)
    assert chat_requests(server) == 2


def test_a_stream_ending_before_any_text_is_retried(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, cut_after=0), Reply(text="fine now"))
    retry = {"max_attempts": 2, "initial_wait": 0.01, "max_wait": 0.01}
    llm = registry(server, case, retry=retry).get_llm(case.provider, case.model)
    assert "".join(chunk.text for chunk in llm.stream("count")) == "fine now"


def test_an_error_event_that_retrying_cannot_fix_is_not_retried(
    case: FamilyCase, server: ProviderServer
) -> None:
    bad = Reply(text=TEXT, error_after=0, error=Fault(400, "Bad things in the request"))
    server.script(bad, bad, bad)
    retry = {"max_attempts": 3, "initial_wait": 0.01, "max_wait": 0.01}
    llm = registry(server, case, retry=retry).get_llm(case.provider, case.model)
    if case.provider == "ollama":
        # Ollama's error line is a bare message, with no status or type to tell a bad request by: it is
        # taken as a server failure, and retried.
        with pytest.raises(ProviderServerError):
            list(llm.stream("count"))
        assert chat_requests(server) == 3
        return
    with pytest.raises(BadRequestError):
        list(llm.stream("count"))
    assert chat_requests(server) == 1


@pytest.mark.parametrize("after", [0, 2])
def test_a_fallback_chain_moves_on(
    case: FamilyCase, server: ProviderServer, after: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "anthropic" if case.provider != "anthropic" else "openai"
    monkeypatch.setenv(
        f"MODELFORGE_{other.upper()}_API_KEY", ANTHROPIC_KEY if other == "anthropic" else OPENAI_KEY
    )
    llm = registry(server, case, fallbacks=[other]).get_llm(case.provider, case.model)
    server.script(
        Reply(text=TEXT, error_after=after, error=overloaded(case)), Reply(text="from the fallback")
    )

    async def run() -> list[Any]:
        return [event async for event in stream_events(llm, "count")]

    events = asyncio.run(run())
    assert not [event for event in events if isinstance(event, StreamError)]
    restarts = [event for event in events if isinstance(event, StreamRestart)]
    assert [restart.discarded_text for restart in restarts] == (["one two "] if after else [])
    (end,) = [event for event in events if isinstance(event, StreamEnd)]
    assert end.text == "from the fallback"
    delivered = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert delivered.endswith("from the fallback")


def test_an_empty_reasoning_item_does_not_count_as_text(server: ProviderServer) -> None:
    """A reasoning model's stream opens with an empty reasoning item: an error right after it reached
    nobody, so the call is retried (recorded event shapes, as in tests/recordings)."""
    opening = (
        'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
        '{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","model":"gpt-5.5",'
        '"output":[],"usage":null}}\n\n'
        'event: response.output_item.added\ndata: {"type":"response.output_item.added","sequence_number":1,'
        '"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}\n\n'
        'event: error\ndata: {"type":"error","sequence_number":2,"code":"server_error",'
        '"message":"The server had an error","param":null}\n\n'
    )
    data = provider_config(server)
    data["providers"]["openai_responses"]["retry"] = {"max_attempts": 2, "initial_wait": 0.01}
    llm = ModelForgeRegistry.from_config(data, api_keys={"openai_responses": OPENAI_KEY}).get_llm(
        "openai_responses", "gpt-5.5"
    )
    server.script(Recorded(opening.encode()), Reply(text="after the retry"))
    assert "".join(chunk.text for chunk in llm.stream("think")) == "after the retry"
    assert chat_requests(server) == 2


@pytest.mark.parametrize(
    ("body", "expected", "requests"),
    [
        ('{"error": {"code": 429, "message": "slow down"}}', RateLimitError, 2),  # OpenRouter, LiteLLM
        ('{"error": {"code": "invalid_image_url", "message": "bad image"}}', BadRequestError, 1),
    ],
)
def test_error_codes_inside_an_openai_stream(
    server: ProviderServer, body: str, expected: type[Exception], requests: int
) -> None:
    data = provider_config(server)
    data["providers"]["openai"]["retry"] = {"max_attempts": 2, "initial_wait": 0.01, "max_wait": 0.01}
    llm = ModelForgeRegistry.from_config(data, api_keys={"openai": OPENAI_KEY}).get_llm(
        "openai", "gpt-4o-mini"
    )
    failing = Reply(text=TEXT, error_after=0, error=Fault(500, body=body))
    server.script(failing, failing)
    with pytest.raises(expected):
        list(llm.stream("count"))
    assert chat_requests(server) == requests
