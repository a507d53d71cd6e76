"""Retry, in one place: the decisions, a provider's ``retry`` section, the pipeline step, the decorators.

**Decisions.** ``RetryPolicy`` is a small pure object: given the error and how many retries were already
made, ``decide`` says whether to retry and how long to wait. It never sleeps.

* **Jitter.** The wait before retry ``n`` (0-based) is drawn uniformly from
  ``[0, min(max_wait, initial_wait * backoff_factor ** n)]`` ("full jitter"), so clients that failed
  together do not retry together.
* **Retry-After.** An error carrying a ``retry_after`` (seconds; the attribute, or ``details["retry_after"]``)
  is waited for exactly, but never longer than ``max_wait``. Values that are not a finite number >= 0
  (``nan``, ``inf``, negative) are ignored and the jittered backoff is used instead.
* **What is retried.** An error is retried when it is an instance of one of ``errors``, unless it says
  otherwise (``retryable`` False, e.g. a ``RateLimitError`` for an exhausted quota).

**A provider's section.** ::

    providers:
      openai:
        retry: {max_attempts: 5, backoff_factor: 2.0, max_wait: 60, respect_retry_after: true,
                stream: {max_attempts: 2}}

``ProviderRetryConfig`` holds the settings for one operation (``invoke``, ``batch``, which LangChain runs as
invokes, or ``stream``; an operation's sub-section overrides the provider's values). The SDKs' own
retries are off (``max_retries=0``), so these are the only retries. ``ProviderRetryPolicy`` retries a
translated ModelForge error when its ``retryable`` says so (429 unless the quota is exhausted, 5xx,
Anthropic 529, timeouts, connection resets, malformed answers; never 400, 401, 403, 404 or context-length
errors); ``deadline`` bounds all attempts together.

**The pipeline step.** ``RetryStep`` is the innermost policy of a ``get_llm`` model (``modelforge.pipeline``):
each attempt first takes its place in the provider's request and token budget when a ``rate_limit`` is
configured (``modelforge.policies.admission``) and settles it with the tokens reported; an SDK error
becomes a ModelForge error once, here (``ProviderFamily.translate_error``); a failed attempt is tried again
per the policy, a stream only while nothing has reached the caller: its opening chunks (metadata, the
prompt's usage, an empty reasoning item) are held back until the first that says something, so an error
event or an end without a finish reason before any text is retried, with nothing delivered twice. Before
each retry a ``modelforge.retry`` custom callback event (provider, attempt, wait, reason, error type,
status) reaches the run's callbacks and an INFO line is logged; when the attempts run out the last error is
raised with ``details["attempts"]``. ``RetryWrapper`` puts the same step around any LangChain chat model.

**Decorators** (2.3.0): ``retry_on_error`` / ``retry_with_backoff`` / ``aretry_with_backoff`` retry any
function; the async forms sleep with ``asyncio.sleep``. When retries run out the last error is re-raised
unchanged (same type), with a note saying how many attempts were made. Retries are logged at INFO on the
``modelforge.retry`` logger; error texts pass through ``mask_secrets`` first.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import random as _random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, ParamSpec, TypeVar, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.callbacks.manager import ahandle_event, handle_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from modelforge import _failed_answers, _send_marks
from modelforge._chunks import RETRY_EVENT, finish_reason_of
from modelforge._pipeline import Call, CallAttempts, Pipeline, Step, in_batch
from modelforge._secrets import mask_secrets
from modelforge.delegating import PipelineChatModel, innermost
from modelforge.exceptions import ModelForgeError, NetworkTimeoutError, RateLimitError, StreamInterruptedError
from modelforge.providers import ProviderFamily, get_family
from modelforge.sections.retry import OPERATIONS, ProviderRetryConfig

__all__ = [
    "DEFAULT_RETRY_ERRORS",
    "OPERATIONS",
    "RETRY_EVENT",
    "ProviderRetryConfig",
    "ProviderRetryPolicy",
    "RetryDecision",
    "RetryPolicy",
    "RetryStep",
    "RetryWrapper",
    "aretry_with_backoff",
    "retry_on_error",
    "retry_with_backoff",
]

logger = logging.getLogger("modelforge.retry")

P = ParamSpec("P")
R = TypeVar("R")

ErrorTypes = tuple[type[Exception], ...] | type[Exception]
SleepFn = Callable[[float], Any]

DEFAULT_RETRY_ERRORS: tuple[type[Exception], ...] = (NetworkTimeoutError, RateLimitError)


# --- decisions -------------------------------------------------------------------------------------------


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


# --- a provider's retry section -------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderRetryPolicy(RetryPolicy):
    """``RetryPolicy`` for translated provider errors: retry what the error calls retryable."""

    respect_retry_after: bool = True
    deadline: float | None = None

    @classmethod
    def from_config(cls, config: ProviderRetryConfig) -> ProviderRetryPolicy:
        """The decisions of one operation's retry settings (``ProviderRetryConfig.from_config``)."""
        return cls(
            max_retries=config.max_attempts - 1,
            backoff_factor=config.backoff_factor,
            errors=(ModelForgeError,),
            max_wait=config.max_wait,
            initial_wait=config.initial_wait,
            respect_retry_after=config.respect_retry_after,
            deadline=config.deadline,
        )

    def is_retryable(self, error: BaseException) -> bool:
        return isinstance(error, ModelForgeError) and error.retryable

    def decide_at(
        self, error: BaseException, retries_done: int, elapsed: float, rand: float
    ) -> RetryDecision:
        """``decide`` with the deadline and the Retry-After preference applied; ``elapsed`` is the time
        spent on this call so far."""
        decision = self.decide(error, retries_done, rand)
        if decision.retry and not self.respect_retry_after and decision.reason.startswith("server asked"):
            decision = RetryDecision(
                True, rand * self.backoff_cap(retries_done), "backoff (Retry-After ignored)"
            )
        if decision.retry and self.deadline is not None and elapsed + decision.wait > self.deadline:
            return RetryDecision(False, 0.0, f"the retry deadline of {self.deadline:g}s would pass")
        return decision


