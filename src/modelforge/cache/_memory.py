"""``MemoryBackend``: cached answers in this process, in an LRU of at most ``max_entries`` entries.

Entries are kept as bytes (each hit rebuilds fresh objects, so a caller that changes an answer does not
change the cache) and dropped once their ``keep_until`` has passed on the backend's clock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """At most ``max_entries`` entries in this process, least recently used dropped first."""

    def __init__(self, *, max_entries: int = 1000, now: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self._now = now
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return "memory"

    def __repr__(self) -> str:
        return f"MemoryBackend(entries={len(self._entries)}, max_entries={self.max_entries})"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            value, keep_until = found
            if self._now() >= keep_until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None:
        with self._lock:
            self._entries[key] = (value, keep_until)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        """Nothing to release (entries stay until cleared)."""

    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None:
        self.set(key, value, expires_at, keep_until)

    async def aclear(self) -> None:
        self.clear()

    async def aclose(self) -> None:
        self.close()
