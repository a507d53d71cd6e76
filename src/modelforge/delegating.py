"""A LangChain chat model that forwards to another one, so ModelForge can add behaviour around it.

``DelegatingChatModel`` is a real ``BaseChatModel``: it works in any LCEL chain, with callbacks, ``invoke``,
``stream``, ``batch`` and their async twins. Generation, streaming and token counting go to
``wrapped_llm``; ``bind_tools`` and ``with_structured_output`` are built by the wrapped model (so each
provider formats tools its own way) and then re-pointed at the wrapper, so the result still carries the
wrapper's behaviour instead of silently dropping back to the raw model, which was a defect of 2.3.0.

``get_llm`` models are not wrappers (they are the SDK's own class, ``modelforge.providers._managed``);
wrappers are for what holds a model: ``EnhancedLLM`` (catalogue metadata), and ``PipelineChatModel``,
which runs ModelForge's policy steps (``modelforge._pipeline``) around a model ModelForge did not build.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from modelforge._pipeline import Call, CallAttempts, Pipeline, batching, in_batch

__all__ = [
    "CallAttempts",
    "DelegatingChatModel",
    "ModelChain",
    "PipelineChatModel",
    "batching",
    "in_batch",
    "innermost",
    "member_label",
    "member_provider",
    "rebind",
    "replace_innermost",
]


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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self.wrapped_llm._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await self.wrapped_llm._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        return self.wrapped_llm._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        return self.wrapped_llm._astream(messages, stop=stop, run_manager=run_manager, **kwargs)

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


class PipelineChatModel(DelegatingChatModel):
    """``wrapped_llm`` with a ``Pipeline`` of steps around its calls: how ModelForge's policies apply to a
    model it did not build (``with_cache``, ``optimize`` and ``RetryWrapper`` on any LangChain model).
    The steps see ``wrapped_llm`` as the called model."""

    pipeline: Pipeline = Field(default_factory=Pipeline)

    def current_pipeline(self) -> Pipeline:
        """The steps for the next call (subclasses build them from their fields, so an assignment such as
        ``wrapper.config = ...`` takes effect at once)."""
        return self.pipeline

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = Call("invoke", self.wrapped_llm, messages, stop, run_manager, kwargs)
        return self.current_pipeline().generate(call, _send_generate)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = Call("invoke", self.wrapped_llm, messages, stop, run_manager, kwargs)
        return await self.current_pipeline().agenerate(call, _send_agenerate)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = Call("stream", self.wrapped_llm, messages, stop, run_manager, kwargs)
        return self.current_pipeline().stream(call, _send_stream)

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = Call("stream", self.wrapped_llm, messages, stop, run_manager, kwargs)
        return self.current_pipeline().astream(call, _send_astream)


def _send_generate(call: Call) -> ChatResult:
    return call.model._generate(call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs)


async def _send_agenerate(call: Call) -> ChatResult:
    return await call.model._agenerate(
        call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs
    )


def _send_stream(call: Call) -> Iterator[ChatGenerationChunk]:
    return call.model._stream(call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs)


def _send_astream(call: Call) -> AsyncIterator[ChatGenerationChunk]:
    return call.model._astream(call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs)


class ModelChain(BaseChatModel):
    """A chat model that holds several models and answers with one of them (``FallbackChatModel``):
    observers and option routing look for this, without importing the policy that implements it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    models: list[BaseChatModel]


def member_provider(model: Any) -> str:
    """The provider name of a chain member (its circuit breaker's name)."""
    name = getattr(model, "provider_name", None) or getattr(model, "provider", None)
    if isinstance(name, str) and name:
        return name
    return str(getattr(model, "_llm_type", type(model).__name__))


def member_label(model: Any) -> str:
    """``provider/alias`` of a chain member, for messages and logs."""
    provider = member_provider(model)
    alias = getattr(model, "model_alias", None)
    return f"{provider}/{alias}" if isinstance(alias, str) and alias else provider


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
