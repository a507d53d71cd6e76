"""``RedisBackend``: cached answers in Redis, shared by every process and host that uses the same URL.

Each entry is one string key ``<namespace>:<sha256>`` holding the entry bytes (the answer only, never the
prompt or a credential), written with a server-side expiry (``PX``) at its ``keep_until`` (ttl, plus the
stale window when stale answers may be served), so Redis cleans up by itself. ``clear`` deletes the
namespace's keys: exactly ``<namespace>:`` followed by 64 hex digits, so a longer namespace
(``<namespace>:sub``) keeps its answers. Sync calls use one client; async calls use one client per event
loop. Calls fail fast (``timeout``, no client retries): the cache turns a Redis outage into a warning and an
uncached call. The URL's password never appears in a repr or a log line. Needs
``pip install 'model-forge-llm[redis]'``; the package is imported only when a backend is built.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from modelforge._urls import redacted_url
from modelforge.exceptions import ProviderNotAvailableError

__all__ = ["INSTALL_HINT", "RedisBackend"]

INSTALL_HINT = "pip install 'model-forge-llm[redis]'"
_GLOB = re.compile(r"([*?\[\]\\])")
_DELETE_BATCH = 500


def _require_redis() -> Any:
    try:
        import redis
    except ImportError as err:
        raise ProviderNotAvailableError(
            "redis",
            f"the 'redis' package is not installed; run: {INSTALL_HINT}",
            suggestion=f"Install it with: {INSTALL_HINT}, or use cache.backend: memory or sqlite",
        ) from err
    return redis


class RedisBackend:
    """Entries under ``namespace:`` in the Redis at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        timeout: float = 1.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        redis = _require_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis = redis
        self._raw_url = url
        self.url = redacted_url(url) or ""
        self.namespace = namespace
        self._now = now
        self._options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self._sync = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **self._options)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._async_lock = threading.Lock()
        self.errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)

    @property
    def location(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RedisBackend(url={self.url!r}, namespace={self.namespace!r})"

    def _expiry_ms(self, keep_until: float) -> int:
        return max(1, int((keep_until - self._now()) * 1000))

    def _pattern(self) -> str:
        return _GLOB.sub(r"\\\1", self.namespace) + ":" + "[0-9a-f]" * 64

    # --- sync ---------------------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        value = self._sync.get(key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None:
        self._sync.set(key, value, px=self._expiry_ms(keep_until))

    def clear(self) -> None:
        batch: list[Any] = []
        for name in self._sync.scan_iter(match=self._pattern(), count=_DELETE_BATCH):
            batch.append(name)
            if len(batch) >= _DELETE_BATCH:
                self._sync.unlink(*batch)
                batch.clear()
        if batch:
            self._sync.unlink(*batch)

    def close(self) -> None:
        """Close the sync client's connections (async clients close with ``aclose`` on their loop)."""
        self._sync.close()

    # --- async --------------------------------------------------------------------------------------------

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._async_lock:
            client = self._async.get(loop)
            if client is None:
                from redis.asyncio.retry import Retry
                from redis.backoff import NoBackoff

                client = self._redis.asyncio.Redis.from_url(
                    self._raw_url, retry=Retry(NoBackoff(), 0), **self._options
                )
                self._async[loop] = client
        return client

    async def aget(self, key: str) -> bytes | None:
        value = await self._client().get(key)
        return None if value is None else bytes(value)

    async def aset(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None:
        await self._client().set(key, value, px=self._expiry_ms(keep_until))

    async def aclear(self) -> None:
        client = self._client()
        batch: list[Any] = []
        async for name in client.scan_iter(match=self._pattern(), count=_DELETE_BATCH):
            batch.append(name)
            if len(batch) >= _DELETE_BATCH:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)

    async def aclose(self) -> None:
        """Close the sync client and this event loop's client."""
        self._sync.close()
        loop = asyncio.get_running_loop()
        with self._async_lock:
            client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()
