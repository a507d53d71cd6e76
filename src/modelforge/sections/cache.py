"""The ``cache`` section of a provider: ``CacheConfig``, validated, with errors that name the key.

::

    providers:
      openai:
        cache: true                                   # memory cache, default settings
      anthropic:
        cache: {backend: sqlite, ttl: 600, serve_stale: true}
      team:
        cache: {backend: redis, url: "redis://:pw@cache:6379/0", namespace: team-a}

``CacheConfig.from_config(section, enable=..., ttl=...)`` applies ``get_llm``'s ``enable_cache`` and
``cache_ttl`` over the section. Errors are ``ValueError`` naming the key (``cache.backend``) and what is
allowed, so the config schema can report them with the file and line. A Redis URL's password never appears
in a repr, an error or a log line (``redacted_url``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from modelforge._urls import redacted_url
from modelforge.exceptions import InvalidInputError

__all__ = ["BACKENDS", "DEFAULT_NAMESPACE", "CacheConfig", "default_sqlite_path", "validate_section"]

BACKENDS = ("memory", "sqlite", "redis")
DEFAULT_NAMESPACE = "modelforge:cache"
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_SECONDS = ("ttl", "stale_ttl", "timeout")
_FLAGS = ("enabled", "serve_stale")


def default_sqlite_path() -> Path:
    """``~/.cache/model-forge/responses/cache.sqlite3`` (HOME read at call time)."""
    return Path.home() / ".cache" / "model-forge" / "responses" / "cache.sqlite3"


@dataclass(frozen=True)
class CacheConfig:
    """How one provider's answers are cached.

    * ``enabled``: whether to cache at all (``get_llm(enable_cache=...)`` overrides it);
    * ``backend``: ``memory`` (this process, LRU), ``sqlite`` (a file, survives restarts) or ``redis``
      (shared by every process and host using ``url``);
    * ``ttl``: seconds an answer is served from the cache (``get_llm(cache_ttl=...)`` overrides it);
    * ``max_entries``: the most answers kept by the memory and SQLite backends (Redis relies on expiry);
    * ``path``: the SQLite file (default ``~/.cache/model-forge/responses/cache.sqlite3``);
    * ``url``: the Redis URL (``redis://[:password@]host:port/db``, ``rediss://`` or ``unix://``);
    * ``namespace``: prefix of the cache keys; caches with different namespaces never share answers;
    * ``serve_stale`` / ``stale_ttl``: when the provider is down (network error, 5xx, overloaded, rate
      limited, circuit open), answer with an expired entry up to ``stale_ttl`` seconds past its expiry;
    * ``timeout``: seconds to wait for the backend (Redis socket timeout, SQLite busy timeout).
    """

    enabled: bool = True
    backend: Literal["memory", "sqlite", "redis"] = "memory"
    ttl: float = 3600.0
    max_entries: int = 1000
    path: str | None = None
    url: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    serve_stale: bool = False
    stale_ttl: float = 86400.0
    timeout: float = 1.0

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={redacted_url(self.url) if f.name == 'url' else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"CacheConfig({shown})"

    @property
    def location(self) -> str:
        """Where the answers live, safe to show: ``memory``, the SQLite path or the redacted Redis URL."""
        if self.backend == "sqlite":
            return str(self.sqlite_path)
        if self.backend == "redis":
            return redacted_url(self.url) or ""
        return "memory"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.path).expanduser() if self.path else default_sqlite_path()

    @property
    def keep_for(self) -> float:
        """Seconds an entry is kept after it was stored: its ttl, plus ``stale_ttl`` when stale may serve."""
        return self.ttl + (self.stale_ttl if self.serve_stale else 0.0)

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any] | bool | None,
        *,
        enable: bool | None = None,
        ttl: float | None = None,
    ) -> CacheConfig:
        """Settings from a provider's ``cache`` section (``true``/``false``/a mapping/absent).

        ``enable`` (``get_llm``'s ``enable_cache``) and ``ttl`` (``cache_ttl``) win over the section when
        given. Raises ``ValueError`` naming the key and what is allowed; a bad ``ttl`` argument raises
        ``InvalidInputError`` naming ``cache_ttl``.
        """
        if section is None or isinstance(section, bool):
            values: dict[str, Any] = {"enabled": bool(section)}
        elif isinstance(section, Mapping):
            values = dict(section)
        else:
            raise ValueError(
                f"cache must be true, false or a mapping of cache settings, got {type(section).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(values) - known)
        if unknown:
            raise ValueError(f"unknown key cache.{unknown[0]}; allowed keys: {', '.join(sorted(known))}")
        config = replace(cls(), **values)
        config._check()
        if enable is not None:
            config = replace(config, enabled=bool(enable))
        if ttl is not None:
            if not _positive_seconds(ttl):
                raise InvalidInputError(
                    f"cache_ttl must be a number of seconds > 0, got {ttl!r}",
                    suggestion="Pass cache_ttl=300 for five minutes, or leave it out for the config's ttl.",
                )
            config = replace(config, ttl=float(ttl))
        return config

    @classmethod
    def validate_section(cls, section: Mapping[str, Any] | bool | None) -> None:
        """Check a whole ``cache`` section (for the config schema)."""
        cls.from_config(section)

    def _check(self) -> None:
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"cache.{name} must be true or false, got {getattr(self, name)!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"cache.backend must be one of: {', '.join(BACKENDS)}; got {self.backend!r}")
        for name in _SECONDS:
            if not _positive_seconds(getattr(self, name)):
                raise ValueError(f"cache.{name} must be a number of seconds > 0, got {getattr(self, name)!r}")
        entries = self.max_entries
        if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
            raise ValueError(f"cache.max_entries must be a whole number >= 1, got {entries!r}")
        if not isinstance(self.namespace, str) or not self.namespace.strip():
            raise ValueError(f"cache.namespace must be a non-empty string, got {self.namespace!r}")
        if self.path is not None:
            if not isinstance(self.path, str) or not self.path.strip():
                raise ValueError(f"cache.path must be a file path, got {self.path!r}")
            if self.backend != "sqlite":
                raise ValueError(
                    f"cache.path applies only to backend sqlite (backend is {self.backend!r}); "
                    "allowed: remove it, or set cache.backend: sqlite"
                )
        self._check_url()

    def _check_url(self) -> None:
        if self.url is not None and not isinstance(self.url, str):
            raise ValueError("cache.url must be a string such as redis://host:6379/0")
        if self.backend != "redis":
            if self.url is not None:
                raise ValueError(
                    f"cache.url applies only to backend redis (backend is {self.backend!r}); "
                    "allowed: remove it, or set cache.backend: redis"
                )
            return
        if not self.url:
            raise ValueError(
                "cache.url is required when cache.backend is redis "
                "(redis://[:password@]host:port/db, rediss://... or unix://...)"
            )
        scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
        if scheme not in _REDIS_SCHEMES:
            raise ValueError(
                f"cache.url must start with one of: {', '.join(s + '://' for s in _REDIS_SCHEMES)}; "
                f"got {redacted_url(self.url)!r}"
            )


def validate_section(section: Mapping[str, Any] | bool | None) -> None:
    """Check a provider's ``cache`` section; ``ValueError("cache.<key> ...: allowed ...")`` when it is bad."""
    CacheConfig.validate_section(section)


def _positive_seconds(value: Any) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0
    )
