"""The chat model ``get_llm`` hands back: the provider's LangChain model with ModelForge's guarantees.

``ManagedChatModel`` forwards every call to the provider's own LangChain model and raises
``modelforge.exceptions`` types instead of SDK errors, with ``provider``, ``status_code``, ``retry_after``
and ``retryable`` filled in, so callers can tell a 429 from a 401 whatever the provider. Settings of the
wrapped model read through (``llm.model_name``), and ``bind_tools`` / ``with_structured_output`` keep the
translation.

Streams are held to their end: a stream that stops without the provider's finish reason (cut before its
terminator), or breaks after text arrived (a dropped connection, a malformed chunk), raises
``StreamInterruptedError`` carrying the text received so far; a timeout carries it as ``partial_text``.

Failed calls are tried again by the provider's retry policy (``modelforge.policies.retry``; the SDKs'
own retries are off, so this is the one budget): invoke and batch per the ``retry`` section, a stream only
while nothing has reached the caller. Before each retry a ``modelforge.retry`` custom callback event
(provider, attempt, wait, reason, error type, status) reaches the run's callbacks, and an INFO log line is
written; when the attempts run out the last error is raised with ``details["attempts"]``. With a
``rate_limit`` section each attempt first takes its place in the provider's request and token budget
(``modelforge.policies.admission``), shared by every model of the provider in the process (and across
processes through Redis), and settles it with the tokens the provider reported. A pooled model checks on
its first successful call that its SDK really sent through ModelForge's pooled transport, and says so once
if not (``modelforge.pooling.report_unpooled``).

Every call's outcome and attempts, every stream's chunks, tokens and timing, and every rate-limit wait are
counted in ``modelforge.metrics`` (``performance_metrics()``, ``modelforge stats``).

Pickling never carries credentials: a ``ManagedChatModel`` pickles as "provider, alias and sampling
settings" and is rebuilt on the other side through ``ModelForgeRegistry`` from that side's config and
credential store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.callbacks.manager import ahandle_event, handle_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import PrivateAttr

from modelforge import _send_marks, metrics
from modelforge._chunks import chunk_text, finish_reason_of
from modelforge._token_estimate import tokens_for_chars
from modelforge.delegating import CallAttempts, DelegatingChatModel, in_batch, innermost, replace_innermost
from modelforge.exceptions import (
    MalformedResponseError,
    ModelForgeError,
    NetworkConnectionError,
    NetworkTimeoutError,
    StreamInterruptedError,
)
from modelforge.policies.retry import ProviderRetryConfig, ProviderRetryPolicy
from modelforge.providers import get_family

__all__ = ["RETRY_EVENT", "ManagedChatModel", "RetryWrapper", "managed_of"]

logger = logging.getLogger(__name__)

# The name of the custom callback event sent before every retry (see ``on_custom_event``).
RETRY_EVENT = "modelforge.retry"

# Settings of the provider's model that survive pickling (everything else comes from the config).
_SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "max_tokens", "num_predict", "max_output_tokens")


class _StreamWatch:
    """Follows one stream: the text so far, whether the provider said it finished, and (for
    ``modelforge.metrics``) its chunks, reported output tokens and when the first chunk came."""

    __slots__ = ("chunks", "finished", "first_at", "output_tokens", "parts", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.parts: list[str] = []
        self.finished = False
        self.chunks = 0
        self.first_at = 0.0
        self.output_tokens: int | None = None

    def see(self, chunk: ChatGenerationChunk) -> None:
        if not self.chunks:
            self.first_at = time.monotonic()
        self.chunks += 1
        usage = getattr(chunk.message, "usage_metadata", None)
        if usage:
            self.output_tokens = (self.output_tokens or 0) + int(usage.get("output_tokens") or 0)
        text = chunk_text(chunk.message)
        if text:
            self.parts.append(text)
        if not self.finished and (
            # Inside _stream, SDK wrappers put the finish reason in generation_info (OpenAI) or in the
            # message's response_metadata (Anthropic, Ollama, Gemini); LangChain merges them later.
            finish_reason_of(chunk.generation_info or {}) is not None
            or finish_reason_of(chunk.message.response_metadata or {}) is not None
        ):
            self.finished = True

    def failed(self, err: Exception) -> Exception:
        """The error to raise for ``err`` in mid-stream, carrying the text that arrived."""
        partial = "".join(self.parts)
        if isinstance(err, NetworkTimeoutError):
            err.partial_text = err.partial_text or partial
            return err
        if partial and isinstance(err, NetworkConnectionError | MalformedResponseError):
            return StreamInterruptedError(self.provider, partial, reason=err.message)
        return err

    def check_end(self) -> None:
        if not self.finished:
            raise StreamInterruptedError(
                self.provider, "".join(self.parts), reason="it ended without a finish reason"
            )

    def record(self, model: str, call: CallAttempts, ok: bool) -> None:
        """Count the stream's outcome, and its delivery when a chunk came."""
        metrics.record_call(self.provider, model, call.attempt, ok)
        if not self.chunks:
            return
        tokens = self.output_tokens
        if tokens is None:  # not reported: the one estimate (modelforge._token_estimate)
            chars = sum(len(part) for part in self.parts)
            tokens = tokens_for_chars(chars)  # a tool-call-only stream carries no text: 0
        metrics.record_stream(
            self.provider,
            model,
            chunks=self.chunks,
            output_tokens=tokens,
            ttft=self.first_at - call.started,
            seconds=time.monotonic() - self.first_at,
        )


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


