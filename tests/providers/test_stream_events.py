"""Typed stream events and the streaming helpers, the same for every provider family."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from langchain_core.tools import tool

import modelforge
from modelforge.catalog import Catalog
from modelforge.exceptions import RateLimitError, StreamInterruptedError
from modelforge.registry import ModelForgeRegistry
from modelforge.streaming import (
    StreamEnd,
    StreamError,
    TextDelta,
    ToolCallComplete,
    ToolCallDelta,
    Usage,
)
from modelforge.testing import Fault, ProviderServer, Reply, ToolCall
from modelforge.testing import Usage as ScriptedUsage
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import FamilyCase


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


@tool
def get_time(zone: str) -> str:
    """Get the time in a time zone."""
    return "12:00"


def llm_for(case: FamilyCase):  # type: ignore[no-untyped-def]
    return ModelForgeRegistry().get_llm(case.provider, case.model)


async def collect(events):  # type: ignore[no-untyped-def]
    return [event async for event in events]


async def test_text_events_end_with_usage_and_finish(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="The sky is blue.", usage=ScriptedUsage(input_tokens=12, output_tokens=5)))
    events = await collect(modelforge.stream_events(llm_for(case), "Why?"))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "The sky is blue."
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "stop" and end.text == text and end.tool_calls == ()
    assert end.usage == Usage(12, 5, 17)
    assert [type(e) for e in events[-2:]] == [Usage, StreamEnd]
    if case.provider in ("local", "ollama"):
        assert end.cost == 0.0
    elif case.provider in ("openai", "anthropic", "google"):
        assert end.cost is not None and end.cost > 0


async def test_two_tool_calls_are_reassembled(case: FamilyCase, server: ProviderServer) -> None:
    server.script(
        Reply(
            text="",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris", "days": [1, 2]}),
                ToolCall("get_time", {"zone": "Europe/Paris"}),
            ],
        )
    )
    llm = llm_for(case).bind_tools([get_weather, get_time])
    events = await collect(modelforge.stream_events(llm, "Weather and time in Paris?"))
    complete = [e for e in events if isinstance(e, ToolCallComplete)]
    assert [(c.name, c.arguments) for c in complete] == [
        ("get_weather", {"city": "Paris", "days": [1, 2]}),
        ("get_time", {"zone": "Europe/Paris"}),
    ]
    assert all(c.id for c in complete)
    assert any(isinstance(e, ToolCallDelta) for e in events)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "tool_calls"
    assert end.tool_calls == tuple(complete)


async def test_tool_call_deltas_and_completes_share_their_index(
    case: FamilyCase, server: ProviderServer
) -> None:
    # Text before the calls: Anthropic numbers its content blocks, so its tool calls arrive as blocks 1 and 2.
    server.script(
        Reply(
            text="Let me check.",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}),
                ToolCall("get_weather", {"city": "Rome"}),
            ],
        )
    )
    llm = llm_for(case).bind_tools([get_weather])
    events = await collect(modelforge.stream_events(llm, "Weather in Paris and Rome?"))
    complete = [e for e in events if isinstance(e, ToolCallComplete)]
    assert [(c.index, c.arguments) for c in complete] == [(0, {"city": "Paris"}), (1, {"city": "Rome"})]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert sorted({d.index for d in deltas}) == [0, 1]
    for call in complete:  # each call's fragments, joined, are that call's arguments
        fragments = "".join(d.arguments for d in deltas if d.index == call.index)
        assert json.loads(fragments or "{}") == call.arguments


async def test_the_price_catalogue_is_read_off_the_event_loop(
    server: ProviderServer, configured: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    threads: list[threading.Thread] = []
    bundled = Catalog.bundled

    def recorded() -> Catalog:
        threads.append(threading.current_thread())
        return bundled()

    monkeypatch.setattr(Catalog, "bundled", recorded)
    server.script(Reply(text="priced", usage=ScriptedUsage(input_tokens=10, output_tokens=2)))
    events = await collect(
        modelforge.stream_events(ModelForgeRegistry().get_llm("openai", "gpt-4o-mini"), "hi")
    )
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.cost is not None and end.cost > 0
    assert threads and threading.current_thread() not in threads, "the catalogue was read on the event loop"


async def test_failures_end_as_one_error_event(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="one two three four", cut_after=2))
    events = await collect(modelforge.stream_events(llm_for(case), "count"))
    assert isinstance(events[-1], StreamError)
    assert isinstance(events[-1].error, StreamInterruptedError)
    assert events[-1].partial_text == "one two "
    assert not any(isinstance(e, StreamEnd) for e in events)

    server.script(Fault(status=429, retry_after="2"))
    events = await collect(modelforge.stream_events(llm_for(case), "count"))
    assert len(events) == 1 and isinstance(events[0], StreamError)
    assert isinstance(events[0].error, RateLimitError)


async def test_progress_on_every_chunk_reconciled_with_usage(
    case: FamilyCase, server: ProviderServer
) -> None:
    server.script(Reply(text="alpha beta gamma delta", usage=ScriptedUsage(input_tokens=3, output_tokens=40)))
    counts: list[int] = []
    pieces = [
        p async for p in modelforge.stream(llm_for(case), "go", buffer_size=1, on_progress=counts.append)
    ]
    assert "".join(pieces) == "alpha beta gamma delta"
    assert len(counts) == len(pieces) + 1, "one call per chunk, then the provider's own count"
    assert counts[:-1] == sorted(counts[:-1]) and counts[-1] == 40


async def test_registry_stream_and_stream_with_callback(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="from the registry"), Reply(text="with a callback"))
    registry = ModelForgeRegistry()
    pieces = [p async for p in registry.stream("hi", provider_name=case.provider, model_alias=case.model)]
    assert "".join(pieces) == "from the registry"
    seen: list[str] = []
    text = await modelforge.stream_with_callback(llm_for(case), "hi", seen.append, buffer_size=1)
    assert text == "with a callback" == "".join(seen)


async def test_stream_to_file_writes_as_it_goes(
    case: FamilyCase, server: ProviderServer, tmp_path: Path
) -> None:
    tmp_path = tmp_path / "out"  # HOME and the working directory live in tmp_path too
    tmp_path.mkdir()
    target = tmp_path / "answer.txt"
    server.script(Reply(text="a b c d e f", chunk_delay=0.01))
    await modelforge.stream_to_file(llm_for(case), "letters", target)
    assert target.read_text() == "a b c d e f"
    server.script(Reply(text="x y z w", cut_after=2))
    with pytest.raises(StreamInterruptedError):
        await modelforge.stream_to_file(llm_for(case), "letters", tmp_path / "cut.txt")
    assert not (tmp_path / "cut.txt").exists(), "no half file posing as complete"
    assert [p.name for p in tmp_path.iterdir()] == ["answer.txt"]


def test_sync_twin(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="sync works too"))
    assert "".join(modelforge.stream_sync(llm_for(case), "hi")) == "sync works too"


async def test_copilot_token_refreshed_between_requests_not_during_a_stream(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch, configured: dict[str, object]
) -> None:
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", "gho_" + "r" * 36)
    server.copilot_token_refresh_in = 1  # the exchange says: refresh after one second
    llm = ModelForgeRegistry().get_llm("github_copilot", "gpt-4o")
    words = " ".join(f"w{i}" for i in range(30))
    server.script(Reply(text=words, chunk_delay=0.05), Reply(text="second"))
    first = "".join([p async for p in modelforge.stream(llm, "long", buffer_size=1)])
    assert first == words, "the long stream ran to its end on its token"
    assert server.copilot_token_exchanges == 1
    second = "".join([p async for p in modelforge.stream(llm, "next")])
    assert second == "second"
    assert server.copilot_token_exchanges == 2, "the next request got a fresh token"
    chats = [r for r in server.requests if r.protocol == "copilot" and r.path.endswith("/chat/completions")]
    assert chats[0].headers["authorization"] != chats[1].headers["authorization"]
    assert os.environ["MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN"] not in chats[0].headers["authorization"]
