"""``modelforge.streaming``: buffering, callbacks, timeouts that fire on a silent stream, cleanup, files.

The models here are fakes (``GenericFakeChatModel`` and ``ScriptedChatModel`` in ``fakes.py``): these tests
are about what the streaming layer does with a sequence of chunks, so a model that can stall forever, go
slow or fail mid-way on cue is the right tool. The HTTP layer is tested against the real SDKs elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

import modelforge.streaming as streaming
from modelforge.exceptions import (
    AuthenticationError,
    FileValidationError,
    InvalidInputError,
    NetworkTimeoutError,
    StreamInterruptedError,
)
from modelforge.streaming import (
    StreamWrapper,
    TextDelta,
    TokenCounter,
    chunk_text,
    stream,
    stream_events,
    stream_sync,
    stream_to_file,
)
from modelforge.streaming._pump import ChunkPump, PumpTimeout
from modelforge.streaming._session import model_of
from modelforge.streaming._tokens import encoding_name_for_model

from .fakes import ScriptedChatModel, eventually

TEXT = "The quick brown fox jumps over the lazy dog, again and again, until the dog finally wakes up."
LETTERS = list("abcdefghijklmnopqrstuvwxy")  # 25 one-character chunks


async def collect(pieces: Any) -> list[str]:
    return [piece async for piece in pieces]


async def collect_until_error(pieces: Any) -> tuple[list[str], BaseException]:
    got: list[str] = []
    with pytest.raises(Exception) as info:  # each test checks the type it expects
        async for piece in pieces:
            got.append(piece)
    return got, info.value


# --- text, buffering, callbacks --------------------------------------------------------------------------


@pytest.mark.parametrize("buffer_size", [1, 2, 3, 10, 1000])
async def test_concatenation_equals_the_full_text(buffer_size: int) -> None:
    llm = GenericFakeChatModel(messages=iter([TEXT]))
    pieces = await collect(stream(llm, "Tell me about foxes", buffer_size=buffer_size))
    assert "".join(pieces) == TEXT
    assert all(pieces)


@pytest.mark.parametrize(
    ("buffer_size", "expected"), [(1, LETTERS[:5]), (2, ["ab", "cd", "e"]), (5, ["abcde"])]
)
async def test_pieces_group_buffer_size_chunks(buffer_size: int, expected: list[str]) -> None:
    llm = ScriptedChatModel(pieces=["a", "", "b", "c", "", "d", "e"])  # chunks without text do not count
    assert await collect(stream(llm, "hi", buffer_size=buffer_size)) == expected


async def test_on_chunk_and_on_progress_fire_on_every_chunk() -> None:
    llm = ScriptedChatModel(pieces=LETTERS)
    chunks: list[str] = []
    progress: list[int] = []
    pieces = await collect(
        stream(llm, "hi", buffer_size=10, on_chunk=chunks.append, on_progress=progress.append)
    )
    assert pieces == ["abcdefghij", "klmnopqrst", "uvwxy"]
    assert chunks == LETTERS
    assert len(progress) == 25  # 2.3.0 reported only on multiples of 10
    assert progress == sorted(progress) and progress[-1] == 25  # one token per letter


async def test_async_callbacks_are_awaited() -> None:
    seen: list[str] = []

    async def on_chunk(text: str) -> None:
        await asyncio.sleep(0)
        seen.append(text)

    await collect(stream(ScriptedChatModel(pieces=["x", "y"]), "hi", on_chunk=on_chunk))
    assert seen == ["x", "y"]


async def test_prompt_may_be_a_list_of_messages_and_callbacks_are_passed() -> None:
    class Recorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            self.tokens.append(token)

    recorder = Recorder()
    wrapper = StreamWrapper(
        GenericFakeChatModel(messages=iter(["one two"])), provider_name="fake", callbacks=[recorder]
    )
    messages = [SystemMessage("Be brief."), HumanMessage("Count")]
    assert "".join(await collect(wrapper.stream(messages, buffer_size=1))) == "one two"
    assert "".join(recorder.tokens) == "one two"


def test_chunk_text_reads_text_blocks_only() -> None:
    blocks: list[Any] = [
        {"type": "text", "text": "a"},
        {"type": "thinking", "thinking": "hmm"},
        "b",
        {"type": "tool_use"},
    ]
    assert chunk_text(AIMessageChunk(content=blocks)) == "ab"
    assert chunk_text("plain") == "plain"
    assert chunk_text(object()) == ""


@pytest.mark.parametrize(
    ("kwargs", "prompt"),
    [
        ({"buffer_size": 0}, "hi"),
        ({"timeout": -1}, "hi"),
        ({"idle_timeout": 0}, "hi"),
        ({}, ""),
        ({}, "  "),
        ({}, []),
        ({}, None),
    ],
)
def test_bad_arguments_fail_at_the_call(kwargs: dict[str, Any], prompt: Any) -> None:
    with pytest.raises(InvalidInputError):
        stream(ScriptedChatModel(pieces=["x"]), prompt, **kwargs)  # no iteration needed


async def test_infinite_timeout_means_no_limit() -> None:
    assert await collect(stream(ScriptedChatModel(pieces=["x"]), "hi", timeout=math.inf)) == ["x"]


# --- timeouts --------------------------------------------------------------------------------------------


async def test_idle_timeout_fires_when_no_chunk_ever_arrives() -> None:
    llm = ScriptedChatModel(pieces=["never"], stall_at=0)
    started = time.monotonic()
    got, error = await collect_until_error(
        stream(llm, "hi", timeout=None, idle_timeout=0.2, provider_name="x")
    )
    assert time.monotonic() - started < 1.5
    assert got == []
    assert isinstance(error, NetworkTimeoutError)
    assert error.partial_text == ""
    assert error.timeout == 0.2 and error.details["kind"] == "idle"
    assert error.error_code == "NETWORK_TIMEOUT"
    assert llm.events == ["opened", "closed"]  # the stalled source was cancelled and closed


async def test_total_timeout_fires_when_no_chunk_ever_arrives() -> None:
    llm = ScriptedChatModel(pieces=["never"], stall_at=0)
    got, error = await collect_until_error(stream(llm, "hi", timeout=0.2))
    assert got == []
    assert isinstance(error, NetworkTimeoutError)
    assert error.details["kind"] == "total" and error.timeout == 0.2
    assert "closed" in llm.events


async def test_total_timeout_on_a_slow_stream_carries_the_partial_text() -> None:
    llm = ScriptedChatModel(pieces=LETTERS, delay=0.03)
    got, error = await collect_until_error(
        stream(llm, "hi", timeout=0.25, idle_timeout=5, buffer_size=1, provider_data={"base_url": "http://h"})
    )
    assert isinstance(error, NetworkTimeoutError)
    assert error.details["kind"] == "total"
    assert 0 < len(got) < len(LETTERS)
    assert error.partial_text == "".join(got)
    assert error.url == "http://h"


async def test_idle_timeout_after_some_chunks_flushes_then_raises() -> None:
    llm = ScriptedChatModel(pieces=["a", "b", "c"], stall_at=2)
    got, error = await collect_until_error(stream(llm, "hi", idle_timeout=0.2, buffer_size=10))
    assert got == ["ab"]  # buffered text is delivered before the error...
    assert isinstance(error, NetworkTimeoutError)
    assert error.partial_text == "ab"  # ...and the error carries exactly what was delivered
    assert error.details["kind"] == "idle"


async def test_idle_clock_restarts_with_every_chunk() -> None:
    llm = ScriptedChatModel(pieces=list("abcdef"), delay=0.05)  # 0.3 s in all, never 0.5 s silent
    assert "".join(await collect(stream(llm, "hi", idle_timeout=0.5))) == "abcdef"


@pytest.mark.parametrize("slow", ["loop_body", "on_chunk", "stream_events"])
async def test_a_slow_consumer_does_not_count_against_the_idle_timeout(slow: str) -> None:
    llm = ScriptedChatModel(pieces=list("abc"))  # the model answers at once
    idle, per_piece = 0.05, 0.1  # the consumer takes twice the idle limit over every piece

    async def pause(_: object = None) -> None:
        await asyncio.sleep(per_piece)

    got: list[str] = []
    if slow == "stream_events":
        async for event in stream_events(llm, "hi", idle_timeout=idle):
            if isinstance(event, TextDelta):
                got.append(event.text)
            await pause()
    else:
        on_chunk = pause if slow == "on_chunk" else None
        async for piece in stream(llm, "hi", buffer_size=1, idle_timeout=idle, on_chunk=on_chunk):
            got.append(piece)
            if slow == "loop_body":
                await pause()
    assert got == ["a", "b", "c"]
    assert llm.events == ["opened", "closed"]


async def test_flush_chars_flushes_on_the_character_count() -> None:
    llm = ScriptedChatModel(pieces=["ab", "c", "defg", "h"])
    assert await collect(stream(llm, "hi", buffer_size=100, flush_chars=3)) == ["abc", "defg", "h"]


async def test_flush_interval_delivers_buffered_text_while_the_model_is_silent() -> None:
    llm = ScriptedChatModel(pieces=["a", "b"], stall_at=1)  # "a", then silence
    started = time.monotonic()
    async with contextlib.aclosing(
        stream(llm, "hi", buffer_size=10, flush_interval=0.05, idle_timeout=5)
    ) as pieces:
        async for piece in pieces:
            assert piece == "a"
            break
    assert time.monotonic() - started < 1.0, "the piece waited for a chunk that never came"
    assert llm.events == ["opened", "closed"]  # the pull left running after the flush was stopped


async def test_flush_interval_keeps_every_chunk_and_the_idle_limit() -> None:
    llm = ScriptedChatModel(pieces=list("abcdef"), delay=0.02)
    pieces = await collect(stream(llm, "hi", buffer_size=100, flush_interval=0.01, idle_timeout=1))
    assert "".join(pieces) == "abcdef" and len(pieces) > 1

    llm = ScriptedChatModel(pieces=["a", "b"], stall_at=1)
    got, error = await collect_until_error(
        stream(llm, "hi", buffer_size=10, flush_interval=0.02, idle_timeout=0.1)
    )
    assert got == ["a"] and isinstance(error, NetworkTimeoutError) and error.details["kind"] == "idle"
    assert error.partial_text == "a"
    assert llm.events == ["opened", "closed"]


# --- the pump: stopping --------------------------------------------------------------------------------


def _stalling_source(closed: list[bool]) -> Any:
    async def source() -> Any:
        try:
            yield 1
            await asyncio.Event().wait()  # a server that says nothing more
            yield 2
        finally:
            closed.append(True)

    return source()


async def test_a_deadline_passed_between_chunks_still_unwinds_the_whole_chain() -> None:
    closed: list[str] = []

    async def inner() -> Any:
        try:
            for number in range(10):
                yield number
        finally:
            closed.append("inner")

    async def outer() -> Any:  # like a layer that leaves its inner stream to the loop's finaliser
        async for number in inner():
            yield number

    pump = ChunkPump(outer(), deadline=0.02)
    assert await pump.next_chunk() == 0
    await asyncio.sleep(0.04)  # the consumer is busy past the deadline
    with pytest.raises(PumpTimeout):
        await pump.next_chunk()
    await pump.aclose()
    assert closed == ["inner"], "the inner stream was closed by aclose(), not left to a finaliser"


async def test_cancelling_the_pump_aclose_still_stops_the_pull_and_closes_the_source() -> None:
    closed: list[bool] = []
    pump = ChunkPump(_stalling_source(closed))
    assert await pump.next_chunk() == 1
    before = asyncio.all_tasks()
    closing = asyncio.create_task(pump.aclose())
    await asyncio.sleep(0)  # aclose has started its step
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    left = {task for task in asyncio.all_tasks() - before if not task.done()} - {closing}
    assert left == set(), "no step is left pulling the stream"
    assert closed == [True]


async def test_pump_aclose_in_a_task_whose_cancellation_was_delivered() -> None:
    closed: list[bool] = []

    waiting = asyncio.Event()

    async def consumer() -> str:
        pump = ChunkPump(_stalling_source(closed))
        await pump.next_chunk()
        try:
            waiting.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await pump.aclose()  # cleaning up after the cancellation: not a new cancellation
            return "closed"
        return "not cancelled"

    task = asyncio.create_task(consumer())
    await waiting.wait()
    task.cancel()
    assert await task == "closed"
    assert closed == [True]


# --- errors and cleanup ----------------------------------------------------------------------------------


async def test_error_mid_stream_flushes_then_raises_with_partial_text() -> None:
    llm = ScriptedChatModel(
        pieces=list("abcd"), fail_at=2, error=StreamInterruptedError("fake", reason="reset")
    )
    got, error = await collect_until_error(stream(llm, "hi", buffer_size=5))
    assert got == ["ab"]
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "ab"
    assert llm.events == ["opened", "closed"]


async def test_errors_are_not_reclassified_or_retried() -> None:
    llm = ScriptedChatModel(pieces=list("abcd"), fail_at=1, error=RuntimeError("token limit reached"))
    with pytest.warns(DeprecationWarning):
        pieces = stream(llm, "hi", buffer_size=1, retry_on_auth_error=True)
    got, error = await collect_until_error(pieces)
    assert type(error) is RuntimeError  # 2.3.0 turned any error mentioning "token" into an auth error
    assert got == ["a"]
    assert llm.events.count("opened") == 1  # never replayed

    llm = ScriptedChatModel(pieces=list("ab"), fail_at=1, error=AuthenticationError("401"))
    got, error = await collect_until_error(stream(llm, "hi", buffer_size=1))
    assert isinstance(error, AuthenticationError) and got == ["a"]
    assert llm.events.count("opened") == 1


async def test_early_break_with_aclosing_closes_the_source() -> None:
    llm = ScriptedChatModel(pieces=LETTERS)
    async with contextlib.aclosing(stream(llm, "hi", buffer_size=1)) as pieces:
        async for piece in pieces:
            assert piece == "a"
            break
    assert await eventually(lambda: "closed" in llm.events)


async def test_early_break_without_aclosing_still_closes_the_source() -> None:
    llm = ScriptedChatModel(pieces=LETTERS)
    pieces = stream(llm, "hi", buffer_size=1)
    async for _ in pieces:
        break
    del pieces
    gc.collect()
    assert await eventually(lambda: "closed" in llm.events)


async def test_cancelling_the_consumer_closes_the_source() -> None:
    llm = ScriptedChatModel(pieces=["a", "b"], stall_at=1)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in stream(llm, "hi", buffer_size=1):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await eventually(lambda: "closed" in llm.events)


async def test_failing_callback_stops_the_stream_and_closes_the_source() -> None:
    llm = ScriptedChatModel(pieces=list("abc"))

    def explode(text: str) -> None:
        raise KeyError(text)

    got, error = await collect_until_error(stream(llm, "hi", on_chunk=explode))
    assert isinstance(error, KeyError) and got == ["a"]
    assert await eventually(lambda: "closed" in llm.events)


# --- stream_to_file --------------------------------------------------------------------------------------


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    """An empty directory of its own (the suite's conftest puts home/ and work/ in tmp_path)."""
    directory = tmp_path / "files"
    directory.mkdir()
    return directory


async def test_stream_to_file_writes_the_whole_answer(tmp_path: Path) -> None:
    target = tmp_path / "out" / "answer.txt"
    written = await stream_to_file(GenericFakeChatModel(messages=iter([TEXT + "\nüñï\r\n"])), "hi", target)
    assert target.read_bytes().decode("utf-8") == TEXT + "\nüñï\r\n"
    assert written == len(TEXT) + 6
    assert sorted(p.name for p in target.parent.iterdir()) == ["answer.txt"]  # no temporary file left


async def test_stream_to_file_failure_leaves_no_file(outdir: Path) -> None:
    target = outdir / "answer.txt"
    llm = ScriptedChatModel(pieces=list("abcd"), fail_at=3, error=StreamInterruptedError("fake"))
    with pytest.raises(StreamInterruptedError):
        await stream_to_file(llm, "hi", target, buffer_size=1)
    assert names(outdir) == []  # neither the target nor the temporary file


async def test_stream_to_file_timeout_keeps_the_previous_file(outdir: Path) -> None:
    target = outdir / "answer.txt"
    target.write_text("previous answer")
    target.chmod(0o640)
    llm = ScriptedChatModel(pieces=list("abc"), stall_at=2)
    with pytest.raises(NetworkTimeoutError) as info:
        await stream_to_file(llm, "hi", str(target), idle_timeout=0.2)
    assert info.value.partial_text == "ab"
    assert target.read_text() == "previous answer"
    assert names(outdir) == ["answer.txt"]

    assert await stream_to_file(ScriptedChatModel(pieces=["new"]), "hi", target) == 3
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640  # the replaced file's mode is kept


async def test_stream_to_file_cancelled_leaves_no_file(outdir: Path) -> None:
    target = outdir / "answer.txt"
    task = asyncio.create_task(stream_to_file(ScriptedChatModel(pieces=["a"], stall_at=1), "hi", target))
    deadline = asyncio.get_running_loop().time() + 5
    while not [p for p in os.listdir(outdir) if p.endswith(".part")]:  # cancel once the half file exists
        assert asyncio.get_running_loop().time() < deadline, "the temporary file never appeared"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert names(outdir) == []


async def test_stream_to_file_creates_and_removes_its_file_off_the_event_loop(
    outdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from modelforge._files import AtomicFile
    from modelforge.streaming import _to_file

    calls: list[tuple[str, threading.Thread]] = []

    class Recorded(AtomicFile):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append(("create", threading.current_thread()))
            super().__init__(*args, **kwargs)

        def discard(self) -> None:
            calls.append(("discard", threading.current_thread()))
            super().discard()

    monkeypatch.setattr(_to_file, "AtomicFile", Recorded)
    llm = ScriptedChatModel(pieces=list("abcd"), fail_at=2, error=StreamInterruptedError("fake"))
    with pytest.raises(StreamInterruptedError):
        await stream_to_file(llm, "hi", outdir / "answer.txt", buffer_size=1)
    assert [name for name, _ in calls] == ["create", "discard"]
    assert all(thread is not threading.current_thread() for _, thread in calls), "blocking calls on the loop"
    assert names(outdir) == []


async def test_stream_to_file_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileValidationError):
        await stream_to_file(ScriptedChatModel(pieces=["a"]), "hi", tmp_path)


# --- stream_sync -----------------------------------------------------------------------------------------


def test_stream_sync_yields_the_same_pieces() -> None:
    assert list(stream_sync(ScriptedChatModel(pieces=list("abcde")), "hi", buffer_size=2)) == [
        "ab",
        "cd",
        "e",
    ]
    for _ in range(2):  # one shared background loop serves call after call
        assert "".join(stream_sync(GenericFakeChatModel(messages=iter([TEXT])), "hi")) == TEXT


def test_stream_sync_timeout_and_errors_propagate() -> None:
    llm = ScriptedChatModel(pieces=["a", "b"], stall_at=1)
    got: list[str] = []
    with pytest.raises(NetworkTimeoutError) as info:
        for piece in stream_sync(llm, "hi", idle_timeout=0.2, buffer_size=1):
            got.append(piece)
    assert got == ["a"] and info.value.partial_text == "a"
    assert "closed" in llm.events


def test_stream_sync_early_stop_closes_the_source() -> None:
    llm = ScriptedChatModel(pieces=LETTERS, delay=0.01)
    with contextlib.closing(stream_sync(llm, "hi", buffer_size=1)) as pieces:
        assert next(pieces) == "a"
    deadline = time.monotonic() + 2
    while "closed" not in llm.events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "closed" in llm.events


def test_stream_sync_does_not_run_ahead_of_a_slow_consumer() -> None:
    from modelforge.streaming._sync import MAX_PIECES_AHEAD

    llm = ScriptedChatModel(pieces=["x"] * 200)  # answers at once
    delivered: list[str] = []  # chunks the background stream has handed on
    with contextlib.closing(stream_sync(llm, "hi", buffer_size=1, on_chunk=delivered.append)) as pieces:
        assert next(pieces) == "x"  # ...and then the consumer is slow
        deadline = time.monotonic() + 2
        while len(delivered) < MAX_PIECES_AHEAD and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # room for the stream to run further ahead, if it could
        assert MAX_PIECES_AHEAD <= len(delivered) <= MAX_PIECES_AHEAD + 2
        assert sum(1 for _ in pieces) == 199  # the rest still comes, in full
    assert llm.events == ["opened", "closed"]

    early = ScriptedChatModel(pieces=["x"] * 200)
    with contextlib.closing(stream_sync(early, "hi", buffer_size=1)) as pieces:
        next(pieces)
        while len(early.events) < 1:
            time.sleep(0.005)
    assert early.events == ["opened", "closed"]  # stopping while the stream waits for room closes it


def test_stream_sync_checks_arguments_at_the_call() -> None:
    with pytest.raises(InvalidInputError):
        stream_sync(ScriptedChatModel(pieces=["a"]), "hi", buffer_size=-1)


# --- token counting --------------------------------------------------------------------------------------


def test_token_counter() -> None:
    assert encoding_name_for_model("gpt-4o-mini") == "o200k_base"
    assert encoding_name_for_model("openai/gpt-5") == "o200k_base"
    assert encoding_name_for_model("o3-mini") == "o200k_base"
    assert encoding_name_for_model("claude-3.7-sonnet") == "cl100k_base"
    assert encoding_name_for_model(None) == "cl100k_base"
    counter = TokenCounter.for_model("gpt-4o")
    assert counter.exact
    assert counter.count("hello world") == 2
    assert counter.count("") == 0
    assert model_of(ScriptedChatModel()) is None


def test_token_counter_falls_back_to_an_estimate() -> None:
    counter = TokenCounter("no_such_encoding")
    assert not counter.load()
    assert counter.count("abcdefghi") == 3  # ceil(9 / 4)


def test_public_names() -> None:
    for name in ("StreamWrapper", "stream", "stream_to_file", "stream_sync"):
        assert name in streaming.__all__
