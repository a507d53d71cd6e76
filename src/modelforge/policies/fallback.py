"""Fallback chains: when a model fails, the next one answers; when all fail, one error carries every failure.

::

    llm = FallbackChatModel(models=[openai_llm, anthropic_llm, ollama_llm])   # or:
    llm = with_fallbacks_of(openai_llm, [anthropic_llm, ollama_llm])
    llm.invoke("Hi")                     # openai; on a 503 anthropic; ...
    (prompt | llm.bind_tools(tools)).invoke(...)   # tools formatted by each provider, same fallback

From a config, ``build_fallback_chain`` (``modelforge.policies.fallback_config``) builds the chain from a
provider's ``fallbacks`` list.

Which failures move on (``should_fall_back``; the member's own retries have already run):

=================================================================  ======================================
Failure                                                            Decision
=================================================================  ======================================
5xx, 529 / overloaded, 429, timeout, connection refused / reset,   next model
stream cut or dropped, malformed answer
circuit open (the provider is resting: ``CircuitOpenError``)       next model, without a request
401 / 403 (key rejected, token expired), 404 (model unknown),      next model: another provider may work
provider not available, configuration of that provider missing
400 / 413 / 422, context length exceeded                           raised at once: the next model would
                                                                   refuse the same request
our own validation errors, bugs, parser errors (anything else)     raised at once
every model failed or was skipped                                  ``AllProvidersFailedError``, with all
=================================================================  ======================================

A failure raised at once keeps the earlier failures of the call as a note (``err.__notes__``).

Each member's **circuit breaker** (``modelforge.policies.circuit``, one per provider name, process-wide
unless ``circuit_breakers`` is given) is asked before the call: an open circuit skips the member at once.
Only health failures (5xx, 429, timeouts, resets, malformed answers) count towards opening it.

**Streams.** Before a member's first chunk with text or a tool call reached the caller, a failure moves on
silently (chunks that carried nothing are held back until then). After text was delivered:

* ``restart_streams=True`` (default): the next model takes over, and just before its first chunk the
  caller gets a *restart chunk*: ``AIMessageChunk(content="", response_metadata={"modelforge_restart":
  {"reason", "failed", "provider", "error_type", "error_code", "discarded_text"}})`` (``restart_info(chunk)``
  reads it). ``modelforge.stream_events`` turns it into ``StreamRestart(reason, discarded_text)`` and starts
  its text again. A plain ``llm.stream()`` / ``astream()`` consumer sees that chunk and then the whole new
  answer: text gathered before it must be dropped (check ``restart_info(chunk)``; summing chunks across it
  repeats the discarded text). If no model takes over, no restart chunk is sent: the stream ends with the
  error (``AllProvidersFailedError``).
* The first chunk from a member that took over after failures carries ``response_metadata[FALLBACK_KEY]``
  (who failed, who answers), as an ``invoke`` answer does, whether or not text had been delivered.
* ``restart_streams=False``: the member's error (``StreamInterruptedError`` with ``partial_text``) is raised;
  no other model is tried.

``invoke`` never runs on a stream (LangChain would sum a restarted stream's chunks), so it is never affected.
Callbacks: on ``invoke`` each attempt is a child run of the chain's run; LangChain gives ``_stream`` no run
manager, so on ``stream`` only the chain's own run is reported, and its ``on_llm_end`` (LangChain's sum of
every chunk) includes the discarded text and the restart chunk.
``with_structured_output`` builds each member's own structured runnable (each provider's best method) and
runs them as a ``FallbackRunnable``: the same decisions; its streams fall back only before the first output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelforge._chunks import FALLBACK_KEY
from modelforge.delegating import ModelChain
from modelforge.policies._fallback_attempts import (
    RESTART_KEY,
    FallbackAttempts,
    StreamRelay,
    breakers_of,
    member_label,
    member_provider,
    restart_info,
    should_fall_back,
)
from modelforge.policies._fallback_runnable import FallbackRunnable
from modelforge.policies.circuit import CircuitBreakerRegistry

__all__ = [
    "FALLBACK_KEY",
    "RESTART_KEY",
    "FallbackChatModel",
    "FallbackRunnable",
    "restart_info",
    "should_fall_back",
    "with_fallbacks_of",
]


class FallbackChatModel(ModelChain):
    """A chat model that tries ``models`` in order (see the module docstring for what moves on)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    models: list[BaseChatModel] = Field(min_length=1)
    # Call arguments per member (tools formatted by each provider), set by ``bind_tools``.
    member_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    restart_streams: bool = True
    use_circuit_breakers: bool = True
    # None: the process-wide breakers (``modelforge.policies.circuit.default_breakers()``).
    circuit_breakers: CircuitBreakerRegistry | None = Field(default=None, exclude=True)
    should_fall_back: Callable[[BaseException], bool] = Field(default=should_fall_back, exclude=True)

    @model_validator(mode="after")
    def _one_kwargs_per_model(self) -> FallbackChatModel:
        if self.member_kwargs and len(self.member_kwargs) != len(self.models):
            raise ValueError("member_kwargs must hold one dict per model")
        return self

    def __getattr__(self, name: str) -> Any:
        # Settings of the first model read through (``provider_name``, ``model_name``, ``temperature``...).
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            models = self.__dict__.get("models")
            if not models or name.startswith("_"):
                raise
            return getattr(models[0], name)

    def __repr__(self) -> str:
        return f"FallbackChatModel([{', '.join(self.labels)}])"

    @property
    def labels(self) -> list[str]:
        """``provider/alias`` of each model, in order."""
        return [member_label(model) for model in self.models]

    # --- what LangChain asks of a chat model -------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "modelforge-fallback"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"models": [dict(model._identifying_params) for model in self.models]}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return self.models[0]._get_ls_params(stop=stop, **kwargs)

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        # Only stream()/astream() stream. An invoke is never summed from a stream, where a restart would
        # repeat the discarded text (LangChain streams an invoke when a streaming callback is attached).
        if not kwargs.get("stream"):
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _should_use_protocol_streaming(self, **kwargs: Any) -> bool:
        return False

    # --- the calls ---------------------------------------------------------------------------------------

    def _attempts(self) -> FallbackAttempts:
        names = [member_provider(model) for model in self.models]
        breakers = breakers_of(names, enabled=self.use_circuit_breakers, registry=self.circuit_breakers)
        return FallbackAttempts(self.labels, breakers, self.should_fall_back)

    def _kwargs_for(self, index: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**self.member_kwargs[index], **kwargs} if self.member_kwargs else kwargs

    @staticmethod
    def _config(run_manager: Any) -> RunnableConfig | None:
        """Each model's call runs as a child of this model's run (tracing shows every attempt)."""
        if run_manager is None:
            return None
        child = CallbackManager(
            handlers=run_manager.inheritable_handlers,
            inheritable_handlers=run_manager.inheritable_handlers,
            parent_run_id=run_manager.run_id,
            tags=run_manager.inheritable_tags,
            inheritable_tags=run_manager.inheritable_tags,
            metadata=run_manager.inheritable_metadata,
            inheritable_metadata=run_manager.inheritable_metadata,
        )
        return {"callbacks": child}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        attempts = self._attempts()
        for index, model in enumerate(self.models):
            permit = attempts.admit(index)
            if permit is None:
                continue
            try:
                message = model.invoke(
                    messages, self._config(run_manager), stop=stop, **self._kwargs_for(index, kwargs)
                )
            except Exception as err:
                if attempts.failed(index, permit, err):
                    continue
                raise
            except BaseException:
                permit.release()
                raise
            permit.succeeded()
            return self._result(message, attempts, index)
        raise attempts.exhausted()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        attempts = self._attempts()
        for index, model in enumerate(self.models):
            permit = attempts.admit(index)
            if permit is None:
                continue
            try:
                message = await model.ainvoke(
                    messages, self._config(run_manager), stop=stop, **self._kwargs_for(index, kwargs)
                )
            except Exception as err:
                if attempts.failed(index, permit, err):
                    continue
                raise
            except BaseException:
                permit.release()
                raise
            permit.succeeded()
            return self._result(message, attempts, index)
        raise attempts.exhausted()

    @staticmethod
    def _result(message: BaseMessage, attempts: FallbackAttempts, index: int) -> ChatResult:
        if attempts.errors:
            message.response_metadata = {**message.response_metadata, FALLBACK_KEY: attempts.served_by(index)}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        attempts = self._attempts()
        relay = StreamRelay(restart_streams=self.restart_streams)
        labels = self.labels
        for index, model in enumerate(self.models):
            permit = attempts.admit(index)
            if permit is None:
                continue
            relay.start(labels[index])
            marker = _ServedBy(attempts, index)
            source = model.stream(
                messages, self._config(run_manager), stop=stop, **self._kwargs_for(index, kwargs)
            )
            try:
                for chunk in source:
                    for out in relay.accept(_as_chunk(chunk)):
                        yield ChatGenerationChunk(message=marker.mark(out))
                permit.succeeded()
                for out in relay.finish():
                    yield ChatGenerationChunk(message=marker.mark(out))
            except Exception as err:
                if not attempts.failed(index, permit, err):
                    raise
                if relay.may_move_on(labels[index], err, _next_label(labels, index)):
                    continue
                if relay.member_delivered and not self.restart_streams:
                    raise
                raise attempts.exhausted() from None
            finally:
                permit.release()  # no-op once a verdict was given: covers a consumer that stopped early
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            return
        raise attempts.exhausted()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        attempts = self._attempts()
        relay = StreamRelay(restart_streams=self.restart_streams)
        labels = self.labels
        for index, model in enumerate(self.models):
            permit = attempts.admit(index)
            if permit is None:
                continue
            relay.start(labels[index])
            marker = _ServedBy(attempts, index)
            source = model.astream(
                messages, self._config(run_manager), stop=stop, **self._kwargs_for(index, kwargs)
            )
            try:
                async for chunk in source:
                    for out in relay.accept(_as_chunk(chunk)):
                        yield ChatGenerationChunk(message=marker.mark(out))
                permit.succeeded()
                for out in relay.finish():
                    yield ChatGenerationChunk(message=marker.mark(out))
            except Exception as err:
                if not attempts.failed(index, permit, err):
                    raise
                if relay.may_move_on(labels[index], err, _next_label(labels, index)):
                    continue
                if relay.member_delivered and not self.restart_streams:
                    raise
                raise attempts.exhausted() from None
            finally:
                permit.release()
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        raise attempts.exhausted()

    # --- token counting: the first model's ---------------------------------------------------------------

    def get_token_ids(self, text: str) -> list[int]:
        return self.models[0].get_token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        return self.models[0].get_num_tokens(text)

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        return self.models[0].get_num_tokens_from_messages(messages, tools=tools)

    # --- tools and structured output keep the fallback ---------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Each model binds the tools its own way; the result is a ``FallbackChatModel`` again."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        built = [model.bind_tools(tools, **kwargs) for model in self.models]
        per_model = [
            _bound_kwargs(runnable, model) for runnable, model in zip(built, self.models, strict=True)
        ]
        if all(found is not None for found in per_model):
            merged = [
                {**(self.member_kwargs[index] if self.member_kwargs else {}), **(found or {})}
                for index, found in enumerate(per_model)
            ]
            return self.model_copy(update={"member_kwargs": merged})
        return self._runnable(built)

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Each model's own structured runnable (its best method), run as a ``FallbackRunnable``."""
        built = [
            model.with_structured_output(schema, include_raw=include_raw, **kwargs) for model in self.models
        ]
        return self._runnable(built)

    def _runnable(self, runnables: list[Runnable[Any, Any]]) -> FallbackRunnable:
        return FallbackRunnable(
            runnables=runnables,
            labels=self.labels,
            breaker_names=[member_provider(model) for model in self.models],
            use_circuit_breakers=self.use_circuit_breakers,
            circuit_breakers=self.circuit_breakers,
            should_fall_back=self.should_fall_back,
        )


