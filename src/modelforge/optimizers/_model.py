"""``OptimizedChatModel``: the chat model that runs a provider's optimizer before every call.

It sits outside the ``ManagedChatModel`` (so error translation, retries and rate limits see the optimized
request) and inside the response cache. Each call (``invoke``, ``stream`` and their async twins, batches,
tool-bound and structured-output runs) goes through ``optimizer.prepare`` (``aprepare`` for async calls,
so the HTTP calls of Gemini's context caching never block the event loop) and then to the wrapped model.

An optimizer that fails never fails the call: a ``prepare`` that raises is logged at WARNING with the
reason (no secrets) and the plain request is sent (markers removed). When the provider refuses an
optimized call (``BadRequestError``, 400/422: "Unrecognized request argument supplied: seed", a Gemini
cached content deleted or expired early...), the plain call is sent once more, before anything reached the
caller (a stream only before its first chunk), and a WARNING names the optimizations dropped. A 401, 404,
429 or 5xx is not retried this way (the plain call would fail alike; retries are the managed model's job).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from modelforge.delegating import DelegatingChatModel, innermost
from modelforge.exceptions import BadRequestError, ContextLengthExceededError
from modelforge.optimizers._base import PreparedCall, RequestOptimizer, error_chain, reason
from modelforge.optimizers._config import OptimizationConfig

__all__ = ["OptimizedChatModel", "refused_as_bad"]

logger = logging.getLogger("modelforge.optimizers")

_BAD_REQUEST_STATUSES = (400, 422)


def refused_as_bad(err: BaseException) -> bool:
    """Whether the provider refused the request itself (400/422, ``BadRequestError``), not the credential,
    the model, the rate or its own health, and not because the prompt is too long."""
    for cause in error_chain(err):
        if isinstance(cause, ContextLengthExceededError):
            return False
        if isinstance(cause, BadRequestError):
            return cause.status_code in (None, *_BAD_REQUEST_STATUSES)
    return any(getattr(cause, "status_code", None) in _BAD_REQUEST_STATUSES for cause in error_chain(err))


class OptimizedChatModel(DelegatingChatModel):
    """Forwards to ``wrapped_llm`` the calls ``optimizer`` prepared."""

    optimizer: RequestOptimizer

    def __repr__(self) -> str:
        return f"OptimizedChatModel({self.optimizer!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        optimizer = self.optimizer
        return (
            _rebuild,
            (
                self.wrapped_llm,
                optimizer.config,
                optimizer.provider_name,
                optimizer.model_name,
                optimizer.llm_type,
            ),
        )

    def cache_identity(self) -> dict[str, Any]:
        """The optimizer's effective settings as plain JSON data (``seed``, ``json_mode``, the minimum
        cacheable lengths, ``keep_alive``...), for the response cache to put in its key: a cached answer is
        only reused by a model whose optimizer shapes requests the same way. Never holds a secret."""
        return self.optimizer.cache_identity()

    # --- preparing -----------------------------------------------------------------------------------------

    def _prepare(
        self, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        try:
            call = self.optimizer.prepare(innermost(self.wrapped_llm), list(messages), dict(kwargs), stop)
        except Exception as err:
            self._prepare_failed(err)
            return self.optimizer.plain(messages, kwargs)
        self._log_applied(call)
        return call

    async def _aprepare(
        self, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        try:
            leaf = innermost(self.wrapped_llm)
            call = await self.optimizer.aprepare(leaf, list(messages), dict(kwargs), stop)
        except Exception as err:
            self._prepare_failed(err)
            return self.optimizer.plain(messages, kwargs)
        self._log_applied(call)
        return call

    def _prepare_failed(self, err: Exception) -> None:
        logger.warning(
            "The %s optimizer failed for %s/%s (%s); sending the request without optimizations",
            self.optimizer.family,
            self.optimizer.provider_name,
            self.optimizer.model_name,
            reason(err),
        )

    def _log_applied(self, call: PreparedCall) -> None:
        if call.applied:
            logger.debug(
                "Optimized %s/%s request: %s",
                self.optimizer.provider_name,
                self.optimizer.model_name,
                ", ".join(call.applied),
            )

    def _fallback(
        self, call: PreparedCall, err: Exception, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> PreparedCall | None:
        """The plain call to send after ``err``, when an optimization may have caused it: the optimizer
        says so (a Gemini cached content gone), or the provider refused an optimized request as bad (400 or
        422: an argument it does not take, such as ``seed``). Never for 401, 404, 429, 5xx or a prompt too
        long (the plain request would fail the same way)."""
        try:
            own = self.optimizer.retry_plain(call, err)
        except Exception:  # a broken check must not hide the original error
            own = False
        if not own and not (call.applied and refused_as_bad(err)):
            return None
        logger.warning(
            "%s/%s refused the optimized request (%s); sending it again without optimizations (dropped: %s)",
            self.optimizer.provider_name,
            self.optimizer.model_name,
            reason(err),
            ", ".join(call.applied) or "none",
        )
        return self.optimizer.plain(messages, kwargs)

    # --- calls ---------------------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, kwargs, stop)
        try:
            return self.wrapped_llm._generate(
                call.messages, stop=stop, run_manager=run_manager, **call.kwargs
            )
        except Exception as err:
            plain = self._fallback(call, err, messages, kwargs)
            if plain is None:
                raise
        return self.wrapped_llm._generate(plain.messages, stop=stop, run_manager=run_manager, **plain.kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = await self._aprepare(messages, kwargs, stop)
        try:
            return await self.wrapped_llm._agenerate(
                call.messages, stop=stop, run_manager=run_manager, **call.kwargs
            )
        except Exception as err:
            plain = self._fallback(call, err, messages, kwargs)
            if plain is None:
                raise
        return await self.wrapped_llm._agenerate(
            plain.messages, stop=stop, run_manager=run_manager, **plain.kwargs
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, kwargs, stop)
        yielded = False
        inner = self.wrapped_llm._stream(call.messages, stop=stop, run_manager=run_manager, **call.kwargs)
        try:
            for chunk in inner:
                yielded = True
                yield chunk
            return
        except Exception as err:
            plain = None if yielded else self._fallback(call, err, messages, kwargs)
            if plain is None:
                raise
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        yield from self.wrapped_llm._stream(
            plain.messages, stop=stop, run_manager=run_manager, **plain.kwargs
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = await self._aprepare(messages, kwargs, stop)
        plain: PreparedCall | None = None
        yielded = False
        source = cast(
            AsyncGenerator[ChatGenerationChunk, None],
            self.wrapped_llm._astream(call.messages, stop=stop, run_manager=run_manager, **call.kwargs),
        )
        try:
            async with contextlib.aclosing(source):
                async for chunk in source:
                    yielded = True
                    yield chunk
            return
        except Exception as err:
            plain = None if yielded else self._fallback(call, err, messages, kwargs)
            if plain is None:
                raise
        retry = cast(
            AsyncGenerator[ChatGenerationChunk, None],
            self.wrapped_llm._astream(plain.messages, stop=stop, run_manager=run_manager, **plain.kwargs),
        )
        async with contextlib.aclosing(retry):
            async for chunk in retry:
                yield chunk

    # --- life ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the optimizer holds at the provider (Gemini cached contents)."""
        self.optimizer.close()

    async def aclose(self) -> None:
        await self.optimizer.aclose()


def _rebuild(
    wrapped: BaseChatModel, config: OptimizationConfig, provider_name: str, model_name: str, llm_type: str
) -> BaseChatModel:
    from modelforge.optimizers import optimizer_for

    optimizer = optimizer_for(llm_type, config, provider_name=provider_name, model_name=model_name)
    if optimizer is None:
        return wrapped
    return OptimizedChatModel(
        wrapped_llm=wrapped, optimizer=optimizer, callbacks=getattr(wrapped, "callbacks", None)
    )
