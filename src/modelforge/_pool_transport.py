"""The connection pools behind one pooled-client key, and the transport that lends them to the SDKs.

``LoopPools`` owns the real pools of one key (provider, base URL, credential, limits): one sync
``HTTPTransport`` and, lazily, one ``AsyncHTTPTransport`` per running event loop. A connection belongs to
the loop that opened it, so an async pool is never shared between loops: the same model can answer from
``asyncio.run(...)`` twice in a row, from a background loop and from the main one.

Each loop's pool is tied to that loop's life by a small async generator started on it. Event loops close
every live async generator in ``loop.shutdown_asyncgens()`` (``asyncio.run``, ``asyncio.Runner`` and
pytest-asyncio call it before closing the loop), so the pool's connections are closed on the loop that
opened them, before it closes. A loop closed without that call leaves its sockets to the garbage collector;
its pool is dropped at the next use or ``close()``.

``shared_transport(pools)`` is the transport handed to clients (a new one per model): it implements both
the sync and the async transport interface of the httpx flavour (``httpx`` or ``httpx2``: the SDKs pick one
each), and its ``close()`` / ``aclose()`` do nothing, so an SDK that closes the client it built
(``OpenAI.close()``, Gemini when a model is collected) never closes the pools that other models share.
``modelforge.pooling.close_pools`` closes them.

The transport counts the requests each pool has in flight (until their response is closed), so that
``LoopPools.retire()`` (a key dropped from ``modelforge.pooling``'s table) closes idle pools at once and busy
ones as soon as their last response is closed, without cutting off an answer being read.

The transport notes the status and headers of every error answer (``modelforge._failed_answers``), for
SDKs whose exceptions leave the headers out (Ollama), so Retry-After still reaches the retry policy.

The transport also stamps the rate limiter's send mark of the attempt it sends for
(``modelforge._send_marks``, set by the admission in the caller's thread or task) when the whole request
has been written to a connection (httpcore's ``trace`` events), so the time spent waiting for a pooled
connection or opening one is not counted as time at the provider. Should no trace event come, the mark is
stamped when the response headers arrive (later than the send, so never too early). Without a mark nothing
is added to the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import itertools
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from types import ModuleType
from typing import Any

from modelforge import _failed_answers, _send_marks

__all__ = ["LoopPools", "load_flavor", "running_loop", "shared_transport"]

# Ticks of a use clock shared by every ``LoopPools`` (strictly increasing, unlike a coarse wall clock).
_uses = itertools.count()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def load_flavor(name: str) -> ModuleType:
    """The httpx flavour module (``httpx`` or ``httpx2``) an SDK is built on."""
    if name not in ("httpx", "httpx2"):
        raise ValueError(f"unknown httpx flavour {name!r}; allowed: httpx, httpx2")
    return importlib.import_module(name)


class _LoopPool:
    """One event loop's async pool and the generator that closes it when the loop shuts down."""

    def __init__(self, owner: LoopPools, loop: asyncio.AbstractEventLoop, transport: Any) -> None:
        self.transport = transport
        self._loop = weakref.ref(loop)
        self._guard = self._watch(owner)
        self._armed = False
        self._closing: asyncio.Task[None] | None = None

    async def arm(self) -> None:
        """Start the guard on the running loop, which registers it for ``shutdown_asyncgens``."""
        if not self._armed:
            self._armed = True
            await self._guard.__anext__()

    async def _watch(self, owner: LoopPools) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            owner.forget(self)
            running = running_loop()
            if running is not None and running is self._loop():
                await self.transport.aclose()
            # Else the loop is closed (finished by hand in ``discard``): its sockets cannot be closed on it.

    async def aclose(self) -> None:
        """Close the pool; call on its own loop (callers at the same time share one closing)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._finish())
        await asyncio.shield(self._closing)

    async def _finish(self) -> None:
        await self._guard.aclose()

    def discard(self) -> None:
        """Finish the guard without its loop (closed), so nothing is ever scheduled on that loop."""
        closer = self._guard.aclose()
        try:
            closer.send(None)
        except StopIteration:
            pass
        else:  # pragma: no cover - the guard never waits once its loop is gone
            closer.close()


class LoopPools:
    """The sync pool and the per-event-loop async pools of one pooled-client key."""

    def __init__(self, flavor: ModuleType, transport_kwargs: dict[str, Any]) -> None:
        self.flavor = flavor
        self._kwargs = transport_kwargs
        self._lock = threading.Lock()
        self._sync: Any | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )
        # Requests in flight per real pool (sync transport or a loop's async transport), until closed.
        self._busy: dict[Any, int] = {}
        self._retired = False
        self._tasks: set[asyncio.Task[None]] = set()  # closings scheduled on this thread's running loop
        # When these pools were last used (made, handed out or leased): ``modelforge.pooling`` retires the
        # least recently used credential of a provider and base URL beyond its bound.
        self.last_use = next(_uses)

    def touch(self) -> None:
        """Mark these pools used now."""
        self.last_use = next(_uses)

    # -- the pools --------------------------------------------------------------------------------------

    def lease_sync(self) -> Any:
        """The sync pool, counted busy until ``release_sync`` (opened on first use)."""
        with self._lock:
            self.last_use = next(_uses)
            if self._sync is None:
                self._sync = self.flavor.HTTPTransport(**self._kwargs)
            self._busy[self._sync] = self._busy.get(self._sync, 0) + 1
            return self._sync

    def release_sync(self, pool: Any) -> None:
        """One request of ``pool`` is over; a retired pool closes when its last one is."""
        with self._lock:
            close_now = self._release(pool) and self._sync is pool
            if close_now:
                self._sync = None
        if close_now:
            pool.close()

    async def lease_async(self) -> Any:
        """The running loop's pool, counted busy until ``release_async`` (opened on first use)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self.last_use = next(_uses)
            entry = self._loops.get(loop)
            if entry is None:
                closed = self._take_closed_loops()
                entry = _LoopPool(self, loop, self.flavor.AsyncHTTPTransport(**self._kwargs))
                self._loops[loop] = entry
            else:
                closed = []
            self._busy[entry.transport] = self._busy.get(entry.transport, 0) + 1
        for dead in closed:
            dead.discard()
        try:
            await entry.arm()
        except BaseException:
            await self.release_async(entry.transport)
            raise
        return entry.transport

    async def release_async(self, pool: Any) -> None:
        """The async twin of ``release_sync`` (called on the pool's own loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._loops.get(loop)
            close_now = self._release(pool) and entry is not None and entry.transport is pool
            if close_now:
                # Out of the table before it closes: a lease meanwhile opens a fresh pool, not this one.
                del self._loops[loop]
        if close_now and entry is not None:
            await entry.aclose()

    def _release(self, pool: Any) -> bool:
        """Count one request of ``pool`` done (under the lock); True when it should close now."""
        left = self._busy.get(pool, 0) - 1
        if left > 0:
            self._busy[pool] = left
            return False
        self._busy.pop(pool, None)
        return self._retired

    def retire(self) -> None:
        """No new model will use these pools (their key left the table): close the idle ones now,
        the busy ones when their last response is closed. Models still holding them keep working, each
        later request on a connection of its own that is closed with its response.
        """
        current = running_loop()
        with self._lock:
            self._retired = True
            sync = self._sync if self._sync is not None and self._sync not in self._busy else None
            if sync is not None:
                self._sync = None
            closed = self._take_closed_loops()
            # Idle pools of running loops close now. They leave the table before they close, so that a
            # lease meanwhile opens a fresh pool rather than taking one that is closing. An idle loop not
            # running closes its pool itself when it shuts down (a lease before then is served by it).
            idle = [
                (loop, entry)
                for loop, entry in self._loops.items()
                if entry.transport not in self._busy and (loop is current or loop.is_running())
            ]
            for loop, _ in idle:
                del self._loops[loop]
        if sync is not None:
            sync.close()
        for dead in closed:
            dead.discard()
        for loop, entry in idle:
            if loop is current:
                task = loop.create_task(entry.aclose())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif loop.is_running():  # in another thread
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(entry.aclose(), loop)

    def forget(self, entry: _LoopPool) -> None:
        with self._lock:
            for loop, known in list(self._loops.items()):
                if known is entry:
                    del self._loops[loop]

    def _take_closed_loops(self) -> list[_LoopPool]:
        dead = [(loop, entry) for loop, entry in self._loops.items() if loop.is_closed()]
        for loop, _ in dead:
            del self._loops[loop]
        return [entry for _, entry in dead]

    # -- closing ----------------------------------------------------------------------------------------

    def close(self) -> list[Future[None]]:
        """Close the sync pool and drop the pools of closed loops; ask running loops to close theirs.

        The current thread's running loop (if any) is left alone: ``aclose_current`` closes it without
        blocking. Returns the closings scheduled on loops running in other threads.
        """
        current = running_loop()
        with self._lock:
            sync, self._sync = self._sync, None
            closed = self._take_closed_loops()
            others = [(loop, entry) for loop, entry in self._loops.items() if loop is not current]
        if sync is not None:
            sync.close()
        for dead in closed:
            dead.discard()
        scheduled: list[Future[None]] = []
        for loop, entry in others:
            if loop.is_running():  # in another thread (a stream's background loop)
                with contextlib.suppress(RuntimeError):
                    scheduled.append(asyncio.run_coroutine_threadsafe(entry.aclose(), loop))
            # An idle loop closes its pool itself when it shuts down (see the module docstring).
        return scheduled

    async def aclose_current(self) -> None:
        """Close the running loop's pool."""
        with self._lock:
            entry = self._loops.get(asyncio.get_running_loop())
        if entry is not None:
            await entry.aclose()

    def stats(self) -> tuple[bool, frozenset[int]]:
        """Whether the sync pool is open, and the ids of the event loops that have an async pool."""
        with self._lock:
            return self._sync is not None, frozenset(id(loop) for loop in self._loops)