# --- the pipeline step -------------------------------------------------------------------------------------

# The provider family whose SDK errors a LangChain chat model class raises, by the package it comes from
# (for ``RetryWrapper`` around a model ModelForge did not build).
_FAMILY_OF_PACKAGE = {
    "langchain_openai": "openai_compatible",
    "langchain_anthropic": "anthropic",
    "langchain_ollama": "ollama",
    "langchain_google_genai": "google_genai",
}


def sdk_family_name(model: BaseChatModel) -> str | None:
    """The provider family of a LangChain model whose class is (or derives from) one of the four SDK
    packages' (``ChatOpenAI``, ``ChatAnthropic``, ``ChatOllama``, ``ChatGoogleGenerativeAI``), else None."""
    for cls in type(model).__mro__:
        family = _FAMILY_OF_PACKAGE.get(cls.__module__.split(".", 1)[0])
        if family is not None:
            return family
    return None


def reports_finish(model: BaseChatModel) -> bool:
    """Whether ``model``'s finished streams always carry a finish reason (the four SDK families do; other
    models, LangChain's fakes and some community integrations, may never send one)."""
    return sdk_family_name(model) is not None


_pending_notifications: set[asyncio.Future[Any]] = set()


def _notify(
    run_manager: Any, provider: str, call: CallAttempts, err: Exception, wait: float, reason: str
) -> None:
    """Tell the log and the run's callbacks (a ``modelforge.retry`` custom event) about a retry."""
    data = {
        "provider": provider,
        "operation": call.operation,
        "attempt": call.attempt,
        "next_attempt": call.attempt + 1,
        "wait_seconds": round(wait, 3),
        "reason": reason,
        "error_type": type(err).__name__,
        "status_code": getattr(err, "status_code", None),
    }
    logger.info(
        "Retrying %s (%s) after %s: attempt %d, waiting %.2fs",
        provider,
        call.operation,
        reason,
        call.attempt + 1,
        wait,
    )
    handlers = getattr(run_manager, "handlers", None)
    if not handlers:
        return
    event = (RETRY_EVENT, data)
    details = {"run_id": run_manager.run_id, "tags": run_manager.tags, "metadata": run_manager.metadata}
    if isinstance(run_manager, AsyncCallbackManagerForLLMRun):
        # Delivered in the background, so it does not hold up the retry (the retry sleep lets it run).
        task = asyncio.ensure_future(
            ahandle_event(handlers, "on_custom_event", "ignore_custom_event", *event, **details)
        )
        _pending_notifications.add(task)
        task.add_done_callback(_pending_notifications.discard)
    else:
        handle_event(handlers, "on_custom_event", "ignore_custom_event", *event, **details)


