"""The async stream: ``StreamWrapper.stream`` and the module-level ``stream``.

One loop pulls chunks from ``llm.astream(...)``. Each pull is awaited under ``asyncio.timeout`` with
whichever is smaller, what is left of the total ``timeout`` or the ``idle_timeout``, so both fire even when
no chunk ever arrives (2.3.0 only looked at the clock when a chunk came in). The idle clock counts the time
spent waiting for the model's next chunk, not time the consumer spends between pieces.

Text is collected per chunk (``str`` content, or the ``text`` blocks of list content; reasoning and tool
call blocks are not text) and yielded in groups of ``buffer_size`` chunks; chunks without text do not
count. ``on_chunk(text)`` and ``on_progress(tokens_so_far)`` run on every chunk with text; either may be a
coroutine function. Whatever happens, the source generator is closed (``aclose()``) before the stream ends,
which releases the HTTP response; a consumer that stops early should use ``contextlib.aclosing`` so that
happens at once rather than when the generator is garbage-collected.

On an error the text already received but not yet yielded is yielded first, then the error is raised: the
pieces yielded always add up to exactly the text received, and a ``NetworkTimeoutError`` or
``StreamInterruptedError`` carries that same text as ``partial_text``. Nothing is ever retried or replayed
here; errors from the model are not reclassified (the provider layer maps SDK errors to ModelForge errors).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import Runnable, RunnableConfig

from modelforge._chunks import chunk_text
from modelforge.exceptions import InvalidInputError, NetworkTimeoutError, StreamInterruptedError
from modelforge.streaming._tokens import TokenCounter
from modelforge.validation import InputValidator

__all__ = ["ChunkCallback", "ProgressCallback", "StreamWrapper", "chunk_text", "stream"]

logger = logging.getLogger("modelforge.streaming")

ProgressCallback = Callable[[int], object]
ChunkCallback = Callable[[str], object]

_END = object()


@dataclass(frozen=True, slots=True)
class _Options:
    timeout: float | None
    idle_timeout: float | None
    buffer_size: int
    on_progress: ProgressCallback | None
    on_chunk: ChunkCallback | None


async def _call(callback: Callable[[Any], object], value: object) -> None:
    result = callback(value)
    if inspect.isawaitable(result):
        await result


async def _close(source: AsyncIterator[Any]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception as err:  # a source that fails while closing must not hide the stream's own outcome
        logger.debug("Closing the model stream failed: %r", err)


def _limit(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    number = InputValidator.validate_positive_number(value, name)
    return None if math.isinf(number) else number


def _check_prompt(prompt: object) -> None:
    empty = prompt is None or (
        prompt.strip() == "" if isinstance(prompt, str) else isinstance(prompt, Sequence) and len(prompt) == 0
    )
    if empty:
        raise InvalidInputError(
            "The prompt is empty. Give a question or instruction, or a non-empty list of messages.",
            suggestion="Give a non-empty prompt",
            error_code="EMPTY_PROMPT",
        )


def _with_handlers(
    config: RunnableConfig | None, handlers: Sequence[Any], *, inherit: bool
) -> RunnableConfig:
    """``config`` with more callback handlers; the caller's config and callback manager are not changed."""
    merged: dict[str, Any] = dict(config or {})
    if not handlers:
        return cast(RunnableConfig, merged)
    existing = merged.get("callbacks")
    if existing is None:
        merged["callbacks"] = list(handlers)
    elif isinstance(existing, list):
        merged["callbacks"] = [*existing, *handlers]
    else:  # a callback manager: add to a copy
        manager = existing.copy()
        for handler in handlers:
            manager.add_handler(handler, inherit=inherit)
        merged["callbacks"] = manager
    return cast(RunnableConfig, merged)


