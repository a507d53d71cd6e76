"""The sliding-window algorithm, on the fake clock, run the same way against both backends.

``local`` is the pure ``SlidingWindow`` behind ``LocalBackend``; ``redis`` is the same algorithm as Lua
scripts in a real Redis (told the fake time instead of reading Redis's own clock).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from modelforge.policies.ratelimit import Backend, LocalBackend, Observation, RedisBackend
from modelforge.sections.rate_limit import Limits
from tests.ratelimit.conftest import FakeClock


@pytest.fixture(params=["local", "redis"])
def backend(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Backend]:
    if request.param == "local":
        yield LocalBackend(clock=clock)
        return
    url = request.getfixturevalue("redis_url")
    key = request.getfixturevalue("redis_key")
    redis_backend = RedisBackend(url, key=key, clock=clock)
    yield redis_backend
    assert not redis_backend.degraded, "the Redis backend fell back to local limits during the test"
    redis_backend.close()


def rid() -> str:
    return uuid.uuid4().hex


def test_a_burst_of_the_whole_request_budget_then_exactly_one_window(
    backend: Backend, clock: FakeClock
) -> None:
    limits = Limits(requests=3, tokens=None, window=60)
    first = rid()
    assert [backend.reserve(r, 0, limits) for r in (first, rid(), rid())] == [0, 0, 0]
    assert backend.reserve(rid(), 0, limits) == pytest.approx(60)  # in flight: one window after reserving
    clock.advance(10)
    # Answered now, sent 10 s ago (as soon as it was reserved): the provider counted it when it arrived, at
    # most 0.6 s (1% of the window) after it left.
    backend.settle(first, 0, limits, sent_ago=10)
    # The two still in flight could be answered any moment: look again when their window could be over.
    assert backend.reserve(rid(), 0, limits) == pytest.approx(50)
    clock.advance(50)
    assert backend.reserve(rid(), 0, limits) == pytest.approx(0.6)  # the answered one's window ends first
    clock.advance(0.6)
    assert backend.reserve(rid(), 0, limits) == 0  # the answered one has expired


def test_a_quick_answer_frees_its_request_one_window_after_it_was_sent(
    backend: Backend, clock: FakeClock
) -> None:
    limits = Limits(requests=1, tokens=None, window=1.0)
    first = rid()
    assert backend.reserve(first, 0, limits) == 0
    clock.advance(0.02)  # answered within the allowance (50 ms): it arrived by then at the latest
    backend.settle(first, 0, limits, sent_ago=0.02)
    assert backend.reserve(rid(), 0, limits) == pytest.approx(1.0)


def test_a_request_whose_send_time_is_unknown_counts_one_window_from_its_answer(
    backend: Backend, clock: FakeClock
) -> None:
    limits = Limits(requests=1, tokens=None, window=60)
    first = rid()
    assert backend.reserve(first, 0, limits) == 0
    clock.advance(10)
    backend.settle(first, 0, limits)  # not sent through our transports: it may have arrived just now
    assert backend.reserve(rid(), 0, limits) == pytest.approx(60)
    clock.advance(59.9)
    assert backend.reserve(rid(), 0, limits) == pytest.approx(0.1)
    clock.advance(0.1)
    assert backend.reserve(rid(), 0, limits) == 0


def test_a_request_that_waited_before_it_was_sent_counts_from_its_send(
    backend: Backend, clock: FakeClock
) -> None:
    limits = Limits(requests=1, tokens=None, window=60)
    first = rid()
    assert backend.reserve(first, 0, limits) == 0
    clock.advance(5)  # reserved, then waited in this process (GIL, a full connection pool) before going out
    clock.advance(10)  # sent: the model answered 10 s later
    backend.settle(first, 0, limits, sent_ago=10)
    # Counted from the send (5 s after the reservation) plus 0.6 s on the way: until 5 + 0.6 + 60.
    assert backend.reserve(rid(), 0, limits) == pytest.approx(50.6)
    clock.advance(50.5)
    assert backend.reserve(rid(), 0, limits) == pytest.approx(0.1)
    clock.advance(0.1)
    assert backend.reserve(rid(), 0, limits) == 0


def test_a_send_time_before_the_reservation_counts_from_the_reservation(
    backend: Backend, clock: FakeClock
) -> None:
    limits = Limits(requests=1, tokens=None, window=60)
    first = rid()
    assert backend.reserve(first, 0, limits) == 0
    clock.advance(10)
    backend.settle(first, 0, limits, sent_ago=100)  # impossible: it was reserved 10 s ago
    assert backend.reserve(rid(), 0, limits) == pytest.approx(50.6)


def test_tokens_count_one_window_from_the_answer_whenever_the_request_was_sent(
    backend: Backend, clock: FakeClock
) -> None:
    limits = Limits(requests=None, tokens=100, window=60)
    first = rid()
    assert backend.reserve(first, 100, limits) == 0
    clock.advance(10)
    backend.settle(first, 100, limits, sent_ago=10)  # completion tokens were produced until now
    assert backend.reserve(rid(), 1, limits) == pytest.approx(60)


def test_tokens_budget_refunds_and_charges_on_settle(backend: Backend) -> None:
    limits = Limits(requests=None, tokens=100, window=60)
    big = rid()
    assert backend.reserve(big, 60, limits) == 0
    assert backend.reserve(rid(), 50, limits) > 0  # 60 + 50 > 100
    backend.settle(big, 30, limits)  # the answer used less: 30 back
    assert backend.reserve(rid(), 50, limits) == 0  # 30 + 50
    assert backend.reserve(rid(), 30, limits) > 0  # 80 + 30 > 100
    small = rid()
    assert backend.reserve(small, 20, limits) == 0  # 100
    backend.settle(small, 25, limits)  # used more than reserved: charged
    assert backend.reserve(rid(), 0, limits) > 0


def test_wait_ends_one_window_after_the_settlement(backend: Backend, clock: FakeClock) -> None:
    limits = Limits(requests=None, tokens=100, window=60)
    first = rid()
    backend.reserve(first, 100, limits)
    clock.advance(10)
    backend.settle(first, 100, limits)
    clock.advance(10)
    assert backend.reserve(rid(), 1, limits) == pytest.approx(50)
    clock.advance(50)
    assert backend.reserve(rid(), 1, limits) == 0


def test_wait_counts_only_as_many_entries_as_needed(backend: Backend, clock: FakeClock) -> None:
    limits = Limits(requests=None, tokens=100, window=60)
    for amount in (40, 30, 30):
        r = rid()
        backend.reserve(r, amount, limits)
        backend.settle(r, amount, limits)
        clock.advance(5)
    # Used 100 (expiring at +60, +65, +70 from the start); 50 more tokens need the first two gone.
    assert backend.reserve(rid(), 50, limits) == pytest.approx(65 - 15)
    assert backend.reserve(rid(), 40, limits) == pytest.approx(60 - 15)


def test_cancel_gives_everything_back(backend: Backend) -> None:
    limits = Limits(requests=1, tokens=10, window=60)
    held = rid()
    assert backend.reserve(held, 10, limits) == 0
    assert backend.reserve(rid(), 10, limits) > 0
    backend.cancel(held, limits)
    assert backend.reserve(rid(), 10, limits) == 0


def test_peeking_reserves_nothing(backend: Backend) -> None:
    limits = Limits(requests=1, tokens=None, window=60)
    assert backend.reserve(rid(), 0, limits, commit=False) == 0
    assert backend.reserve(rid(), 0, limits, commit=False) == 0
    assert backend.reserve(rid(), 0, limits) == 0
    assert backend.reserve(rid(), 0, limits, commit=False) > 0


def test_an_unsettled_reservation_is_rechecked_then_dropped(backend: Backend, clock: FakeClock) -> None:
    limits = Limits(requests=1, tokens=None, window=60, reservation_timeout=100)
    backend.reserve(rid(), 0, limits)
    clock.advance(61)  # still in flight after a whole window: look again soon, not a window later
    assert backend.reserve(rid(), 0, limits) == pytest.approx(limits.recheck)
    clock.advance(100)  # past window + timeout: the caller is taken for dead
    assert backend.reserve(rid(), 0, limits) == 0


def test_settling_a_dropped_reservation_charges_its_tokens(backend: Backend, clock: FakeClock) -> None:
    limits = Limits(requests=None, tokens=100, window=60, reservation_timeout=10)
    late = rid()
    backend.reserve(late, 10, limits)
    clock.advance(80)
    assert backend.reserve(rid(), 100, limits, commit=False) == 0  # dropped
    backend.settle(late, 60, limits)
    assert backend.reserve(rid(), 50, limits, commit=False) == pytest.approx(60)


def test_a_request_bigger_than_a_tightened_budget_goes_alone(backend: Backend, clock: FakeClock) -> None:
    limits = Limits(requests=None, tokens=100, window=60)
    assert backend.reserve(rid(), 150, limits) == 0  # nothing else counted
    other = rid()
    clock.advance(1)
    assert backend.reserve(other, 150, limits) == pytest.approx(59)


def test_headers_tighten_until_the_reset(backend: Backend, clock: FakeClock) -> None:
    limits = Limits(requests=10, tokens=1000, window=60)
    backend.reserve(rid(), 100, limits)
    # The provider counts more than we do (another client): 500 tokens and 2 requests remain.
    backend.observe(
        Observation(remaining_requests=2, reset_requests=5, remaining_tokens=500, reset_tokens=8), limits
    )
    assert backend.reserve(rid(), 501, limits, commit=False) == pytest.approx(8)
    assert backend.reserve(rid(), 500, limits, commit=False) == 0
    assert backend.reserve(rid(), 0, limits) == 0
    assert backend.reserve(rid(), 0, limits) == 0
    assert backend.reserve(rid(), 0, limits) == pytest.approx(5)
    clock.advance(8)
    assert backend.reserve(rid(), 500, limits) == 0


def test_headers_never_loosen(backend: Backend) -> None:
    limits = Limits(requests=2, tokens=100, window=60)
    backend.reserve(rid(), 90, limits)
    backend.observe(Observation(remaining_requests=50, remaining_tokens=5000, reset_tokens=1), limits)
    assert backend.reserve(rid(), 11, limits) > 0
    assert backend.reserve(rid(), 10, limits) == 0
    assert backend.reserve(rid(), 0, limits) > 0


def test_retry_after_pauses_everything(backend: Backend, clock: FakeClock) -> None:
    limits = Limits(requests=100, tokens=None, window=60)
    backend.observe(Observation(retry_after=5), limits)
    assert backend.reserve(rid(), 0, limits) == pytest.approx(5)
    backend.observe(Observation(retry_after=2), limits)  # a shorter pause does not shorten it
    clock.advance(4)
    assert backend.reserve(rid(), 0, limits) == pytest.approx(1)
    clock.advance(1)
    assert backend.reserve(rid(), 0, limits) == 0


def test_redis_reservations_are_atomic_across_threads(
    redis_url: str, redis_key: str, clock: FakeClock
) -> None:
    """64 threads, each with its own client, race for 37 requests and 3,000 tokens: no more get through."""
    limits = Limits(requests=37, tokens=3000, window=60)
    granted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(64)

    def worker(n: int) -> None:
        own = RedisBackend(redis_url, key=redis_key, clock=clock)
        start.wait()
        for _ in range(10):
            tokens = 50 + n % 7
            if own.reserve(rid(), tokens, limits) == 0:
                with lock:
                    granted.append(tokens)
        own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) <= 37
    assert sum(granted) <= 3000
    # The budgets were really used up (50-56 tokens each: the token budget binds after 53-60 requests,
    # the request budget after 37), so the limit, not luck, stopped the rest.
    assert len(granted) == 37
