"""StreamQueue: streams in order, added while iterating, one abort signal that closes the running stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelforge.exceptions import InvalidInputError, ProviderServerError
from modelforge.streaming import (
    AbortSignal,
    StreamAbortedError,
    StreamEnd,
    StreamError,
    StreamEvent,
    StreamQueue,
    StreamRestart,
    TextDelta,
)
from modelforge.testing import Fault, ProviderServer, Reply


def texts(events: list[tuple[int, StreamEvent]]) -> dict[int, str]:
    by_stream: dict[int, str] = {}
    for index, event in events:
        if isinstance(event, TextDelta):
            by_stream[index] = by_stream.get(index, "") + event.text
    return by_stream


def prompts_sent(server: ProviderServer) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in server.requests]


async def test_streams_run_in_order_one_at_a_time(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="first answer"), Reply(text="second answer"), Reply(text="third answer"))
    queue = StreamQueue()
    assert [queue.add(openai_llm, f"question {n}") for n in range(3)] == [0, 1, 2]
    assert queue.pending == 3
    events: list[tuple[int, StreamEvent]] = []
    async with queue:
        async for index, event in queue:
            if not events or events[-1][0] != index:  # a stream starts only once the previous one ended
                assert len(server.requests) == index + 1
            events.append((index, event))
    indexes = [index for index, _ in events]
    assert indexes == sorted(indexes)
    ends = [(index, e) for index, e in events if isinstance(e, StreamEnd | StreamError)]
    assert [(index, type(e)) for index, e in ends] == [(0, StreamEnd), (1, StreamEnd), (2, StreamEnd)]
    assert texts(events) == {0: "first answer", 1: "second answer", 2: "third answer"}
    assert prompts_sent(server) == ["question 0", "question 1", "question 2"]
    with pytest.raises(InvalidInputError):  # iteration is over: the queue is closed
        queue.add(openai_llm, "too late")


async def test_adding_while_iterating_extends_the_queue(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="a"), Reply(text="b"), Reply(text="c"))
    queue = StreamQueue()
    queue.add(openai_llm, "start")
    seen: list[tuple[int, str]] = []
    async with queue:
        async for index, event in queue:
            if isinstance(event, StreamEnd):
                seen.append((index, event.text))
                if index < 2:
                    queue.add(openai_llm, f"follow-up after {event.text}")
    assert seen == [(0, "a"), (1, "b"), (2, "c")]
    assert prompts_sent(server) == ["start", "follow-up after a", "follow-up after b"]


async def test_a_failed_stream_ends_with_its_error_and_the_next_runs(
    server: ProviderServer, openai_llm: Any
) -> None:
    server.script(Fault(500, "overloaded"), Reply(text="fine"))
    queue = StreamQueue()
    queue.add(openai_llm, "one")
    queue.add(openai_llm, "two")
    async with queue:
        events = [item async for item in queue]
    assert [(index, type(event)) for index, event in events if not isinstance(event, TextDelta)][:1] == [
        (0, StreamError)
    ]
    error = events[0][1]
    assert isinstance(error, StreamError) and isinstance(error.error, ProviderServerError)
    assert isinstance(events[-1][1], StreamEnd) and events[-1][0] == 1


async def test_abort_closes_the_running_stream_and_starts_no_more(
    server: ProviderServer, openai_llm: Any
) -> None:
    server.script(Reply(text="one two three four", stall_after=2), Reply(text="never"))
    queue = StreamQueue()
    queue.add(openai_llm, "count")
    queue.add(openai_llm, "never asked")
    events: list[tuple[int, StreamEvent]] = []
    async with queue:
        async for index, event in queue:
            events.append((index, event))
            if isinstance(event, TextDelta) and event.text == "two ":
                queue.abort("enough")
    assert await asyncio.to_thread(server.wait_for_disconnects, 1)
    index, last = events[-1]
    assert index == 0 and isinstance(last, StreamError) and isinstance(last.error, StreamAbortedError)
    assert last.partial_text == last.error.partial_text == "one two "
    assert last.error.reason == "enough" and last.error.error_code == "STREAM_ABORTED"
    assert [type(e) for _, e in events] == [TextDelta, TextDelta, StreamError]
    assert len(server.requests) == 1 and queue.aborted and queue.pending == 0
    with pytest.raises(StreamAbortedError):
        queue.add(openai_llm, "again")


async def test_abort_after_a_restart_reports_only_the_new_answers_text(
    server: ProviderServer, fallback_llm: Any
) -> None:
    server.script(
        Reply(text="one two three", disconnect_after=2),  # OpenAI drops the stream after "one two "
        Reply(text="alpha beta gamma", stall_after=1),  # Anthropic takes over, then stalls
    )
    queue = StreamQueue()
    queue.add(fallback_llm, "count")
    events: list[StreamEvent] = []
    async with queue:
        async for _, event in queue:
            events.append(event)
            if isinstance(event, TextDelta) and any(isinstance(e, StreamRestart) for e in events):
                queue.abort("enough")
    error = events[-1]
    assert isinstance(error, StreamError) and isinstance(error.error, StreamAbortedError)
    assert error.partial_text == error.error.partial_text == "alpha "


async def test_abort_wakes_a_consumer_waiting_for_a_chunk(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="one two three", stall_after=1))
    queue = StreamQueue()
    queue.add(openai_llm, "count")
    async with queue:
        first = await anext(queue)
        assert first == (0, TextDelta("one "))
        # The stream is stalled: the consumer is waiting when the abort comes (from elsewhere).
        asyncio.get_running_loop().call_soon(queue.abort)
        async with asyncio.timeout(5):
            index, event = await anext(queue)
        assert index == 0 and isinstance(event, StreamError) and isinstance(event.error, StreamAbortedError)
        with pytest.raises(StopAsyncIteration):
            await anext(queue)
    assert await asyncio.to_thread(server.wait_for_disconnects, 1)


async def test_one_signal_aborts_every_queue_sharing_it(server: ProviderServer, openai_llm: Any) -> None:
    signal = AbortSignal()
    first, second = StreamQueue(signal), StreamQueue(signal)
    first.add(openai_llm, "one")
    second.add(openai_llm, "two")
    signal.abort("shutdown")
    assert first.aborted and second.aborted
    # Aborted before they started: nothing is requested and iteration just ends.
    assert [item async for item in first] == [] and [item async for item in second] == []
    assert server.requests == []
    with pytest.raises(StreamAbortedError):
        StreamQueue(signal).add(openai_llm, "three")


async def test_keep_open_waits_for_more_until_closed(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="a"), Reply(text="b"))
    queue = StreamQueue(keep_open=True)

    async def producer() -> None:
        queue.add(openai_llm, "one")
        await asyncio.sleep(0)
        queue.add(openai_llm, "two")
        queue.close()

    ends: list[str] = []
    async with queue:
        task = asyncio.create_task(producer())
        async with asyncio.timeout(5):
            async for _, event in queue:
                if isinstance(event, StreamEnd):
                    ends.append(event.text)
        await task
    assert ends == ["a", "b"]


async def test_aclose_closes_a_stream_left_early(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="one two three", stall_after=1))
    queue = StreamQueue()
    queue.add(openai_llm, "count")
    async with queue:
        async for _, event in queue:
            assert isinstance(event, TextDelta)
            break
        assert queue.running == 0
    assert await asyncio.to_thread(server.wait_for_disconnects, 1)
    assert queue.running is None and not queue.aborted  # closing is not aborting the shared signal


async def test_add_checks_its_arguments(openai_llm: Any) -> None:
    queue = StreamQueue()
    with pytest.raises(InvalidInputError):
        queue.add(openai_llm, "")
    with pytest.raises(InvalidInputError):
        queue.add(openai_llm, "hi", idle_timeout=-1)
    assert queue.pending == 0
    await queue.aclose()


async def test_one_consumer_at_a_time(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="slow", stall_after=0))
    queue = StreamQueue()
    queue.add(openai_llm, "hi")
    async with queue:
        waiting = asyncio.create_task(anext(queue))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="one consumer"):
            await anext(queue)
        queue.abort()
        _, event = await waiting
        assert isinstance(event, StreamError)
