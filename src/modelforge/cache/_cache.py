"""``ResponseCache``: one configured cache (a backend, a clock, the counters) and the decisions around it.

It decides and counts; ``CachedChatModel`` only moves answers. An answer is fresh while it is younger than
the reader's ``ttl``; with ``serve_stale``, an older one still kept (up to ``stale_ttl`` more) may answer when
the provider is down (``stale_answer``). A backend that fails (Redis down, SQLite locked) never fails a
call: the failure is counted in ``errors``, one WARNING is logged for the outage (the URL without its
password), the backend is left alone for ``retry_backend_after`` seconds and calls go on uncached.

Caches built by ``cache_for`` are shared per configuration, and their backends per location (the same
memory store, file or Redis namespace), so two ``get_llm()`` calls with the same settings share answers and
counters. ``close_caches`` / ``aclose_caches`` close and forget them. A ``ResponseCache`` pickles as its
configuration (the other side opens its own connection) with the Redis URL's password removed; unpickling
takes the full URL from this process's live caches, else from the provider's ``cache`` section in the
config, else connects without a password. A custom clock is not carried over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from langchain_core.outputs import ChatResult

from modelforge._secrets import mask_secrets
from modelforge._urls import url_without_password
from modelforge.cache._backend import CacheBackend
from modelforge.cache._entry import (
    CachedAnswer,
    decode,
    encode_chunks,
    encode_result,
    is_complete,
    result_ending,
    stream_ending,
)
from modelforge.cache._memory import MemoryBackend
from modelforge.exceptions import CircuitOpenError, NetworkError, ProviderServerError
from modelforge.sections.cache import CacheConfig

__all__ = ["CacheStats", "ResponseCache", "aclose_caches", "cache_for", "close_caches", "is_outage"]

logger = logging.getLogger(__name__)

# Entry bytes with their expiry and keep-until times.
_Encoded = tuple[bytes, float, float]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a cache did: answers served fresh (``hits``) or stale, calls that went to the provider
    (``misses``), answers stored, and backend failures."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    stale_hits: int = 0
    errors: int = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """Fresh hits per lookup (0.0 before the first lookup)."""
        return self.hits / self.lookups if self.lookups else 0.0


def is_outage(err: BaseException) -> bool:
    """Whether a failure says the provider is down or refusing for now (a stale answer may stand in):
    network errors and timeouts, 5xx, overloaded, rate limited, circuit open."""
    return isinstance(err, NetworkError | ProviderServerError | CircuitOpenError)


def _build_backend(config: CacheConfig, now: Callable[[], float]) -> CacheBackend:
    if config.backend == "sqlite":
        from modelforge.cache._sqlite import SQLiteBackend

        return SQLiteBackend(
            config.sqlite_path,
            namespace=config.namespace,
            max_entries=config.max_entries,
            timeout=config.timeout,
            now=now,
        )
    if config.backend == "redis":
        from modelforge.cache._redis import RedisBackend

        assert config.url is not None  # checked by CacheConfig
        return RedisBackend(config.url, namespace=config.namespace, timeout=config.timeout, now=now)
    return MemoryBackend(max_entries=config.max_entries, now=now)


# How many decoded entries a cache keeps beside its backend (the bytes are compared before one is reused).
_DECODED_KEPT = 256


class ResponseCache:
    """Answers cached as ``config`` says, in ``backend`` (default: built from the config), on ``now``."""

    retry_backend_after = 5.0

    def __init__(
        self,
        config: CacheConfig,
        *,
        provider: str | None = None,
        backend: CacheBackend | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self._custom_clock = now is not None
        self.now: Callable[[], float] = now or time.time
        self.backend = backend if backend is not None else _build_backend(config, self.now)
        self._counts = dict.fromkeys((f.name for f in fields(CacheStats)), 0)
        self._lock = threading.Lock()
        self._down_until: float | None = None
        # The entries decoded lately, with the bytes they came from: a hit on the same bytes reuses them.
        self._decoded: dict[str, tuple[bytes, CachedAnswer]] = {}

    def __repr__(self) -> str:
        return (
            f"ResponseCache(provider={self.provider!r}, backend={self.config.backend!r}, "
            f"location={self.backend.location!r}, "
            f"namespace={self.config.namespace!r}, ttl={self.config.ttl:g})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled_cache, (_without_password(self.config), self.provider))

    # --- what callers read ------------------------------------------------------------------------------

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(**self._counts)

    def reset_stats(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self._counts, 0)

    def clear(self) -> None:
        """Forget every cached answer of this cache's namespace (and nothing else)."""
        with self._lock:
            self._decoded.clear()
        self.backend.clear()

    async def aclear(self) -> None:
        with self._lock:
            self._decoded.clear()
        await self.backend.aclear()

    def close(self) -> None:
        self.backend.close()

    async def aclose(self) -> None:
        await self.backend.aclose()

    # --- decisions ---------------------------------------------------------------------------------------

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def fresh(self, found: CachedAnswer | None) -> bool:
        return found is not None and self.now() - found.created < self.config.ttl

    def stale_answer(
        self, found: CachedAnswer | None, err: BaseException, provider: str
    ) -> CachedAnswer | None:
        """The expired answer to serve because ``err`` says the provider is down, if allowed (and logged)."""
        if found is None or not self.config.serve_stale or not is_outage(err):
            return None
        age = self.now() - found.created
        if age >= self.config.ttl + self.config.stale_ttl:
            return None
        self.count("stale_hits")
        status = getattr(err, "status_code", None)
        logger.warning(
            "%s is unavailable (%s%s); serving a stale cached answer that expired %.0fs ago",
            provider,
            type(err).__name__,
            f" {status}" if status else "",
            max(0.0, age - self.config.ttl),
        )
        return found

    def _times(self) -> tuple[float, float, float]:
        created = self.now()
        return created, created + self.config.ttl, created + self.config.keep_for

    # --- backend calls that never fail a model call ------------------------------------------------------

    def _available(self) -> bool:
        down_until = self._down_until
        return down_until is None or self.now() >= down_until

    def _failed(self, operation: str, err: BaseException) -> None:
        self.count("errors")
        with self._lock:
            first = self._down_until is None
            self._down_until = self.now() + self.retry_backend_after
        if first:
            text = mask_secrets(str(err))
            url = self.config.url
            if url:
                text = text.replace(url, self.backend.location)
            logger.warning(
                "Response cache (%s at %s) failed to %s (%s: %s); answering without the cache, trying it "
                "again in %gs",
                self.config.backend,
                self.backend.location,
                operation,
                type(err).__name__,
                text,
                self.retry_backend_after,
            )

    def _worked(self) -> None:
        if self._down_until is None:
            return
        with self._lock:
            was_down, self._down_until = self._down_until is not None, None
        if was_down:
            logger.info("Response cache (%s at %s) works again", self.config.backend, self.backend.location)

    def lookup(self, key: str) -> CachedAnswer | None:
        if not self._available():
            return None
        try:
            data = self.backend.get(key)
        except Exception as err:
            self._failed("read", err)
            return None
        self._worked()
        return None if data is None else self._decode(key, data)

    def _decode(self, key: str, data: bytes) -> CachedAnswer | None:
        kept = self._decoded.get(key)
        if kept is not None and kept[0] == data:  # the same bytes (for the memory backend, the same object)
            return kept[1]
        answer = decode(data)
        if answer is not None:
            with self._lock:  # batches look up from many threads at once
                while len(self._decoded) >= _DECODED_KEPT:
                    self._decoded.pop(next(iter(self._decoded)))
                self._decoded[key] = (data, answer)
        return answer

    async def alookup(self, key: str) -> CachedAnswer | None:
        if not self._available():
            return None
        try:
            data = await self.backend.aget(key)
        except Exception as err:
            self._failed("read", err)
            return None
        self._worked()
        return None if data is None else self._decode(key, data)

    def _encoded_result(self, result: ChatResult) -> _Encoded | None:
        if not result.generations:
            return None
        ending = result_ending(result)
        if not is_complete(ending):
            logger.debug("Answer not stored in the response cache: it ended with %s", ending or "no reason")
            return None
        created, expires_at, keep_until = self._times()
        data = encode_result(result, created=created, expires_at=expires_at, keep_until=keep_until)
        return data, expires_at, keep_until

    def _encoded_chunks(self, records: Sequence[dict[str, Any]]) -> _Encoded | None:
        ending = stream_ending(records) if records else None
        if not is_complete(ending):
            logger.debug("Stream not stored in the response cache: it ended with %s", ending or "no reason")
            return None
        created, expires_at, keep_until = self._times()
        data = encode_chunks(records, created=created, expires_at=expires_at, keep_until=keep_until)
        return data, expires_at, keep_until

    def _store(self, key: str, encoded: _Encoded | None) -> None:
        if encoded is None or not self._available():
            return
        try:
            self.backend.set(key, *encoded)
        except Exception as err:
            self._failed("store", err)
            return
        self._worked()
        self.count("stores")

    async def _astore(self, key: str, encoded: _Encoded | None) -> None:
        if encoded is None or not self._available():
            return
        try:
            await self.backend.aset(key, *encoded)
        except Exception as err:
            self._failed("store", err)
            return
        self._worked()
        self.count("stores")

    def store_result(self, key: str, result: ChatResult) -> None:
        """Keep a whole answer that ended normally (a truncated or filtered one is not kept)."""
        self._store(key, self._encoded_result(result))

    async def astore_result(self, key: str, result: ChatResult) -> None:
        await self._astore(key, self._encoded_result(result))

    def store_chunks(self, key: str, records: Sequence[dict[str, Any]]) -> None:
        """Keep a stream that reached a normal end (it must carry the provider's finish reason)."""
        self._store(key, self._encoded_chunks(records))

    async def astore_chunks(self, key: str, records: Sequence[dict[str, Any]]) -> None:
        await self._astore(key, self._encoded_chunks(records))


