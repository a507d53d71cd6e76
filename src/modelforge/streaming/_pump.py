"""Pulling a model's stream chunk by chunk, under time limits, and stopping it so every layer closes.

The consumer drives the stream directly (``anext``), so a chunk costs no hand-over between tasks. The
limits are kept by one watchdog timer per stream rather than a timeout per chunk: it is due at whichever is
nearer, the overall deadline or ``idle_timeout`` seconds after the last chunk; when it comes due it checks
again (a chunk may have moved the idle limit on) and, if a wait is really over its limit, cancels that wait
inside the running generator chain, which unwinds every layer (LangChain's ``astream``, the provider's
``_astream``, the SDK's stream), each closing its HTTP response on the way out. Both limits fire even when
no chunk ever arrives.

Stopping early is the hard case: a consumer that leaves finds the chain suspended at a ``yield``, and
closing the outer generator does not close the inner ones (LangChain leaves them to the event loop's
finaliser, and some SDKs close their HTTP response only there). ``aclose()`` therefore runs the chain on
to its next wait in a task of its own and cancels it there, so it unwinds exactly as on a timeout and the
response is closed before ``aclose()`` returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["END", "ChunkPump", "PumpTimeout"]

logger = logging.getLogger(__name__)

END: Any = object()
# Steps aclose() may take while chunks are already buffered before the chain must wait on the network.
MAX_CLOSE_STEPS = 10_000


class PumpTimeout(Exception):
    """A wait for a chunk ran out of time; ``kind`` is ``"idle"`` or ``"total"``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class ChunkPump:
    """Hands out ``source``'s chunks one at a time under time limits; always ``aclose()`` it."""

    def __init__(
        self, source: AsyncIterator[Any], *, deadline: float | None = None, idle_timeout: float | None = None
    ) -> None:
        self._source = source
        self._loop = asyncio.get_running_loop()
        self.started_at = self.last_chunk_at = self._loop.time()
        self._deadline = None if deadline is None else self.started_at + deadline
        self._idle_timeout = idle_timeout
        self._finished = False
        self._waiter: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fired: str | None = None

    def _expiry(self) -> tuple[float, str] | None:
        """When the current wait runs out of time, and which limit that is (None: no limit)."""
        best: tuple[float, str] | None = None
        if self._deadline is not None:
            best = (self._deadline, "total")
        if self._idle_timeout is not None:
            idle = self.last_chunk_at + self._idle_timeout
            if best is None or idle < best[0]:
                best = (idle, "idle")
        return best

    def _arm(self, when: float) -> None:
        if self._timer is None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        expiry = self._expiry()
        if self._waiter is None or expiry is None:
            return  # not waiting: the next wait checks the clock itself
        when, kind = expiry
        if self._loop.time() >= when:
            self._fired = kind
            self._waiter.cancel()
        else:
            self._arm(when)  # a chunk came in and moved the idle limit on

    async def next_chunk(self) -> Any:
        """The next chunk, or ``END``; raises the source's error or ``PumpTimeout``."""
        expiry = self._expiry()
        try:
            if expiry is None:
                chunk = await anext(self._source, END)
            else:
                when, kind = expiry
                if self._loop.time() >= when:
                    raise PumpTimeout(kind)
                self._arm(when)
                self._waiter = task = asyncio.current_task()
                try:
                    chunk = await anext(self._source, END)
                except asyncio.CancelledError:
                    fired, self._fired = self._fired, None
                    if fired is None or task is None or task.uncancel() > 0:
                        raise  # cancelled from outside, not (only) by our timer
                    raise PumpTimeout(fired) from None
                finally:
                    self._waiter = None
        except BaseException:
            self._finished = True  # the chain raised through: every layer has already closed
            self._disarm()
            raise
        if chunk is END:
            self._finished = True
            self._disarm()
        else:
            self.last_chunk_at = self._loop.time()
        return chunk

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def aclose(self) -> None:
        """Stop the stream: step the chain to its next wait in a task and cancel it there, so every layer
        unwinds and releases its connection now; then close the outer generator."""
        self._disarm()
        steps = 0
        while not self._finished and steps < MAX_CLOSE_STEPS:
            steps += 1
            step = asyncio.ensure_future(anext(self._source, END))
            await asyncio.sleep(0)  # let the step run until it waits (or finishes at once)
            if not step.done():
                step.cancel()
                try:
                    await step
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise  # we are being cancelled ourselves
                except Exception as err:
                    logger.debug("The stream failed while stopping: %r", err)
                self._finished = True
            elif step.cancelled() or step.exception() is not None or step.result() is END:
                self._finished = True
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception as err:  # closing must not hide the stream's own outcome
                logger.debug("Closing the model stream failed: %r", err)
