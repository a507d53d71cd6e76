"""``modelforge.retry``: jittered backoff, capped Retry-After, what is (not) retried, sync and async.

Sleeping is injected everywhere except the one test that proves the async loop is not blocked (it waits
about 0.1 s for real).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from modelforge import retry as retry_module
from modelforge.exceptions import (
    AuthenticationError,
    ModelForgeError,
    NetworkConnectionError,
    NetworkTimeoutError,
    ProviderError,
    RateLimitError,
)
from modelforge.retry import RetryPolicy, aretry_with_backoff, retry_on_error, retry_with_backoff


class Script:
    """A callable that raises the scripted errors in turn, then returns ``result``."""

    def __init__(self, *errors: BaseException, result: str = "ok") -> None:
        self.errors = list(errors)
        self.calls: list[tuple[Any, ...]] = []
        self.result = result

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def timeout_error() -> NetworkTimeoutError:
    return NetworkTimeoutError("POST /chat/completions", 30.0, "https://api.example.com")


# --- the pure policy -------------------------------------------------------------------------------------


def test_backoff_caps_double_up_to_max_wait() -> None:
    policy = RetryPolicy(max_retries=10, backoff_factor=2.0, max_wait=10.0)
    assert [policy.backoff_cap(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.backoff_cap(5000) == 10.0  # no OverflowError


def test_full_jitter_stays_within_zero_and_the_cap() -> None:
    policy = RetryPolicy(max_retries=8, max_wait=30.0)
    rng = random.Random(1234)
    for retries in range(8):
        cap = policy.backoff_cap(retries)
        waits = [policy.decide(timeout_error(), retries, rng.random()).wait for _ in range(200)]
        assert all(0.0 <= w <= cap for w in waits)
        assert max(waits) - min(waits) > cap * 0.5  # really spread out, not a fixed delay
    assert policy.decide(timeout_error(), 2, 0.0).wait == 0.0
    assert policy.decide(timeout_error(), 2, 0.5).wait == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("retry_after", "max_wait", "expected"),
    [(7, 60.0, 7.0), (0, 60.0, 0.0), (2.5, 60.0, 2.5), (120, 60.0, 60.0), (3600, 5.0, 5.0)],
)
def test_retry_after_is_honoured_and_capped(retry_after: float, max_wait: float, expected: float) -> None:
    policy = RetryPolicy(max_wait=max_wait)
    decision = policy.decide(RateLimitError("openai", retry_after=retry_after), 0, 0.99)
    assert decision.retry
    assert decision.wait == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "5", True])
def test_unusable_retry_after_falls_back_to_backoff(bad: Any) -> None:
    error = RateLimitError("openai")
    error.retry_after = bad
    error.details["retry_after"] = bad
    assert RetryPolicy().decide(error, 1, 0.5).wait == pytest.approx(1.0)  # 0.5 * cap 2.0


def test_retry_after_in_details_only_is_used() -> None:
    error = NetworkTimeoutError("GET /", details={"retry_after": 4})
    assert RetryPolicy().decide(error, 0, 0.1).wait == 4.0


def test_which_errors_are_retried() -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(timeout_error())
    assert policy.is_retryable(RateLimitError("openai"))
    assert not policy.is_retryable(NetworkConnectionError("GET /"))  # a NetworkError, but not listed
    assert not policy.is_retryable(ValueError("boom"))
    # the raiser marked this 429 final (quota exhausted): not retried although its class is listed
    assert not policy.is_retryable(RateLimitError("openai", retryable=False))
    # a listed class whose default is not retryable is retried: listing it asks for that
    assert RetryPolicy(errors=(ProviderError,)).is_retryable(ProviderError("502 from upstream"))
    assert RetryPolicy(errors=ProviderError).errors == (ProviderError,)


def test_policy_gives_up_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.decide(timeout_error(), 1, 0.5).retry
    decision = policy.decide(timeout_error(), 2, 0.5)
    assert not decision.retry
    assert "3 attempts" in decision.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"backoff_factor": 0},
        {"max_wait": float("nan")},
        {"max_wait": -1},
        {"errors": ("not a class",)},
        {"errors": (KeyboardInterrupt,)},
    ],
)
def test_bad_settings_raise_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
    with pytest.raises(ValueError):
        retry_on_error(**kwargs)


# --- the sync loop ---------------------------------------------------------------------------------------


def test_sync_decorator_retries_then_succeeds() -> None:
    sleeps: list[float] = []
    script = Script(timeout_error(), RateLimitError("openai", retry_after=3))

    @retry_on_error(max_retries=3, sleep=sleeps.append, random=lambda: 0.5)
    def call(x: int, *, y: int) -> str:
        return script(x, y=y)

    assert call(1, y=2) == "ok"
    assert len(script.calls) == 3
    assert script.calls[0] == ((1,), {"y": 2})
    assert sleeps == [0.5, 3.0]  # jittered backoff (0.5 * 1 s), then the server's Retry-After
    assert call.__name__ == "call"


def test_sync_decorator_gives_up_and_reraises_the_last_error() -> None:
    sleeps: list[float] = []
    last = RateLimitError("openai")
    script = Script(timeout_error(), timeout_error(), last)
    decorated = retry_on_error(max_retries=2, sleep=sleeps.append, random=lambda: 0.0)(script)
    with pytest.raises(RateLimitError) as info:
        decorated()
    assert info.value is last
    assert len(script.calls) == 3
    assert len(sleeps) == 2
    assert any("failed 3 times" in note for note in info.value.__notes__)


@pytest.mark.parametrize(
    "error",
    [ValueError("not listed"), AuthenticationError("bad key"), RateLimitError("openai", retryable=False)],
)
def test_not_retryable_errors_propagate_at_once(error: Exception) -> None:
    sleeps: list[float] = []
    script = Script(error)
    with pytest.raises(type(error)):
        retry_on_error(sleep=sleeps.append)(script)()
    assert len(script.calls) == 1
    assert sleeps == []


def test_zero_retries_means_one_attempt() -> None:
    script = Script(timeout_error())
    with pytest.raises(NetworkTimeoutError):
        retry_on_error(max_retries=0, sleep=lambda s: None)(script)()
    assert len(script.calls) == 1


def test_retry_with_backoff_passes_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    monkeypatch.setattr(retry_module._random, "random", lambda: 1.0)
    script = Script(timeout_error(), timeout_error())
    assert retry_with_backoff(script, "a", 2, max_retries=5, max_wait=1.5, key="v") == "ok"
    assert script.calls == [(("a", 2), {"key": "v"})] * 3
    assert sleeps == [1.0, 1.5]  # caps 1 s then 2 s, the second capped by max_wait


def test_retries_are_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-proj-" + "S3cr3tS3cr3tS3cr3tS3cr3t" * 2
    script = Script(NetworkTimeoutError("GET /v1/models", 5.0, f"https://api.example.com/?key={secret}"))
    with caplog.at_level(logging.INFO, logger="modelforge.retry"):
        retry_on_error(sleep=lambda s: None, random=lambda: 0.25)(script)()
    messages = [r.getMessage() for r in caplog.records if r.name == "modelforge.retry"]
    assert len(messages) == 1
    assert "Retrying" in messages[0] and "NETWORK_TIMEOUT" in messages[0] and "0.25s" in messages[0]
    assert secret not in caplog.text


# --- the async loop --------------------------------------------------------------------------------------


class AsyncScript(Script):
    async def run(self, *args: Any, **kwargs: Any) -> str:
        await asyncio.sleep(0)
        return self(*args, **kwargs)


async def test_async_decorator_retries_with_an_injected_sleep() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    script = AsyncScript(timeout_error(), RateLimitError("openai", retry_after=90))

    @retry_on_error(max_retries=3, max_wait=30.0, sleep=fake_sleep, random=lambda: 0.5)
    async def call(x: int) -> str:
        return await script.run(x)

    assert asyncio.iscoroutinefunction(call)
    assert await call(7) == "ok"
    assert sleeps == [0.5, 30.0]  # Retry-After 90 s capped at max_wait
    assert [c[0] for c in script.calls] == [(7,)] * 3


async def test_async_not_retryable_and_exhaustion() -> None:
    script = AsyncScript(RateLimitError("openai", retryable=False))
    with pytest.raises(RateLimitError):
        await retry_on_error(sleep=lambda s: None)(script.run)()
    assert len(script.calls) == 1

    script = AsyncScript(*(timeout_error() for _ in range(5)))
    with pytest.raises(NetworkTimeoutError):
        await retry_on_error(max_retries=2, sleep=lambda s: None)(script.run)()
    assert len(script.calls) == 3


async def test_async_retry_does_not_block_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(seconds: float) -> None:
        raise AssertionError("time.sleep called inside async code")

    monkeypatch.setattr(time, "sleep", forbidden)
    script = AsyncScript(
        RateLimitError("openai", retry_after=0.05), RateLimitError("openai", retry_after=0.05)
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        assert await retry_on_error(max_wait=1.0)(script.run)() == "ok"  # default sleep: asyncio.sleep
    finally:
        ticking.cancel()
    assert time.monotonic() - started >= 0.09
    assert ticks >= 5  # the loop kept running other tasks while the retry waited


async def test_retry_with_backoff_given_a_coroutine_function_returns_a_retrying_coroutine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry_module._random, "random", lambda: 0.0)  # waits of 0 s
    script = AsyncScript(timeout_error())
    result = retry_with_backoff(script.run, 1, max_retries=2)
    assert asyncio.iscoroutine(result)
    assert await result == "ok"
    assert len(script.calls) == 2

    script = AsyncScript(timeout_error(), timeout_error())
    assert await aretry_with_backoff(script.run, max_retries=2, x=1) == "ok"
    assert script.calls[-1] == ((), {"x": 1})


async def test_cancellation_is_never_retried() -> None:
    started = asyncio.Event()

    @retry_on_error(errors=(Exception,), sleep=lambda s: None)
    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_any_modelforge_error_can_be_listed() -> None:
    script = Script(ModelForgeError("flaky"), ModelForgeError("flaky"))
    decorated: Callable[[], str] = retry_on_error(errors=(ModelForgeError,), sleep=lambda s: None)(script)
    assert decorated() == "ok"
