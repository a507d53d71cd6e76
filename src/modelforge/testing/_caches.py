"""Provider-side prompt caches on the test server: Anthropic cache breakpoints, Gemini cached contents.

``ProviderCaches`` (``server.caches``) is what the server remembers, shared by both protocols:

* Anthropic: the prompt prefixes cached by ``cache_control`` breakpoints, keyed by a hash of the model and
  every block up to the breakpoint, each alive ``anthropic_ttl`` seconds (5 minutes, or 1 hour for
  ``"ttl": "1h"``) after its last write or read. A prefix shorter than ``anthropic_min_tokens`` (1024 by
  default, Anthropic's minimum for Sonnet and Opus) is not cached, as the API does. ``anthropic_uses``
  records what each answered request read and wrote.
* Gemini: ``cachedContents/{id}`` resources with the real API's fields (``name``, ``model``,
  ``createTime``, ``updateTime``, ``expireTime``, ``usageMetadata.totalTokenCount``); an expired one is gone.
  Contents shorter than ``gemini_min_tokens`` are refused with 400, as the API does. ``deleted`` lists the
  names deleted through the API.

Times come from ``clock`` (``time.time`` unless a test sets another), so a test can expire caches without
sleeping. ``fail_next(*faults)`` makes the next cached-content requests answer with those ``Fault`` items
first (e.g. a 500 on creation). ``cache_routes`` gives the router the cached-content endpoints (served by
``_gemini.GeminiCacheEndpoints``). ``clear()`` forgets everything.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelforge.testing._common import new_id
from modelforge.testing.script import Fault

if TYPE_CHECKING:
    pass

__all__ = [
    "AnthropicCacheUse",
    "CacheBreakpoint",
    "CachedContent",
    "ProviderCaches",
    "rfc3339",
]

ANTHROPIC_TTL_SECONDS = 300.0
ANTHROPIC_LONG_TTL_SECONDS = 3600.0
GEMINI_DEFAULT_TTL_SECONDS = 3600.0


def rfc3339(moment: float) -> str:
    """``2025-01-01T00:00:00.000000Z`` for a POSIX time (the shape Google's APIs use)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class CacheBreakpoint:
    """One ``cache_control`` block of an Anthropic request: the prefix up to it and how long it lives."""

    key: str
    tokens: int
    ttl: float = ANTHROPIC_TTL_SECONDS


@dataclass(frozen=True)
class AnthropicCacheUse:
    """What one answered Anthropic request did with the cache."""

    model: str
    breakpoints: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


@dataclass
class CachedContent:
    """One Gemini ``cachedContents`` resource."""

    name: str
    model: str
    display_name: str
    token_count: int
    create_time: float
    update_time: float
    expire_time: float
    body: dict[str, Any] = field(default_factory=dict, repr=False)

    def resource(self) -> dict[str, Any]:
        """The API's JSON shape of this resource."""
        shaped: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
            "expireTime": rfc3339(self.expire_time),
            "usageMetadata": {"totalTokenCount": self.token_count},
        }
        if self.display_name:
            shaped["displayName"] = self.display_name
        return shaped


@dataclass
class _Prefix:
    tokens: int
    ttl: float
    expires_at: float


class ProviderCaches:
    """What the server remembers of cached prompt prefixes and cached contents (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.anthropic_min_tokens = 1024
        self.gemini_min_tokens = 1024
        self._lock = threading.Lock()
        self._prefixes: dict[str, _Prefix] = {}
        self._uses: list[AnthropicCacheUse] = []
        self._contents: dict[str, CachedContent] = {}
        self._deleted: list[str] = []
        self._faults: collections.deque[Fault] = collections.deque()

    # -- faults ----------------------------------------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next cached-content requests (any method) with these faults, FIFO."""
        with self._lock:
            self._faults.extend(faults)

    def next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # -- Anthropic -------------------------------------------------------------------------------------

    def anthropic_use(self, model: str, breakpoints: Sequence[CacheBreakpoint]) -> tuple[int, int]:
        """Apply one answered request's breakpoints; ``(cache_read, cache_creation)`` input tokens.

        The longest breakpoint prefix still cached is read (and its life renewed); every longer breakpoint
        prefix of at least ``anthropic_min_tokens`` is written, and the tokens past the read part up to the
        longest written prefix are reported as cache creation.
        """
        now = self.clock()
        with self._lock:
            read, hit = 0, -1
            for index in range(len(breakpoints) - 1, -1, -1):
                entry = self._prefixes.get(breakpoints[index].key)
                if entry is not None and entry.expires_at > now:
                    read, hit = entry.tokens, index
                    entry.expires_at = now + entry.ttl
                    break
            written = read
            for point in breakpoints[hit + 1 :]:
                if point.tokens >= self.anthropic_min_tokens:
                    self._prefixes[point.key] = _Prefix(point.tokens, point.ttl, now + point.ttl)
                    written = max(written, point.tokens)
            creation = written - read
            self._uses.append(AnthropicCacheUse(model, len(breakpoints), read, creation))
            return read, creation

    @property
    def anthropic_uses(self) -> list[AnthropicCacheUse]:
        """What every answered Anthropic request read from and wrote to the cache, in order."""
        with self._lock:
            return list(self._uses)

    # -- Gemini ----------------------------------------------------------------------------------------

    def create_content(
        self, *, model: str, display_name: str, tokens: int, ttl: float, body: dict[str, Any]
    ) -> CachedContent:
        now = self.clock()
        content = CachedContent(
            name="cachedContents/" + new_id("", 12).lower(),
            model=model,
            display_name=display_name,
            token_count=tokens,
            create_time=now,
            update_time=now,
            expire_time=now + ttl,
            body=body,
        )
        with self._lock:
            self._contents[content.name] = content
        return content

    def get_content(self, name: str) -> CachedContent | None:
        """The live cached content called ``name`` (``None`` when unknown, deleted or expired)."""
        now = self.clock()
        with self._lock:
            content = self._contents.get(name)
            if content is not None and content.expire_time <= now:
                del self._contents[name]
                return None
            return content

    def update_content(self, name: str, expire_time: float) -> CachedContent | None:
        content = self.get_content(name)
        if content is None:
            return None
        with self._lock:
            content.expire_time = expire_time
            content.update_time = self.clock()
        return content

    def delete_content(self, name: str) -> bool:
        if self.get_content(name) is None:
            return False
        with self._lock:
            self._contents.pop(name, None)
            self._deleted.append(name)
        return True

    @property
    def cached_contents(self) -> list[CachedContent]:
        """The live Gemini cached contents, oldest first."""
        now = self.clock()
        with self._lock:
            return [c for c in self._contents.values() if c.expire_time > now]

    @property
    def deleted(self) -> list[str]:
        """Names of the cached contents deleted through the API, in order."""
        with self._lock:
            return list(self._deleted)

    def reset(self) -> None:
        """The same as ``clear`` (what ``ProviderServer.reset`` calls)."""
        self.clear()

    def clear(self) -> None:
        """Forget every cached prefix, cached content, record and pending fault (settings are kept)."""
        with self._lock:
            self._prefixes.clear()
            self._uses.clear()
            self._contents.clear()
            self._deleted.clear()
            self._faults.clear()
