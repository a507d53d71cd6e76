"""Reading a provider's rate-limit headers into an ``Observation`` (pure; no clock but the one passed in).

* OpenAI (and compatible servers): ``x-ratelimit-limit-requests`` / ``-tokens``,
  ``x-ratelimit-remaining-requests`` / ``-tokens``, ``x-ratelimit-reset-requests`` / ``-tokens`` as Go-style
  durations (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``) or plain seconds.
* Anthropic: ``anthropic-ratelimit-requests-limit`` / ``-remaining`` / ``-reset`` and the same for
  ``tokens`` (or, when absent, ``input-tokens``); resets are RFC 3339 times.
* ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), read as ``providers.errors`` reads them.

Unparsable values are ignored: a header can only ever tighten the limiter, never break it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from modelforge.sections.rate_limit import Limits

__all__ = ["Observation", "parse_duration", "parse_rate_limit_headers"]

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI reset value (``"6m0s"``, ``"20ms"``, ``"1.5"``); ``None`` if unparsable."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    total = 0.0
    position = 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position > 0 else None


def _whole(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(float(text.strip()))
    except (ValueError, OverflowError):
        return None
    return value if value >= 0 else None


def _rfc3339_in(text: str | None, wall_clock: Callable[[], float]) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - wall_clock())


@dataclass(frozen=True, slots=True)
class Observation:
    """What the provider said about its budgets; resets and ``retry_after`` in seconds from now."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None
    retry_after: float | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__slots__)

    def excess(self, limits: Limits, used_requests: int, used_tokens: int) -> tuple[int, int]:
        """How much more the provider counts than we do (what to charge so both agree), per budget."""
        extra_requests = extra_tokens = 0
        if self.remaining_requests is not None and limits.requests is not None:
            extra_requests = (limits.requests - used_requests) - self.remaining_requests
        if self.remaining_tokens is not None and limits.tokens is not None:
            extra_tokens = (limits.tokens - used_tokens) - self.remaining_tokens
        return max(0, extra_requests), max(0, extra_tokens)

    def reset_for(self, budget: Literal["requests", "tokens"], limits: Limits, horizon: float) -> float:
        """Seconds until the provider's ``budget`` is whole again (a window when it did not say)."""
        reset = self.reset_requests if budget == "requests" else self.reset_tokens
        return min(limits.window if reset is None else reset, horizon)


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, wall_clock: Callable[[], float] = time.time
) -> Observation:
    """The rate-limit facts in ``headers`` (any case), OpenAI's or Anthropic's."""
    h = {str(k).lower(): str(v) for k, v in headers.items()}

    def duration(name: str) -> float | None:
        value = h.get(name)
        return None if value is None else parse_duration(value)

    if any(k.startswith("anthropic-ratelimit-") for k in h):
        tokens = "tokens" if "anthropic-ratelimit-tokens-remaining" in h else "input-tokens"
        observation = Observation(
            limit_requests=_whole(h.get("anthropic-ratelimit-requests-limit")),
            remaining_requests=_whole(h.get("anthropic-ratelimit-requests-remaining")),
            reset_requests=_rfc3339_in(h.get("anthropic-ratelimit-requests-reset"), wall_clock),
            limit_tokens=_whole(h.get(f"anthropic-ratelimit-{tokens}-limit")),
            remaining_tokens=_whole(h.get(f"anthropic-ratelimit-{tokens}-remaining")),
            reset_tokens=_rfc3339_in(h.get(f"anthropic-ratelimit-{tokens}-reset"), wall_clock),
        )
    else:
        observation = Observation(
            limit_requests=_whole(h.get("x-ratelimit-limit-requests")),
            remaining_requests=_whole(h.get("x-ratelimit-remaining-requests")),
            reset_requests=duration("x-ratelimit-reset-requests"),
            limit_tokens=_whole(h.get("x-ratelimit-limit-tokens")),
            remaining_tokens=_whole(h.get("x-ratelimit-remaining-tokens")),
            reset_tokens=duration("x-ratelimit-reset-tokens"),
        )
    if "retry-after" in h or "retry-after-ms" in h:
        from modelforge.providers.errors import parse_retry_after  # lazy: providers import policies

        retry_after = parse_retry_after(h, now=wall_clock)
        if retry_after is not None:
            observation = replace(observation, retry_after=retry_after)
    return observation