class StreamWrapper:
    """Streams a LangChain chat model's answer as text, with buffering, progress and timeouts.

    ``provider_name`` and ``provider_data`` (the provider's config entry) only label errors and logs here:
    credentials are refreshed by the provider layer, never by replaying a stream. ``callbacks`` are
    LangChain callback handlers added to every call.
    """

    def __init__(
        self,
        llm: Runnable[Any, Any],
        provider_name: str | None = None,
        provider_data: dict[str, Any] | None = None,
        callbacks: list[Any] | None = None,
    ) -> None:
        self.llm = llm
        self.provider_name = provider_name
        self.provider_data = provider_data
        self.callbacks: list[Any] = list(callbacks or [])

    def stream(
        self,
        prompt: Any,
        *,
        timeout: float | None = 300.0,
        idle_timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_chunk: ChunkCallback | None = None,
        buffer_size: int = 10,
        config: RunnableConfig | None = None,
        retry_on_auth_error: bool | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[str, None]:
        """Stream the answer to ``prompt`` (a str or a list of messages) as text pieces.

        ``timeout`` bounds the whole stream and ``idle_timeout`` the wait for any one chunk (seconds; None
        or ``inf`` for no limit); either raises ``NetworkTimeoutError`` with ``partial_text``. Pieces are
        groups of ``buffer_size`` chunks (1 yields every chunk as it comes). ``config`` and ``kwargs`` go to
        ``llm.astream``. ``retry_on_auth_error`` is accepted for 2.3.0 callers and ignored: a stream is
        never replayed after text has reached the caller. Arguments are checked here, at the call.
        """
        _check_prompt(prompt)
        if retry_on_auth_error is not None:
            warnings.warn(
                "retry_on_auth_error is ignored: ModelForge never replays a stream after text has been "
                "delivered; credentials are refreshed before each request instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        options = _Options(
            timeout=_limit(timeout, "timeout"),
            idle_timeout=_limit(idle_timeout, "idle_timeout"),
            buffer_size=InputValidator.validate_positive_integer(buffer_size, "buffer_size"),
            on_progress=on_progress,
            on_chunk=on_chunk,
        )
        return self._run(prompt, options, self._config(config), kwargs)

    def _config(self, config: RunnableConfig | None) -> RunnableConfig:
        return _with_handlers(config, self.callbacks, inherit=True)

    @property
    def _who(self) -> str:
        return f"'{self.provider_name}'" if self.provider_name else "the model"

    async def _run(
        self, prompt: Any, options: _Options, config: RunnableConfig, kwargs: dict[str, Any]
    ) -> AsyncGenerator[str, None]:
        counter: TokenCounter | None = None
        if options.on_progress is not None:  # load the encoding off the loop, before the clocks start
            counter = await asyncio.to_thread(TokenCounter.for_model, TokenCounter.model_of(self.llm))
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if options.timeout is None else started + options.timeout
        received: list[str] = []
        buffer: list[str] = []
        tokens = 0
        failure: Exception | None = None
        source: AsyncIterator[Any] = self.llm.astream(prompt, config=config, **kwargs)
        logger.debug(
            "Streaming from %s (timeout=%s, idle_timeout=%s)",
            self._who,
            options.timeout,
            options.idle_timeout,
        )
        try:
            while True:
                chunk = await self._next_chunk(source, loop, deadline, options, len(received))
                if chunk is _END:
                    break
                text = chunk_text(chunk)
                if not text:
                    continue
                received.append(text)
                buffer.append(text)
                if options.on_chunk is not None:
                    await _call(options.on_chunk, text)
                if counter is not None and options.on_progress is not None:
                    tokens += counter.count(text)
                    await _call(options.on_progress, tokens)
                if len(buffer) >= options.buffer_size:
                    piece = "".join(buffer)
                    buffer.clear()
                    yield piece
        except Exception as err:
            failure = err
        finally:
            await _close(source)  # also on GeneratorExit (consumer stopped) and cancellation
        if buffer:
            yield "".join(buffer)
        elapsed = loop.time() - started
        if failure is not None:
            if isinstance(failure, NetworkTimeoutError | StreamInterruptedError) and not failure.partial_text:
                failure.partial_text = "".join(received)
            logger.debug(
                "Stream from %s failed after %.2fs and %d chunks: %s",
                self._who,
                elapsed,
                len(received),
                type(failure).__name__,
            )
            raise failure
        logger.debug("Stream from %s finished: %d chunks in %.2fs", self._who, len(received), elapsed)

    async def _next_chunk(
        self,
        source: AsyncIterator[Any],
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
        options: _Options,
        chunks: int,
    ) -> Any:
        """The next chunk, or ``_END``; raises ``NetworkTimeoutError`` when a limit passes first."""
        budget, kind = None, "total"
        if deadline is not None:
            budget = deadline - loop.time()
        if options.idle_timeout is not None and (budget is None or options.idle_timeout < budget):
            budget, kind = options.idle_timeout, "idle"
        if budget is None:
            return await anext(source, _END)
        try:
            if budget <= 0:
                raise TimeoutError
            async with asyncio.timeout(budget):
                return await anext(source, _END)
        except TimeoutError as err:
            raise self._timeout_error(kind, options, chunks) from err

    def _timeout_error(self, kind: str, options: _Options, chunks: int) -> NetworkTimeoutError:
        url = self.provider_data.get("base_url") if isinstance(self.provider_data, dict) else None
        if kind == "idle":
            limit = options.idle_timeout
            operation = f"waiting for the next chunk from {self._who} (idle timeout)"
            fix = "The model sent nothing for that long: check the server, or raise idle_timeout."
        else:
            limit = options.timeout
            operation = f"streaming from {self._who} (total timeout)"
            fix = "Raise timeout, or ask for a shorter answer."
        return NetworkTimeoutError(
            operation,
            limit,
            url if isinstance(url, str) else None,
            provider=self.provider_name,
            suggestion=fix,
            details={"kind": kind, "chunks_received": chunks},
        )


def stream(
    llm: Runnable[Any, Any],
    prompt: Any,
    provider_name: str | None = None,
    provider_data: dict[str, Any] | None = None,
    **kwargs: Any,
) -> AsyncGenerator[str, None]:
    """Stream ``llm``'s answer to ``prompt`` as text pieces; ``kwargs`` as for ``StreamWrapper.stream``.

    Use as ``async for piece in stream(llm, "...")``; wrap in ``contextlib.aclosing`` when you may stop early.
    """
    return StreamWrapper(llm, provider_name, provider_data).stream(prompt, **kwargs)
