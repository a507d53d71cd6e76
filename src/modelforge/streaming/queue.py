"""``StreamQueue``: model streams run one after another, in order, under one abort signal.

::

    queue = StreamQueue()                       # or StreamQueue(signal) to share an AbortSignal
    queue.add(llm, "Summarise chapter 1")       # -> 0; kwargs as for stream_events
    queue.add(llm, "Summarise chapter 2")       # -> 1
    async with queue:                           # aclose() on the way out
        async for index, event in queue:        # every event of stream 0, then of stream 1, ...
            if isinstance(event, StreamEnd) and index == 1:
                queue.add(llm, "Now compare them")   # adding while iterating extends the queue
            if stop_requested:
                queue.abort()

What this module owns:

* ``AbortSignal``: a one-shot signal (``abort(reason)``, ``aborted``, ``reason``, ``wait()``) that several
  queues, tool loops or the caller's own code can share; aborting it aborts all of them. Use it from the
  event loop's thread (from another thread: ``loop.call_soon_threadsafe(signal.abort)``).
* ``StreamAbortedError``: the error of the ``StreamError`` that ends a stream cut by an abort.
* ``StreamQueue``: the queue. Each stream is ``stream_events(llm, prompt, **kwargs)`` (arguments are checked
  by ``add``) and runs in a task of its own, started only when the previous stream has ended and the
  consumer asks for more, so at most one stream is open at a time.

How iteration ends:

* Normally, when the last stream has ended and none is waiting (with ``keep_open=True``: and ``close()`` was
  called; until then it waits for ``add``). Each stream's events end with exactly one ``StreamEnd`` or
  ``StreamError`` (a failing stream ends with its ``StreamError`` and the queue goes on to the next).
* On abort (``queue.abort()`` or the shared signal), at once, even while waiting for a chunk: the running
  stream's task is cancelled, which closes its HTTP response before iteration goes on; events it had
  buffered are dropped; if a stream was running (started, its end not yet delivered) the consumer gets one
  last ``(index, StreamError(StreamAbortedError, partial_text))``, where ``partial_text`` is the text
  already delivered from it (since its last ``StreamRestart``, which voids what came before); then
  iteration stops. Streams not yet started never start and give no event.
  ``add`` on an aborted queue raises ``StreamAbortedError``.
* By ``aclose()`` (or leaving ``async with queue``): the running stream is closed, waiting until its
  connection is released, and nothing more starts; the shared signal is not aborted. Always leave a queue
  this way: a consumer that just stops iterating leaves the running stream's task to read on to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from langchain_core.runnables import Runnable

from modelforge.exceptions import InvalidInputError, ModelForgeError
from modelforge.streaming._events_stream import stream_events
from modelforge.streaming._session import provider_of
from modelforge.streaming.events import StreamEnd, StreamError, StreamEvent, StreamRestart, TextDelta

__all__ = ["AbortSignal", "StreamAbortedError", "StreamQueue"]

HIGH_WATER_EVENTS = 1024


class StreamAbortedError(ModelForgeError):
    """A stream was stopped on purpose by an abort; ``partial_text`` holds the text delivered before."""

    default_code = "STREAM_ABORTED"

    def __init__(
        self, reason: str | None = None, *, partial_text: str = "", provider: str | None = None
    ) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"The stream was aborted{why}", provider=provider, details={"reason": reason})
        self.reason = reason
        self.partial_text = partial_text


class AbortSignal:
    """A one-shot abort signal shared by queues and loops; callbacks run synchronously on ``abort``."""

    __slots__ = ("_callbacks", "_event", "_reason")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], object]] = []
        self._event = asyncio.Event()
        self._reason: str | None = None

    @property
    def aborted(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str | None:
        return self._reason

    def abort(self, reason: str | None = None) -> None:
        """Abort everything sharing this signal (a second call does nothing)."""
        if self._event.is_set():
            return
        self._reason = reason
        self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` on abort (now, if already aborted); returns a function that removes it."""
        if self.aborted:
            callback()
            return lambda: None
        self._callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    async def wait(self) -> None:
        """Wait until the signal is aborted."""
        await self._event.wait()

    def __repr__(self) -> str:
        return f"AbortSignal(aborted={self.aborted}, reason={self._reason!r})"


@dataclass(eq=False)
class _Entry:
    index: int
    events: AsyncGenerator[StreamEvent, None]  # created by add, started by the queue
    provider: str | None


