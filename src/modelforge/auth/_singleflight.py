"""Single-flight: many concurrent callers that find a token stale share ONE refresh.

Callers may be threads, asyncio tasks, or both at once (a sync OpenAI client in a worker thread and an
async one on an event loop can share a token source). The first caller to find the value missing becomes
the leader and runs the refresh; everyone arriving while it runs waits for the leader's result instead
of refreshing again. Waiting is blocking for sync callers and ``await``-ing for async ones; the shared
result travels through a ``concurrent.futures.Future``, which works across threads and event loops.

``waiting`` counts the callers currently committed to the running refresh, and ``on_wait`` (optional) is
called each time one commits, so a test can hold a refresh until it has seen every follower arrive.

Two details matter: a leader task that is cancelled releases its followers, who then retry (one of them
leads); and a sync caller on the very thread whose event loop runs an async leader cannot wait for it
(that would deadlock the loop), so it refreshes on its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _LeaderGone(Exception):
    """The leader was cancelled before it finished; followers retry."""


class _Flight:
    __slots__ = ("future", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        # RUNNING futures cannot be cancelled, so a cancelled follower never cancels the shared result.
        self.future.set_running_or_notify_cancel()
        self.loop = loop
        self.thread = threading.get_ident()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SingleFlight(Generic[T]):
    """Runs at most one refresh at a time; callers arriving meanwhile share its outcome."""

    def __init__(self, *, on_wait: Callable[[], object] | None = None) -> None:
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._waiting = 0
        self.on_wait = on_wait

    @property
    def waiting(self) -> int:
        """How many callers are waiting for another caller's refresh right now."""
        return self._waiting

    def _begin(self, current: Callable[[], T | None]) -> tuple[T | None, _Flight | None, bool]:
        """Under the lock: the current value, or the flight to follow, or a new flight to lead."""
        with self._lock:
            if self._flight is not None:
                return None, self._flight, False
            value = current()
            if value is not None:
                return value, None, False
            self._flight = _Flight(_running_loop())
            return None, self._flight, True

    def _finish(self, flight: _Flight, value: object = None, error: BaseException | None = None) -> None:
        with self._lock:
            if self._flight is flight:
                self._flight = None
        if error is not None:
            flight.future.set_exception(error)
        else:
            flight.future.set_result(value)

    @contextlib.contextmanager
    def _follower(self) -> Iterator[None]:
        """Counts a caller as waiting (and tells ``on_wait``) while it waits for the leader's result."""
        with self._lock:
            self._waiting += 1
        try:
            if self.on_wait is not None:
                self.on_wait()
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def run(self, current: Callable[[], T | None], refresh: Callable[[], T]) -> T:
        """``current()`` if it is not ``None``; else the result of one shared ``refresh()``."""
        while True:
            value, flight, leader = self._begin(current)
            if flight is None:
                return value  # type: ignore[return-value]
            if leader:
                return self._lead(flight, refresh)
            if flight.loop is not None and flight.thread == threading.get_ident():
                logger.debug("Refresh led by a task of this thread's event loop; refreshing here instead")
                return refresh()
            try:
                with self._follower():
                    return flight.future.result()
            except _LeaderGone:
                continue

    def _lead(self, flight: _Flight, refresh: Callable[[], T]) -> T:
        try:
            result = refresh()
        except Exception as err:
            self._finish(flight, error=err)
            raise
        except BaseException:
            self._finish(flight, error=_LeaderGone())
            raise
        self._finish(flight, value=result)
        return result

    async def arun(self, current: Callable[[], T | None], refresh: Callable[[], Awaitable[T]]) -> T:
        """The async twin of ``run``: followers ``await`` the leader without blocking their loop."""
        while True:
            value, flight, leader = self._begin(current)
            if flight is None:
                return value  # type: ignore[return-value]
            if leader:
                try:
                    result = await refresh()
                except Exception as err:
                    self._finish(flight, error=err)
                    raise
                except BaseException:  # cancelled: let a follower take over
                    self._finish(flight, error=_LeaderGone())
                    raise
                self._finish(flight, value=result)
                return result
            try:
                with self._follower():
                    return await asyncio.wrap_future(flight.future)
            except _LeaderGone:
                continue
