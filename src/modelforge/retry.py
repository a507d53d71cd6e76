"""Retrying a failed call with exponential backoff (the 2.3.0 ``retry_on_error`` / ``retry_with_backoff``).

The decisions live in one small pure object, :class:`RetryPolicy`: given the error and how many retries
were already made, ``decide`` says whether to retry and how long to wait. It never sleeps. The sync and
async loops below only act on its answer; both take an injectable ``sleep`` and ``random`` so tests never
wait. The async loop sleeps with ``asyncio.sleep`` and never blocks the event loop.

What 2.3.0 got wrong, and what is done here instead:

* **Jitter.** The wait before retry ``n`` (0-based) is drawn uniformly from
  ``[0, min(max_wait, initial_wait * backoff_factor ** n)]`` ("full jitter"), so clients that failed
  together do not retry together. With the defaults the caps are 1 s, 2 s, 4 s.
* **Retry-After.** An error carrying a ``retry_after`` (seconds; the attribute, or ``details["retry_after"]``)
  is waited for exactly, but never longer than ``max_wait``. Values that are not a finite number >= 0
  (``nan``, ``inf``, negative) are ignored and the jittered backoff is used instead.
* **What is retried.** An error is retried when it is an instance of one of ``errors`` -- unless it says
  otherwise: an error whose ``retryable`` is ``False`` while its class is retryable by default (e.g. a
  ``RateLimitError`` the provider layer marked final because the quota is exhausted) is raised at once.
  An error of a listed class whose class default is not retryable (you listed ``ProviderError``, say) is
  retried: listing it is taken as asking for that. Anything not listed propagates immediately.
* **Async.** ``retry_on_error`` decorates ``async def`` functions too, and ``retry_with_backoff`` given a
  coroutine function returns a coroutine (2.3.0 silently returned an un-retried coroutine).

When retries run out, the last error is re-raised unchanged (same type, so ``except RateLimitError`` keeps
working), with a note saying how many attempts were made. Each retry is logged at INFO on this module's
logger; error texts pass through ``mask_secrets`` first.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, ParamSpec, TypeVar, cast

from modelforge._secrets import mask_secrets
from modelforge.exceptions import NetworkTimeoutError, RateLimitError

__all__ = [
    "DEFAULT_RETRY_ERRORS",
    "RetryDecision",
    "RetryPolicy",
    "aretry_with_backoff",
    "retry_on_error",
    "retry_with_backoff",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ErrorTypes = tuple[type[Exception], ...] | type[Exception]
SleepFn = Callable[[float], Any]

DEFAULT_RETRY_ERRORS: tuple[type[Exception], ...] = (NetworkTimeoutError, RateLimitError)


class RetryDecision(NamedTuple):
    """What to do after a failure: ``retry`` or not, ``wait`` seconds first, and ``reason`` (for logs)."""

    retry: bool
    wait: float
    reason: str


def _retry_after(error: BaseException) -> float | None:
    """The error's own Retry-After in seconds, or None when absent or not a usable number."""
    value = getattr(error, "retry_after", None)
    if value is None:
        details = getattr(error, "details", None)
        value = details.get("retry_after") if isinstance(details, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Pure retry decisions: which errors, how many retries, how long to wait. Never sleeps."""

    max_retries: int = 3
    backoff_factor: float = 2.0
    errors: ErrorTypes = DEFAULT_RETRY_ERRORS
    max_wait: float = 60.0
    initial_wait: float = 1.0

    def __post_init__(self) -> None:
        # ValueError (not InvalidInputError) as in 2.3.0, so existing `except ValueError` keeps working.
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")
        for name in ("backoff_factor", "max_wait", "initial_wait"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        errors = (self.errors,) if isinstance(self.errors, type) else tuple(self.errors)
        if not all(isinstance(e, type) and issubclass(e, Exception) for e in errors):
            raise ValueError("errors must be Exception subclasses (cancellation and exits are never retried)")
        object.__setattr__(self, "errors", errors)

    def is_retryable(self, error: BaseException) -> bool:
        """Listed class, and not explicitly marked final (``retryable=False`` against its class default)."""
        if not isinstance(error, self.errors):
            return False
        marked_final = getattr(error, "retryable", None) is False
        class_default = getattr(type(error), "default_retryable", True)
        return not (marked_final and class_default)

    def backoff_cap(self, retries_done: int) -> float:
        """The upper bound of the jittered wait before retry number ``retries_done`` (0-based)."""
        try:
            cap = self.initial_wait * self.backoff_factor**retries_done
        except OverflowError:
            return self.max_wait
        return min(self.max_wait, cap)

    def decide(self, error: BaseException, retries_done: int, rand: float) -> RetryDecision:
        """Retry or not after ``error``, given ``retries_done`` retries so far and ``rand`` in [0, 1)."""
        if not self.is_retryable(error):
            return RetryDecision(False, 0.0, "not retryable")
        if retries_done >= self.max_retries:
            return RetryDecision(False, 0.0, f"gave up after {retries_done + 1} attempts")
        retry_after = _retry_after(error)
        if retry_after is not None:
            wait = min(retry_after, self.max_wait)
            capped = " (capped)" if retry_after > self.max_wait else ""
            return RetryDecision(True, wait, f"server asked to wait {retry_after:g}s{capped}")
        jitter = min(max(rand, 0.0), 1.0)
        return RetryDecision(True, jitter * self.backoff_cap(retries_done), "exponential backoff with jitter")


def _describe(error: BaseException) -> str:
    code = getattr(error, "error_code", None)
    text = mask_secrets(str(error))[:200]
    return f"{type(error).__name__}{f' [{code}]' if code else ''}: {text}"


def _log_retry(
    name: str, policy: RetryPolicy, error: BaseException, retries: int, decision: RetryDecision
) -> None:
    logger.info(
        "Retrying %s in %.2fs (retry %d of %d, %s) after %s",
        name,
        decision.wait,
        retries + 1,
        policy.max_retries,
        decision.reason,
        _describe(error),
    )


def _give_up(name: str, error: BaseException, decision: RetryDecision, attempts: int) -> None:
    if attempts > 1:
        logger.debug("Not retrying %s: %s", name, decision.reason)
        error.add_note(f"modelforge.retry: {name} failed {attempts} times; {decision.reason}")


def _call_sync(
    policy: RetryPolicy,
    func: Callable[..., R],
    args: Any,
    kwargs: Any,
    sleep: SleepFn,
    rand: Callable[[], float],
) -> R:
    name = getattr(func, "__qualname__", repr(func))
    retries = 0
    while True:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            decision = policy.decide(error, retries, rand())
            if not decision.retry:
                _give_up(name, error, decision, retries + 1)
                raise
            _log_retry(name, policy, error, retries, decision)
        sleep(decision.wait)
        retries += 1


async def _call_async(
    policy: RetryPolicy,
    func: Callable[..., Awaitable[R]],
    args: Any,
    kwargs: Any,
    sleep: SleepFn,
    rand: Callable[[], float],
) -> R:
    name = getattr(func, "__qualname__", repr(func))
    retries = 0
    while True:
        try:
            return await func(*args, **kwargs)
        except Exception as error:
            decision = policy.decide(error, retries, rand())
            if not decision.retry:
                _give_up(name, error, decision, retries + 1)
                raise
            _log_retry(name, policy, error, retries, decision)
        pause = sleep(decision.wait)
        if inspect.isawaitable(pause):
            await pause
        retries += 1


def retry_on_error(
    max_retries: int = 3,
    backoff_factor: float = 2.0,
    errors: ErrorTypes = DEFAULT_RETRY_ERRORS,
    max_wait: float = 60.0,
    *,
    initial_wait: float = 1.0,
    sleep: SleepFn | None = None,
    random: Callable[[], float] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync or ``async def`` function so listed errors are retried with jittered backoff.

    ``sleep`` replaces ``time.sleep`` (sync) or ``asyncio.sleep`` (async; it may return an awaitable or
    not) and ``random`` replaces ``random.random``; both exist for tests. See the module docstring for
    what is retried and how long each wait is.
    """
    policy = RetryPolicy(max_retries, backoff_factor, errors, max_wait, initial_wait)
    rand = random or _random.random

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await _call_async(policy, async_func, args, kwargs, sleep or asyncio.sleep, rand)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return _call_sync(policy, func, args, kwargs, sleep or time.sleep, rand)

        return wrapper

    return decorate


def retry_with_backoff(
    func: Callable[..., R],
    *args: Any,
    max_retries: int = 3,
    backoff_factor: float = 2.0,
    errors: ErrorTypes = DEFAULT_RETRY_ERRORS,
    max_wait: float = 60.0,
    **kwargs: Any,
) -> R:
    """Call ``func(*args, **kwargs)``, retrying listed errors with jittered exponential backoff.

    Given a coroutine function, returns a coroutine that retries (await it), like ``aretry_with_backoff``.
    """
    if inspect.iscoroutinefunction(func):
        coro = aretry_with_backoff(
            func,
            *args,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            errors=errors,
            max_wait=max_wait,
            **kwargs,
        )
        return cast(R, coro)
    policy = RetryPolicy(max_retries, backoff_factor, errors, max_wait)
    return _call_sync(policy, func, args, kwargs, time.sleep, _random.random)


async def aretry_with_backoff(
    func: Callable[..., Awaitable[R]],
    *args: Any,
    max_retries: int = 3,
    backoff_factor: float = 2.0,
    errors: ErrorTypes = DEFAULT_RETRY_ERRORS,
    max_wait: float = 60.0,
    **kwargs: Any,
) -> R:
    """Await ``func(*args, **kwargs)``, retrying listed errors; waits with ``asyncio.sleep``."""
    policy = RetryPolicy(max_retries, backoff_factor, errors, max_wait)
    return await _call_async(policy, func, args, kwargs, asyncio.sleep, _random.random)
