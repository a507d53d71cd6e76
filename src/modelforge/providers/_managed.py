"""``ManagedChatModel``: the base of the classes ``get_llm`` hands back, each a subclass of the SDK's own.

Every provider family defines its class as ``ManagedChatX(ManagedChatModel, ChatX)``, for example
``ManagedChatOpenAI(ManagedChatModel, ChatOpenAI)``, so the model *is* a ``ChatOpenAI``: ``isinstance``
holds, settings read and assign as on the plain class (``llm.temperature = 0.25`` reaches the next
request), and ``bind_tools``, ``with_structured_output``, ``with_config``, ``astream_events``, ``batch``
and LangChain serialization are the SDK class's own. Serialization names the SDK class (``lc_id``), so
``langchain_core.load.dumpd`` output is the plain class's.

What ModelForge adds runs inside ``_generate`` / ``_agenerate`` / ``_stream`` / ``_astream``: the call goes
through the model's ``Pipeline`` (``modelforge._pipeline``: response cache, optimizer, stream integrity
and metrics, rate limits, retries and error translation; ``modelforge.pipeline`` sets the order) and the
last step is the SDK class's own method. A model built without a pipeline behaves exactly as the plain
class.

Pickling never carries credentials: the model pickles as "provider, alias, the options ``get_llm`` was
given and the plain settings changed since" (numbers, strings, booleans; never a key, header or client) and
is rebuilt on the other side from that side's config and credential store, by the function the registry
attached (this module cannot import the registry: it is a layer above).

LangChain 1.x removed ``predict``, ``__call__`` and ``call_as_llm`` from chat models; 2.3.0 code still
calls them, so they work here with a ``DeprecationWarning`` that names the replacement.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.utils import LC_ID_PREFIX
from pydantic import PrivateAttr

from modelforge._pipeline import Call, Pipeline, Step, batching

__all__ = ["ForgeState", "ManagedChatModel", "managed_of", "plain_settings", "with_step"]

# Substrings of field names whose values are never pickled (credentials, headers, live clients).
_NEVER_PICKLED = ("key", "token", "secret", "header", "client", "password", "credential", "auth")
_PLAIN = (str, int, float, bool, type(None))


@dataclass
class ForgeState:
    """What ModelForge attached to a model it built: who it is and the pipeline its calls go through."""

    provider_name: str
    model_alias: str
    llm_type: str
    pipeline: Pipeline
    # The provider's retry section with the family's defaults (the batch code retries with it too).
    retry: dict[str, Any] = field(default_factory=dict)
    # ``rebuild(provider_name, model_alias, options, settings)`` -> a model like this one (the registry's).
    rebuild: Callable[..., Any] | None = None
    # The get_llm options this model was built with (cache, optimizations), for ``rebuild``.
    options: dict[str, Any] = field(default_factory=dict)
    # Plain settings as built, so a pickle carries only what the user changed since.
    built: dict[str, Any] = field(default_factory=dict)
    # The pipeline's first step when it is a response cache (the fast path of a hit), else None.
    cache_first: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        first = self.pipeline.steps[0] if self.pipeline.steps else None
        self.cache_first = first if hasattr(first, "handing_over") else None


def plain_settings(model: BaseChatModel) -> dict[str, Any]:
    """The model's settings that are plain data (numbers, strings, lists and mappings of them), never a
    credential, header or client: by their field name, and inside a mapping by its keys."""
    settings: dict[str, Any] = {}
    for name in type(model).model_fields:
        if _secret_name(name):
            continue
        value = _plain_data(getattr(model, name, None))
        if value is not _NOT_PLAIN:
            settings[name] = value
    return settings


_NOT_PLAIN = object()


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _NEVER_PICKLED)


def _plain_data(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` when it is plain data, else ``_NOT_PLAIN`` (mapping keys that name a secret are
    left out)."""
    if isinstance(value, _PLAIN):
        return value
    if depth > 8:
        return _NOT_PLAIN
    if isinstance(value, list | tuple):
        items = [_plain_data(item, depth + 1) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else type(value)(items)
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        kept = {key: _plain_data(item, depth + 1) for key, item in value.items() if not _secret_name(key)}
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in kept.values()) else kept
    return _NOT_PLAIN


