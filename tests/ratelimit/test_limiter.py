"""``RateLimiter``: the FIFO line (async, threads, both), settlements waking waiters, header tightening,
the too-big request, ``RequestCounter``. The fake clock decides; waiters are released by settlements and
cancellations, so nothing here sleeps except the one test that measures a real wait."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from modelforge.exceptions import InvalidInputError
from modelforge.policies.ratelimit import (
    LocalBackend,
    RateLimitConfig,
    RateLimiter,
    RedisBackend,
    RequestCounter,
    Reservation,
)
from tests.ratelimit.conftest import FakeClock


def limiter_for(clock: FakeClock, **section: Any) -> RateLimiter:
    return RateLimiter(RateLimitConfig.from_config(section, provider="test"), clock=clock)


def wait_for_line(limiter: RateLimiter, length: int) -> None:
    """Until ``length`` callers are in line (a thread needs a moment to get there)."""
    deadline = time.monotonic() + 5
    while limiter.waiting < length and time.monotonic() < deadline:
        time.sleep(0.001)
    assert limiter.waiting == length


async def settle_soon() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_async_waiters_go_in_arrival_order(clock: FakeClock) -> None:
    limiter = limiter_for(clock, requests_per_minute=1)
    held = await limiter.acquire()
    order: list[int] = []
    got: dict[int, Reservation] = {}

    async def wait(n: int) -> None:
        got[n] = await limiter.acquire()
        order.append(n)

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(wait(n)))
        await settle_soon()
    assert limiter.waiting == 5 and order == []
    current = held
    for n in range(5):
        current.cancel()  # the request never went: its slot is free again, and the head takes it
        await settle_soon()
        assert order == list(range(n + 1))
        current = got[n]
    await asyncio.gather(*tasks)
    assert limiter.waiting == 0


async def test_a_big_request_at_the_head_is_not_overtaken(clock: FakeClock) -> None:
    limiter = limiter_for(clock, tokens_per_minute=100)
    held = await limiter.acquire(tokens=60)
    big = asyncio.create_task(limiter.acquire(tokens=50))
    await settle_soon()
    small = asyncio.create_task(limiter.acquire(tokens=10))  # would fit, but waits its turn
    await settle_soon()
    assert not big.done() and not small.done()
    assert not limiter.has_capacity(10)  # somebody is in line
    held.settle(20)  # the answer used 20 of 60: 40 back, now 20 + 50 + 10 fit
    await settle_soon()
    assert big.done() and small.done()


def test_threads_wait_in_arrival_order(clock: FakeClock) -> None:
    limiter = limiter_for(clock, requests_per_minute=1)
    held = limiter.acquire_sync()
    order: list[int] = []
    got: dict[int, Reservation] = {}
    done = {n: threading.Event() for n in range(6)}

    def wait(n: int) -> None:
        got[n] = limiter.acquire_sync()
        order.append(n)
        done[n].set()

    threads = []
    for n in range(6):
        threads.append(threading.Thread(target=wait, args=(n,), daemon=True))
        threads[-1].start()
        wait_for_line(limiter, n + 1)
    current = held
    for n in range(6):
        current.cancel()
        assert done[n].wait(5)
        current = got[n]
    assert order == list(range(6))
    for t in threads:
        t.join(5)


async def test_sync_and_async_callers_share_one_line(clock: FakeClock) -> None:
    limiter = limiter_for(clock, requests_per_minute=1)
    held = await limiter.acquire()
    order: list[str] = []
    got: dict[str, Reservation] = {}

    async def async_wait(name: str) -> None:
        got[name] = await limiter.acquire()
        order.append(name)

    def sync_wait(name: str) -> None:
        got[name] = limiter.acquire_sync()
        order.append(name)

    first = asyncio.create_task(async_wait("async-1"))
    await settle_soon()
    thread = threading.Thread(target=sync_wait, args=("sync-2",), daemon=True)
    thread.start()
    await asyncio.to_thread(wait_for_line, limiter, 2)
    third = asyncio.create_task(async_wait("async-3"))
    await settle_soon()
    held.cancel()
    await first
    got["async-1"].cancel()
    await asyncio.to_thread(thread.join, 5)
    got["sync-2"].cancel()
    await third
    assert order == ["async-1", "sync-2", "async-3"]


async def test_a_cancelled_waiter_leaves_the_line(clock: FakeClock) -> None:
    limiter = limiter_for(clock, requests_per_minute=1)
    held = await limiter.acquire()
    head = asyncio.create_task(limiter.acquire())
    await settle_soon()
    behind = asyncio.create_task(limiter.acquire())
    await settle_soon()
    head.cancel()
    await settle_soon()
    assert limiter.waiting == 1
    held.cancel()
    await settle_soon()
    assert behind.done() and not behind.cancelled()


async def test_a_request_bigger_than_the_budget_fails_clearly(clock: FakeClock) -> None:
    limiter = limiter_for(clock, tokens_per_minute=4000)
    with pytest.raises(InvalidInputError) as info:
        await limiter.acquire(tokens=5000)
    assert "5000" in str(info.value) and "4000" in str(info.value) and "'test'" in str(info.value)
    assert info.value.details["tokens"] == 5000
    with pytest.raises(InvalidInputError):
        limiter.acquire_sync(tokens=4001)
    assert (await limiter.acquire(tokens=4000)).tokens == 4000
    with pytest.raises(InvalidInputError):
        await limiter.acquire(tokens=-1)


def test_settle_once_and_only_with_a_count(clock: FakeClock) -> None:
    limiter = limiter_for(clock, tokens_per_minute=100)
    reservation = limiter.acquire_sync(tokens=50)
    with pytest.raises(InvalidInputError):
        reservation.settle(-3)
    reservation.settle(80)
    reservation.settle(0)  # ignored: already settled
    reservation.cancel()  # ignored too
    assert reservation.done
    assert limiter.wait_time(21) > 0 and limiter.wait_time(20) == 0


def test_header_limits_tighten_and_never_loosen(clock: FakeClock) -> None:
    limiter = limiter_for(clock, requests_per_minute=100, tokens_per_minute=10000)
    limiter.observe({"x-ratelimit-limit-requests": "2", "x-ratelimit-limit-tokens": "50000"})
    assert (limiter.limits.requests, limiter.limits.tokens) == (2, 10000)
    limiter.observe({"x-ratelimit-limit-requests": "500"})
    assert limiter.limits.requests == 2
    limiter.acquire_sync()
    limiter.acquire_sync()
    assert not limiter.has_capacity()
    unconfigured = limiter_for(clock)
    unconfigured.observe({"anthropic-ratelimit-requests-limit": "7"})
    assert unconfigured.limits.requests == 7


def test_remaining_headers_and_retry_after_hold_callers_back(clock: FakeClock) -> None:
    limiter = limiter_for(clock, requests_per_minute=100, tokens_per_minute=10000)
    limiter.observe({"x-ratelimit-remaining-tokens": "100", "x-ratelimit-reset-tokens": "2s"})
    assert limiter.wait_time(101) == pytest.approx(2)
    assert limiter.has_capacity(100)
    limiter.observe({}, retry_after=3)  # e.g. from a RateLimitError's retry_after
    assert limiter.wait_time(0) == pytest.approx(3)
    clock.advance(3)
    assert limiter.has_capacity(10000)


def test_try_acquire_never_waits(clock: FakeClock) -> None:
    limiter = limiter_for(clock, requests_per_minute=1)
    first = limiter.try_acquire()
    assert first is not None
    assert limiter.try_acquire() is None
    first.cancel()
    assert limiter.try_acquire() is not None


def test_request_counter_check_limits(clock: FakeClock) -> None:
    counter = RequestCounter({"requests_per_minute": 2, "tokens_per_minute": 100}, clock=clock)
    assert counter.check_limits(40) == 0.0
    assert counter.check_limits(40) == 0.0
    assert counter.check_limits(10) == pytest.approx(60)  # the request budget
    clock.advance(60)
    assert counter.check_limits(100) == 0.0
    clock.advance(30)
    assert counter.check_limits(1) == pytest.approx(30)  # the token budget
    with pytest.raises(InvalidInputError):
        counter.check_limits(101)


class CountingBackend(LocalBackend):
    def __init__(self) -> None:
        super().__init__()
        self.reserve_calls = 0

    def reserve(self, rid: str, tokens: int, limits: Any, *, commit: bool = True) -> float:
        self.reserve_calls += 1
        return super().reserve(rid, tokens, limits, commit=commit)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_real_wait_is_one_sleep_of_the_right_length(mode: str) -> None:
    """Measures time: a 0.3 s window. The third request waits ~0.3 s, asking the backend twice (no
    polling)."""
    backend = CountingBackend()
    config = RateLimitConfig.from_config({"requests_per_minute": 2, "window_seconds": 0.3})
    limiter = RateLimiter(config, backend=backend)
    start = time.monotonic()
    for _ in range(3):
        reservation = limiter.acquire_sync() if mode == "sync" else await limiter.acquire()
        reservation.settle(0)
    elapsed = time.monotonic() - start
    assert 0.29 <= elapsed < 0.6
    assert reservation.waited == pytest.approx(elapsed, abs=0.05)
    assert backend.reserve_calls <= 5


async def test_redis_settle_from_a_running_loop_does_not_block(redis_url: str, redis_key: str) -> None:
    config = RateLimitConfig.from_config(
        {
            "requests_per_minute": 1,
            "tokens_per_minute": 100,
            "backend": "redis",
            "url": redis_url,
            "key": redis_key,
        }
    )
    limiter = RateLimiter(config)
    assert isinstance(limiter.backend, RedisBackend)
    held = await limiter.acquire(tokens=60)
    waiter = asyncio.create_task(limiter.acquire(tokens=50))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    held.cancel()  # sync API inside the loop: scheduled on the loop, then the waiter is woken
    reservation = await asyncio.wait_for(waiter, 5)
    await reservation.asettle(50)
    assert not limiter.degraded
    await limiter.backend.aclose()
    limiter.close()
