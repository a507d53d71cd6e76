"""``RedisBackend``: one budget shared by every process and host that uses the same Redis and key.

The sliding-window log of ``_ratelimit_window`` lives in six keys under ``modelforge:ratelimit:{key}:``
(one hash slot, so Redis Cluster works): reservations in flight (sorted by reservation time), settled
and phantom entries (sorted by expiry), their request and token amounts, the running totals, and the
``retry-after`` pause. Every operation is one Lua script, so a check and its reservation are atomic
across processes; the script reads Redis's own ``TIME`` so hosts need not agree on their clocks (tests can
inject a clock instead). When a reservation does not fit, the script answers how many milliseconds to wait;
the limiter sleeps that long and runs it again. Every key carries a TTL, so an abandoned budget vanishes.

If Redis cannot be reached (or answers with an error) the backend falls back to a ``LocalBackend``,
logs one warning for the outage (``degraded`` is true meanwhile) and tries Redis again after
``reconnect_interval``; reservations made locally are settled locally. The URL's password is never
logged. Needs ``pip install 'model-forge-llm[redis]'``; the package is imported only when a backend is built.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from modelforge._secrets import mask_secrets
from modelforge.exceptions import ProviderNotAvailableError
from modelforge.policies._ratelimit_headers import Observation
from modelforge.policies._ratelimit_lua import ACQUIRE, KEY_NAMES, OBSERVE, SETTLE
from modelforge.policies._ratelimit_window import LocalBackend, arrival_allowance
from modelforge.sections.rate_limit import Limits, RateLimitConfig, redacted_url

__all__ = ["INSTALL_HINT", "RedisBackend"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'model-forge-llm[redis]'"


def _require_redis() -> Any:
    try:
        import redis
    except ImportError as err:
        raise ProviderNotAvailableError(
            "redis",
            f"the 'redis' package is not installed; run: {INSTALL_HINT}",
            suggestion=f"Install it with: {INSTALL_HINT}, or use rate_limit.backend: local",
        ) from err
    return redis


def _ms(seconds: float | None) -> str:
    return "-1" if seconds is None else repr(seconds * 1000.0)


def _count(value: int | None) -> str:
    return "-1" if value is None else str(value)


class _Scripts:
    """The three scripts registered on one client (sync, or async on one event loop)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.acquire = client.register_script(ACQUIRE)
        self.settle = client.register_script(SETTLE)
        self.observe = client.register_script(OBSERVE)


