"""Streams that go wrong, for every provider family, against its real wire protocol.

A stream cut before its terminator, a connection dropped mid-stream and a malformed chunk each end as
``StreamInterruptedError`` with the text that arrived; a stalled stream ends as ``NetworkTimeoutError``
when the idle timeout passes; in every case the HTTP connection is closed, and a consumer that stops
early leaves no open connection and no running task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from langchain_core.callbacks import AsyncCallbackHandler

import modelforge
from modelforge.exceptions import MalformedResponseError, NetworkTimeoutError, StreamInterruptedError
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.providers.conftest import FamilyCase

TEXT = "one two three four five six"


def llm_for(case: FamilyCase):  # type: ignore[no-untyped-def]
    return ModelForgeRegistry().get_llm(case.provider, case.model)


@pytest.mark.parametrize("fault", ["cut_after", "disconnect_after", "malformed_after"])
def test_broken_stream_raises_with_the_partial_text(
    case: FamilyCase, server: ProviderServer, fault: str
) -> None:
    server.script(Reply(text=TEXT, **{fault: 2}))
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in llm_for(case).stream("count"):
            received.append(chunk.text)
    assert info.value.partial_text == "one two "
    assert "".join(received) == "one two "
    assert info.value.provider == case.provider


async def test_broken_async_stream_through_modelforge_stream(
    case: FamilyCase, server: ProviderServer
) -> None:
    server.script(Reply(text=TEXT, cut_after=3))
    pieces: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for piece in modelforge.stream(llm_for(case), "count", buffer_size=1):
            pieces.append(piece)
    assert "".join(pieces) == info.value.partial_text == "one two three "


def test_malformed_answer_to_invoke(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, malformed_after=1))
    with pytest.raises(MalformedResponseError) as info:
        llm_for(case).invoke("count")
    assert info.value.retryable


async def test_stall_fires_the_idle_timeout_on_time_and_closes_the_connection(
    case: FamilyCase, server: ProviderServer
) -> None:
    idle = 0.5
    server.script(Reply(text=TEXT, stall_after=2))
    last_piece_at = time.monotonic()
    pieces: list[str] = []
    with pytest.raises(NetworkTimeoutError) as info:
        async for piece in modelforge.stream(llm_for(case), "count", buffer_size=1, idle_timeout=idle):
            pieces.append(piece)
            last_piece_at = time.monotonic()
    waited = time.monotonic() - last_piece_at
    assert idle * 0.9 <= waited <= idle * 1.1, f"idle timeout fired after {waited:.3f}s"
    assert info.value.partial_text == "".join(pieces) == "one two "
    assert server.wait_for_disconnects(1), "the stalled response was closed"


async def test_stall_before_any_chunk_still_times_out(case: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text=TEXT, stall_after=0))
    started = time.monotonic()
    with pytest.raises(NetworkTimeoutError) as info:
        async for _ in modelforge.stream(llm_for(case), "count", idle_timeout=0.3):
            pass
    assert time.monotonic() - started < 1.0
    assert info.value.partial_text == ""
    assert server.wait_for_disconnects(1)


async def test_flush_interval_delivers_buffered_text_while_the_stream_stalls(
    case: FamilyCase, server: ProviderServer
) -> None:
    server.script(Reply(text=TEXT, stall_after=2))
    chunk_times: list[float] = []
    received = ""
    stream = modelforge.stream(
        llm_for(case),
        "count",
        buffer_size=100,
        flush_interval=0.05,
        idle_timeout=3,
        on_chunk=lambda _: chunk_times.append(time.monotonic()),
    )
    async with contextlib.aclosing(stream) as pieces:
        async for piece in pieces:
            received += piece
            if received == "one two ":
                break
    waited = time.monotonic() - chunk_times[0]  # the first request's set-up time does not count
    assert received == "one two "
    assert waited < 1.0, f"the buffered text waited {waited:.2f}s (for the idle timeout?)"
    assert await asyncio.to_thread(server.wait_for_disconnects, 1), "the stalled response was closed"


async def test_flush_interval_on_a_steady_stream_keeps_every_chunk(
    case: FamilyCase, server: ProviderServer
) -> None:
    server.script(Reply(text=TEXT, chunk_delay=0.03))
    pieces = [
        piece
        async for piece in modelforge.stream(
            llm_for(case), "count", buffer_size=100, flush_interval=0.01, idle_timeout=2
        )
    ]
    assert "".join(pieces) == TEXT and len(pieces) > 1


async def test_consumer_breaking_after_three_chunks_leaves_nothing_open(
    case: FamilyCase, server: ProviderServer
) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    server.script(Reply(text=words, chunk_delay=0.02))
    llm = llm_for(case)  # kept alive: a discarded SDK client may schedule its own cleanup task
    before = asyncio.all_tasks()
    received = 0
    async with contextlib.aclosing(modelforge.stream(llm, "go", buffer_size=1)) as pieces:
        async for _ in pieces:
            received += 1
            if received == 3:
                break
    # Nothing may be left running the moment the stream is closed...
    running = {task for task in asyncio.all_tasks() - before if not task.done()} - {asyncio.current_task()}
    assert running == set(), "no task keeps running in the background"
    # ...and the server sees the connection go (waited for in a thread so the loop stays free).
    assert await asyncio.to_thread(server.wait_for_disconnects, 1), "the HTTP response was closed"


def test_sync_consumer_breaking_early_closes_the_response(case: FamilyCase, server: ProviderServer) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    server.script(Reply(text=words, chunk_delay=0.02))
    stream = llm_for(case).stream("go")
    for index, _ in enumerate(stream):
        if index == 3:
            break
    stream.close()
    assert server.wait_for_disconnects(1)


class _Ends(AsyncCallbackHandler):
    """Counts how each model run ended, as a LangChain callback sees it."""

    def __init__(self) -> None:
        self.ends = 0
        self.errors: list[BaseException] = []

    async def on_llm_end(self, response: object, **kwargs: object) -> None:
        self.ends += 1

    async def on_llm_error(self, error: BaseException, **kwargs: object) -> None:
        self.errors.append(error)


@pytest.mark.parametrize("outcome", ["complete", "break", "stall", "cut", "http_error"])
async def test_callbacks_hear_the_end_exactly_once(
    case: FamilyCase, server: ProviderServer, outcome: str
) -> None:
    replies = {
        "complete": Reply(text=TEXT),
        "break": Reply(text=TEXT, chunk_delay=0.02),
        "stall": Reply(text=TEXT, stall_after=2),
        "cut": Reply(text=TEXT, cut_after=2),
        "http_error": Fault(status=500),
    }
    server.script(replies[outcome])
    ends = _Ends()
    # Only the stall needs the idle limit; elsewhere a slow CI machine must not turn it into a timeout.
    idle = 0.3 if outcome == "stall" else None
    stream = modelforge.stream(
        llm_for(case), "count", buffer_size=1, idle_timeout=idle, config={"callbacks": [ends]}
    )
    with contextlib.suppress(Exception):
        async with contextlib.aclosing(stream) as pieces:
            async for _ in pieces:
                if outcome == "break":
                    break
    assert ends.ends + len(ends.errors) == 1, f"ends={ends.ends} errors={ends.errors}"
    assert (ends.ends == 1) is (outcome == "complete")
