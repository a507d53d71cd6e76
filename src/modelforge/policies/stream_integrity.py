"""The step that holds streams to their end and counts every provider call in metrics.

A stream that stops without the provider's finish reason (cut before its terminator), or breaks after text
arrived (a dropped connection, a malformed chunk, an error event such as Anthropic's ``overloaded_error``),
raises ``StreamInterruptedError`` carrying the text received so far (for an error event, with that
error's ``retryable`` and ``status_code``, and its code in ``details["provider_error"]``); a timeout
carries it as ``partial_text``. A stream the caller stopped early did not fail.

Every call's outcome and attempts, and every stream's chunks, tokens and timing, are counted in
``modelforge.telemetry.metrics`` (``performance_metrics()``, ``modelforge stats``). The step sits above
the retry step (``modelforge.pipeline``), so it counts a call once, with all its attempts, and below the
response cache, so a cache hit is counted as a hit and not as a provider call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from modelforge._chunks import chunk_text, finish_reason_of
from modelforge._pipeline import Call, Step
from modelforge._token_estimate import tokens_for_chars
from modelforge.exceptions import (
    MalformedResponseError,
    NetworkConnectionError,
    NetworkTimeoutError,
    ProviderError,
    StreamInterruptedError,
)
from modelforge.telemetry import metrics

__all__ = ["StreamIntegrityStep", "StreamWatch"]


class StreamWatch:
    """Follows one stream: the text so far, whether the provider said it finished, and (for
    ``modelforge.telemetry.metrics``) its chunks, reported output tokens and when the first chunk came."""

    __slots__ = ("chunks", "finished", "first_at", "output_tokens", "parts", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.parts: list[str] = []
        self.finished = False
        self.chunks = 0
        self.first_at = 0.0
        self.output_tokens: int | None = None

    def see(self, chunk: ChatGenerationChunk) -> None:
        self.see_message(chunk.message, chunk.generation_info)

    def see_message(self, message: BaseMessage, generation_info: Mapping[str, Any] | None = None) -> None:
        """Follow one chunk: a message chunk (from a public ``astream``, where LangChain has merged the
        generation info into ``response_metadata``) and, inside ``_stream``, its generation info."""
        if not self.chunks:
            self.first_at = time.monotonic()
        self.chunks += 1
        usage = getattr(message, "usage_metadata", None)
        if usage:
            self.output_tokens = (self.output_tokens or 0) + int(usage.get("output_tokens") or 0)
        text = chunk_text(message)
        if text:
            self.parts.append(text)
        if not self.finished and (
            # Inside _stream, SDK wrappers put the finish reason in generation_info (OpenAI) or in the
            # message's response_metadata (Anthropic, Ollama, Gemini); LangChain merges them later.
            (generation_info and finish_reason_of(generation_info) is not None)
            or (message.response_metadata and finish_reason_of(message.response_metadata) is not None)
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
        if partial and isinstance(err, ProviderError):  # an error event after text (e.g. overloaded_error)
            return StreamInterruptedError(
                self.provider,
                partial,
                reason=f"the provider sent an error: {err.message}",
                status_code=err.status_code,
                retryable=err.retryable,
                retry_after=err.retry_after,
                request_id=err.request_id,
                details={"provider_error": err.error_code},
            )
        return err

    def check_end(self) -> None:
        if not self.finished:
            raise StreamInterruptedError(
                self.provider, "".join(self.parts), reason="it ended without a finish reason"
            )

    def record(self, model: str, call: Call, ok: bool) -> None:
        """Count the stream's outcome, and its delivery when a chunk came."""
        metrics.record_call(self.provider, model, call.attempts.attempt, ok)
        if not self.chunks:
            return
        tokens = self.output_tokens
        if tokens is None:  # not reported: the one estimate (modelforge._token_estimate)
            tokens = tokens_for_chars(sum(len(part) for part in self.parts))
        metrics.record_stream(
            self.provider,
            model,
            chunks=self.chunks,
            output_tokens=tokens,
            ttft=self.first_at - call.attempts.started,
            seconds=time.monotonic() - self.first_at,
        )


class StreamIntegrityStep(Step):
    """Streams end with the provider's finish reason or raise; every call is counted (module docstring)."""

    name = "stream integrity, metrics"

    def __init__(
        self, provider: str, alias: str, *, record_metrics: bool = True, require_finish: bool = True
    ) -> None:
        self.provider = provider
        self.alias = alias
        self.record_metrics = record_metrics  # False: checks only (a model ModelForge did not build)
        # False: a model that never reports a finish reason (not one of the four SDK families) ends freely.
        self.require_finish = require_finish

    def __repr__(self) -> str:
        return f"StreamIntegrityStep(provider={self.provider!r})"

    def _model_key(self, call: Call) -> str:
        """The model the metrics count this call under: the id sent, else the alias."""
        for name in ("model_name", "model"):
            value = getattr(call.model, name, None)
            if isinstance(value, str):
                return value
        return self.alias

    def generate(self, call: Call, send: Callable[[Call], ChatResult]) -> ChatResult:
        try:
            result = send(call)
        except Exception:
            self._count(call, False)
            raise
        self._count(call, True)
        return result

    async def agenerate(self, call: Call, send: Callable[[Call], Awaitable[ChatResult]]) -> ChatResult:
        try:
            result = await send(call)
        except Exception:
            self._count(call, False)
            raise
        self._count(call, True)
        return result

    def _count(self, call: Call, ok: bool) -> None:
        if self.record_metrics:
            metrics.record_call(self.provider, self._model_key(call), call.attempts.attempt, ok)

    def stream(
        self, call: Call, send: Callable[[Call], Iterator[ChatGenerationChunk]]
    ) -> Iterator[ChatGenerationChunk]:
        watch = StreamWatch(self.provider)
        failed = False
        source = cast(Generator[ChatGenerationChunk, None, None], send(call))
        try:
            with contextlib.closing(source):  # an early exit closes the inner stream too
                for chunk in source:
                    watch.see(chunk)
                    yield chunk
            if self.require_finish:
                watch.check_end()
        except Exception as err:
            failed = True
            raised = watch.failed(err)
            if raised is err:
                raise
            raise raised from err
        finally:  # a stream the caller stopped early did not fail
            if self.record_metrics:
                watch.record(self._model_key(call), call, not failed)

    async def astream(
        self, call: Call, send: Callable[[Call], AsyncIterator[ChatGenerationChunk]]
    ) -> AsyncIterator[ChatGenerationChunk]:
        watch = StreamWatch(self.provider)
        failed = False
        source = cast(AsyncGenerator[ChatGenerationChunk, None], send(call))
        try:
            async with contextlib.aclosing(source):  # an early exit closes the inner stream too
                async for chunk in source:
                    watch.see(chunk)
                    yield chunk
            if self.require_finish:
                watch.check_end()
        except Exception as err:
            failed = True
            raised = watch.failed(err)
            if raised is err:
                raise
            raise raised from err
        finally:  # a stream the caller stopped early (or cancelled) did not fail
            if self.record_metrics:
                watch.record(self._model_key(call), call, not failed)