_pending_notifications: set[asyncio.Future[Any]] = set()


# The provider family whose SDK errors a LangChain chat model class raises, by the package it comes from.
_FAMILY_OF_PACKAGE = {
    "langchain_openai": "openai_compatible",
    "langchain_anthropic": "anthropic",
    "langchain_ollama": "ollama",
    "langchain_google_genai": "google_genai",
}


class RetryWrapper(DelegatingChatModel):
    """Any LangChain chat model, retried by a ``ProviderRetryConfig`` (what ``get_llm`` does for its own).

    ``RetryWrapper(wrapped_llm=ChatOpenAI(...), config=ProviderRetryConfig(max_attempts=5))``: failures
    become ModelForge errors as ``get_llm``'s do (the SDK errors of ChatOpenAI, ChatAnthropic, ChatOllama
    and ChatGoogleGenerativeAI by their provider family; network errors of any model), and are retried when
    their ``retryable`` says so (give the wrapped model ``max_retries=0`` so attempts do not multiply), with
    the same backoff, Retry-After and deadline rules; a stream only before its first chunk. Errors of other
    models pass through unchanged and are not retried.
    """

    config: ProviderRetryConfig = ProviderRetryConfig()

    def _translate_error(self, err: Exception) -> Exception:
        if isinstance(err, ModelForgeError):
            return err
        leaf = innermost(self.wrapped_llm)
        package = type(leaf).__module__.split(".", 1)[0]
        family = get_family(_FAMILY_OF_PACKAGE.get(package, "openai_compatible"))
        model = getattr(leaf, "model_name", None) or getattr(leaf, "model", None)
        return family.translate_error(
            err, provider=leaf._llm_type, model=model if isinstance(model, str) else None
        )

    def _next_wait(self, err: Exception, call: CallAttempts, run_manager: Any) -> float | None:
        policy = self.config.policy()
        decision = policy.decide_at(err, call.attempt - 1, call.elapsed(), random.random())
        if not decision.retry:
            if call.attempt > 1 and isinstance(err, ModelForgeError):
                err.details.setdefault("attempts", call.attempt)
            return None
        return decision.wait


