"""Pulling a model's stream in a task of its own, so the stream can always be stopped at once.

Why a task: when a consumer stops early, an async generator chain (LangChain's ``astream``, the provider's
``_astream``, the SDK's stream) is suspended at a ``yield``; closing the outer generator does not close the
inner ones (LangChain leaves them to the event loop's finaliser, and some SDKs close their HTTP response
only there). A chain that is *running* — awaiting the network inside a task — unwinds completely when the
task is cancelled: every layer's ``async with`` and ``finally`` runs and the response is closed before
``aclose()`` returns. So ``ChunkPump`` keeps the chain running in its own task and hands chunks over in
batches (a burst of chunks costs one hand-over, not one each), with a high-water mark for back-pressure.

Timeouts live here too: ``next_batch(deadline, idle_timeout)`` waits for chunks until the overall deadline
or until ``idle_timeout`` seconds have passed since the last chunk arrived, whichever is first, and fires
even when no chunk ever arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["ChunkPump", "PumpTimeout"]

logger = logging.getLogger(__name__)

HIGH_WATER_CHUNKS = 4096


class PumpTimeout(Exception):
    """A wait for chunks ran out of time; ``kind`` is ``"idle"`` or ``"total"``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class ChunkPump:
    """Runs ``source`` in a task; ``next_batch`` returns the chunks that arrived since the last call."""

    def __init__(self, source: AsyncIterator[Any], *, high_water: int = HIGH_WATER_CHUNKS) -> None:
        self._source = source
        self._high_water = high_water
        self._buffer: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._error: BaseException | None = None
        self._done = False
        self._loop = asyncio.get_running_loop()
        self.started_at = self.last_chunk_at = self._loop.time()
        self._task = asyncio.create_task(self._run(), name="modelforge-stream")

    async def _run(self) -> None:
        try:
            async for chunk in self._source:
                self._buffer.append(chunk)
                self.last_chunk_at = self._loop.time()
                self._ready.set()
                if len(self._buffer) >= self._high_water:
                    self._drained.clear()
                    await self._drained.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # handed to the consumer, raised there
            self._error = err
        finally:
            self._done = True
            self._ready.set()

    async def next_batch(self, *, deadline: float | None, idle_timeout: float | None) -> list[Any] | None:
        """The chunks received since the last call (waiting for at least one), or None at the end.

        Raises the source's error once its chunks are handed over, or ``PumpTimeout``.
        """
        while not self._buffer and not self._done:
            budget, kind = None, "total"
            now = self._loop.time()
            if deadline is not None:
                budget = deadline - now
            if idle_timeout is not None:
                idle_left = self.last_chunk_at + idle_timeout - now
                if budget is None or idle_left < budget:
                    budget, kind = idle_left, "idle"
            self._ready.clear()
            if budget is None:
                await self._ready.wait()
                continue
            if budget <= 0:
                raise PumpTimeout(kind)
            try:
                async with asyncio.timeout(budget):
                    await self._ready.wait()
            except TimeoutError:
                if not self._buffer and not self._done:
                    raise PumpTimeout(kind) from None
        if self._buffer:
            batch = list(self._buffer)
            self._buffer.clear()
            self._drained.set()
            return batch
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return None

    async def aclose(self) -> None:
        """Stop the stream: cancel the task (which unwinds and closes every layer) and wait for it."""
        if not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves: let it through
        # A task parked on back-pressure left the chain suspended at a yield: close it explicitly.
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception as err:  # closing must not hide the stream's own outcome
                logger.debug("Closing the model stream failed: %r", err)