# --- caches shared per configuration ---------------------------------------------------------------------

_shared_lock = threading.Lock()
_shared_caches: dict[tuple[CacheConfig, str | None], ResponseCache] = {}
_shared_backends: dict[tuple[Any, ...], CacheBackend] = {}


def _backend_place(config: CacheConfig) -> tuple[Any, ...]:
    where: Any = {"sqlite": str(config.sqlite_path), "redis": config.url}.get(config.backend)
    return (config.backend, where, config.namespace, config.max_entries, config.timeout)


def cache_for(config: CacheConfig, *, provider: str | None = None) -> ResponseCache:
    """The process's ``ResponseCache`` for ``config`` and ``provider`` (its counters are the provider's);
    backends are shared per place, so every cache on the same memory store, file or Redis namespace sees
    the same answers."""
    with _shared_lock:
        cache = _shared_caches.get((config, provider))
        if cache is None:
            place = _backend_place(config)
            backend = _shared_backends.get(place)
            if backend is None:
                backend = _shared_backends[place] = _build_backend(config, time.time)
            cache = ResponseCache(config, provider=provider, backend=backend)
            _shared_caches[(config, provider)] = cache
        return cache


def _shared_cache(config: CacheConfig, provider: str | None) -> ResponseCache:
    return cache_for(config, provider=provider)