class ManagedChatModel(DelegatingChatModel):
    """A provider's chat model whose failures are ModelForge errors, retried by the provider's policy."""

    provider_name: str
    model_alias: str
    llm_type_name: str
    retry: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None
    # Built over ModelForge's pooled transport (the provider's connection_pool is on).
    pooled: bool = False
    _policies: dict[str, ProviderRetryPolicy] = PrivateAttr(default_factory=dict)
    _send_checked: bool = PrivateAttr(default=False)

    @property
    def model_id(self) -> str | None:
        """The model id the provider is asked for."""
        for field in ("model_name", "model"):
            value = getattr(self.wrapped_llm, field, None)
            if isinstance(value, str):
                return value
        return None

    def _model_key(self) -> str:
        """The model the metrics count this model's calls under."""
        return self.model_id or self.model_alias

    def _ended(self, call: CallAttempts, error: Exception | None) -> None:
        metrics.record_call(self.provider_name, self._model_key(), call.attempt, error is None)

    def _translate_error(self, err: Exception) -> Exception:
        family = get_family(self.llm_type_name, provider=self.provider_name)
        return family.translate_error(
            err, provider=self.provider_name, model=self.model_id or self.model_alias
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        watch = _StreamWatch(self.provider_name)
        call = CallAttempts("stream")
        failed = False
        try:
            for chunk in self._stream_attempts(call, messages, stop, run_manager, **kwargs):
                watch.see(chunk)
                yield chunk
            watch.check_end()
        except Exception as err:
            failed = True
            raised = watch.failed(err)
            if raised is err:
                raise
            raise raised from err
        finally:  # a stream the caller stopped early did not fail
            watch.record(self._model_key(), call, not failed)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        watch = _StreamWatch(self.provider_name)
        call = CallAttempts("stream")
        failed = False
        source = cast(
            AsyncGenerator[ChatGenerationChunk, None],
            self._astream_attempts(call, messages, stop, run_manager, **kwargs),
        )
        try:
            async with contextlib.aclosing(source):  # an early exit closes the inner stream too
                async for chunk in source:
                    watch.see(chunk)
                    yield chunk
            watch.check_end()
        except Exception as err:
            failed = True
            raised = watch.failed(err)
            if raised is err:
                raise
            raise raised from err
        finally:  # a stream the caller stopped early (or cancelled) did not fail
            watch.record(self._model_key(), call, not failed)

    def _admission_parts(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[Any, int, int]:
        from modelforge.policies.admission import DEFAULT_OUTPUT_TOKENS, estimate_tokens, limiter_for

        limiter = limiter_for(self.provider_name, self.rate_limit or {})
        leaf = innermost(self.wrapped_llm)
        output = kwargs.get("max_tokens") or next(
            (
                getattr(leaf, f)
                for f in ("max_tokens", "num_predict", "max_output_tokens")
                if getattr(leaf, f, None)
            ),
            DEFAULT_OUTPUT_TOKENS,
        )
        input_tokens, reserve = estimate_tokens(messages, int(output))
        return limiter, input_tokens, reserve

    def _send_probe(self) -> _send_marks.SendProbe | None:
        """Until a call has succeeded, a pooled model without a rate limit marks its attempts anyway, to
        notice an SDK that does not send through the pooled transport (see ``_release``)."""
        if not self.pooled or self._send_checked:
            return None
        return _send_marks.SendProbe()

    def _admit(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Any:
        if not self.rate_limit:
            return self._send_probe()
        from modelforge.policies.admission import Admission

        limiter, input_tokens, reserve = self._admission_parts(messages, kwargs)
        # Sets the attempt's send mark in this thread's context, where the SDK call runs.
        return Admission.start(
            limiter, limiter.acquire_sync(reserve), input_tokens, provider=self.provider_name
        )

    async def _aadmit(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Any:
        if not self.rate_limit:
            return self._send_probe()
        from modelforge.policies.admission import Admission

        limiter, input_tokens, reserve = self._admission_parts(messages, kwargs)
        # Sets the attempt's send mark in this task's context (in ``_astream``: the context of the task
        # iterating the stream, the same one in which the SDK's request is sent).
        return Admission.start(
            limiter, await limiter.acquire(reserve), input_tokens, provider=self.provider_name
        )

    def _release(
        self,
        ticket: Any,
        *,
        tokens: int | None = None,
        headers: dict[str, str] | None = None,
        error: Exception | None = None,
        completed: bool = True,
    ) -> None:
        if ticket is None:
            return
        ticket.release(tokens, error, headers=headers)
        # Only an attempt that was answered in full says anything: a stream stopped or cancelled early may
        # not have sent its request yet.
        if completed and error is None and self.pooled and not self._send_checked and ticket.mark is not None:
            self._send_checked = True
            if ticket.mark.sent is None:  # answered, but never sent through our transport
                from modelforge.pooling import report_unpooled

                report_unpooled(self.provider_name, innermost(self.wrapped_llm))

    def _policy(self, operation: str) -> ProviderRetryPolicy:
        if operation not in self._policies:
            self._policies[operation] = ProviderRetryConfig.from_config(self.retry, operation).policy()
        return self._policies[operation]

    def _next_wait(self, err: Exception, call: CallAttempts, run_manager: Any) -> float | None:
        if call.operation == "invoke" and in_batch():
            call.operation = "batch"
        if not call.recovered:
            family = get_family(self.llm_type_name, provider=self.provider_name)
            if family.recover(err, provider=self.provider_name):
                call.recovered = True  # repaired (e.g. a fresh Copilot token): try again at once, once
                _notify(run_manager, self.provider_name, call, err, 0.0, "re-authenticated")
                return 0.0
        decision = self._policy(call.operation).decide_at(
            err, call.attempt - 1, call.elapsed(), random.random()
        )
        if not decision.retry:
            if call.attempt > 1 and isinstance(err, ModelForgeError):
                err.details.setdefault("attempts", call.attempt)
            return None
        _notify(run_manager, self.provider_name, call, err, decision.wait, decision.reason)
        return decision.wait

    def __repr__(self) -> str:
        return f"ManagedChatModel(provider={self.provider_name!r}, model={self.model_alias!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        leaf = innermost(self.wrapped_llm)
        settings = {
            name: getattr(leaf, name)
            for name in _SAMPLING_FIELDS
            if name in type(leaf).model_fields and name in leaf.model_fields_set
        }
        return (_rebuild_managed, (self.provider_name, self.model_alias, settings))


def managed_of(llm: Any) -> ManagedChatModel | None:
    """The ``ManagedChatModel`` inside ``llm`` (below optimizers, caches, observers...); None when there is
    none (a fallback chain, or a model ModelForge did not build)."""
    current: Any = llm
    while isinstance(current, DelegatingChatModel):
        if isinstance(current, ManagedChatModel):
            return current
        current = current.wrapped_llm
    return None


def _rebuild_managed(provider_name: str, model_alias: str, settings: dict[str, Any]) -> BaseChatModel:
    from modelforge.registry import ModelForgeRegistry

    llm = ModelForgeRegistry().get_llm(provider_name, model_alias, enhanced=False)
    if settings:
        llm = replace_innermost(llm, innermost(llm).model_copy(update=settings))
    return llm