class RetryStep(Step):
    """Rate limit, retry and error translation around each attempt (see the module docstring).

    ``provider`` / ``family`` None: read from the called model (``RetryWrapper`` around a foreign model:
    its ``_llm_type`` and the family of its SDK package). ``retry`` is the provider's section (with the
    family's defaults), or ``config`` one fixed ``ProviderRetryConfig`` for every operation; ``notify``
    False keeps retries out of the log and the callbacks (``RetryWrapper``).
    """

    name = "rate limit, retry, error translation"

    def __init__(
        self,
        *,
        provider: str | None = None,
        family: ProviderFamily | None = None,
        alias: str | None = None,
        retry: Mapping[str, Any] | None = None,
        config: ProviderRetryConfig | None = None,
        rate_limit: Mapping[str, Any] | None = None,
        pooled: bool = False,
        notify: bool = True,
        require_finish: bool = True,
    ) -> None:
        self.provider = provider
        self.family = family
        # False: a stream that ends with nothing and no finish reason is not a failure (a model that never
        # reports one); True: it is retried as one (nothing reached the caller).
        self.require_finish = require_finish
        self.alias = alias
        self.retry = dict(retry or {})
        self.config = config
        self.rate_limit = dict(rate_limit) if rate_limit else None
        self.pooled = pooled
        self.notify = notify
        self.send_checked = False
        self._policies: dict[str, ProviderRetryPolicy] = {}

    def __repr__(self) -> str:
        return f"RetryStep(provider={self.provider!r})"

    # --- translation -------------------------------------------------------------------------------------

    def _family_of(self, call: Call) -> ProviderFamily:
        if self.family is not None:
            return self.family
        return get_family(sdk_family_name(innermost(call.model)) or "openai_compatible")

    def _provider_of(self, call: Call) -> str:
        return self.provider or innermost(call.model)._llm_type

    def translate(self, err: Exception, call: Call) -> Exception:
        """The ModelForge error for ``err`` (the SDK's error kept as its cause)."""
        if isinstance(err, ModelForgeError):
            return err
        leaf = innermost(call.model)
        model = getattr(leaf, "model_name", None) or getattr(leaf, "model", None)
        translated = self._family_of(call).translate_error(
            err,
            provider=self._provider_of(call),
            model=model if isinstance(model, str) else self.alias,
        )
        if translated is not err and translated.__cause__ is None:
            translated.__cause__ = err
        return translated

    # --- admission (rate limits) and the pooled-transport check -----------------------------------------

    def _admission_parts(self, call: Call) -> tuple[Any, int, int]:
        from modelforge.policies.admission import DEFAULT_OUTPUT_TOKENS, estimate_tokens, limiter_for

        limiter = limiter_for(self._provider_of(call), self.rate_limit or {})
        output = call.kwargs.get("max_tokens") or next(
            (
                getattr(call.model, f)
                for f in ("max_tokens", "num_predict", "max_output_tokens")
                if getattr(call.model, f, None)
            ),
            DEFAULT_OUTPUT_TOKENS,
        )
        input_tokens, reserve = estimate_tokens(call.messages, int(output))
        return limiter, input_tokens, reserve

    def _send_probe(self) -> _send_marks.SendProbe | None:
        """Until a call has succeeded, a pooled model without a rate limit marks its attempts anyway, to
        notice an SDK that does not send through the pooled transport (see ``_release``)."""
        if not self.pooled or self.send_checked:
            return None
        return _send_marks.SendProbe()

    def _admit(self, call: Call) -> Any:
        _failed_answers.forget()  # an earlier request's error headers never reach this attempt's error
        if not self.rate_limit:
            return self._send_probe()
        from modelforge.policies.admission import Admission

        limiter, input_tokens, reserve = self._admission_parts(call)
        # Sets the attempt's send mark in this thread's context, where the SDK call runs.
        return Admission.start(
            limiter, limiter.acquire_sync(reserve), input_tokens, provider=self._provider_of(call)
        )

    async def _aadmit(self, call: Call) -> Any:
        _failed_answers.forget()
        if not self.rate_limit:
            return self._send_probe()
        from modelforge.policies.admission import Admission

        limiter, input_tokens, reserve = self._admission_parts(call)
        # Sets the attempt's send mark in this task's context (in a stream: the context of the task
        # iterating it, the same one in which the SDK's request is sent).
        return Admission.start(
            limiter, await limiter.acquire(reserve), input_tokens, provider=self._provider_of(call)
        )

    def _release(
        self,
        ticket: Any,
        call: Call,
        *,
        tokens: int | None = None,
        headers: dict[str, str] | None = None,
        error: Exception | None = None,
        completed: bool = True,
    ) -> None:
        """After an attempt: the tokens used as the provider reported them (None: not reported) and the
        response headers, or how it failed; ``completed`` False for a stream stopped before its end."""
        if ticket is None:
            return
        ticket.release(tokens, error, headers=headers)
        # Only an attempt that was answered in full says anything: a stream stopped or cancelled early may
        # not have sent its request yet.
        if completed and error is None and self.pooled and not self.send_checked and ticket.mark is not None:
            self.send_checked = True
            if ticket.mark.sent is None:  # answered, but never sent through our transport
                from modelforge.pooling import report_unpooled

                report_unpooled(self._provider_of(call), call.model)

    # --- decisions ---------------------------------------------------------------------------------------

    def _policy(self, operation: str) -> ProviderRetryPolicy:
        if operation not in self._policies:
            config = self.config or ProviderRetryConfig.from_config(self.retry, operation)
            self._policies[operation] = ProviderRetryPolicy.from_config(config)
        return self._policies[operation]

    def _next_wait(self, err: Exception, call: Call) -> float | None:
        """Seconds to wait before trying ``call`` again after ``err``, or None to raise it."""
        attempts = call.attempts
        if attempts.operation == "invoke" and in_batch():
            attempts.operation = "batch"
        if (
            not attempts.recovered
            and self.family is not None
            and self.provider is not None
            and self.family.recover(err, provider=self.provider)
        ):
            attempts.recovered = True  # repaired (e.g. a fresh Copilot token): try again at once, once
            if self.notify:
                _notify(call.run_manager, self.provider, attempts, err, 0.0, "re-authenticated")
            return 0.0
        decision = self._policy(attempts.operation).decide_at(
            err, attempts.attempt - 1, attempts.elapsed(), _random.random()
        )
        if not decision.retry:
            if attempts.attempt > 1 and isinstance(err, ModelForgeError):
                err.details.setdefault("attempts", attempts.attempt)
            return None
        if self.notify:
            _notify(call.run_manager, self._provider_of(call), attempts, err, decision.wait, decision.reason)
        return decision.wait

    # --- the four call shapes ----------------------------------------------------------------------------

    def generate(self, call: Call, send: Callable[[Call], ChatResult]) -> ChatResult:
        while True:
            ticket = self._admit(call)
            try:
                result = send(call)
            except Exception as err:
                translated = self.translate(err, call)
                self._release(ticket, call, error=translated)
                wait = self._next_wait(translated, call)
                if wait is None:
                    if translated is err:
                        raise
                    raise translated from err
            else:
                if ticket is not None:
                    self._release(ticket, call, tokens=_tokens_of(result), headers=_headers_of(result))
                return result
            call.attempts.next(wait)
            time.sleep(wait)

    async def agenerate(self, call: Call, send: Callable[[Call], Awaitable[ChatResult]]) -> ChatResult:
        while True:
            # Without a rate limit (or a pooled-transport probe) there is nothing to wait for: no coroutine.
            if self.rate_limit or self.pooled:
                ticket = await self._aadmit(call)
            else:
                _failed_answers.forget()
                ticket = None
            try:
                result = await send(call)
            except Exception as err:
                translated = self.translate(err, call)
                self._release(ticket, call, error=translated)
                wait = self._next_wait(translated, call)
                if wait is None:
                    if translated is err:
                        raise
                    raise translated from err
            else:
                if ticket is not None:
                    self._release(ticket, call, tokens=_tokens_of(result), headers=_headers_of(result))
                return result
            call.attempts.next(wait)
            await asyncio.sleep(wait)

    def stream(
        self, call: Call, send: Callable[[Call], Iterator[ChatGenerationChunk]]
    ) -> Iterator[ChatGenerationChunk]:
        while True:
            start = _HeldStart(self._provider_of(call), self.require_finish)
            ticket = self._admit(call)
            used: int | None = None
            headers: dict[str, str] | None = None
            released = False
            inner = send(call)
            try:
                for chunk in inner:
                    used = _add_tokens(used, chunk.message)
                    headers = headers or _message_headers(chunk.message)
                    if start.open:
                        yield chunk
                    else:
                        yield from start.take(chunk)
                yield from start.end()
                released = True
                self._release(ticket, call, tokens=used, headers=headers)
                return
            except Exception as err:
                translated = self.translate(err, call)
                released = True
                self._release(ticket, call, error=translated)
                wait = None if start.open else self._next_wait(translated, call)
                if wait is None:
                    if translated is err:
                        raise
                    raise translated from err
            finally:
                if not released:  # stopped early: settle (with the estimate), so the budget is not held
                    self._release(ticket, call, completed=False)
                # A consumer that stops early closes us; close the SDK stream so its connection is released.
                close = getattr(inner, "close", None)
                if close is not None:
                    close()
            call.attempts.next(wait)
            time.sleep(wait)

    async def astream(
        self, call: Call, send: Callable[[Call], AsyncIterator[ChatGenerationChunk]]
    ) -> AsyncIterator[ChatGenerationChunk]:
        while True:
            start = _HeldStart(self._provider_of(call), self.require_finish)
            ticket = await self._aadmit(call)
            used: int | None = None
            headers: dict[str, str] | None = None
            released = False
            inner = cast(AsyncGenerator[ChatGenerationChunk, None], send(call))
            try:
                async for chunk in inner:
                    used = _add_tokens(used, chunk.message)
                    headers = headers or _message_headers(chunk.message)
                    if start.open:
                        yield chunk
                    else:
                        for passed in start.take(chunk):
                            yield passed
                for passed in start.end():
                    yield passed
                released = True
                self._release(ticket, call, tokens=used, headers=headers)
                return
            except Exception as err:
                translated = self.translate(err, call)
                released = True
                self._release(ticket, call, error=translated)
                wait = None if start.open else self._next_wait(translated, call)
                if wait is None:
                    if translated is err:
                        raise
                    raise translated from err
            finally:
                if not released:  # stopped early (or cancelled): settle with the estimate, output unknown
                    self._release(ticket, call, completed=False)
                aclose = getattr(inner, "aclose", None)
                if aclose is not None:
                    await aclose()
            call.attempts.next(wait)
            await asyncio.sleep(wait)


