"""A LangChain chat model that forwards to another one, so ModelForge can add behaviour around it.

``DelegatingChatModel`` is a real ``BaseChatModel``: it works in any LCEL chain, with callbacks, ``invoke``,
``stream``, ``batch`` and their async twins. Generation, streaming and token counting go to
``wrapped_llm``; ``bind_tools`` and ``with_structured_output`` are built by the wrapped model (so each
provider formats tools its own way) and then re-pointed at the wrapper, so the result still carries the
wrapper's behaviour (error translation, metadata) instead of silently dropping back to the raw model, which
was a defect of 2.3.0. Subclasses override ``_translate_error`` to turn SDK errors into ModelForge ones and
``_next_wait`` to try a failed call again (a stream only before its first chunk reached the caller);
``_ended`` hears how each invoke ended and after how many attempts (a subclass that follows its streams
runs ``_stream_attempts`` / ``_astream_attempts`` with its own ``CallAttempts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict

__all__ = [
    "CallAttempts",
    "DelegatingChatModel",
    "batching",
    "in_batch",
    "innermost",
    "rebind",
    "replace_innermost",
]

# True while a batch of ModelForge calls runs (LangChain runs batch items as invokes): retries then follow the
# provider's ``retry.batch`` settings.
_batching: contextvars.ContextVar[bool] = contextvars.ContextVar("modelforge_batching", default=False)


@contextlib.contextmanager
def batching() -> Iterator[None]:
    """Mark the calls made inside (and in tasks or thread contexts copied from here) as batch items."""
    token = _batching.set(True)
    try:
        yield
    finally:
        _batching.reset(token)


def in_batch() -> bool:
    """Whether the current call is a batch item."""
    return _batching.get()


class CallAttempts:
    """The attempts of one call: which operation, how many so far, since when, what was repaired."""

    __slots__ = ("attempt", "operation", "recovered", "started", "waited")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.attempt = 1
        self.started = time.monotonic()
        self.waited = 0.0
        self.recovered = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def next(self, wait: float) -> None:
        self.attempt += 1
        self.waited += wait


class DelegatingChatModel(BaseChatModel):
    """Forwards every model call to ``wrapped_llm``; subclasses add behaviour around the calls."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    wrapped_llm: BaseChatModel

    def __getattr__(self, name: str) -> Any:
        # Settings of the wrapped model (``model_name``, ``temperature``...) read through.
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            wrapped = self.__dict__.get("wrapped_llm")
            if wrapped is None or name.startswith("_"):
                raise
            return getattr(wrapped, name)

    # --- what LangChain asks of a chat model -------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return self.wrapped_llm._llm_type

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return dict(self.wrapped_llm._identifying_params)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return self.wrapped_llm._get_ls_params(stop=stop, **kwargs)

    # LangChain runs a batch as invokes: mark them, so every layer below knows they are batch items.
    def batch(self, inputs: list[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        with batching():
            return super().batch(inputs, config, **kwargs)

    async def abatch(self, inputs: list[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        with batching():
            return await super().abatch(inputs, config, **kwargs)

    def _translate_error(self, err: Exception) -> Exception:
        """The error to raise for ``err``; the base class raises it unchanged."""
        return err

    def _admit(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Any:
        """Before each attempt (sync): wait for capacity; returns a ticket for ``_release`` (None: none)."""
        return None

    async def _aadmit(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Any:
        """Before each attempt (async): as ``_admit``, without blocking the event loop."""
        return None

    def _release(
        self,
        ticket: Any,
        *,
        tokens: int | None = None,
        headers: dict[str, str] | None = None,
        error: Exception | None = None,
        completed: bool = True,
    ) -> None:
        """After each attempt: the tokens it used as the provider reported them (None: not reported) and the
        response headers when the SDK exposes them, or how it failed; ``completed`` False for a stream the
        caller stopped (or cancelled) before its end."""

    def _next_wait(self, err: Exception, call: CallAttempts, run_manager: Any) -> float | None:
        """Seconds to wait before trying the failed call again, or None to raise ``err`` (translated).

        Streams ask only while nothing has reached the caller. The base class never retries.
        """
        return None

    def _ended(self, call: CallAttempts, error: Exception | None) -> None:
        """After the last attempt of an invoke: how it ended (``error`` None: it succeeded)."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = CallAttempts("invoke")
        while True:
            ticket = self._admit(messages, kwargs)
            try:
                result = self.wrapped_llm._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
            except Exception as err:
                translated = self._translated(err)
                self._release(ticket, error=translated)
                wait = self._next_wait(translated, call, run_manager)
                if wait is None:
                    self._ended(call, translated)
                    raise translated from err
            else:
                self._release(ticket, tokens=_tokens_of(result), headers=_headers_of(result))
                self._ended(call, None)
                return result
            call.next(wait)
            time.sleep(wait)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = CallAttempts("invoke")
        while True:
            ticket = await self._aadmit(messages, kwargs)
            try:
                result = await self.wrapped_llm._agenerate(
                    messages, stop=stop, run_manager=run_manager, **kwargs
                )
            except Exception as err:
                translated = self._translated(err)
                self._release(ticket, error=translated)
                wait = self._next_wait(translated, call, run_manager)
                if wait is None:
                    self._ended(call, translated)
                    raise translated from err
            else:
                self._release(ticket, tokens=_tokens_of(result), headers=_headers_of(result))
                self._ended(call, None)
                return result
            call.next(wait)
            await asyncio.sleep(wait)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        return self._stream_attempts(CallAttempts("stream"), messages, stop, run_manager, **kwargs)

    def _stream_attempts(
        self,
        call: CallAttempts,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The stream, tried again per ``_next_wait`` while nothing reached the caller; ``call`` counts."""
        while True:
            yielded = False
            ticket = self._admit(messages, kwargs)
            used: int | None = None
            headers: dict[str, str] | None = None
            inner = self.wrapped_llm._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
            released = False
            try:
                for chunk in inner:
                    yielded = True
                    used = _add_tokens(used, chunk.message)
                    headers = headers or _message_headers(chunk.message)
                    yield chunk
                released = True
                self._release(ticket, tokens=used, headers=headers)
                return
            except Exception as err:
                translated = self._translated(err)
                released = True
                self._release(ticket, error=translated)
                wait = None if yielded else self._next_wait(translated, call, run_manager)
                if wait is None:
                    raise translated from err
            finally:
                if not released:  # stopped early: settle (with the estimate), so the budget is not held
                    self._release(ticket, completed=False)
                # A consumer that stops early closes us; close the SDK stream so its connection is released.
                close = getattr(inner, "close", None)
                if close is not None:
                    close()
            call.next(wait)
            time.sleep(wait)

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        return self._astream_attempts(CallAttempts("stream"), messages, stop, run_manager, **kwargs)

    async def _astream_attempts(
        self,
        call: CallAttempts,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """``_stream_attempts`` for async callers."""
        while True:
            yielded = False
            ticket = await self._aadmit(messages, kwargs)
            used: int | None = None
            headers = None
            inner = self.wrapped_llm._astream(messages, stop=stop, run_manager=run_manager, **kwargs)
            released = False
            try:
                async for chunk in inner:
                    yielded = True
                    used = _add_tokens(used, chunk.message)
                    headers = headers or _message_headers(chunk.message)
                    yield chunk
                released = True
                self._release(ticket, tokens=used, headers=headers)
                return
            except Exception as err:
                translated = self._translated(err)
                released = True
                self._release(ticket, error=translated)
                wait = None if yielded else self._next_wait(translated, call, run_manager)
                if wait is None:
                    raise translated from err
            finally:
                if not released:  # stopped early (or cancelled): settle with the estimate, output unknown
                    self._release(ticket, completed=False)
                aclose = getattr(inner, "aclose", None)
                if aclose is not None:
                    await aclose()
            call.next(wait)
            await asyncio.sleep(wait)

    def _translated(self, err: Exception) -> Exception:
        translated = self._translate_error(err)
        if translated is not err and translated.__cause__ is None:
            translated.__cause__ = err
        return translated

    # --- token counting ----------------------------------------------------------------------------------

    def get_token_ids(self, text: str) -> list[int]:
        return self.wrapped_llm.get_token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        return self.wrapped_llm.get_num_tokens(text)

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        return self.wrapped_llm.get_num_tokens_from_messages(messages, tools=tools)

    # --- tools and structured output stay on the wrapper -------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return rebind(self.wrapped_llm.bind_tools(tools, **kwargs), self.wrapped_llm, self)

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        built = self.wrapped_llm.with_structured_output(schema, include_raw=include_raw, **kwargs)
        return rebind(built, self.wrapped_llm, self)


def rebind(runnable: Any, old: Runnable[Any, Any], new: Runnable[Any, Any]) -> Any:
    """``runnable`` with every reference to ``old`` inside it replaced by ``new`` (copies, no mutation)."""
    if runnable is old:
        return new
    if isinstance(runnable, list | tuple):
        items = [rebind(item, old, new) for item in runnable]
        changed = any(a is not b for a, b in zip(items, runnable, strict=True))
        return type(runnable)(items) if changed else runnable
    if isinstance(runnable, dict):
        mapped = {key: rebind(value, old, new) for key, value in runnable.items()}
        return mapped if any(mapped[k] is not runnable[k] for k in runnable) else runnable
    if not isinstance(runnable, Runnable) or not isinstance(runnable, BaseModel):
        return runnable
    updates = {}
    for name in type(runnable).model_fields:
        value = getattr(runnable, name, None)
        replaced = rebind(value, old, new)
        if replaced is not value:
            updates[name] = replaced
    return runnable.model_copy(update=updates) if updates else runnable


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


def innermost(llm: BaseChatModel) -> BaseChatModel:
    """The provider's own model at the bottom of a chain of delegating wrappers."""
    while isinstance(llm, DelegatingChatModel):
        llm = llm.wrapped_llm
    return llm


def replace_innermost(llm: BaseChatModel, new: BaseChatModel) -> BaseChatModel:
    """A copy of the wrapper chain ``llm`` with its innermost model replaced by ``new``."""
    if isinstance(llm, DelegatingChatModel):
        return llm.model_copy(update={"wrapped_llm": replace_innermost(llm.wrapped_llm, new)})
    return new