@dataclass(eq=False)
class _Run:
    entry: _Entry
    buffer: deque[StreamEvent] = field(default_factory=deque)
    text: list[str] = field(default_factory=list)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class StreamQueue:
    """Streams run in order under one abort signal (see the module docstring).

    ``timeout`` and ``idle_timeout`` are the defaults of every stream added (``add`` may override them);
    with ``keep_open=True`` iteration waits for more streams until ``close()``.
    """

    def __init__(
        self,
        abort: AbortSignal | None = None,
        *,
        timeout: float | None = 300.0,
        idle_timeout: float | None = None,
        keep_open: bool = False,
    ) -> None:
        self.signal = abort if abort is not None else AbortSignal()
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.keep_open = keep_open
        self._pending: deque[_Entry] = deque()
        self._run: _Run | None = None
        self._wakeup = asyncio.Event()
        self._count = 0
        self._closed = False
        self._busy = False
        self._remove_callback = self.signal.add_callback(self._on_abort)

    # --- filling -------------------------------------------------------------------------------------------

    def add(self, llm: Runnable[Any, Any], prompt: Any, **kwargs: Any) -> int:
        """Queue a stream of ``llm``'s answer to ``prompt``; returns its index (0, 1, ...).

        ``kwargs`` go to ``stream_events`` (``timeout``, ``idle_timeout``, ``config``, model kwargs) and are
        checked here, as is the prompt.
        """
        if self.signal.aborted:
            raise StreamAbortedError(self.signal.reason)
        if self._closed:
            raise InvalidInputError("This StreamQueue is closed: no more streams can be added")
        options = {"timeout": self.timeout, "idle_timeout": self.idle_timeout, **kwargs}
        entry = _Entry(self._count, stream_events(llm, prompt, **options), provider_of(llm))
        self._count += 1
        self._pending.append(entry)
        self._wakeup.set()
        return entry.index

    def close(self) -> None:
        """No more streams: those queued still run; a ``keep_open`` iteration ends after them."""
        self._closed = True
        self._wakeup.set()

    def abort(self, reason: str | None = None) -> None:
        """Abort the queue's signal: the running stream is closed now and no other starts."""
        self.signal.abort(reason)

    @property
    def aborted(self) -> bool:
        return self.signal.aborted

    @property
    def pending(self) -> int:
        """Streams queued and not started yet."""
        return len(self._pending)

    @property
    def running(self) -> int | None:
        """The index of the stream whose events are being delivered, if any."""
        return None if self._run is None else self._run.entry.index

    # --- iterating -----------------------------------------------------------------------------------------

    def __aiter__(self) -> StreamQueue:
        return self

    async def __anext__(self) -> tuple[int, StreamEvent]:
        if self._busy:
            raise RuntimeError("StreamQueue is iterated by one consumer at a time")
        self._busy = True
        try:
            return await self._next()
        finally:
            self._busy = False

    async def _next(self) -> tuple[int, StreamEvent]:
        while True:
            if self.signal.aborted:
                return await self._aborted_ending()
            run = self._run
            if run is None:
                if self._pending:
                    self._start(self._pending.popleft())
                    continue
                if self.keep_open and not self._closed:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                self._closed = True
                raise StopAsyncIteration
            if run.buffer:
                event = run.buffer.popleft()
                if not run.buffer:
                    run.drained.set()
                if isinstance(event, TextDelta):
                    run.text.append(event.text)
                elif isinstance(event, StreamRestart):  # the text delivered so far is void
                    run.text.clear()
                elif isinstance(event, StreamEnd | StreamError):
                    await self._retire(run)
                return run.entry.index, event
            self._wakeup.clear()
            await self._wakeup.wait()

    def _start(self, entry: _Entry) -> None:
        run = _Run(entry)
        run.task = asyncio.create_task(self._produce(run), name=f"modelforge-queue-{entry.index}")
        self._run = run

    async def _produce(self, run: _Run) -> None:
        events = run.entry.events
        try:
            async for event in events:
                run.buffer.append(event)
                self._wakeup.set()
                if len(run.buffer) >= HIGH_WATER_EVENTS:
                    run.drained.clear()
                    await run.drained.wait()
        except Exception as err:  # stream_events reports failures as events; guard against the unexpected
            run.buffer.append(StreamError(err, "".join(run.text)))
        finally:
            self._wakeup.set()
            await events.aclose()

    async def _retire(self, run: _Run) -> None:
        """The stream's end was delivered: wait for its task (already finishing) so nothing outlives it."""
        self._run = None
        if run.task is not None and not run.task.done():
            await asyncio.wait({run.task})

    async def _aborted_ending(self) -> tuple[int, StreamEvent]:
        run, self._run = self._run, None
        if run is None:
            raise StopAsyncIteration
        await self._stop(run)
        text = "".join(run.text)
        error = StreamAbortedError(self.signal.reason, partial_text=text, provider=run.entry.provider)
        return run.entry.index, StreamError(error, text)

    @staticmethod
    async def _stop(run: _Run) -> None:
        """Cancel the stream's task and wait until it has unwound (its HTTP response closed)."""
        if run.task is not None and not run.task.done():
            run.task.cancel()
            await asyncio.wait({run.task})

    def _on_abort(self) -> None:
        self._pending.clear()  # never started: their generators were never entered
        run = self._run
        if run is not None and run.task is not None:
            run.task.cancel()
        self._wakeup.set()

    # --- closing -------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop for good: close the running stream (waiting until it is closed) and drop those not started.

        Does not abort the shared signal; others sharing it go on.
        """
        self._closed = True
        self._pending.clear()
        run, self._run = self._run, None
        if run is not None:
            await self._stop(run)
        self._remove_callback()
        self._wakeup.set()

    async def __aenter__(self) -> StreamQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"StreamQueue(added={self._count}, pending={len(self._pending)}, running={self.running}, "
            f"aborted={self.aborted})"
        )
