"""Rate limits by requests and tokens per minute, per provider, in one process or shared through Redis.

::

    limiter = RateLimiter(RateLimitConfig.from_config({"requests_per_minute": 3500,
                                                       "tokens_per_minute": 90000}, provider="openai"))
    reservation = await limiter.acquire(tokens=estimated_input + max_tokens)   # or acquire_sync(...)
    answer = await llm.ainvoke(messages)
    reservation.settle(answer.usage_metadata["total_tokens"])                  # the real usage
    # (``sent_ago=``: seconds since the request went out, when known; see ``Reservation.settle``)
    limiter.observe(response_headers)                                          # x-ratelimit-* tighten

What this module owns: ``RateLimiter`` (the waiting line and the sync/async loops around a backend),
``Reservation`` (what one request holds until it is settled or cancelled) and ``RequestCounter`` (the
2.3.0 non-blocking ``check_limits(tokens) -> seconds``). The algorithm — a sliding-window log counting each
request from when it was sent and its tokens from its answer, see ``_ratelimit_window`` — and the backends
(``LocalBackend``, ``RedisBackend``), the config (``RateLimitConfig``) and the header reader live in the
private ``_ratelimit_*`` modules beside it.

Callers wait in FIFO order: only the head of the line asks the backend; when the budget does not allow
it, the head sleeps exactly until it will (or until a settlement or cancellation in this process wakes
it), so nothing polls. ``acquire`` never fails because of the limit, except for a single request bigger
than the whole token budget (``InvalidInputError``). Sync and async callers share one line.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from modelforge.exceptions import InvalidInputError
from modelforge.policies._ratelimit_headers import Observation, parse_rate_limit_headers
from modelforge.policies._ratelimit_line import Line, Ticket
from modelforge.policies._ratelimit_redis import RedisBackend
from modelforge.policies._ratelimit_window import Backend, LocalBackend, SlidingWindow
from modelforge.sections.rate_limit import Limits, RateLimitConfig

__all__ = [
    "Backend",
    "LocalBackend",
    "Observation",
    "RateLimitConfig",
    "RateLimiter",
    "RedisBackend",
    "RequestCounter",
    "Reservation",
    "SlidingWindow",
    "parse_rate_limit_headers",
]


class Reservation:
    """What one request holds: 1 request and ``tokens`` tokens, until ``settle`` or ``cancel``.

    ``waited`` is how long ``acquire`` waited (seconds). Settling or cancelling twice does nothing.
    """

    __slots__ = ("_done", "_limiter", "id", "tokens", "waited")

    def __init__(self, limiter: RateLimiter, rid: str, tokens: int, waited: float) -> None:
        self._limiter = limiter
        self.id = rid
        self.tokens = tokens
        self.waited = waited
        self._done = False

    def __repr__(self) -> str:
        state = "done" if self._done else "held"
        return f"Reservation(tokens={self.tokens}, waited={self.waited:.3f}, {state})"

    @property
    def done(self) -> bool:
        return self._done

    def settle(self, actual_tokens: int, *, sent_ago: float | None = None) -> None:
        """Charge the real usage (input + output tokens) instead of the estimate, refunding or charging the
        difference; the tokens count for one window from now. ``sent_ago`` is how many seconds ago the
        request went out (ModelForge's models measure it at their HTTP transport): the request counts for
        one window from its arrival, at most ``arrival_allowance`` after that. None (not known) counts it
        for one window from now, which is never too soon. From a running event loop with a remote backend
        this is scheduled without blocking the loop (``asettle`` awaits it)."""
        actual_tokens = _tokens_arg(actual_tokens, "actual_tokens")
        sent_ago = _sent_ago_arg(sent_ago)
        if self._claim():
            self._limiter._settle(self, actual_tokens, sent_ago)

    async def asettle(self, actual_tokens: int, *, sent_ago: float | None = None) -> None:
        actual_tokens = _tokens_arg(actual_tokens, "actual_tokens")
        sent_ago = _sent_ago_arg(sent_ago)
        if self._claim():
            await self._limiter._asettle(self, actual_tokens, sent_ago)

    def cancel(self) -> None:
        """Give the whole reservation back: the request never reached the provider, or was refused (429)."""
        if self._claim():
            self._limiter._cancel(self)

    async def acancel(self) -> None:
        if self._claim():
            await self._limiter._acancel(self)

    def _claim(self) -> bool:
        if self._done:
            return False
        self._done = True
        return True


def _tokens_arg(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{name} must be a whole number of tokens >= 0, got {value!r}")
    return value


def _sent_ago_arg(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"sent_ago must be None or a number of seconds >= 0, got {value!r}")
    return float(value)


class RateLimiter:
    """Requests and tokens per window for one provider (keep one per provider and process).

    ``backend`` defaults to what ``config.backend`` says: a ``LocalBackend`` on ``clock``, or a
    ``RedisBackend`` (falling back to a ``LocalBackend`` on ``clock`` while Redis is unreachable).
    ``wall_clock`` reads Anthropic's RFC 3339 reset times.
    """

    def __init__(
        self,
        config: RateLimitConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        backend: Backend | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._clock = clock
        self._wall_clock = wall_clock
        if backend is None:
            local = LocalBackend(clock=clock)
            backend = RedisBackend.from_config(config, fallback=local) if config.backend == "redis" else local
        self.backend: Backend = backend
        self._line = Line()
        self._limits = config.limits()
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return (
            f"RateLimiter(key={self.config.key!r}, requests={self._limits.requests}, "
            f"tokens={self._limits.tokens}, window={self._limits.window:g}s, backend={self.backend!r})"
        )

    @property
    def limits(self) -> Limits:
        """The budgets in force: the configured ones, tightened by what the provider's headers said."""
        return self._limits

    @property
    def degraded(self) -> bool:
        """True while a shared backend is unreachable and this process enforces its limits alone."""
        return self.backend.degraded

    @property
    def waiting(self) -> int:
        """Callers in line (the head included)."""
        return len(self._line)

    # --- acquiring -----------------------------------------------------------------------------------

    async def acquire(self, tokens: int = 0) -> Reservation:
        """Wait in line until 1 request and ``tokens`` fit both budgets, then hold them."""
        tokens = self._check(tokens)
        loop = asyncio.get_running_loop()
        ticket = Ticket(loop)
        assert ticket.aevent is not None
        rid, started = uuid.uuid4().hex, self._clock()
        self._line.join(ticket)
        try:
            await ticket.aevent.wait()
            while True:
                ticket.aevent.clear()
                wait = await self._areserve(rid, tokens)
                if wait <= 0:
                    return Reservation(self, rid, tokens, self._clock() - started)
                handle = loop.call_later(self._sleep_for(wait), ticket.aevent.set)
                try:
                    await ticket.aevent.wait()
                finally:
                    handle.cancel()
        finally:
            self._line.leave(ticket)

    def acquire_sync(self, tokens: int = 0) -> Reservation:
        """``acquire`` for sync callers (thread-safe; shares the line with async callers)."""
        tokens = self._check(tokens)
        ticket = Ticket(None)
        rid, started = uuid.uuid4().hex, self._clock()
        self._line.join(ticket)
        try:
            ticket.event.wait()
            while True:
                ticket.event.clear()
                wait = self.backend.reserve(rid, tokens, self._limits)
                if wait <= 0:
                    return Reservation(self, rid, tokens, self._clock() - started)
                ticket.event.wait(self._sleep_for(wait))
        finally:
            self._line.leave(ticket)

    def try_acquire(self, tokens: int = 0) -> Reservation | None:
        """Reserve now if nobody is waiting and the budgets allow it; never waits."""
        tokens = self._check(tokens)
        if len(self._line):
            return None
        rid = uuid.uuid4().hex
        if self.backend.reserve(rid, tokens, self._limits) > 0:
            return None
        return Reservation(self, rid, tokens, 0.0)

    def wait_time(self, tokens: int = 0) -> float:
        """Seconds until a request of ``tokens`` would fit (ignoring callers already in line)."""
        return self.backend.reserve("", self._check(tokens), self._limits, commit=False)

    def has_capacity(self, tokens: int = 0) -> bool:
        """Whether a request of ``tokens`` could be reserved right now without waiting (nobody in line)."""
        return not len(self._line) and self.wait_time(tokens) <= 0

    # --- feedback from the provider ------------------------------------------------------------------

    def observe(self, headers: Mapping[str, str], *, retry_after: float | None = None) -> Observation:
        """Tighten from a response's rate-limit headers (OpenAI ``x-ratelimit-*``, Anthropic
        ``anthropic-ratelimit-*``, ``retry-after``); ``retry_after`` (seconds) pauses every reservation,
        e.g. from a ``RateLimitError``. Never loosens beyond the configured limits."""
        observation = self._observation(headers, retry_after)
        if observation.empty:
            return observation
        if self.backend.remote and _running_loop() is not None:
            self._background(self.backend.aobserve(observation, self._limits))
        else:
            self.backend.observe(observation, self._limits)
        return observation

    async def aobserve(self, headers: Mapping[str, str], *, retry_after: float | None = None) -> Observation:
        observation = self._observation(headers, retry_after)
        if not observation.empty:
            await self.backend.aobserve(observation, self._limits)
        return observation

    def close(self) -> None:
        """Release the backend's connections (the sync ones; ``aclose`` for this event loop's)."""
        self.backend.close()

    async def aclose(self) -> None:
        aclose = getattr(self.backend, "aclose", None)
        if aclose is not None:
            await aclose()

    # --- internals -----------------------------------------------------------------------------------

    def _check(self, tokens: int) -> int:
        tokens = _tokens_arg(tokens, "tokens")
        budget = self.config.tokens_per_minute
        if budget is not None and tokens > budget:
            raise InvalidInputError(
                f"A request of {tokens} tokens can never fit the token budget of {budget} tokens per "
                f"{self.config.window_seconds:g}s for '{self.config.key}'",
                suggestion="Shorten the input or lower max_tokens, or raise rate_limit.tokens_per_minute.",
                details={"tokens": tokens, "tokens_per_minute": budget, "key": self.config.key},
            )
        return tokens

    def _sleep_for(self, wait: float) -> float:
        """A wait as the backend computed it, kept within [1 ms, the longest anything can count]: the loop
        asks again after each sleep, so it never spins and never sleeps past a change it could miss."""
        limits = self._limits
        return min(max(wait, 0.001), limits.window + limits.reservation_timeout)

    async def _areserve(self, rid: str, tokens: int) -> float:
        if not self.backend.remote:
            return self.backend.reserve(rid, tokens, self._limits)
        # A cancelled caller must not leave a reservation behind if the script ran anyway.
        task = asyncio.ensure_future(self.backend.areserve(rid, tokens, self._limits))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda done: self._drop_orphan(rid, done))
            raise

    def _drop_orphan(self, rid: str, task: asyncio.Task[float]) -> None:
        if not task.cancelled() and task.exception() is None and task.result() <= 0:
            self._background(self.backend.acancel(rid, self._limits))

    def _observation(self, headers: Mapping[str, str], retry_after: float | None) -> Observation:
        observation = parse_rate_limit_headers(headers, wall_clock=self._wall_clock)
        if retry_after is not None and retry_after > 0:
            observation = replace(observation, retry_after=max(retry_after, observation.retry_after or 0.0))
        self._tighten(observation)
        return observation

    def _tighten(self, observation: Observation) -> None:
        limits = self._limits
        requests = _lower(limits.requests, observation.limit_requests)
        tokens = _lower(limits.tokens, observation.limit_tokens)
        if (requests, tokens) != (limits.requests, limits.tokens):
            self._limits = Limits(requests, tokens, limits.window, limits.reservation_timeout)

    def _settle(self, reservation: Reservation, actual_tokens: int, sent_ago: float | None = None) -> None:
        if self.backend.remote and _running_loop() is not None:
            self._background(self._asettle(reservation, actual_tokens, sent_ago))
            return
        self.backend.settle(reservation.id, actual_tokens, self._limits, sent_ago=sent_ago)
        self._line.nudge()

    async def _asettle(
        self, reservation: Reservation, actual_tokens: int, sent_ago: float | None = None
    ) -> None:
        await self.backend.asettle(reservation.id, actual_tokens, self._limits, sent_ago=sent_ago)
        self._line.nudge()

    def _cancel(self, reservation: Reservation) -> None:
        if self.backend.remote and _running_loop() is not None:
            self._background(self._acancel(reservation))
            return
        self.backend.cancel(reservation.id, self._limits)
        self._line.nudge()

    async def _acancel(self, reservation: Reservation) -> None:
        await self.backend.acancel(reservation.id, self._limits)
        self._line.nudge()

    def _background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _lower(configured: int | None, observed: int | None) -> int | None:
    if observed is None or observed < 1:
        return configured
    return observed if configured is None else min(configured, observed)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class RequestCounter:
    """The 2.3.0 non-blocking counter: ``check_limits(tokens)`` counts the request and returns 0.0 when it
    may go now, else the seconds to wait (and counts nothing)."""

    def __init__(
        self,
        config: RateLimitConfig | Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        backend: Backend | None = None,
    ) -> None:
        if not isinstance(config, RateLimitConfig):
            config = RateLimitConfig.from_config(config)
        self.limiter = RateLimiter(config, clock=clock, backend=backend)

    def check_limits(self, tokens: int = 0) -> float:
        """Take one request and ``tokens`` from the budget now and return 0.0, or, when the budget has no
        room, take nothing and return the seconds to wait before asking again."""
        limiter = self.limiter
        tokens = limiter._check(tokens)
        rid = uuid.uuid4().hex
        wait = limiter.backend.reserve(rid, tokens, limiter.limits)
        if wait > 0:
            return wait
        limiter.backend.settle(rid, tokens, limiter.limits)
        return 0.0
