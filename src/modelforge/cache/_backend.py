"""The one small interface every cache backend implements (memory, SQLite, Redis).

A backend stores opaque bytes under a string key and knows nothing of answers or freshness: ``set`` gets
``expires_at`` (when the entry stops being fresh) and ``keep_until`` (when it may be dropped: after the
stale window, if stale answers may be served); ``get`` returns what is kept, fresh or not, and the cache
decides. Times come from the clock the backend was built with, so tests move time without sleeping.
Backends raise their library's errors; ``ResponseCache`` turns them into a warning and an uncached call.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CacheBackend"]


class CacheBackend(Protocol):
    """Where cached answers live; every method has an async twin that does not block the event loop."""

    @property
    def location(self) -> str:
        """Where the entries are, safe to show (no password)."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None: ...

    def clear(self) -> None:
        """Forget every entry of this backend's namespace."""
        ...

    def close(self) -> None: ...

    async def aget(self, key: str) -> bytes | None: ...

    async def aset(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None: ...

    async def aclear(self) -> None: ...

    async def aclose(self) -> None: ...
