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

``shared_transport(pools)`` is the transport handed to clients (a new one per model): it implements both the
sync and the async transport interface of the httpx flavour (``httpx`` or ``httpx2``: the SDKs pick one
each), and its ``close()`` / ``aclose()`` do nothing, so an SDK that closes the client it built (``OpenAI.close()``,
Gemini when a model is collected) never closes the pools that other models share.
``modelforge.pooling.close_pools`` closes them.

The transport counts the requests each pool has in flight (until their response is closed), so that
``LoopPools.retire()`` (a key whose credential was rotated) closes idle pools at once and busy ones as soon as
their last response is closed, without cutting off an answer being read.

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
import threading
import weakref
from collections.abc import AsyncGenerator
from concurrent.futures import Future
from types import ModuleType
from typing import Any

from modelforge import _send_marks

__all__ = ["LoopPools", "load_flavor", "running_loop", "shared_transport"]


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

    # -- the pools --------------------------------------------------------------------------------------

    def sync_pool(self) -> Any:
        with self._lock:
            if self._sync is None:
                self._sync = self.flavor.HTTPTransport(**self._kwargs)
            return self._sync

    async def async_pool(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._loops.get(loop)
            if entry is None:
                closed = self._take_closed_loops()
                entry = _LoopPool(self, loop, self.flavor.AsyncHTTPTransport(**self._kwargs))
                self._loops[loop] = entry
            else:
                closed = []
        for dead in closed:
            dead.discard()
        await entry.arm()
        return entry.transport

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
    class SharedTransport(flavor.BaseTransport, flavor.AsyncBaseTransport):  # type: ignore[name-defined]
        """Sends through the shared pools; closing it leaves them open for the other models."""

        def __init__(self, pools: LoopPools) -> None:
            self.pools = pools

        def handle_request(self, request: Any) -> Any:
            mark = _send_marks.current()
            if mark is None or mark.sent is not None:
                return self.pools.sync_pool().handle_request(request)
            _trace_send(request, _sync_tracer(mark, request.extensions.get("trace")))
            response = self.pools.sync_pool().handle_request(request)
            mark.stamp()  # no-op when the trace stamped it
            return response

        async def handle_async_request(self, request: Any) -> Any:
            mark = _send_marks.current()
            pool = await self.pools.async_pool()
            if mark is None or mark.sent is not None:
                return await pool.handle_async_request(request)
            _trace_send(request, _async_tracer(mark, request.extensions.get("trace")))
            response = await pool.handle_async_request(request)
            mark.stamp()
            return response

        def close(self) -> None:
            """Owned by ``modelforge.pooling``: see ``close_pools``."""

        async def aclose(self) -> None:
            """Owned by ``modelforge.pooling``: see ``aclose_pools``."""

        def __repr__(self) -> str:
            return f"<modelforge SharedTransport ({flavor.__name__})>"

    SharedTransport.__qualname__ = SharedTransport.__name__
    return SharedTransport
