"""The waiting line in front of a rate limiter: FIFO across threads and event loops, woken without polling.

Only the head of the line asks the backend for a reservation; the others sleep until they reach the head.
A ``Ticket`` is woken thread-safely (a ``threading.Event`` for a sync caller, an ``asyncio.Event`` set
through ``call_soon_threadsafe`` for an async one), when it reaches the head or when budget may have come
back (``Line.nudge``, called after a settlement or cancellation in this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

__all__ = ["Line", "Ticket"]


class Ticket:
    """One caller's place in line: woken (thread-safely) when it reaches the head or should look again."""

    __slots__ = ("aevent", "event", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.event = threading.Event()
        self.aevent = asyncio.Event() if loop is not None else None

    def wake(self) -> None:
        if self.aevent is None:
            self.event.set()
            return
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # its loop is closed: the caller is gone
            self.loop.call_soon_threadsafe(self.aevent.set)


class Line:
    """FIFO of callers across threads and event loops; only the head may reserve."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Ticket] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def join(self, ticket: Ticket) -> None:
        with self._lock:
            self._queue.append(ticket)
            if len(self._queue) == 1:
                ticket.wake()

    def leave(self, ticket: Ticket) -> None:
        with self._lock:
            if self._queue and self._queue[0] is ticket:
                self._queue.popleft()
                if self._queue:
                    self._queue[0].wake()
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(ticket)

    def nudge(self) -> None:
        """Budget may have come back: let the head look again."""
        with self._lock:
            if self._queue:
                self._queue[0].wake()
