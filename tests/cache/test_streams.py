"""Streams: a cached stream replays chunk for chunk (text pieces, tool-call chunks, usage, finish reason),
for every backend and provider family, and through ``modelforge.stream_events`` with the same tool-call
events; invoke and stream answer each other from one entry; an abandoned stream is not stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import modelforge
from modelforge.cache import CachedChatModel, CacheStats
from modelforge.streaming import StreamEnd, ToolCallComplete, ToolCallDelta
from modelforge.testing import ProviderServer, Reply, ToolCall, Usage
from tests.cache.conftest import ask, chunk_view, marker, requests_to, stream_chunks

MODES = ("sync", "async")
FAMILIES = ("openai", "anthropic", "ollama", "google")


def answer_with_tools() -> Reply:
    return Reply(
        text="Let me look that up for you.",
        chunks=["Let me ", "look ", "that up ", "for you."],
        tool_calls=[
            ToolCall("lookup", {"city": "Paris", "units": "metric"}),
            ToolCall("clock", {"tz": "CET"}),
        ],
        usage=Usage(input_tokens=12, output_tokens=9),
    )


@pytest.mark.parametrize("mode", MODES)
async def test_cached_stream_replays_chunk_for_chunk(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    server.script(answer_with_tools())
    llm = make_cached(section)
    live = await stream_chunks(llm, "Weather and time in Paris?", mode)
    cached = await stream_chunks(llm, "Weather and time in Paris?", mode)
    assert requests_to(server) == 1
    assert len(live) >= 6  # four text pieces, tool-call pieces, usage, end
    assert [chunk_view(c) for c in cached] == [chunk_view(c) for c in live]
    assert marker(cached[0]) == "hit"
    assert sum(cached[1:], cached[0]).usage_metadata == sum(live[1:], live[0]).usage_metadata
    assert llm.cache_stats == CacheStats(hits=1, misses=1, stores=1)


def lookup(city: str, units: str) -> str:
    """Look up the weather of a city."""
    return "18C"


def clock(tz: str) -> str:
    """Tell the time in a time zone."""
    return "12:00"


@pytest.mark.parametrize("provider", FAMILIES)
async def test_every_family_replays_its_own_chunks_and_tool_call_events(
    provider: str, server: ProviderServer, make_cached: Callable[..., CachedChatModel]
) -> None:
    server.default_reply = answer_with_tools()
    llm = make_cached(True, provider=provider).bind_tools([lookup, clock])
    live = await stream_chunks(llm, "Weather and time in Paris?", "async")
    cached = await stream_chunks(llm, "Weather and time in Paris?", "async")
    assert [chunk_view(c) for c in cached] == [chunk_view(c) for c in live]

    live_events = [e async for e in modelforge.stream_events(llm, "Tools, please")]
    cached_events = [e async for e in modelforge.stream_events(llm, "Tools, please")]
    assert requests_to(server, provider) == 2
    assert cached_events == live_events
    completes = [e for e in cached_events if isinstance(e, ToolCallComplete)]
    assert [(c.name, c.arguments) for c in completes] == [
        ("lookup", {"city": "Paris", "units": "metric"}),
        ("clock", {"tz": "CET"}),
    ]
    assert any(isinstance(e, ToolCallDelta) for e in cached_events)
    end = cached_events[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "tool_calls"
    assert end.text == "Let me look that up for you."


@pytest.mark.parametrize("mode", MODES)
async def test_an_invoked_answer_serves_a_stream_as_one_chunk(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    server.script(answer_with_tools())
    llm = make_cached(section)
    answer = await ask(llm, "q", mode)
    chunks = await stream_chunks(llm, "q", mode)
    assert requests_to(server) == 1
    text_chunks = [c for c in chunks if c.content or c.tool_call_chunks]
    assert len(text_chunks) == 1
    assert marker(chunks[0]) == "hit"
    whole = sum(chunks[1:], chunks[0])
    assert whole.content == answer.content
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [
        (c["name"], c["args"]) for c in answer.tool_calls
    ]
    assert whole.usage_metadata == answer.usage_metadata
    events = [e async for e in modelforge.stream_events(llm, "q")]
    assert [(e.name, e.arguments) for e in events if isinstance(e, ToolCallComplete)] == [
        ("lookup", {"city": "Paris", "units": "metric"}),
        ("clock", {"tz": "CET"}),
    ]
    assert requests_to(server) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_streamed_answer_serves_an_invoke_merged(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    server.script(answer_with_tools())
    llm = make_cached(section)
    chunks = await stream_chunks(llm, "q", mode)
    answer = await ask(llm, "q", mode)
    assert requests_to(server) == 1
    assert marker(answer) == "hit"
    whole = sum(chunks[1:], chunks[0])
    assert answer.content == whole.content == "Let me look that up for you."
    assert [(c["name"], c["args"], c["id"]) for c in answer.tool_calls] == [
        (c["name"], c["args"], c["id"]) for c in whole.tool_calls
    ]
    assert answer.usage_metadata == whole.usage_metadata
    assert answer.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("mode", MODES)
async def test_an_abandoned_stream_is_not_stored(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    server.default_reply = Reply(text="one two three four five six")
    llm = make_cached(section)
    if mode == "sync":
        stream = llm.stream("count")
        next(stream)
        stream.close()
    else:
        astream = llm.astream("count")
        await anext(astream)
        await astream.aclose()
    assert llm.cache_stats.stores == 0
    chunks = await stream_chunks(llm, "count", mode)
    assert "".join(str(c.content) for c in chunks) == "one two three four five six"
    assert requests_to(server) == 2
    assert llm.cache_stats.stores == 1
