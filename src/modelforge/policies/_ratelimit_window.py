"""The rate-limit algorithm as a pure object (``SlidingWindow``), the backend interface, and ``LocalBackend``.

The algorithm is a **sliding-window log** over requests and tokens. Every reservation is one entry
(1 request, N tokens) that counts against the budgets from the moment it is reserved. When it is *settled*
(the answer came back and the real token count is known) its tokens count until one window after the
settlement, and its request until one window after it *reached the provider*: the moment it was sent plus
the time it can have spent on its way (``arrival_allowance``: the whole call when it was quicker, else 1% of
the window and at least 50 ms). The settlement says when that was as ``sent_ago`` (seconds before the
settlement, measured by ModelForge's own HTTP transports, see ``modelforge._send_marks``); when it does not
know (a model that does not send through those transports, or a caller settling by hand), the request
counts until one window after the settlement, like its tokens. A send time before the reservation counts
as the reservation time. An entry never settled stops counting ``reservation_timeout`` after its window.
A request may go when, counting every live entry, both ``requests + 1 <= rpm`` and ``tokens + N <= tpm``.
So a burst of the whole per-window budget is allowed at once, and budget comes back entry by entry.

Why this and not a token bucket: a sliding-window log never lets more than the budget through in *any*
window, so it is safe against a provider that enforces a rolling window and against one that enforces a
token bucket of the same size and rate. The provider counts a request when it arrives and its completion
tokens when they are produced, both before we see the answer: counting tokens from the settlement and
requests from the latest moment the request can have arrived keeps our budget from coming back before the
provider's does, without holding a request slot for the whole time the model spends answering (which would
cost a batch the model's latency in every window). Counting from the *send*, not the reservation, matters:
a request can wait in this process between the two (threads contending for the GIL, a full connection
pool), and the provider's window starts only when it arrives.

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

from modelforge.policies._ratelimit_headers import Observation
from modelforge.sections.rate_limit import Limits

__all__ = ["Backend", "LocalBackend", "SlidingWindow", "arrival_allowance", "request_counted_at"]


def arrival_allowance(window: float) -> float:
    """The longest a request is assumed to travel before the provider counts it: 1% of the window, at least
    50 ms."""
    return max(0.05, window * 0.01)


def request_counted_at(now: float, start: float, sent_ago: float | None, window: float) -> float:
    """When the provider counted a request reserved at ``start`` and settled at ``now``: its latest possible
    arrival, ``sent + min(now - sent, arrival_allowance(window))`` with ``sent = now - sent_ago`` (never
    before ``start``); ``now`` when the send time is unknown (``sent_ago`` None)."""
    if sent_ago is None:
        return now
    sent = min(max(now - sent_ago, start), now)
    return sent + min(now - sent, arrival_allowance(window))


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

    def settle(
        self, rid: str, actual_tokens: int, now: float, limits: Limits, *, sent_ago: float | None = None
    ) -> None:
        """The answer of ``rid`` used ``actual_tokens``: charge that instead of the estimate, counted for one
        window from now. Its request counts for one window from its latest possible arrival, the send
        ``sent_ago`` seconds ago plus ``arrival_allowance`` at most; or, when ``sent_ago`` is None (unknown),
        for one window from now. A reservation that already timed out is charged its tokens again."""
        entry = self._in_flight.pop(rid, None)
        if entry is not None:
            self.used_tokens -= entry.tokens
            self.used_requests -= entry.requests
            counted = request_counted_at(now, entry.start, sent_ago, limits.window)
            self._charge(counted + limits.window, entry.requests, 0)
        self._charge(now + limits.window, 0, actual_tokens)

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
    def settle(
        self, rid: str, actual_tokens: int, limits: Limits, *, sent_ago: float | None = None
    ) -> None: ...
    async def asettle(
        self, rid: str, actual_tokens: int, limits: Limits, *, sent_ago: float | None = None
    ) -> None: ...
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

    def settle(self, rid: str, actual_tokens: int, limits: Limits, *, sent_ago: float | None = None) -> None:
        with self._lock:
            self.window.settle(rid, actual_tokens, self._clock(), limits, sent_ago=sent_ago)

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

    async def asettle(
        self, rid: str, actual_tokens: int, limits: Limits, *, sent_ago: float | None = None
    ) -> None:
        self.settle(rid, actual_tokens, limits, sent_ago=sent_ago)

    async def acancel(self, rid: str, limits: Limits) -> None:
        self.cancel(rid, limits)

    async def aobserve(self, observation: Observation, limits: Limits) -> None:
        self.observe(observation, limits)
