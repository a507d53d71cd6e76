"""Streams through a fallback chain over real HTTP.

Before the first chunk reached the caller a failure moves on silently; after text was delivered the next
model takes over behind a restart (``StreamRestart`` for ``stream_events`` consumers, a restart chunk for
plain ``stream()`` consumers), or with ``restart_streams=False`` the failure is raised. Without a fallback a
failure after the first chunk is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableLambda

import modelforge
from modelforge.exceptions import AllProvidersFailedError, ProviderOverloadedError, StreamInterruptedError
from modelforge.policies.circuit import CircuitBreakerRegistry, CircuitState
from modelforge.policies.fallback import FALLBACK_KEY, FallbackChatModel, restart_info
from modelforge.streaming import StreamEnd, StreamError, StreamRestart, TextDelta
from modelforge.testing import Disconnect, Fault, ProviderServer, Reply
from tests.fallback.conftest import FakeClock, protocols

MODES = ["sync", "async"]
TEXT = "one two three four five"
RESCUE = "alpha beta gamma"


async def chunks(llm: BaseChatModel, mode: str, prompt: str = "count") -> list[AIMessageChunk]:
    if mode == "sync":
        return await asyncio.to_thread(lambda: list(llm.stream(prompt)))
    return [chunk async for chunk in llm.astream(prompt)]


async def events(llm: Any, prompt: str = "count") -> list[Any]:
    return [event async for event in modelforge.stream_events(llm, prompt)]


def texts(items: list[Any]) -> str:
    return "".join(e.text for e in items if isinstance(e, TextDelta))


BEFORE_FIRST_CHUNK: list[Any] = [
    pytest.param(Fault(status=503), id="503"),
    pytest.param(Fault(status=429, retry_after="1"), id="429"),
    pytest.param(Disconnect(), id="reset"),
    pytest.param(Reply(text=TEXT, disconnect_after=0), id="dropped-before-text"),
]

AFTER_TEXT: list[Any] = [
    pytest.param({"disconnect_after": 2}, id="dropped"),
    pytest.param({"cut_after": 2}, id="cut"),
]


@pytest.mark.parametrize("fault", BEFORE_FIRST_CHUNK)
async def test_failure_before_the_first_chunk_moves_on_silently_events(
    chain: FallbackChatModel, server: ProviderServer, fault: Any
) -> None:
    server.script(fault, Reply(text=RESCUE))
    seen = await events(chain)
    assert not any(isinstance(e, StreamRestart | StreamError) for e in seen)
    assert texts(seen) == RESCUE
    assert isinstance(seen[-1], StreamEnd) and seen[-1].text == RESCUE
    assert protocols(server) == ["openai", "anthropic"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", BEFORE_FIRST_CHUNK)
async def test_failure_before_the_first_chunk_moves_on_silently_stream(
    chain: FallbackChatModel, server: ProviderServer, fault: Any, mode: str
) -> None:
    server.script(fault, Reply(text=RESCUE))
    received = await chunks(chain, mode)
    assert not any(restart_info(chunk) for chunk in received)
    assert "".join(chunk.text for chunk in received) == RESCUE
    # Nothing of the failed stream leaked through, not even its empty first chunks.
    assert all(chunk.response_metadata.get("model_provider") != "openai" for chunk in received)
    # The first chunk says who failed and who answers, as an invoke answer does.
    served = received[0].response_metadata[FALLBACK_KEY]
    assert served["provider"] == "anthropic/claude-sonnet-4-6" and served["index"] == 1
    assert [f["provider"] for f in served["failed"]] == ["openai/gpt-4o-mini"]
    assert not any(FALLBACK_KEY in chunk.response_metadata for chunk in received[1:])


@pytest.mark.parametrize("fault", AFTER_TEXT)
async def test_failure_after_text_restarts_on_the_fallback_events(
    chain: FallbackChatModel, server: ProviderServer, fault: dict[str, int]
) -> None:
    server.script(Reply(text=TEXT, **fault), Reply(text=RESCUE))
    seen = await events(chain)
    kinds = [type(e).__name__ for e in seen]
    restart_at = kinds.index("StreamRestart")
    restart = seen[restart_at]
    assert isinstance(restart, StreamRestart)
    assert restart.discarded_text == "one two "
    assert texts(seen[:restart_at]) == "one two "
    assert "openai/gpt-4o-mini" in restart.reason and "STREAM_INTERRUPTED" in restart.reason
    assert texts(seen[restart_at:]) == RESCUE
    end = seen[-1]
    assert isinstance(end, StreamEnd) and end.text == RESCUE and end.finish_reason == "stop"
    assert kinds.count("StreamRestart") == 1 and "StreamError" not in kinds
    assert protocols(server) == ["openai", "anthropic"]


@pytest.mark.parametrize("mode", MODES)
async def test_failure_after_text_plain_stream_gets_a_restart_chunk(
    chain: FallbackChatModel, server: ProviderServer, mode: str
) -> None:
    server.script(Reply(text=TEXT, disconnect_after=2), Reply(text=RESCUE))
    received = await chunks(chain, mode)
    marks = [i for i, chunk in enumerate(received) if restart_info(chunk)]
    assert len(marks) == 1
    mark = marks[0]
    info = restart_info(received[mark])
    assert info is not None
    assert info["discarded_text"] == "one two "
    assert info["failed"] == "openai/gpt-4o-mini"
    assert info["provider"] == "anthropic/claude-sonnet-4-6"
    assert info["error_type"] == "StreamInterruptedError"
    assert received[mark].content == ""
    assert "".join(c.text for c in received[:mark]) == "one two "
    assert "".join(c.text for c in received[mark + 1 :]) == RESCUE


async def test_restart_is_announced_once_before_the_model_that_takes_over(
    models: dict[str, BaseChatModel], breakers: CircuitBreakerRegistry, server: ProviderServer
) -> None:
    chain = FallbackChatModel(
        models=[models["openai"], models["anthropic"], models["ollama"]], circuit_breakers=breakers
    )
    server.script(Reply(text=TEXT, disconnect_after=2), Fault(status=503), Reply(text=RESCUE))
    seen = await events(chain)
    restarts = [e for e in seen if isinstance(e, StreamRestart)]
    assert [r.discarded_text for r in restarts] == ["one two "]
    assert texts(seen) == "one two " + RESCUE
    assert isinstance(seen[-1], StreamEnd) and seen[-1].text == RESCUE
    assert protocols(server) == ["openai", "anthropic", "ollama"]


@pytest.mark.parametrize("mode", MODES)
async def test_restart_streams_off_raises_the_failure_and_tries_nobody_else(
    chain: FallbackChatModel, server: ProviderServer, mode: str
) -> None:
    strict = chain.model_copy(update={"restart_streams": False})
    server.script(Reply(text=TEXT, disconnect_after=2), Reply(text=RESCUE))
    received: list[str] = []

    def consume() -> None:
        for chunk in strict.stream("count"):
            received.append(chunk.text)

    async def aconsume() -> None:
        async for chunk in strict.astream("count"):
            received.append(chunk.text)

    with pytest.raises(StreamInterruptedError) as info:
        await (asyncio.to_thread(consume) if mode == "sync" else aconsume())
    assert info.value.partial_text == "".join(received) == "one two "
    assert protocols(server) == ["openai"]
    assert server.script_remaining == 1


async def test_restart_streams_off_through_stream_events(
    chain: FallbackChatModel, server: ProviderServer
) -> None:
    strict = chain.model_copy(update={"restart_streams": False})
    server.script(Reply(text=TEXT, cut_after=3), Reply(text=RESCUE))
    seen = await events(strict)
    assert isinstance(seen[-1], StreamError)
    assert isinstance(seen[-1].error, StreamInterruptedError)
    assert seen[-1].partial_text == "one two three "
    assert not any(isinstance(e, StreamRestart) for e in seen)


async def test_all_failing_after_text_ends_with_every_failure_and_no_restart(
    chain: FallbackChatModel, server: ProviderServer
) -> None:
    server.script(Reply(text=TEXT, disconnect_after=2), Fault(status=503))
    seen = await events(chain)
    assert not any(isinstance(e, StreamRestart) for e in seen)
    end = seen[-1]
    assert isinstance(end, StreamError)
    assert isinstance(end.error, AllProvidersFailedError)
    assert [type(e) for e in end.error.errors] == [StreamInterruptedError, ProviderOverloadedError]
    assert end.partial_text == "one two "


@pytest.mark.parametrize("mode", MODES)
async def test_without_a_fallback_a_failure_after_the_first_chunk_is_not_retried(
    models: dict[str, BaseChatModel], server: ProviderServer, mode: str
) -> None:
    server.script(Reply(text=TEXT, disconnect_after=2), Reply(text=RESCUE))
    with pytest.raises(StreamInterruptedError) as info:
        await chunks(models["openai"], mode)
    assert info.value.partial_text == "one two "
    assert protocols(server) == ["openai"]
    assert server.script_remaining == 1


async def test_a_consumer_that_stops_early_does_not_leave_a_probe_hanging(
    chain: FallbackChatModel, breakers: CircuitBreakerRegistry, clock: FakeClock, server: ProviderServer
) -> None:
    breaker = breakers.get("openai")
    for _ in range(3):
        breaker.acquire().failed(ProviderOverloadedError("x", status_code=503))
    clock.advance(30.0)
    server.script(Reply(text=TEXT))
    async with contextlib.aclosing(chain.astream("count")) as stream:
        async for _chunk in stream:
            break  # the probe's caller walks away (and closes the stream, as it should)
    assert breaker.state is CircuitState.HALF_OPEN
    server.script(Reply(text=TEXT))
    assert "".join([c.text async for c in chain.astream("count")]) == TEXT  # a new probe was let through
    assert breaker.state is CircuitState.CLOSED


async def test_invoke_is_never_summed_from_a_restarted_stream(
    chain: FallbackChatModel, server: ProviderServer
) -> None:
    # Under astream_events LangChain streams an invoke to feed the events; the chain must not.
    async def call(prompt: str) -> str:
        return str((await chain.ainvoke(prompt)).content)

    server.script(Reply(text=TEXT, disconnect_after=2), Reply(text=RESCUE))
    outputs = [
        event["data"]["output"]
        async for event in RunnableLambda(call).astream_events("count", version="v2")
        if event["event"] == "on_chain_end"
    ]
    assert outputs == [RESCUE]
