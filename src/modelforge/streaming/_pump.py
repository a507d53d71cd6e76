"""Pulling a model's stream chunk by chunk, under time limits, and stopping it so every layer closes.

The consumer drives the stream directly (``anext``), so a chunk costs no hand-over between tasks. The
limits are kept by one watchdog timer per stream rather than a timeout per chunk: it is due at whichever is
nearer, the overall deadline or ``idle_timeout`` seconds after the current pull began; when it comes due it
checks again (a new pull may have moved the idle limit on) and, if a pull is really over its limit, cancels
it inside the running generator chain, which unwinds every layer (LangChain's ``astream``, the provider's
``_astream``, the SDK's stream), each closing its HTTP response on the way out. Both limits fire even when
no chunk ever arrives.

The idle clock measures only the model's silence: it starts when a pull for the next chunk starts, not at
the last chunk, so the time a consumer spends on a chunk (a slow loop body, an awaited ``on_chunk``) never
counts against ``idle_timeout``. The total deadline counts everything.

``next_chunk(flush_at=...)`` returns ``FLUSH`` when no chunk has come by ``flush_at`` (a loop time), so a
consumer that buffers text can deliver it on time. For that one wait the pull runs in a task of its own; it
goes on after ``FLUSH`` (the idle clock with it) and the next ``next_chunk`` picks it up.

Stopping early is the hard case: a consumer that leaves finds the chain suspended at a ``yield``, and
closing the outer generator does not close the inner ones (LangChain leaves them to the event loop's
finaliser, and some SDKs close their HTTP response only there). ``aclose()`` therefore runs the chain on
to its next wait in a task of its own and cancels it there, so it unwinds exactly as on a timeout and the
response is closed before ``aclose()`` returns. If ``aclose()`` is itself cancelled, it still cancels that
task and waits for it, and still closes the source, before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["END", "FLUSH", "ChunkPump", "PumpTimeout"]

logger = logging.getLogger(__name__)

END: Any = object()
FLUSH: Any = object()
# Steps aclose() may take while chunks are already buffered before the chain must wait on the network.
MAX_CLOSE_STEPS = 10_000


class PumpTimeout(Exception):
    """A wait for a chunk ran out of time; ``kind`` is ``"idle"`` or ``"total"``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _ends_chain(step: asyncio.Future[Any]) -> bool:
    """Whether a finished pull left the chain closed (it raised, was cancelled, or the stream ended)."""
    return step.cancelled() or step.exception() is not None or step.result() is END