class _HeldStart:
    """The start of one stream attempt: chunks that carry nothing for the caller yet (the provider's opening
    metadata, usage) are held back until the first chunk with content, so an attempt that fails before any
    content (an error event, a cut connection, an end without a finish reason) can be retried with nothing
    delivered twice (not even the prompt's usage). ``open`` once content has passed."""

    __slots__ = ("finished", "held", "open", "provider", "require_finish")

    def __init__(self, provider: str, require_finish: bool = True) -> None:
        self.provider = provider
        self.require_finish = require_finish
        self.held: list[ChatGenerationChunk] = []
        self.open = False
        self.finished = False

    def take(self, chunk: ChatGenerationChunk) -> list[ChatGenerationChunk]:
        """The chunks to pass on now that ``chunk`` arrived (none while the stream says nothing yet)."""
        message = chunk.message
        if not self.finished:
            self.finished = bool(
                (chunk.generation_info and finish_reason_of(chunk.generation_info) is not None)
                or (message.response_metadata and finish_reason_of(message.response_metadata) is not None)
            )
        if _says_something(message):
            self.open = True
            passed, self.held = [*self.held, chunk], []
            return passed
        self.held.append(chunk)
        return []

    def end(self) -> list[ChatGenerationChunk]:
        """The held chunks of a stream that ended; raises when it ended with nothing and no finish reason."""
        if self.open or self.finished or not self.require_finish:
            passed, self.held = self.held, []
            return passed
        raise StreamInterruptedError(
            self.provider, "", reason="it ended before any text, without a finish reason"
        )


