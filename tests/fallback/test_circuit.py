"""The circuit breaker alone, on a fake clock: opening, rejecting fast, probing, closing, staying sane."""

from __future__ import annotations

import threading

import pytest

from modelforge.exceptions import (
    BadRequestError,
    CircuitOpenError,
    InvalidApiKeyError,
    InvalidInputError,
    ModelNotFoundError,
    NetworkConnectionError,
    NetworkTimeoutError,
    ProviderOverloadedError,
    ProviderServerError,
    RateLimitError,
)
from modelforge.policies.circuit import (
    CircuitBreaker,
    CircuitBreakerRegistry,
    CircuitState,
    breaker_for,
    counts_against_health,
    default_breakers,
)
from tests.fallback.conftest import FakeClock

SERVER_ERROR = ProviderServerError("boom", provider="p", status_code=503)


def fail(breaker: CircuitBreaker, times: int, error: Exception = SERVER_ERROR) -> None:
    for _ in range(times):
        breaker.acquire().failed(error)


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("openai", failure_threshold=3, cooldown=30.0, clock=clock)


def test_opens_after_n_consecutive_health_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.snapshot().times_opened == 1


def test_a_success_resets_the_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.acquire().succeeded()
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().consecutive_failures == 2


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad", provider="p", status_code=400),
        InvalidApiKeyError("p", status_code=401),
        ModelNotFoundError("p", "m", status_code=404),
        ValueError("a bug"),
    ],
    ids=["400", "401", "404", "bug"],
)
def test_errors_that_say_nothing_about_health_do_not_count(breaker: CircuitBreaker, error: Exception) -> None:
    assert not counts_against_health(error)
    fail(breaker, 10, error)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().consecutive_failures == 0


@pytest.mark.parametrize(
    "error",
    [
        SERVER_ERROR,
        ProviderOverloadedError("overloaded", provider="p", status_code=529),
        RateLimitError("p", 1.0, status_code=429),
        NetworkTimeoutError("call", 1.0),
        NetworkConnectionError("call"),
        ConnectionResetError(),
        TimeoutError(),
    ],
    ids=["503", "529", "429", "timeout", "connection", "reset", "builtin-timeout"],
)
def test_health_failures_count(error: Exception) -> None:
    assert counts_against_health(error)


def test_open_rejects_at_once_with_the_rest_of_the_cooldown(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(12.5)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    err = info.value
    assert err.error_code == "CIRCUIT_OPEN"
    assert err.provider == "openai"
    assert err.retry_after == pytest.approx(17.5)
    assert err.retryable
    assert "openai" in str(err) and "17.5" in str(err)
    assert breaker.retry_after() == pytest.approx(17.5)


def test_cooldown_follows_a_longer_retry_after(breaker: CircuitBreaker) -> None:
    fail(breaker, 3, RateLimitError("openai", retry_after=120.0))
    assert breaker.retry_after() == pytest.approx(120.0)


def test_half_open_lets_one_probe_through_and_a_success_closes(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    assert breaker.state is CircuitState.HALF_OPEN
    probe = breaker.acquire()
    assert probe.probe
    with pytest.raises(CircuitOpenError) as info:  # one probe at a time
        breaker.acquire()
    assert info.value.retry_after is None
    probe.succeeded()
    assert breaker.state is CircuitState.CLOSED
    assert not breaker.acquire().probe


def test_a_failed_probe_reopens_for_a_new_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(31.0)
    breaker.acquire().failed(SERVER_ERROR)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == pytest.approx(30.0)
    clock.advance(30.0)
    assert breaker.state is CircuitState.HALF_OPEN


def test_a_probe_without_health_verdict_frees_its_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    breaker.acquire().failed(BadRequestError("bad", provider="p", status_code=400))
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire().release()  # a caller that stopped early
    breaker.acquire().succeeded()
    assert breaker.state is CircuitState.CLOSED


def test_a_probe_never_reported_frees_its_slot_after_a_cooldown(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(30.0)
    breaker.acquire()  # lost
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(30.0)
    breaker.acquire().succeeded()
    assert breaker.state is CircuitState.CLOSED


def test_a_verdict_from_before_a_state_change_is_ignored(breaker: CircuitBreaker, clock: FakeClock) -> None:
    slow = breaker.acquire()  # started while closed
    fail(breaker, 3)
    clock.advance(30.0)
    breaker.acquire().succeeded()  # probe closes the circuit
    slow.failed(SERVER_ERROR)  # the old call's failure must not count in the new era
    assert breaker.snapshot().consecutive_failures == 0
    slow.succeeded()  # and a permit reports once
    assert breaker.state is CircuitState.CLOSED


def test_permit_as_context_manager(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        with pytest.raises(ProviderServerError), breaker.acquire():
            raise SERVER_ERROR
    assert breaker.state is CircuitState.OPEN


def test_reset_and_listener(clock: FakeClock) -> None:
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "x",
        failure_threshold=1,
        cooldown=5,
        clock=clock,
        on_state_change=lambda b, old, new: seen.append((old, new)),
    )
    fail(breaker, 1)
    clock.advance(5)
    breaker.acquire().succeeded()
    fail(breaker, 1)
    breaker.reset()
    assert seen == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
        ("closed", "open"),
        ("open", "closed"),
    ]


@pytest.mark.parametrize(
    "settings",
    [{"failure_threshold": 0}, {"cooldown": -1}, {"half_open_max_calls": 0}, {"cooldown": float("nan")}],
)
def test_settings_are_checked(settings: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        CircuitBreaker("x", **settings)  # type: ignore[arg-type]


def test_thread_safe_counting(clock: FakeClock) -> None:
    breaker = CircuitBreaker("x", failure_threshold=1000, clock=clock)

    def worker() -> None:
        for _ in range(200):
            breaker.acquire().failed(SERVER_ERROR)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().consecutive_failures == 800


def test_registry_one_breaker_per_provider(clock: FakeClock) -> None:
    registry = CircuitBreakerRegistry(failure_threshold=2, clock=clock)
    assert registry.get("openai") is registry.get("openai")
    assert registry.get("openai") is not registry.get("anthropic")
    fail(registry.get("openai"), 2)
    assert registry.snapshot()["openai"].state is CircuitState.OPEN
    assert registry.snapshot()["anthropic"].state is CircuitState.CLOSED
    tuned = registry.configure("openai", failure_threshold=10)
    assert registry.get("openai") is tuned and tuned.failure_threshold == 10
    assert breaker_for("openai") is default_breakers().get("openai")