class RedisBackend:
    """Budgets in Redis at ``url`` under ``key``; ``clock=None`` uses Redis's ``TIME`` (shared by hosts)."""

    remote = True

    def __init__(
        self,
        url: str,
        *,
        key: str,
        clock: Callable[[], float] | None = None,
        fallback: LocalBackend | None = None,
        reconnect_interval: float = 30.0,
        timeout: float = 1.0,
        prefix: str = "modelforge:ratelimit",
    ) -> None:
        redis = _require_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis = redis
        self.url = redacted_url(url) or ""
        self.keys = [f"{prefix}:{{{key}}}:{name}" for name in KEY_NAMES]
        self.local = fallback if fallback is not None else LocalBackend()
        self._clock = clock
        self._reconnect_interval = reconnect_interval
        self._options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        self._raw_url = url
        self._sync = _Scripts(redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **self._options))
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Scripts] = (
            weakref.WeakKeyDictionary()
        )
        self._state = threading.Lock()
        self._down_until: float | None = None
        self._local_ids: set[str] = set()
        self._errors = (redis.exceptions.RedisError, OSError)

    @classmethod
    def from_config(
        cls,
        config: RateLimitConfig,
        *,
        clock: Callable[[], float] | None = None,
        fallback: LocalBackend | None = None,
    ) -> RedisBackend:
        if not config.url:
            raise ValueError("rate_limit.url is required when rate_limit.backend is redis")
        return cls(
            config.url,
            key=config.key,
            clock=clock,
            fallback=fallback,
            reconnect_interval=config.reconnect_interval,
            timeout=config.redis_timeout,
        )

    def __repr__(self) -> str:
        prefix = self.keys[0].rsplit(":", 1)[0]
        return f"RedisBackend(url={self.url!r}, keys={prefix!r}, degraded={self.degraded})"

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and this process runs on its local limits."""
        return self._down_until is not None

    # --- sync ----------------------------------------------------------------------------------------

    def reserve(self, rid: str, tokens: int, limits: Limits, *, commit: bool = True) -> float:
        if self._redis_due():
            try:
                answer = self._sync.acquire(
                    keys=self.keys, args=self._acquire_args(rid, tokens, limits, commit)
                )
            except self._errors as err:
                self._went_down(err)
            else:
                self._came_back()
                return float(answer) / 1000.0
        return self._reserve_locally(rid, tokens, limits, commit)

    def settle(self, rid: str, actual_tokens: int, limits: Limits, *, sent_ago: float | None = None) -> None:
        self._finish(rid, actual_tokens, limits, "settle", sent_ago)

    def cancel(self, rid: str, limits: Limits) -> None:
        self._finish(rid, 0, limits, "cancel")

    def observe(self, observation: Observation, limits: Limits) -> None:
        self.local.observe(observation, limits)
        if self._redis_due():
            try:
                self._sync.observe(keys=self.keys, args=self._observe_args(observation, limits))
            except self._errors as err:
                self._went_down(err)
            else:
                self._came_back()

    def close(self) -> None:
        """Close the sync client's connections (async clients close with their event loops)."""
        self._sync.client.close()

    # --- async ---------------------------------------------------------------------------------------

    async def areserve(self, rid: str, tokens: int, limits: Limits, *, commit: bool = True) -> float:
        if self._redis_due():
            try:
                answer = await self._scripts().acquire(
                    keys=self.keys, args=self._acquire_args(rid, tokens, limits, commit)
                )
            except self._errors as err:
                self._went_down(err)
            else:
                self._came_back()
                return float(answer) / 1000.0
        return self._reserve_locally(rid, tokens, limits, commit)

    async def asettle(
        self, rid: str, actual_tokens: int, limits: Limits, *, sent_ago: float | None = None
    ) -> None:
        await self._afinish(rid, actual_tokens, limits, "settle", sent_ago)

    async def acancel(self, rid: str, limits: Limits) -> None:
        await self._afinish(rid, 0, limits, "cancel")

    async def aobserve(self, observation: Observation, limits: Limits) -> None:
        self.local.observe(observation, limits)
        if self._redis_due():
            try:
                await self._scripts().observe(keys=self.keys, args=self._observe_args(observation, limits))
            except self._errors as err:
                self._went_down(err)
            else:
                self._came_back()

    async def aclose(self) -> None:
        """Close this event loop's client."""
        scripts = self._async.pop(asyncio.get_running_loop(), None)
        if scripts is not None:
            await scripts.client.aclose()

    # --- helpers -------------------------------------------------------------------------------------

    def _scripts(self) -> _Scripts:
        loop = asyncio.get_running_loop()
        scripts = self._async.get(loop)
        if scripts is None:
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = self._redis.asyncio.Redis.from_url(
                self._raw_url, retry=Retry(NoBackoff(), 0), **self._options
            )
            scripts = self._async[loop] = _Scripts(client)
        return scripts

    def _now_ms(self) -> str:
        return "-1" if self._clock is None else repr(self._clock() * 1000.0)

    def _acquire_args(self, rid: str, tokens: int, limits: Limits, commit: bool) -> list[str]:
        return [
            self._now_ms(),
            _ms(limits.window),
            _ms(limits.reservation_timeout),
            _count(limits.requests),
            _count(limits.tokens),
            rid,
            str(tokens),
            "1" if commit else "0",
            _ms(limits.recheck),
        ]

    def _settle_args(
        self, rid: str, actual_tokens: int, limits: Limits, mode: str, sent_ago: float | None
    ) -> list[str]:
        return [
            self._now_ms(),
            _ms(limits.window),
            _ms(limits.reservation_timeout),
            rid,
            str(actual_tokens),
            mode,
            _ms(None if sent_ago is None else max(sent_ago, 0.0)),
            _ms(arrival_allowance(limits.window)),
        ]

    def _observe_args(self, observation: Observation, limits: Limits) -> list[str]:
        import uuid

        return [
            self._now_ms(),
            _ms(limits.window),
            _ms(limits.reservation_timeout),
            _count(limits.requests),
            _count(limits.tokens),
            "observed:" + uuid.uuid4().hex,
            _count(observation.remaining_requests),
            _ms(observation.reset_requests),
            _count(observation.remaining_tokens),
            _ms(observation.reset_tokens),
            _ms(observation.retry_after),
        ]

    def _reserve_locally(self, rid: str, tokens: int, limits: Limits, commit: bool) -> float:
        wait = self.local.reserve(rid, tokens, limits, commit=commit)
        if commit and wait <= 0:
            with self._state:
                self._local_ids.add(rid)
        return wait

    def _settled_locally(
        self, rid: str, actual_tokens: int, limits: Limits, mode: str, sent_ago: float | None
    ) -> bool:
        with self._state:
            if rid not in self._local_ids:
                return False
            self._local_ids.discard(rid)
        if mode == "settle":
            self.local.settle(rid, actual_tokens, limits, sent_ago=sent_ago)
        else:
            self.local.cancel(rid, limits)
        return True

    def _finish(
        self, rid: str, actual_tokens: int, limits: Limits, mode: str, sent_ago: float | None = None
    ) -> None:
        if self._settled_locally(rid, actual_tokens, limits, mode, sent_ago):
            return
        try:
            self._sync.settle(
                keys=self.keys, args=self._settle_args(rid, actual_tokens, limits, mode, sent_ago)
            )
        except self._errors as err:
            self._went_down(err)  # the reservation times out in Redis by itself

    async def _afinish(
        self, rid: str, actual_tokens: int, limits: Limits, mode: str, sent_ago: float | None = None
    ) -> None:
        if self._settled_locally(rid, actual_tokens, limits, mode, sent_ago):
            return
        try:
            await self._scripts().settle(
                keys=self.keys, args=self._settle_args(rid, actual_tokens, limits, mode, sent_ago)
            )
        except self._errors as err:
            self._went_down(err)

    def _redis_due(self) -> bool:
        down_until = self._down_until
        return down_until is None or time.monotonic() >= down_until

    def _went_down(self, err: BaseException) -> None:
        with self._state:
            first = self._down_until is None
            self._down_until = time.monotonic() + self._reconnect_interval
        if first:
            logger.warning(
                "Redis rate-limit backend at %s is unreachable (%s: %s); using this process's local limits "
                "until it answers again (retrying every %gs)",
                self.url,
                type(err).__name__,
                mask_secrets(str(err)).replace(self._raw_url, self.url),
                self._reconnect_interval,
            )

    def _came_back(self) -> None:
        if self._down_until is None:
            return
        with self._state:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            logger.info("Redis rate-limit backend at %s answers again; limits are shared again", self.url)
