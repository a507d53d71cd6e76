"""Providers as objects: ``create_provider(config)`` gives a ``ChatProvider`` with ``chat``, ``stream``,
``batch_chat`` and the LangChain model as ``.llm``.

::

    provider = create_provider(ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI), cache_ttl=3600)
    provider = create_provider("openai/gpt-4o-mini")     # a model of the config file (None: current model)
    reply = await provider.chat(messages)                 # an AIMessage
    person = await provider.chat(messages, response_format=PersonInfo, validation=ValidationConfig(2))
    async for chunk in provider.stream(messages):
        print(chunk.content, end="")
    results = await provider.batch_chat([(messages1, {"response_format": "json"}),
                                         (messages2, {"max_tokens": 100})])
    reply = await provider.chat(messages, images=["data:image/png;base64,..."], num_ctx=8192)

Everything is built by ``ModelForgeRegistry.get_llm``: retry, rate limits, the response cache
(``cache_ttl``), pooling and optimizers are the registry's, not a second implementation. Per-call
``options`` are checked against the provider family (``modelforge.assistant.options``); ``images`` are added
to the last user message; ``response_format`` runs the validation loop (``modelforge.assistant.structured``,
separate from transport retries); a ``compression`` config compresses long prompts first (the report is
``last_compression``); ``logger`` / ``callbacks`` / ``tracing`` observe every call
(``modelforge.telemetry.observability``). Sync twins: ``chat_sync``, ``stream_sync``, ``batch_chat_sync``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.runnables import RunnableLambda

from modelforge.assistant.compression import CompressionConfig, CompressionReport, compress_messages
from modelforge.assistant.images import ImageSource, with_images
from modelforge.assistant.options import options_for
from modelforge.assistant.provider_config import ModelConfig
from modelforge.assistant.structured import ResponseFormat, ValidationConfig, ainvoke_validated
from modelforge.assistant.tokens import model_name_of
from modelforge.exceptions import ConfigurationValidationError, InvalidInputError
from modelforge.validation import split_model_spec

if TYPE_CHECKING:
    from modelforge.batch import BatchResult
    from modelforge.registry import ModelForgeRegistry

__all__ = ["BatchItem", "ChatProvider", "create_provider"]

Images = Sequence[ImageSource] | ImageSource | None
# One item of ``batch_chat``: messages, or (messages, options).
BatchItem = Any
DEFAULT_BATCH_CONCURRENCY = 8


class ChatProvider:
    """One model of one provider, ready to chat (see the module docstring)."""

    def __init__(
        self,
        llm: BaseChatModel,
        *,
        provider_name: str,
        model_alias: str,
        llm_type: str,
        registry: ModelForgeRegistry | None = None,
        compression: CompressionConfig | None = None,
        owns_registry: bool = False,
    ) -> None:
        self.llm = llm
        self.provider_name = provider_name
        self.model_alias = model_alias
        self.llm_type = llm_type
        self.registry = registry
        self.compression = compression
        self.last_compression: CompressionReport | None = None
        # A registry built for this provider alone (from a ModelConfig) is closed with it.
        self._owns_registry = owns_registry

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider_name}/{self.model_alias}, llm_type={self.llm_type})"

    @property
    def name(self) -> str:
        """``provider/alias``."""
        return f"{self.provider_name}/{self.model_alias}"

    # --- calls -------------------------------------------------------------------------------------------

    async def chat(
        self,
        messages: Any,
        *,
        response_format: ResponseFormat | None = None,
        validation: ValidationConfig | None = None,
        images: Images = None,
        config: Any = None,
        **options: Any,
    ) -> Any:
        """The model's answer (an ``AIMessage``), or with ``response_format`` the validated value."""
        if validation is not None and response_format is None:
            raise InvalidInputError(
                "validation= needs a response_format to validate against",
                suggestion="Pass response_format=YourModel (a pydantic model), a JSON schema, or 'json'.",
            )
        model, kwargs = self._call(options)  # bad options fail before anything is sent
        prompt = await self._prompt(messages, images)
        if response_format is not None:
            return await ainvoke_validated(
                model, prompt, response_format=response_format, validation=validation, config=config, **kwargs
            )
        return await model.ainvoke(prompt, config=config, **kwargs)

    async def stream(
        self,
        messages: Any,
        *,
        images: Images = None,
        config: Any = None,
        **options: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """The answer as it arrives; leaving the loop early closes the stream (and its connection)."""
        model, kwargs = self._call(options)
        prompt = await self._prompt(messages, images)
        stream = model.astream(prompt, config=config, **kwargs)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await cast(AsyncGenerator[Any, None], stream).aclose()

    async def batch_chat(
        self,
        items: Sequence[BatchItem],
        *,
        max_concurrent: int | None = None,
        on_progress: Any = None,
    ) -> list[BatchResult]:
        """Answer every item concurrently, one ``BatchResult`` per item in order (``.message`` for an
        answer, ``.output`` for a validated value, ``.error`` for a failure that cost no other item).

        Each item is messages or ``(messages, options)``, options as for ``chat`` (``response_format``,
        ``max_tokens``...). Calls go through the provider's rate limits and its ``retry.batch`` policy.
        """
        from modelforge.batch import BatchProcessor

        pairs = [_split_item(item, index) for index, item in enumerate(items)]

        async def answer(pair: tuple[Any, dict[str, Any]]) -> Any:
            messages, options = pair
            return await self.chat(messages, **options)

        processor = BatchProcessor(
            RunnableLambda(_never_sync, afunc=answer),
            max_concurrent=max_concurrent or self._batch_concurrency(),
            on_progress=on_progress,
        )
        results = await processor.run(pairs)
        for result in results:  # the caller sees its own item, not our (messages, options) pair
            result.input = items[result.index]
        return results

    # --- sync twins --------------------------------------------------------------------------------------

    def chat_sync(self, messages: Any, **kwargs: Any) -> Any:
        """``chat`` for synchronous code (not from inside a running event loop)."""
        return _run(self.chat(messages, **kwargs))

    def stream_sync(
        self,
        messages: Any,
        *,
        images: Images = None,
        config: Any = None,
        **options: Any,
    ) -> Iterator[AIMessageChunk]:
        """``stream`` for synchronous code: the model's own sync stream."""
        model, kwargs = self._call(options)
        prompt = self._prompt_sync(messages, images)
        stream = model.stream(prompt, config=config, **kwargs)
        try:
            yield from stream
        finally:
            cast(Generator[Any, None, None], stream).close()

    def batch_chat_sync(self, items: Sequence[BatchItem], **kwargs: Any) -> list[BatchResult]:
        """``batch_chat`` for synchronous code."""
        return _run(self.batch_chat(items, **kwargs))

    async def aclose(self) -> None:
        """Close the registry's pooled connections of a provider built from a ``ModelConfig``."""
        if self.registry is not None and self._owns_registry:
            await self.registry.aclose()

    def close(self) -> None:
        if self.registry is not None and self._owns_registry:
            self.registry.close()

    # --- internals ---------------------------------------------------------------------------------------

    def _call(self, options: Mapping[str, Any]) -> tuple[BaseChatModel, dict[str, Any]]:
        """The model to call and the keyword arguments for it."""
        return options_for(self.llm, self.provider_name, self.llm_type, options)

    async def _prompt(self, messages: Any, images: Images) -> list[BaseMessage]:
        prompt = _as_messages(messages)
        if images:
            prompt = await asyncio.to_thread(with_images, prompt, _image_list(images))
        if self.compression is not None:
            prompt, report = await compress_messages(prompt, self.compression, llm=self.llm)
            if report is not None:
                self.last_compression = report
        return prompt

    def _prompt_sync(self, messages: Any, images: Images) -> list[BaseMessage]:
        if self.compression is not None:
            return _run(self._prompt(messages, images))
        prompt = _as_messages(messages)
        return with_images(prompt, _image_list(images)) if images else prompt

    def _batch_concurrency(self) -> int:
        if self.registry is None:
            return DEFAULT_BATCH_CONCURRENCY
        from modelforge.batch import batch_settings

        return batch_settings(self.registry, self.provider_name).max_concurrent


def create_provider(
    config: ModelConfig | str | None = None,
    *,
    registry: ModelForgeRegistry | None = None,
    config_path: str | Path | None = None,
    cache_ttl: float | None = None,
    enable_cache: bool | None = None,
    enable_optimizations: bool | None = None,
    compression: CompressionConfig | None = None,
    logger: logging.Logger | None = None,
    callbacks: Any = None,
    tracing: bool | None = None,
    tracer_provider: Any = None,
) -> ChatProvider:
    """A ``ChatProvider`` for ``config``: a ``ModelConfig`` (built in code), ``"provider/alias"`` or a
    provider name from the config file (``config_path``, or the active one; ``registry`` to reuse one),
    or None for the config's current model.

    ``cache_ttl`` turns the response cache on for that many seconds (``enable_cache`` as in ``get_llm``);
    ``compression`` compresses long prompts before they are sent; ``logger``, ``callbacks``, ``tracing``
    observe every call (see ``modelforge.telemetry.observability``).
    """
    from modelforge.registry import ModelForgeRegistry

    owns_registry = False
    if isinstance(config, ModelConfig):
        if registry is not None or config_path is not None:
            raise InvalidInputError(
                "A ModelConfig is complete by itself; registry= and config_path= are for configs from files",
                suggestion='Pass create_provider(ModelConfig(...)), or create_provider("provider/alias", '
                "config_path=...).",
            )
        api_keys = {config.provider_name: config.api_key} if config.api_key else None
        try:
            registry = ModelForgeRegistry.from_config(
                config.to_registry_config(), api_keys=api_keys, enable_optimizations=enable_optimizations
            )
        except ConfigurationValidationError as err:
            problems = "; ".join((err.details or {}).get("problems", [err.message]))
            raise InvalidInputError(
                f"The ModelConfig is invalid: {problems}",
                suggestion="Fix the ModelConfig field named last in the key above (providers.<provider>."
                "<field>, or providers.<provider>.models.<alias>.<field>).",
            ) from None
        provider_name, model_alias = config.provider_name, config.model_alias
        owns_registry = True
    elif config is None or isinstance(config, str):
        if registry is None:
            registry = ModelForgeRegistry(config_path=config_path, enable_optimizations=enable_optimizations)
        provider_name, model_alias = registry._select(*_names(config))
    else:
        raise InvalidInputError(
            f"create_provider takes a ModelConfig, 'provider/alias' or None, not {type(config).__name__}",
            suggestion='e.g. create_provider(ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI))',
        )
    llm = registry.get_llm(
        provider_name,
        model_alias,
        enable_cache=enable_cache,
        cache_ttl=cache_ttl,
        enable_optimizations=enable_optimizations,
    )
    llm_type = _llm_type(registry, provider_name)
    if logger is not None or callbacks is not None or tracing is not False:
        from modelforge.telemetry.observability import observe

        llm = observe(
            llm,
            provider=provider_name,
            model=model_name_of(llm) or model_alias,
            logger=logger,
            callbacks=callbacks,
            tracing=tracing,
            tracer_provider=tracer_provider,
        )
    return ChatProvider(
        llm,
        provider_name=provider_name,
        model_alias=model_alias,
        llm_type=llm_type,
        registry=registry,
        compression=compression,
        owns_registry=owns_registry,
    )


# --- helpers ----------------------------------------------------------------------------------------------


def _names(config: str | None) -> tuple[str | None, str | None]:
    """``"provider:alias"`` or ``"provider/alias"`` (``modelforge.validation.split_model_spec``)."""
    if config is None:
        return None, None
    return split_model_spec(config)


def _llm_type(registry: ModelForgeRegistry, provider_name: str) -> str:
    from modelforge.providers import normalize_llm_type

    return normalize_llm_type(registry._provider_config(provider_name).llm_type or "")


def _as_messages(messages: Any) -> list[BaseMessage]:
    if isinstance(messages, str):
        return [HumanMessage(content=messages)]
    if isinstance(messages, tuple) and len(messages) == 2 and isinstance(messages[0], str):
        messages = [messages]  # one ("role", "content") message, not two strings
    if hasattr(messages, "to_messages"):  # a LangChain PromptValue
        return list(messages.to_messages())
    try:
        return list(convert_to_messages(messages))
    except (ValueError, TypeError, NotImplementedError) as err:
        raise InvalidInputError(
            f"Cannot read the messages: {err}",
            suggestion='Pass a string, LangChain messages, or [("system", "..."), ("user", "...")].',
        ) from err


def _image_list(images: Images) -> list[ImageSource]:
    if images is None:
        return []
    if isinstance(images, str | Path):
        return [images]
    return list(images)


def _split_item(item: BatchItem, index: int) -> tuple[Any, dict[str, Any]]:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping):
        return item[0], dict(item[1])
    if isinstance(item, tuple) and len(item) == 2 and item[1] is None:
        return item[0], {}
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], str):
        raise InvalidInputError(
            f"batch_chat item {index}: options must be a dict, got {type(item[1]).__name__}",
            suggestion='Pass (messages, {"max_tokens": 100}) or just messages.',
        )
    return item, {}


def _never_sync(_: Any) -> Any:
    raise RuntimeError("batch_chat runs its calls asynchronously")  # pragma: no cover


def _run(awaitable: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    awaitable.close()
    raise InvalidInputError(
        "A *_sync method was called from inside a running event loop",
        suggestion="Use the async method (await provider.chat(...)) in async code.",
    )
