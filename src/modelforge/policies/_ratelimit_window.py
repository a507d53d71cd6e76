"""The rate-limit algorithm as a pure object (``SlidingWindow``), the backend interface, and ``LocalBackend``.

The algorithm is a **sliding-window log** over requests and tokens. Every reservation is one entry
(1 request, N tokens). An entry counts against the budgets from the moment it is reserved until one window
after it was *settled* (the answer came back and the real token count is known); an entry never settled
stops counting ``reservation_timeout`` after its window. A request may go when, counting every live entry,
both ``requests + 1 <= rpm`` and ``tokens + N <= tpm``. So a burst of the whole per-window budget is
allowed at once, and budget comes back entry by entry, exactly one window after each answer.

Why this and not a token bucket: a sliding-window log never lets more than the budget through in *any*
window, so it is safe against a provider that enforces a rolling window and against one that enforces a
token bucket of the same size and rate. Counting from the settlement (not the reservation) keeps us behind
the provider, which counts a request when it arrives and its completion tokens when they are produced —
both before we see the answer — so our budget never comes back before the provider's does.

When the budget does not allow a request, ``wait_time`` says exactly when enough entries will have expired
(entries still in flight are assumed to expire no sooner than one window after their reservation; they
are looked at again then). Callers sleep that long, or until a settlement in this process wakes them.

Header tightening (``observe``) adds *phantom* usage: when the provider says fewer requests or tokens
remain than we believe, the difference is charged as an entry that expires when the provider says its
budget resets. A ``retry-after`` pauses every reservation until it has passed. Neither can loosen a limit.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from modelforge.policies._ratelimit_config import Limits
from modelforge.policies._ratelimit_headers import Observation

__all__ = ["Backend", "LocalBackend", "SlidingWindow"]


@dataclass(slots=True)
class _InFlight:
    start: float
    requests: int
    tokens: int


class SlidingWindow:
    """The budgets of one provider: a pure object, every method takes ``now`` (seconds, any clock)."""

    __slots__ = ("_expiring", "_in_flight", "_paused_until", "_seq", "used_requests", "used_tokens")

    def __init__(self) -> None:
        self._in_flight: dict[str, _InFlight] = {}  # in reservation order
        self._expiring: list[tuple[float, int, int, int]] = []  # heap of (expires, seq, requests, tokens)
        self._seq = itertools.count()
        self._paused_until = float("-inf")
        self.used_requests = 0
        self.used_tokens = 0

    # --- decisions -----------------------------------------------------------------------------------

    def wait_time(self, tokens: int, now: float, limits: Limits) -> float:
        """Seconds until a request of ``tokens`` may be reserved (0.0: now). Changes nothing but expiry."""
        self._expire(now, limits)
        if self._paused_until > now:
            return self._paused_until - now
        need_requests, need_tokens = self._shortfall(tokens, limits)
        if need_requests <= 0 and need_tokens <= 0:
            return 0.0
        freed_requests = freed_tokens = 0
        for expires, requests, amount in self._expiries(now, limits):
            freed_requests += requests
            freed_tokens += amount
            if freed_requests >= need_requests and freed_tokens >= need_tokens:
                return max(expires - now, 0.0)
        return limits.window  # not reachable while limits only shrink below what is counted

    def reserve(self, rid: str, tokens: int, now: float, limits: Limits) -> float:
        """Reserve 1 request and ``tokens`` as ``rid`` if they fit now (returns 0.0), else the wait."""
        wait = self.wait_time(tokens, now, limits)
        if wait <= 0:
            self._in_flight[rid] = _InFlight(now, 1, tokens)
            self.used_requests += 1
            self.used_tokens += tokens
        return wait

    def settle(self, rid: str, actual_tokens: int, now: float, limits: Limits) -> None:
        """The answer of ``rid`` used ``actual_tokens``: charge that instead of the estimate, counted for one
        window from now. A reservation that already timed out is charged its tokens again."""
        entry = self._in_flight.pop(rid, None)
        requests = 0
        if entry is not None:
            requests = entry.requests
            self.used_tokens -= entry.tokens
            self.used_requests -= entry.requests
        self._charge(now + limits.window, requests, actual_tokens)

    def cancel(self, rid: str) -> None:
        """``rid`` never reached the provider (or was refused): give the whole reservation back."""
        entry = self._in_flight.pop(rid, None)
        if entry is not None:
            self.used_requests -= entry.requests
            self.used_tokens -= entry.tokens

    def observe(self, observation: Observation, now: float, limits: Limits) -> None:
        """Tighten to what the provider says remains; pause for its ``retry-after``."""
        self._expire(now, limits)
        horizon = limits.window + limits.reservation_timeout
        if observation.retry_after is not None and observation.retry_after > 0:
            self._paused_until = max(self._paused_until, now + min(observation.retry_after, horizon))
        extra_requests, extra_tokens = observation.excess(limits, self.used_requests, self.used_tokens)
        if extra_requests > 0:
            self._charge(now + observation.reset_for("requests", limits, horizon), extra_requests, 0)
        if extra_tokens > 0:
            self._charge(now + observation.reset_for("tokens", limits, horizon), 0, extra_tokens)

    # --- bookkeeping ---------------------------------------------------------------------------------

    def _charge(self, expires: float, requests: int, tokens: int) -> None:
        if requests <= 0 and tokens <= 0:
            return
        heapq.heappush(self._expiring, (expires, next(self._seq), requests, tokens))
        self.used_requests += requests
        self.used_tokens += tokens

    def _expire(self, now: float, limits: Limits) -> None:
        while self._expiring and self._expiring[0][0] <= now:
            _, _, requests, tokens = heapq.heappop(self._expiring)
            self.used_requests -= requests
            self.used_tokens -= tokens
        abandoned = now - limits.window - limits.reservation_timeout
        while self._in_flight:
            rid, entry = next(iter(self._in_flight.items()))
            if entry.start > abandoned:
                break
            self.cancel(rid)

    def _shortfall(self, tokens: int, limits: Limits) -> tuple[int, int]:
        """How many requests and tokens must expire before one more request of ``tokens`` fits."""
        need_requests = 0 if limits.requests is None else self.used_requests + 1 - limits.requests
        need_tokens = 0
        if limits.tokens is not None:
            # Bigger than a (tightened) budget: it goes once nothing else is counted.
            budget = max(limits.tokens, tokens)
            need_tokens = self.used_tokens + tokens - budget
        return need_requests, need_tokens

    def _expiries(self, now: float, limits: Limits) -> Iterator[tuple[float, int, int]]:
        """Every live entry as (earliest expiry, requests, tokens), soonest first."""
        settled = ((expires, requests, tokens) for expires, _, requests, tokens in sorted(self._expiring))
        soonest_recheck = now + limits.recheck
        flying = (
            (max(e.start + limits.window, soonest_recheck), e.requests, e.tokens)
            for e in self._in_flight.values()
        )
        return heapq.merge(settled, flying)


class Backend(Protocol):
    """Where the budgets live. ``reserve`` returns 0.0 when it reserved ``rid``, else the seconds to wait.

    ``remote`` backends do I/O: async callers use the ``a*`` methods so an event loop never blocks on it.
    """

    remote: bool

    @property
    def degraded(self) -> bool: ...

    def reserve(self, rid: str, tokens: int, limits: Limits, *, commit: bool = True) -> float: ...
    async def areserve(self, rid: str, tokens: int, limits: Limits, *, commit: bool = True) -> float: ...
    def settle(self, rid: str, actual_tokens: int, limits: Limits) -> None: ...
    async def asettle(self, rid: str, actual_tokens: int, limits: Limits) -> None: ...
    def cancel(self, rid: str, limits: Limits) -> None: ...
    async def acancel(self, rid: str, limits: Limits) -> None: ...
    def observe(self, observation: Observation, limits: Limits) -> None: ...
    async def aobserve(self, observation: Observation, limits: Limits) -> None: ...
    def close(self) -> None: ...


class LocalBackend:
    """This process's budgets: a ``SlidingWindow`` behind a lock, timed by ``clock``."""

    remote = False
    degraded = False

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.window = SlidingWindow()

    def reserve(self, rid: str, tokens: int, limits: Limits, *, commit: bool = True) -> float:
        with self._lock:
            if commit:
                return self.window.reserve(rid, tokens, self._clock(), limits)
            return self.window.wait_time(tokens, self._clock(), limits)

    def settle(self, rid: str, actual_tokens: int, limits: Limits) -> None:
        with self._lock:
            self.window.settle(rid, actual_tokens, self._clock(), limits)

    def cancel(self, rid: str, limits: Limits) -> None:
        with self._lock:
            self.window.cancel(rid)

    def observe(self, observation: Observation, limits: Limits) -> None:
        with self._lock:
            self.window.observe(observation, self._clock(), limits)

    def close(self) -> None:
        """Nothing to release."""

    async def areserve(self, rid: str, tokens: int, limits: Limits, *, commit: bool = True) -> float:
        return self.reserve(rid, tokens, limits, commit=commit)

    async def asettle(self, rid: str, actual_tokens: int, limits: Limits) -> None:
        self.settle(rid, actual_tokens, limits)

    async def acancel(self, rid: str, limits: Limits) -> None:
        self.cancel(rid, limits)

    async def aobserve(self, observation: Observation, limits: Limits) -> None:
        self.observe(observation, limits)