# Where a chunk's blocks carry what a reader sees: text, reasoning, thinking, summaries, tool input.
_VISIBLE_KEYS = ("text", "thinking", "reasoning", "summary", "content", "arguments", "input", "partial_json")


def _visible(value: Any) -> bool:
    """Whether ``value`` (a chunk's content, a block, a list of blocks) holds any non-empty text."""
    if isinstance(value, str):
        return bool(value)
    if isinstance(value, list):
        return any(_visible(item) for item in value)
    if isinstance(value, dict):
        return any(_visible(value.get(key)) for key in _VISIBLE_KEYS)
    return False


def _says_something(message: BaseMessage) -> bool:
    """Whether a chunk carries something for its reader: text, a tool call, reasoning (in content blocks
    or, as ChatOllama and the Responses API's v0 output put it, in ``additional_kwargs``). Empty structural
    chunks (an empty reasoning item, a thinking block's start, the opening metadata) say nothing yet."""
    if getattr(message, "tool_call_chunks", None) or _visible(message.content):
        return True
    extra = message.additional_kwargs
    return bool(extra) and (_visible(extra.get("reasoning_content")) or _visible(extra.get("reasoning")))


def _add_tokens(total: int | None, message: BaseMessage) -> int | None:
    """``total`` plus the tokens a streamed chunk reports (providers split usage over chunks)."""
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return total
    return (total or 0) + int(usage.get("total_tokens") or 0)