class ChunkPump:
    """Hands out ``source``'s chunks one at a time under time limits; always ``aclose()`` it."""

    def __init__(
        self,
        source: AsyncIterator[Any],
        *,
        deadline: float | None = None,
        idle_timeout: float | None = None,
        timeout_error: Callable[[str], BaseException] = PumpTimeout,
    ) -> None:
        self._source = source
        # What a timeout raises, given its kind ("idle" or "total"): ``PumpTimeout`` unless the owner says.
        self._timeout_error = timeout_error
        # Chunks handed out so far.
        self.chunks = 0
        self._loop = asyncio.get_running_loop()
        self.started_at = self._pull_started_at = self._loop.time()
        self._deadline = None if deadline is None else self.started_at + deadline
        self._idle_timeout = idle_timeout
        self._finished = False
        self._step: asyncio.Task[Any] | None = None  # a pull running in a task of its own (flush_at)
        self._waiter: asyncio.Task[Any] | None = None  # what the timer cancels: the pulling task
        self._timer: asyncio.TimerHandle | None = None
        self._fired: str | None = None

    def _expiry(self) -> tuple[float, str] | None:
        """When the current pull runs out of time, and which limit that is (None: no limit)."""
        best: tuple[float, str] | None = None
        if self._deadline is not None:
            best = (self._deadline, "total")
        if self._idle_timeout is not None:
            idle = self._pull_started_at + self._idle_timeout
            if best is None or idle < best[0]:
                best = (idle, "idle")
        return best

    def _arm(self, when: float) -> None:
        if self._timer is None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        expiry = self._expiry()
        waiter = self._waiter
        if waiter is None or waiter.done() or expiry is None:
            return  # not pulling: the next pull checks the clock itself
        when, kind = expiry
        if self._loop.time() < when:
            self._arm(when)  # a new pull moved the idle limit on
        elif waiter.cancel():
            self._fired = kind

    def _begin_pull(self) -> tuple[float, str] | None:
        """Start the idle clock for a new pull and arm the timer; ``PumpTimeout`` if the deadline has passed
        already (the chain is left as it is, for ``aclose()``)."""
        self._pull_started_at = self._loop.time()
        expiry = self._expiry()
        if expiry is not None:
            when, kind = expiry
            if self._pull_started_at >= when:
                raise self._timeout_error(kind)
            self._arm(when)
        return expiry

    def _ended(self) -> None:
        self._finished = True  # the chain raised through or ran out: every layer has already closed
        self._disarm()

    async def next_chunk(self, flush_at: float | None = None) -> Any:
        """The next chunk, or ``END``; raises the source's error or the timeout error.

        With ``flush_at`` (a time on the loop's clock), returns ``FLUSH`` when no chunk has come by then.
        """
        if self._step is None:
            expiry = self._begin_pull()
            if flush_at is None:  # the fast path: pull in the consumer's own task, in this frame
                task = asyncio.current_task() if expiry is not None else None
                self._waiter = task
                try:
                    chunk = await anext(self._source, END)
                except asyncio.CancelledError:
                    self._ended()
                    fired, self._fired = self._fired, None
                    if fired is None or task is None or task.uncancel() > 0:
                        raise  # cancelled from outside, not (only) by our timer
                    raise self._timeout_error(fired) from None
                except BaseException:
                    self._ended()
                    raise
                finally:
                    self._waiter = None
                if self._fired is not None and task is not None:  # the chain swallowed our cancellation
                    self._fired = None
                    task.uncancel()
                if chunk is END:
                    self._ended()
                else:
                    self.chunks += 1
                return chunk
            self._step = asyncio.ensure_future(anext(self._source, END))
            if expiry is not None:
                self._waiter = self._step
        chunk = await self._wait_for_step(flush_at)
        if chunk is not END and chunk is not FLUSH:
            self.chunks += 1
        return chunk

    async def _wait_for_step(self, flush_at: float | None) -> Any:
        """Wait for the pull running in a task, until ``flush_at`` at most (then ``FLUSH``)."""
        step = self._step
        assert step is not None
        timeout = None if flush_at is None else max(0.0, flush_at - self._loop.time())
        try:
            done, _ = await asyncio.wait({step}, timeout=timeout)
        except BaseException:  # the consumer is cancelled: stop the pull as aclose() would
            await self._stop_step()
            raise
        if not done:
            return FLUSH
        self._step = self._waiter = None
        fired, self._fired = self._fired, None
        if _ends_chain(step):
            self._ended()
        if step.cancelled():  # only our timer or aclose() cancel a pull
            if fired is not None:
                raise self._timeout_error(fired)
            raise asyncio.CancelledError()
        return step.result()  # raises the source's error

    async def _stop_step(self) -> None:
        """Cancel the pull running in a task and wait until it has unwound. A pull that finished first (with
        a chunk, which is dropped) leaves the chain at a ``yield``; any other outcome closed it."""
        step, self._step = self._step, None
        self._waiter = None
        if step is None:
            return
        step.add_done_callback(_ends_chain)  # its outcome is read even if we are cancelled meanwhile
        if not step.done():
            step.cancel()
            try:
                await asyncio.wait({step})
            except BaseException:  # cancelled again: the pull is cancelled too and ends on its own
                self._ended()
                raise
        if _ends_chain(step):
            self._ended()
            if not step.cancelled() and step.exception() is not None:
                logger.debug("The stream failed while stopping: %r", step.exception())

    async def aclose(self) -> None:
        """Stop the stream: step the chain to its next wait in a task and cancel it there, so every layer
        unwinds and releases its connection now; then close the outer generator. Cancelling ``aclose()``
        does not leave the step running nor the source open."""
        self._disarm()
        try:
            await self._stop_step()  # a pull left running by next_chunk(flush_at=...)
            steps = 0
            while not self._finished and steps < MAX_CLOSE_STEPS:
                steps += 1
                self._step = asyncio.ensure_future(anext(self._source, END))
                try:
                    await asyncio.sleep(0)  # let the step run until it waits (or finishes at once)
                finally:  # also when we are cancelled: never leave the step pulling
                    await self._stop_step()
        finally:
            self._finished = True
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception as err:  # closing must not hide the stream's own outcome
                    logger.debug("Closing the model stream failed: %r", err)