def _without_password(config: CacheConfig) -> CacheConfig:
    """``config`` as it may travel in a pickle: the Redis URL without its password."""
    if not config.url:
        return config
    return replace(config, url=url_without_password(config.url))


def _matches(candidate: CacheConfig, pickled: CacheConfig) -> bool:
    return candidate.url is not None and _without_password(candidate) == pickled


def _url_from_provider_config(provider: str | None, pickled: CacheConfig) -> str | None:
    """The full Redis URL of ``provider``'s ``cache`` section in the config, if it is the same place."""
    if provider is None:
        return None
    try:
        from modelforge.config import get_config

        data, _ = get_config()
        section = (data.get("providers") or {}).get(provider, {}).get("cache")
        configured = CacheConfig.from_config(section)
    except Exception as err:  # no readable config: fall back to the URL without a password
        logger.debug("Reading the cache URL of %s from the config failed: %s", provider, type(err).__name__)
        return None
    if configured.url and url_without_password(configured.url) == pickled.url:
        return configured.url
    return None


def _unpickled_cache(config: CacheConfig, provider: str | None) -> ResponseCache:
    """The shared cache of a pickled ``config`` (whose Redis URL lost its password on the way)."""
    if config.backend == "redis" and config.url:
        with _shared_lock:
            live = [c for c, p in _shared_caches if _matches(c, config)]
        url = live[0].url if live else _url_from_provider_config(provider, config)
        if url:
            config = replace(config, url=url)
    return cache_for(config, provider=provider)


def _forget_shared() -> list[CacheBackend]:
    with _shared_lock:
        backends = list(_shared_backends.values())
        _shared_backends.clear()
        _shared_caches.clear()
    return backends


def close_caches() -> None:
    """Close every shared cache's connections and forget the caches (memory caches lose their answers)."""
    for backend in _forget_shared():
        try:
            backend.close()
        except Exception as err:  # closing must not fail the caller
            logger.debug("Closing the response cache at %s failed: %s", backend.location, type(err).__name__)


async def aclose_caches() -> None:
    """``close_caches`` for async code: also closes the running loop's Redis clients."""
    for backend in _forget_shared():
        try:
            await backend.aclose()
        except Exception as err:
            logger.debug("Closing the response cache at %s failed: %s", backend.location, type(err).__name__)
