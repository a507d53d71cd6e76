"""The life of Gemini cached contents (``cachedContents``) one model created: reuse, renewal, deletion.

``ContextCacheStore`` remembers, by a digest of the model and the static prefix, the cached content made
for it and when it expires. A call with the same prefix reuses it until shortly before it expires (a
margin of a tenth of the TTL, at most a minute, so no call is sent with a cache that dies in flight); after
that a new one is created. Creation goes through the google-genai client of the model's innermost
``ChatGoogleGenerativeAI`` (``client.caches.create``, or ``client.aio.caches.create`` from async code).

Cached contents cost storage while they live, so every one still alive is deleted (``DELETE``) when the
store is closed: by ``OptimizedChatModel.close()`` / ``aclose()``, ``close_context_caches()``, or at
interpreter exit. Deletion failures are logged and otherwise ignored (the cache expires on its own).
Times come from ``clock`` (``time.time``; tests set their own).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelforge.optimizers._base import reason

__all__ = ["ContextCacheStore", "aclose_context_caches", "close_context_caches"]

logger = logging.getLogger("modelforge.optimizers")

_MAX_MARGIN_SECONDS = 60.0


@dataclass
class _Entry:
    name: str
    expires_at: float
    # The model whose client created the cache (kept so its client is still open to delete it).
    owner: Any


class ContextCacheStore:
    """The cached contents of one model, by static-prefix digest."""

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[str, _Entry] = {}
        self._created: dict[str, _Entry] = {}

    @property
    def margin(self) -> float:
        return min(_MAX_MARGIN_SECONDS, self.ttl / 10)

    @property
    def names(self) -> list[str]:
        """The cached contents created and not yet deleted or expired, oldest first."""
        now = self.clock()
        with self._lock:
            return [e.name for e in self._created.values() if e.expires_at > now]

    def lookup(self, key: str) -> str | None:
        """The cached content for ``key`` if it lives long enough to be used; expired entries are dropped."""
        now = self.clock()
        with self._lock:
            for name, entry in list(self._created.items()):
                if entry.expires_at <= now:
                    del self._created[name]
            found = self._by_key.get(key)
            if found is None:
                return None
            if found.expires_at - self.margin <= now:
                del self._by_key[key]
                return None
            return found.name

    def create(self, owner: Any, key: str, model: str, config: Any) -> str:
        """Create a cached content with ``owner``'s client (sync) and remember it under ``key``."""
        created = owner.client.caches.create(model=model, config=config)
        return self._remember(key, str(created.name), owner)

    async def acreate(self, owner: Any, key: str, model: str, config: Any) -> str:
        """``create`` without blocking the event loop."""
        created = await owner.client.aio.caches.create(model=model, config=config)
        return self._remember(key, str(created.name), owner)

    def _remember(self, key: str, name: str, owner: Any) -> str:
        if not name or name == "None":
            raise ValueError("the provider answered without a cached content name")
        entry = _Entry(name, self.clock() + self.ttl, owner)
        with self._lock:
            self._by_key[key] = entry
            self._created[name] = entry
        with _stores_lock:
            _stores.add(self)  # held until closed, so exit can delete what it created
        return name

    def forget(self, name: str) -> None:
        """Stop using ``name`` (the provider says it is gone)."""
        with self._lock:
            self._created.pop(name, None)
            for key, entry in list(self._by_key.items()):
                if entry.name == name:
                    del self._by_key[key]

    def _take_live(self) -> list[_Entry]:
        now = self.clock()
        with self._lock:
            live = [e for e in self._created.values() if e.expires_at > now]
            self._created.clear()
            self._by_key.clear()
        with _stores_lock:
            _stores.discard(self)
        return live

    def close(self) -> None:
        """Delete every cached content still alive."""
        for entry in self._take_live():
            try:
                entry.owner.client.caches.delete(name=entry.name)
            except Exception as err:
                _delete_failed(entry.name, err)

    async def aclose(self) -> None:
        """``close`` without blocking the event loop."""
        for entry in self._take_live():
            try:
                await entry.owner.client.aio.caches.delete(name=entry.name)
            except Exception as err:
                _delete_failed(entry.name, err)


def _delete_failed(name: str, err: Exception) -> None:
    logger.warning(
        "Could not delete the Gemini cached content %s (%s); it expires on its own", name, reason(err)
    )


# Stores that created cached contents not yet deleted (a model dropped by its user is still cleaned up).
_stores: set[ContextCacheStore] = set()
_stores_lock = threading.Lock()


def _open_stores() -> list[ContextCacheStore]:
    with _stores_lock:
        return list(_stores)


def close_context_caches() -> None:
    """Delete the cached contents of every model in this process (also run at interpreter exit)."""
    for store in _open_stores():
        store.close()


async def aclose_context_caches() -> None:
    """``close_context_caches`` without blocking the event loop."""
    for store in _open_stores():
        await store.aclose()


atexit.register(close_context_caches)