# httpcore's trace event once the request's body (the last of it) is written: "http11." or "http2." + this.
_SENT_EVENT = "send_request_body.complete"


def _trace_send(request: Any, tracer: Any) -> None:
    """Have httpcore call ``tracer`` for ``request`` (a new extensions dict: the caller's stays as it was)."""
    request.extensions = {**request.extensions, "trace": tracer}


def _sync_tracer(mark: _send_marks.SendMark, inner: Any) -> Any:
    """A sync ``trace`` extension stamping ``mark`` when the request is sent, then calling ``inner``."""

    def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(_SENT_EVENT):
            mark.stamp()
        if inner is not None:
            inner(event, info)

    return trace


def _async_tracer(mark: _send_marks.SendMark, inner: Any) -> Any:
    """The async twin of ``_sync_tracer`` (httpcore awaits the trace extension of async requests)."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(_SENT_EVENT):
            mark.stamp()
        if inner is not None:
            await inner(event, info)

    return trace


def shared_transport(pools: LoopPools) -> Any:
    """A transport (sync and async at once) over ``pools``, for clients of ``pools.flavor``."""
    return _transport_class(pools.flavor)(pools)


@functools.cache
def _transport_class(flavor: ModuleType) -> type:
    class SyncReleasing(flavor.SyncByteStream):  # type: ignore[name-defined]
        """A response body that tells its pool when it is closed (the request is then over)."""

        def __init__(self, stream: Any, release: Callable[[], None]) -> None:
            self._stream = stream
            self._release: Callable[[], None] | None = release

        def __iter__(self) -> Iterator[bytes]:
            return iter(self._stream)

        def close(self) -> None:
            release, self._release = self._release, None
            try:
                self._stream.close()
            finally:
                if release is not None:
                    release()

    class AsyncReleasing(flavor.AsyncByteStream):  # type: ignore[name-defined]
        """The async twin of ``SyncReleasing``."""

        def __init__(self, stream: Any, release: Callable[[], Awaitable[None]]) -> None:
            self._stream = stream
            self._release: Callable[[], Awaitable[None]] | None = release

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._stream.__aiter__()

        async def aclose(self) -> None:
            release, self._release = self._release, None
            try:
                await self._stream.aclose()
            finally:
                if release is not None:
                    await release()

    class SharedTransport(flavor.BaseTransport, flavor.AsyncBaseTransport):  # type: ignore[name-defined]
        """Sends through the shared pools; closing it leaves them open for the other models."""

        def __init__(self, pools: LoopPools) -> None:
            self.pools = pools

        def handle_request(self, request: Any) -> Any:
            mark = _send_marks.current()
            if mark is not None and mark.sent is None:
                _trace_send(request, _sync_tracer(mark, request.extensions.get("trace")))
            else:
                mark = None
            pool = self.pools.lease_sync()
            try:
                response = pool.handle_request(request)
            except BaseException:
                self.pools.release_sync(pool)
                raise
            if mark is not None:
                mark.stamp()  # no-op when the trace stamped it
            if response.status_code >= 400:  # for SDKs whose errors drop the headers (Ollama)
                _failed_answers.note(response.status_code, response.headers.items())
            response.stream = SyncReleasing(response.stream, functools.partial(self.pools.release_sync, pool))
            return response

        async def handle_async_request(self, request: Any) -> Any:
            mark = _send_marks.current()
            if mark is not None and mark.sent is None:
                _trace_send(request, _async_tracer(mark, request.extensions.get("trace")))
            else:
                mark = None
            pool = await self.pools.lease_async()
            try:
                response = await pool.handle_async_request(request)
            except BaseException:
                await self.pools.release_async(pool)
                raise
            if mark is not None:
                mark.stamp()
            if response.status_code >= 400:  # for SDKs whose errors drop the headers (Ollama)
                _failed_answers.note(response.status_code, response.headers.items())
            response.stream = AsyncReleasing(
                response.stream, functools.partial(self.pools.release_async, pool)
            )
            return response

        def close(self) -> None:
            """Owned by ``modelforge.pooling``: see ``close_pools``."""

        async def aclose(self) -> None:
            """Owned by ``modelforge.pooling``: see ``aclose_pools``."""

        def __repr__(self) -> str:
            return f"<modelforge SharedTransport ({flavor.__name__})>"

    SharedTransport.__qualname__ = SharedTransport.__name__
    return SharedTransport