class ManagedChatModel(BaseChatModel):
    """The first base of every family's model class; see the module docstring."""

    _forge: ForgeState | None = PrivateAttr(default=None)

    # --- who this is -------------------------------------------------------------------------------------

    @property
    def forge(self) -> ForgeState:
        """What ModelForge attached: provider, alias, family and the pipeline (``AttributeError`` for a model
        built without ``get_llm``, so ``getattr(llm, "forge", None)`` tells)."""
        if self._forge is None:
            raise AttributeError(f"this {type(self).__name__} was not built by ModelForgeRegistry.get_llm")
        return self._forge

    def forge_or_none(self) -> ForgeState | None:
        """What ModelForge attached, or None for a model built without ``get_llm``."""
        return self._forge

    def attach(self, state: ForgeState) -> None:
        """Give this model its pipeline and identity (done once, by the registry)."""
        state.built = plain_settings(self)
        self._forge = state

    @property
    def provider_name(self) -> str | None:
        """The provider's name in the ModelForge config (None for a model built without ``get_llm``)."""
        return self._forge.provider_name if self._forge is not None else None

    @property
    def model_alias(self) -> str | None:
        """The model's alias in the ModelForge config (None for a model built without ``get_llm``)."""
        return self._forge.model_alias if self._forge is not None else None

    @property
    def model_id(self) -> str | None:
        """The model id the provider is asked for."""
        for name in ("model_name", "model"):
            value = getattr(self, name, None)
            if isinstance(value, str):
                return value
        return None

    @classmethod
    def sdk_class(cls) -> type[BaseChatModel]:
        """The SDK's own LangChain class this class extends (``ChatOpenAI`` for ``ManagedChatOpenAI``)."""
        for base in cls.__mro__[1:]:
            if issubclass(base, BaseChatModel) and not issubclass(base, ManagedChatModel):
                return base
        return cls

    @classmethod
    def lc_id(cls) -> list[str]:
        """LangChain serialization names the SDK's class: ``dumpd(llm)`` is that of the plain class."""
        sdk = cls.sdk_class()
        return sdk.lc_id() if sdk is not cls else super().lc_id()

    def to_json_not_implemented(self) -> Any:
        """As the SDK class says it (ChatOllama, say, is not serializable): named as that class."""
        described = super().to_json_not_implemented()
        sdk = type(self).sdk_class()
        described["id"] = [*sdk.__module__.split("."), sdk.__name__]
        return described

    def __repr_args__(self) -> Any:
        """The SDK class's repr, with header values hidden: a header may carry a key (``X-Api-Key``,
        ``Authorization``), and a repr ends up in logs and tracebacks."""
        for name, value in super().__repr_args__():
            sent_as_headers = name is not None and ("header" in name.lower() or name == "default_metadata")
            yield name, _headers_hidden(value) if sent_as_headers else _nested_hidden(value)

    # --- calls go through the pipeline -------------------------------------------------------------------

    # LangChain runs a batch as invokes: mark them, so the retry step follows the ``retry.batch`` settings.
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
        forge = self._forge
        if forge is None:
            return super()._generate(  # type: ignore[safe-super]
                messages, stop=stop, run_manager=run_manager, **kwargs
            )
        return forge.pipeline.generate(
            Call("invoke", self, messages, stop, run_manager, kwargs), self._sdk_generate
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        forge = self._forge
        if forge is None:
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        call = Call("invoke", self, messages, stop, run_manager, kwargs)
        return await forge.pipeline.agenerate(call, self._sdk_agenerate)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        forge = self._forge
        if forge is None:
            return super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        return forge.pipeline.stream(
            Call("stream", self, messages, stop, run_manager, kwargs), self._sdk_stream
        )

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        forge = self._forge
        if forge is None:
            return super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs)
        call = Call("stream", self, messages, stop, run_manager, kwargs)
        return forge.pipeline.astream(call, self._sdk_astream)

    # A fresh answer in the response cache returns before LangChain prepares a call to the provider, as
    # LangChain's own cache does (``BaseChatModel._generate_with_cache``: a hit is returned whole, its v2
    # stream events replayed); everything else goes that way.
    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._fast_cache()
        if step is None:
            return super()._generate_with_cache(messages, stop=stop, run_manager=run_manager, **kwargs)
        call = Call("invoke", self, messages, stop, run_manager, kwargs)
        key, found = step.peek(call)
        hit = step.hit(call, found)
        if hit is not None:
            self._replay_v2_events_for_cache_hit(hit.generations, run_manager=run_manager, **kwargs)
            return _as_returned(hit, run_manager)
        with step.handing_over(call, key, found):  # a miss: the cache step does not read the backend again
            return super()._generate_with_cache(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._fast_cache()
        if step is None:
            return await super()._agenerate_with_cache(messages, stop=stop, run_manager=run_manager, **kwargs)
        call = Call("invoke", self, messages, stop, run_manager, kwargs)
        key, found = await step.apeek(call)
        hit = step.hit(call, found)
        if hit is not None:
            await self._areplay_v2_events_for_cache_hit(hit.generations, run_manager=run_manager, **kwargs)
            return _as_returned(hit, run_manager)
        with step.handing_over(call, key, found):
            return await super()._agenerate_with_cache(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _fast_cache(self) -> Any:
        """The pipeline's first step when it is a response cache (and LangChain would not convert the answer
        to content blocks, ``output_version="v1"``), else None. As with LangChain's own cache, a fresh
        answer is returned before LangChain considers streaming the call."""
        forge = self._forge
        step = None if forge is None else forge.cache_first
        if step is None or self.output_version == "v1":
            return None
        return step

    # The SDK class's own methods: the last step of the pipeline.
    def _sdk_generate(self, call: Call) -> ChatResult:
        return super()._generate(  # type: ignore[safe-super]
            call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs
        )

    async def _sdk_agenerate(self, call: Call) -> ChatResult:
        return await super()._agenerate(
            call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs
        )

    def _sdk_stream(self, call: Call) -> Iterator[ChatGenerationChunk]:
        return super()._stream(call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs)

    def _sdk_astream(self, call: Call) -> AsyncIterator[ChatGenerationChunk]:
        return super()._astream(call.messages, stop=call.stop, run_manager=call.run_manager, **call.kwargs)

    # --- the response cache, when the pipeline has one ---------------------------------------------------

    def _cache_step(self) -> Any:
        forge = self._forge
        step = None
        if forge is not None:
            step = next((s for s in forge.pipeline.steps if hasattr(s, "response_cache")), None)
        if step is None:
            raise AttributeError(
                f"{type(self).__name__} has no response cache: ask get_llm(..., enable_cache=True) or set "
                "the provider's cache section"
            )
        return step

    @property
    def response_cache(self) -> Any:
        """The ``ResponseCache`` of this model's cache step (``AttributeError`` when caching is off)."""
        return self._cache_step().response_cache

    @property
    def cache_stats(self) -> Any:
        """Hits, misses, stores, stale hits and backend errors of this model's response cache."""
        return self._cache_step().response_cache.stats

    def clear_cache(self) -> None:
        """Forget every answer of this model's cache namespace."""
        self._cache_step().response_cache.clear()

    async def aclear_cache(self) -> None:
        await self._cache_step().response_cache.aclear()

    # --- life ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the pipeline's steps hold at the provider (an optimizer's Gemini cached contents),
        then whatever the SDK class closes itself, if it has a ``close``."""
        for step in self._forge.pipeline.steps if self._forge is not None else ():
            closer = getattr(step, "close", None)
            if callable(closer):
                closer()
        own = getattr(super(), "close", None)
        if callable(own):
            own()

    async def aclose(self) -> None:
        """``close`` for async code (and the SDK's own ``aclose``, which ``ChatGoogleGenerativeAI`` has)."""
        for step in self._forge.pipeline.steps if self._forge is not None else ():
            closer = getattr(step, "aclose", None)
            if callable(closer):
                await closer()
        own = getattr(super(), "aclose", None)
        if callable(own):
            await own()

    # --- what 2.3.0 code still calls -----------------------------------------------------------------------

    def predict(self, text: str, *, stop: Sequence[str] | None = None, **kwargs: Any) -> str:
        """Deprecated (removed from LangChain 1.x): ``llm.invoke(text).text``."""
        _deprecated("predict(text)", "invoke(text).text")
        config, kwargs = _config_of(kwargs)
        return self.invoke(text, config, stop=list(stop) if stop else None, **kwargs).text

    def call_as_llm(self, message: str, stop: list[str] | None = None, **kwargs: Any) -> str:
        """Deprecated (removed from LangChain 1.x): ``llm.invoke(message).text``."""
        _deprecated("call_as_llm(message)", "invoke(message).text")
        config, kwargs = _config_of(kwargs)
        return self.invoke(message, config, stop=stop, **kwargs).text

    def __call__(
        self, messages: list[BaseMessage] | str, stop: list[str] | None = None, **kwargs: Any
    ) -> BaseMessage:
        """Deprecated (removed from LangChain 1.x): ``llm.invoke(messages)``."""
        _deprecated("llm(messages)", "invoke(messages)")
        if isinstance(messages, str):
            messages = [HumanMessage(content=messages)]
        config, kwargs = _config_of(kwargs)
        return self.invoke(messages, config, stop=stop, **kwargs)

    # --- pickling ------------------------------------------------------------------------------------------

    def __reduce__(self) -> Any:
        forge = self._forge
        if forge is None or forge.rebuild is None:
            return super().__reduce__()
        changed = {
            name: value
            for name, value in plain_settings(self).items()
            if name not in forge.built or forge.built[name] != value
        }
        recipes = [recipe for step in forge.pipeline.steps if (recipe := step.recipe()) is not None]
        options = {**forge.options, "steps": recipes}
        return (forge.rebuild, (forge.provider_name, forge.model_alias, options, changed))

    def __reduce_ex__(self, protocol: Any) -> Any:
        forge = self._forge
        if forge is None or forge.rebuild is None:
            return super().__reduce_ex__(protocol)
        return self.__reduce__()


def _as_returned(result: ChatResult, run_manager: Any) -> ChatResult:
    """``result`` (a cached answer, its metadata already merged as LangChain merges it: see
    ``CachedAnswer.result``) with the run's message ids, as ``_generate_with_cache`` hands answers back."""
    if run_manager:
        for index, generation in enumerate(result.generations):
            if generation.message.id is None:
                generation.message.id = f"{LC_ID_PREFIX}-{run_manager.run_id}-{index}"
    return result


def _headers_hidden(value: Any) -> Any:
    """Headers with their values replaced (names kept: they say what is sent); ``ChatGoogleGenerativeAI``
    keeps them as ``default_metadata``, pairs of name and value."""
    if isinstance(value, dict):
        return {key: "***" for key in value}
    if isinstance(value, tuple | list):
        return type(value)(
            (item[0], "***") if isinstance(item, tuple | list) and len(item) == 2 else item for item in value
        )
    return value


def _nested_hidden(value: Any) -> Any:
    """``value`` with the headers inside a mapping hidden (``ChatOllama.client_kwargs["headers"]``)."""
    if isinstance(value, dict) and any(isinstance(k, str) and "header" in k.lower() for k in value):
        return {
            key: _headers_hidden(item) if isinstance(key, str) and "header" in key.lower() else item
            for key, item in value.items()
        }
    return value


# What the 0.x calls took as keyword arguments and ``invoke`` takes in its config.
_CONFIG_KEYS = ("callbacks", "tags", "metadata", "run_name")


def _config_of(kwargs: dict[str, Any]) -> tuple[RunnableConfig | None, dict[str, Any]]:
    """``kwargs`` of a 0.x call split into ``invoke``'s config and the model's own options."""
    config = {key: kwargs[key] for key in _CONFIG_KEYS if kwargs.get(key) is not None}
    rest = {key: value for key, value in kwargs.items() if key not in _CONFIG_KEYS}
    return (cast(RunnableConfig, config) if config else None), rest


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} was removed from LangChain 1.x chat models; use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


def managed_of(llm: Any) -> ManagedChatModel | None:
    """The ModelForge-built model ``llm`` is or wraps (below an ``EnhancedLLM`` or another delegating
    wrapper, or bound by ``bind_tools``); None for a fallback chain or a model ModelForge did not build."""
    current: Any = llm
    for _ in range(32):
        if isinstance(current, ManagedChatModel):
            return current if current._forge is not None else None
        inner = getattr(current, "wrapped_llm", None)
        if inner is None:
            inner = getattr(current, "bound", None)
        if inner is None:
            return None
        current = inner
    return None


def with_step(
    llm: BaseChatModel,
    step: Step,
    *,
    position: Callable[[tuple[Step, ...]], int],
    wrap: Callable[[BaseChatModel, Step], BaseChatModel],
    replaces: type[Step] | None = None,
) -> BaseChatModel:
    """``llm`` with ``step`` added to its calls: a ModelForge-built model comes back as a copy of its own
    class whose pipeline has ``step`` at ``position(steps)``; any other model comes back as
    ``wrap(llm, step)``
    (a wrapper that runs the step around it)."""
    if not isinstance(llm, ManagedChatModel) or llm._forge is None:
        return wrap(llm, step)
    forge = llm._forge
    steps = [s for s in forge.pipeline.steps if replaces is None or not isinstance(s, replaces)]
    steps.insert(position(tuple(steps)), step)
    copy = llm.model_copy()
    copy._forge = replace(forge, pipeline=Pipeline(steps))
    return copy
