"""The ``rate_limit`` section of a provider: ``RateLimitConfig``, validated, with the effective ``Limits``.

::

    providers:
      openai:
        rate_limit: {requests_per_minute: 3500, tokens_per_minute: 90000}
      anthropic:
        rate_limit: {requests_per_minute: 50, tokens_per_minute: 40000,
                     backend: redis, url: "redis://cache:6379/0", key: anthropic-team-a}

Errors are ``ValueError`` naming the key (``rate_limit.backend``) and what is allowed, like the ``retry``
section's, so the config schema can report them with the file and line. A Redis URL's password never
appears in a repr, an error or a log line (``redacted_url``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from modelforge._urls import redacted_url

__all__ = ["BACKENDS", "Limits", "RateLimitConfig", "redacted_url"]

BACKENDS = ("local", "redis")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class Limits:
    """The budgets in force for one decision: ``None`` means unlimited. Times in seconds."""

    requests: int | None
    tokens: int | None
    window: float = 60.0
    reservation_timeout: float = 600.0

    @property
    def recheck(self) -> float:
        """How soon to look again when only a reservation older than a whole window is in the way."""
        return min(1.0, self.window / 20.0)


@dataclass(frozen=True)
class RateLimitConfig:
    """Rate limits of one provider, shared by every model of it.

    * ``requests_per_minute`` / ``tokens_per_minute``: budgets per window (``None``: unlimited);
    * ``window_seconds``: the length of the sliding window (60: "per minute"; tests shorten it);
    * ``backend``: ``local`` (this process) or ``redis`` (every process and host using ``url`` and
      ``key`` shares one budget);
    * ``reservation_timeout``: seconds after which a reservation never settled stops counting (a caller
      that died);
    * ``reconnect_interval`` / ``redis_timeout``: how long to stay on local limits after Redis failed, and
      the socket timeout of each Redis call.
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    backend: Literal["local", "redis"] = "local"
    url: str | None = None
    key: str = "default"
    window_seconds: float = 60.0
    reservation_timeout: float = 600.0
    reconnect_interval: float = 30.0
    redis_timeout: float = 1.0

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={redacted_url(self.url) if f.name == 'url' else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"RateLimitConfig({shown})"

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None, *, provider: str | None = None
    ) -> RateLimitConfig:
        """Settings from a provider's ``rate_limit`` section; ``key`` defaults to the provider's name.

        Raises ``ValueError`` naming the key and what is allowed."""
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            raise ValueError("rate_limit must be a mapping of rate-limit settings")
        values = dict(section)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown key rate_limit.{unknown[0]}; allowed keys: {', '.join(sorted(known))}")
        if "key" not in values and provider:
            values["key"] = provider
        config = replace(cls(), **values)
        config._check()
        return config

    @classmethod
    def validate_section(cls, section: Mapping[str, Any] | None) -> None:
        """Check a whole ``rate_limit`` section (for the config schema)."""
        cls.from_config(section)

    def limits(self) -> Limits:
        return Limits(
            self.requests_per_minute, self.tokens_per_minute, self.window_seconds, self.reservation_timeout
        )

    def _check(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"rate_limit.{name} must be a whole number >= 1 (or absent), got {value!r}")
        if self.backend not in BACKENDS:
            raise ValueError(
                f"rate_limit.backend must be one of: {', '.join(BACKENDS)}; got {self.backend!r}"
            )
        for name in ("window_seconds", "reservation_timeout", "reconnect_interval", "redis_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"rate_limit.{name} must be a number of seconds > 0, got {value!r}")
            if value <= 0:
                raise ValueError(f"rate_limit.{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(self.key, str) or not self.key.strip():
            raise ValueError(f"rate_limit.key must be a non-empty string, got {self.key!r}")
        if self.url is not None and not isinstance(self.url, str):
            raise ValueError("rate_limit.url must be a string such as redis://host:6379/0")
        if self.backend == "redis":
            if not self.url:
                raise ValueError(
                    "rate_limit.url is required when rate_limit.backend is redis "
                    "(redis://[:password@]host:port/db, rediss://... or unix://...)"
                )
            scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
            if scheme not in _REDIS_SCHEMES:
                raise ValueError(
                    f"rate_limit.url must start with one of: {', '.join(s + '://' for s in _REDIS_SCHEMES)}; "
                    f"got {redacted_url(self.url)!r}"
                )