def with_fallbacks_of(
    primary: BaseChatModel, fallbacks: Sequence[BaseChatModel], **settings: Any
) -> FallbackChatModel:
    """``primary`` with ``fallbacks`` tried in order after it; ``settings`` as for ``FallbackChatModel``."""
    return FallbackChatModel(models=[primary, *fallbacks], **settings)


class _ServedBy:
    """Puts ``FALLBACK_KEY`` on the first chunk a member delivers after others failed, as ``invoke`` does on
    its answer (observers see a stream that moved on before any text, which has no restart chunk)."""

    __slots__ = ("_attempts", "_done", "_index")

    def __init__(self, attempts: FallbackAttempts, index: int) -> None:
        self._attempts = attempts
        self._index = index
        self._done = not attempts.errors

    def mark(self, chunk: AIMessageChunk) -> AIMessageChunk:
        if self._done:
            return chunk
        self._done = True
        served = self._attempts.served_by(self._index)
        chunk.response_metadata = {**chunk.response_metadata, FALLBACK_KEY: served}
        return chunk


def _as_chunk(chunk: Any) -> AIMessageChunk:
    if isinstance(chunk, AIMessageChunk):
        return chunk
    return AIMessageChunk(content=getattr(chunk, "content", chunk))


def _next_label(labels: list[str], index: int) -> str | None:
    return labels[index + 1] if index + 1 < len(labels) else None


def _bound_kwargs(runnable: Any, model: BaseChatModel) -> dict[str, Any] | None:
    """The call arguments ``runnable`` adds to ``model`` when it is only bindings of it, else None."""
    found: dict[str, Any] = {}
    while isinstance(runnable, RunnableBinding):
        if runnable.config or runnable.config_factories:
            return None
        found = {**runnable.kwargs, **found}
        runnable = runnable.bound
    return found if runnable is model else None