def _message_headers(message: BaseMessage) -> dict[str, str] | None:
    """HTTP response headers an SDK put in the metadata (ChatOpenAI with ``include_response_headers``)."""
    headers = (getattr(message, "response_metadata", None) or {}).get("headers")
    return dict(headers) if isinstance(headers, dict) and headers else None


def _headers_of(result: ChatResult) -> dict[str, str] | None:
    for generation in result.generations:
        message = getattr(generation, "message", None)
        if message is not None and (headers := _message_headers(message)):
            return headers
    return None


def _tokens_of(result: ChatResult) -> int | None:
    """The total tokens a result's messages report, None when the provider reported none."""
    total: int | None = None
    for generation in result.generations:
        message = getattr(generation, "message", None)
        if message is not None:
            total = _add_tokens(total, message)
    return total


class RetryWrapper(PipelineChatModel):
    """Any LangChain chat model, retried by a ``ProviderRetryConfig`` (what ``get_llm`` does for its own).

    ``RetryWrapper(wrapped_llm=ChatOpenAI(...), config=ProviderRetryConfig(max_attempts=5))``: failures
    become ModelForge errors as ``get_llm``'s do (the SDK errors of ChatOpenAI, ChatAnthropic, ChatOllama
    and ChatGoogleGenerativeAI by their provider family; network errors of any model), and are retried when
    their ``retryable`` says so (give the wrapped model ``max_retries=0`` so attempts do not multiply), with
    the same backoff, Retry-After and deadline rules; a stream only before its first chunk. Errors of other
    models pass through unchanged and are not retried.
    """

    config: ProviderRetryConfig = ProviderRetryConfig()

    def current_pipeline(self) -> Pipeline:
        finishes = reports_finish(innermost(self.wrapped_llm))
        return Pipeline([RetryStep(config=self.config, notify=False, require_finish=finishes)])
