"""``OptimizeStep``: the pipeline step that runs a provider's optimizer before every call.

It sits inside the response cache (which keys the request as the caller wrote it, plus the optimizer's
``cache_identity()``) and outside the retry step (so error translation, retries and rate limits see the
optimized request); ``modelforge.pipeline`` sets that order. Each call (``invoke``, ``stream`` and their
async twins, batches, tool-bound and structured-output runs) goes through ``optimizer.prepare``
(``aprepare`` for async calls, so the HTTP calls of Gemini's context caching never block the event loop).

An optimizer that fails never fails the call: a ``prepare`` that raises is logged at WARNING with the
reason (no secrets) and the plain request is sent (markers removed). When the provider refuses an
optimized call (``BadRequestError``, 400/422: "Unrecognized request argument supplied: seed", a Gemini
cached content deleted or expired early...), the plain call is sent once more, before anything reached the
caller (a stream only before its first chunk), and a WARNING names the optimizations dropped. A 401, 404,
429 or 5xx is not retried this way (the plain call would fail alike; retries are the retry step's job).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

from langchain_core.outputs import ChatGenerationChunk, ChatResult

from modelforge._pipeline import Call, Step
from modelforge.delegating import innermost
from modelforge.exceptions import BadRequestError, ContextLengthExceededError
from modelforge.optimizers._base import PreparedCall, RequestOptimizer, error_chain, reason

__all__ = ["OptimizeStep", "refused_as_bad"]

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


class OptimizeStep(Step):
    """Sends the calls ``optimizer`` prepared (module docstring)."""

    name = "optimizer"

    def __init__(self, optimizer: RequestOptimizer) -> None:
        self.optimizer = optimizer

    def __repr__(self) -> str:
        return f"OptimizeStep({self.optimizer!r})"

    def recipe(self) -> tuple[str, Any]:
        optimizer = self.optimizer
        return ("optimizer", (optimizer.config, optimizer.llm_type, optimizer.model_name))

    def cache_identity(self) -> dict[str, Any]:
        """The optimizer's effective settings as plain JSON data (``seed``, ``json_mode``, the minimum
        cacheable lengths, ``keep_alive``...), for the response cache to put in its key: a cached answer is
        only reused by a model whose optimizer shapes requests the same way. Never holds a secret."""
        return self.optimizer.cache_identity()

    # --- preparing -----------------------------------------------------------------------------------------

    def _prepare(self, call: Call) -> tuple[Call, PreparedCall]:
        try:
            prepared = self.optimizer.prepare(
                innermost(call.model), list(call.messages), dict(call.kwargs), call.stop
            )
        except Exception as err:
            self._prepare_failed(err)
            prepared = self.optimizer.plain(call.messages, call.kwargs)
        else:
            self._log_applied(prepared)
        return call.with_request(prepared.messages, prepared.kwargs), prepared

    async def _aprepare(self, call: Call) -> tuple[Call, PreparedCall]:
        try:
            prepared = await self.optimizer.aprepare(
                innermost(call.model), list(call.messages), dict(call.kwargs), call.stop
            )
        except Exception as err:
            self._prepare_failed(err)
            prepared = self.optimizer.plain(call.messages, call.kwargs)
        else:
            self._log_applied(prepared)
        return call.with_request(prepared.messages, prepared.kwargs), prepared

    def _prepare_failed(self, err: Exception) -> None:
        logger.warning(
            "The %s optimizer failed for %s/%s (%s); sending the request without optimizations",
            self.optimizer.family,
            self.optimizer.provider_name,
            self.optimizer.model_name,
            reason(err),
        )

    def _log_applied(self, prepared: PreparedCall) -> None:
        if prepared.applied:
            logger.debug(
                "Optimized %s/%s request: %s",
                self.optimizer.provider_name,
                self.optimizer.model_name,
                ", ".join(prepared.applied),
            )

    def _plain(self, prepared: PreparedCall, err: Exception, call: Call) -> Call | None:
        """The plain call to send after ``err``, when an optimization may have caused it: the optimizer
        says so (a Gemini cached content gone), or the provider refused an optimized request as bad (400 or
        422: an argument it does not take, such as ``seed``). Never for 401, 404, 429, 5xx or a prompt too
        long (the plain request would fail the same way)."""
        try:
            own = self.optimizer.retry_plain(prepared, err)
        except Exception:  # a broken check must not hide the original error
            own = False
        if not own and not (prepared.applied and refused_as_bad(err)):
            return None
        logger.warning(
            "%s/%s refused the optimized request (%s); sending it again without optimizations (dropped: %s)",
            self.optimizer.provider_name,
            self.optimizer.model_name,
            reason(err),
            ", ".join(prepared.applied) or "none",
        )
        plain = self.optimizer.plain(call.messages, call.kwargs)
        return call.with_request(plain.messages, plain.kwargs)

    # --- calls ---------------------------------------------------------------------------------------------

    def generate(self, call: Call, send: Callable[[Call], ChatResult]) -> ChatResult:
        optimized, prepared = self._prepare(call)
        try:
            return send(optimized)
        except Exception as err:
            plain = self._plain(prepared, err, call)
            if plain is None:
                raise
        return send(plain)

    async def agenerate(self, call: Call, send: Callable[[Call], Awaitable[ChatResult]]) -> ChatResult:
        optimized, prepared = await self._aprepare(call)
        try:
            return await send(optimized)
        except Exception as err:
            plain = self._plain(prepared, err, call)
            if plain is None:
                raise
        return await send(plain)

    def stream(
        self, call: Call, send: Callable[[Call], Iterator[ChatGenerationChunk]]
    ) -> Iterator[ChatGenerationChunk]:
        optimized, prepared = self._prepare(call)
        yielded = False
        inner = send(optimized)
        try:
            for chunk in inner:
                yielded = True
                yield chunk
            return
        except Exception as err:
            plain = None if yielded else self._plain(prepared, err, call)
            if plain is None:
                raise
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        yield from send(plain)

    async def astream(
        self, call: Call, send: Callable[[Call], AsyncIterator[ChatGenerationChunk]]
    ) -> AsyncIterator[ChatGenerationChunk]:
        optimized, prepared = await self._aprepare(call)
        plain: Call | None = None
        yielded = False
        source = cast(AsyncGenerator[ChatGenerationChunk, None], send(optimized))
        try:
            async with contextlib.aclosing(source):
                async for chunk in source:
                    yielded = True
                    yield chunk
            return
        except Exception as err:
            plain = None if yielded else self._plain(prepared, err, call)
            if plain is None:
                raise
        retry = cast(AsyncGenerator[ChatGenerationChunk, None], send(plain))
        async with contextlib.aclosing(retry):
            async for chunk in retry:
                yield chunk

    # --- life ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the optimizer holds at the provider (Gemini cached contents)."""
        self.optimizer.close()

    async def aclose(self) -> None:
        await self.optimizer.aclose()
