"""Redis unreachable: the limiter keeps limiting on this process's own budget, says so once (without the
password), and goes back to the shared budget when Redis answers again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time

import pytest

from modelforge.policies.ratelimit import RateLimitConfig, RateLimiter, RedisBackend
from tests.ratelimit.conftest import FakeClock

LOGGER = "modelforge.policies._ratelimit_redis"
PASSWORD = "pw-never-logged-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_closed_port_falls_back_to_local_limits_and_warns_once(
    mode: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = RateLimitConfig.from_config(
        {
            "requests_per_minute": 3,
            "backend": "redis",
            "url": f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0",
            "key": "down",
        }
    )
    limiter = RateLimiter(config, clock=clock)
    assert not limiter.degraded

    def sync_calls() -> None:
        for _ in range(3):
            limiter.acquire_sync().settle(5)

    if mode == "sync":
        await asyncio.to_thread(sync_calls)  # a thread without an event loop, as sync callers are
    else:
        for _ in range(3):
            await (await limiter.acquire()).asettle(5)
    assert limiter.degraded
    assert limiter.try_acquire() is None  # the local budget still limits: 3 per window
    clock.advance(60)
    assert limiter.try_acquire() is not None
    found = warnings_in(caplog)
    assert len(found) == 1
    assert "local limits" in found[0].getMessage()
    assert "redis://:***@127.0.0.1" in found[0].getMessage()
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(limiter)


class Proxy:
    """A TCP proxy to Redis that can be switched off and on again on the same port."""

    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        self.port = port
        self.target = target
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._listener.close()
            self._listener = None
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def test_reconnects_after_the_interval(redis_key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    proxy = Proxy(free_port())
    proxy.start()
    backend = RedisBackend(
        f"redis://127.0.0.1:{proxy.port}/0", key=redis_key, reconnect_interval=0.2, timeout=0.5
    )
    config = RateLimitConfig.from_config({"requests_per_minute": 100})
    limiter = RateLimiter(config, backend=backend)
    try:
        shared = limiter.acquire_sync(tokens=1)
        assert not limiter.degraded
        proxy.stop()
        during = limiter.acquire_sync(tokens=1)  # Redis is gone: local budget
        assert limiter.degraded
        limiter.acquire_sync(tokens=1)
        assert len(warnings_in(caplog)) == 1
        proxy.start()
        limiter.acquire_sync(tokens=1)  # within the interval: still local, Redis not asked
        assert limiter.degraded
        time.sleep(0.25)  # measures the reconnect interval
        after = limiter.acquire_sync(tokens=1)
        assert not limiter.degraded
        assert any("answers again" in r.getMessage() for r in caplog.records if r.name == LOGGER)
        during.settle(1)  # made locally: settled locally
        shared.settle(1)
        after.settle(1)
        assert not limiter.degraded
        assert len(warnings_in(caplog)) == 1
    finally:
        limiter.close()
        proxy.stop()
