"""``stream_sync``: the synchronous twin of ``stream``, for code without an event loop.

The async stream runs on one background event loop shared by every synchronous stream in the process (a
daemon thread started on first use). One long-lived loop, rather than a new loop per call, matters because
LangChain's provider clients pool their async HTTP connections per loop: a connection opened on a loop that
has since closed fails with "Event loop is closed". Timeouts, buffering and cleanup are exactly those of the
async stream. Pieces are handed over through a queue of at most ``MAX_PIECES_AHEAD`` pieces: when a slow
consumer lets it fill up, the background stream waits (on its loop, never blocking it) until a piece is
taken, so memory does not grow with the answer (the wait does not count against ``idle_timeout``, which
measures the model's silence only). Stopping early (``break``, ``close()``, an exception in the consumer,
Ctrl-C) cancels the stream and waits briefly for it to release its HTTP response.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import AsyncGenerator, Generator
from typing import Any

from langchain_core.runnables import Runnable

from modelforge.streaming._wrapper import stream

__all__ = ["stream_sync"]

CLOSE_WAIT_SECONDS = 5.0
# Pieces the background stream may deliver ahead of the consumer before it waits for one to be taken.
MAX_PIECES_AHEAD = 16

_ITEM, _DONE, _ERROR = "item", "done", "error"


class _BackgroundLoop:
    """A lazily started event loop running forever in a daemon thread (restarted after ``fork``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()
            if self._loop is None or not alive or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="modelforge-stream-loop", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def is_current_thread(self) -> bool:
        return self._thread is threading.current_thread()


_background = _BackgroundLoop()


def _iterate(pieces: AsyncGenerator[str, None]) -> Generator[str, None, None]:
    if _background.is_current_thread():
        raise RuntimeError("stream_sync() was called on ModelForge's stream loop; use stream() there")
    loop = _background.get()
    items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    room = asyncio.Semaphore(MAX_PIECES_AHEAD)  # used on the background loop only; bounds the pieces queued
    started, finished = threading.Event(), threading.Event()

    async def pump() -> None:
        started.set()
        try:
            async for piece in pieces:
                await room.acquire()  # released by the consumer as it takes the piece
                items.put((_ITEM, piece))
        except Exception as err:
            items.put((_ERROR, err))
        else:
            items.put((_DONE, None))
        finally:
            await pieces.aclose()
            finished.set()

    future = asyncio.run_coroutine_threadsafe(pump(), loop)
    try:
        while True:
            kind, value = items.get()
            if kind == _ITEM:
                loop.call_soon_threadsafe(room.release)
                yield value
            elif kind == _ERROR:
                raise value
            else:
                return
    finally:
        if not future.done():
            future.cancel()
        if started.is_set():
            finished.wait(CLOSE_WAIT_SECONDS)


def stream_sync(
    llm: Runnable[Any, Any],
    prompt: Any,
    provider_name: str | None = None,
    provider_data: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Generator[str, None, None]:
    """Like ``stream`` but a plain iterator: ``for piece in stream_sync(llm, "...")``.

    Arguments are checked at the call. Use ``contextlib.closing`` (or exhaust the iterator) to make an early
    stop release the connection at once rather than at garbage collection.
    """
    return _iterate(stream(llm, prompt, provider_name, provider_data, **kwargs))
