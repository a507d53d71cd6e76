"""Observability of provider calls: events for your callbacks and logger, and OpenTelemetry spans.

::

    from modelforge.observability import observe

    def on_request(event): ...          # called for "request" events only (named on_<kind>)
    def on_response(event): ...
    llm = observe(llm, provider="openai", model="gpt-4o-mini", logger=my_logger,
                  callbacks=[on_request, on_response, print])   # print: every event

Every call of the returned model (``invoke``, ``ainvoke``, ``stream``, ``astream``, ``batch``, ``abatch``)
sends ``ProviderEvent``\\ s:

* ``request`` when the call starts (message count and options such as ``max_tokens``; never prompt text);
* ``retry`` before each retry ModelForge makes (its ``modelforge.retry`` callback event: attempt, wait,
  reason, HTTP status), also the retries of the members of a ``FallbackChatModel`` on ``invoke``;
* ``fallback`` when another model than the first answered (``served_by``, and who ``failed``), just before
  the response; for a stream that restarted on another model (the *restart chunk*) as soon as it restarts;
* ``cache_hit`` when the response cache answered (cost 0.0), just before the response;
* ``response`` with the duration, tokens (``None`` when the provider reported none) and the cost from the
  models.dev catalogue (``None`` when the price is unknown; priced for the model that answered);
* ``error`` when the call failed, after its retries and fallbacks.

**Streams** send the same events with ``streamed=True``. A stream the caller stops early (leaves the loop,
closes the generator, cancels the task) is not a provider failure: it ends with a ``response`` event whose
``details["aborted"]`` is True (tokens and cost are usually unknown then, the provider's usage comes last);
a stream that breaks sends ``error``. An ``async for`` left with ``break`` is closed only when the
generator is closed or garbage-collected (Python's rule), so its event may come late: close it
(``contextlib.aclosing``) to have it at once.

**Runs.** ``observe`` sets its handler as one of the model's own (*local*) callbacks, which LangChain does
not pass to child runs, so each call is counted once even when the model calls others (a
``FallbackChatModel``'s attempts are child runs). Those members get a small relay, so their retries still
reach the events. Known limits, from LangChain: ``stream`` gives the model no run manager, so retries made
before a stream's first chunk send no ``retry`` event (ModelForge still logs them). A stream that a
``FallbackChatModel`` moved to another model reports the fallback from the marker on the new model's first
chunk.

**Logger**: each event is one line on ``logger`` (request DEBUG; response, cache_hit INFO; retry, fallback
WARNING; error ERROR). **Tracing**: see ``modelforge.telemetry._otel`` (``tracing=None`` traces when
OpenTelemetry is installed; ``tracer_provider`` defaults to the global one). Dispatch rules and failing
callbacks: see ``modelforge.telemetry._events``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, LLMResult

from modelforge._chunks import FALLBACK_KEY, RESTART_KEY, RETRY_EVENT, finish_reason_of
from modelforge.catalog import Catalog
from modelforge.catalog.prices import price_counts
from modelforge.delegating import ModelChain
from modelforge.delegating import member_label as _member_label
from modelforge.exceptions import ModelForgeError
from modelforge.telemetry import TokenUsage, cache_served, usage_from_result
from modelforge.telemetry._events import (
    EVENT_KINDS,
    Dispatcher,
    EventKind,
    ProviderCallbacks,
    ProviderEvent,
    answer_metadata,
    describe_error,
    fallback_details,
    request_options,
    resolve_callbacks,
    started_by_stream,
)
from modelforge.telemetry._otel import (
    SpanRecorder,
    Target,
    make_span_recorder,
    response_attributes,
    semconv_provider,
    target_of,
)

__all__ = [
    "EVENT_KINDS",
    "EventKind",
    "ObservabilityHandler",
    "ProviderCallbacks",
    "ProviderEvent",
    "observe",
]

# A stream the caller stopped: the run ends with these "errors", which are not provider failures.
_STOPPED = (GeneratorExit, asyncio.CancelledError)


@dataclass
class _Run:
    run_id: str
    started: float
    streamed: bool
    request: dict[str, Any]
    span: Any = None
    first_token_ms: float | None = None
    fallback_sent: bool = False


class ObservabilityHandler(BaseCallbackHandler):
    """Turns the LangChain callback runs of one model into ``ProviderEvent``\\ s, log lines and spans.

    Attach it as the model's own callback (``observe`` does): a run started inside one of its runs (a child)
    is not counted again; only its retries are reported on the outer run.
    """

    run_inline = True  # cheap and non-blocking: runs in the caller's thread / event loop, in order

    def __init__(
        self,
        provider: str,
        model: str,
        *,
        callbacks: Any = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        tracing: bool | None = None,
        tracer_provider: Any = None,
        catalog: Catalog | None = None,
    ) -> None:
        super().__init__()
        self.provider = provider
        self.model = model
        self._dispatch = Dispatcher(resolve_callbacks(callbacks), logger)
        self._spans: SpanRecorder | None = make_span_recorder(tracing, tracer_provider)
        self._catalog = catalog
        self._span_name = f"chat {model}"
        self._span_base: dict[str, Any] = {}
        self._set_target(Target(semconv_provider(provider, None), None))
        self._members: dict[str, Target] = {}  # fallback member label -> what it is
        self._runs: dict[UUID, _Run] = {}
        self._children: dict[UUID, tuple[UUID, str | None]] = {}  # child run -> (outer run, member label)

    def learn(self, llm: BaseChatModel) -> None:
        """Read the provider family and server of ``llm`` (and of its fallback members) for the spans."""
        first = llm.models[0] if isinstance(llm, ModelChain) else llm
        self._set_target(target_of(self.provider, first))
        if isinstance(llm, ModelChain):
            for member in llm.models:
                label = _member_label(member)
                self._members[label] = target_of(label.split("/", 1)[0], member)

    def _set_target(self, target: Target) -> None:
        self._target = target
        if self._spans is not None:
            self._span_base = SpanRecorder.base_attributes(
                model=self.model, provider_name=target.system, provider=self.provider, server=target.server
            )

    # --- LangChain hooks ---------------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        invocation_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.adopt_child(run_id, parent_run_id, None):
            return
        run = _Run(str(run_id), time.perf_counter(), started_by_stream(), {})
        run.request = request_options(messages, invocation_params or {}, metadata or {})
        self._runs[run_id] = run
        if self._spans is not None:
            run.span = self._spans.start(self._span_name, self._span_base, run.request, run.streamed)
        self._emit("request", run, details=dict(run.request))

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        if run.first_token_ms is None:
            run.first_token_ms = (time.perf_counter() - run.started) * 1000
        metadata = getattr(getattr(chunk, "message", None), "response_metadata", None) or {}
        notice = metadata.get(RESTART_KEY) or metadata.get(FALLBACK_KEY)
        if isinstance(notice, Mapping) and not run.fallback_sent:
            self._fallback(run, fallback_details(notice, restarted=RESTART_KEY in metadata))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name != RETRY_EVENT or not isinstance(data, Mapping):
            return
        outer, member = (run_id, None) if run_id in self._runs else self._children.get(run_id, (None, None))
        run = self._runs.get(outer) if outer is not None else None
        if run is None or outer is None:
            return
        keys = ("attempt", "next_attempt", "wait_seconds", "reason", "status_code", "error_type", "operation")
        details: dict[str, Any] = {key: data.get(key) for key in keys}
        details["provider"] = data.get("provider")
        if member is not None:
            details["member"] = member
        if run.span is not None:
            SpanRecorder.add_event(run.span, "modelforge.retry", details)
        self._emit("retry", run, details=details)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        if self._children.pop(run_id, None) is not None:
            return
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        self._finish(run, response, aborted=False)

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, response: LLMResult | None = None, **kwargs: Any
    ) -> None:
        if self._children.pop(run_id, None) is not None:
            return
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        if isinstance(error, _STOPPED):  # the caller stopped the stream: not a provider failure
            self._finish(run, response or LLMResult(generations=[]), aborted=True)
            return
        duration = (time.perf_counter() - run.started) * 1000
        details: dict[str, Any] = {"error_type": type(error).__name__}
        if isinstance(error, ModelForgeError):
            details.update(error_code=error.error_code, status_code=error.status_code)
            if "attempts" in error.details:
                details["attempts"] = error.details["attempts"]
        if run.span is not None:
            SpanRecorder.fail(run.span, error, describe_error(error), {"modelforge.duration_ms": duration})
        self._emit("error", run, duration_ms=duration, error=error, details=details)

    # --- children (fallback members) ---------------------------------------------------------------------

    def adopt_child(self, run_id: UUID, parent_run_id: UUID | None, member: str | None) -> bool:
        """Record ``run_id`` as a child when its parent is one of our runs (or a child of one)."""
        if parent_run_id is None:
            return False
        if parent_run_id in self._runs:
            self._children[run_id] = (parent_run_id, member)
            return True
        if parent_run_id in self._children:
            self._children[run_id] = (self._children[parent_run_id][0], member)
            return True
        return False

    def forget_child(self, run_id: UUID) -> None:
        self._children.pop(run_id, None)

    # --- events ------------------------------------------------------------------------------------------

    def _finish(self, run: _Run, response: LLMResult, *, aborted: bool) -> None:
        duration = (time.perf_counter() - run.started) * 1000
        metadata, message_id = answer_metadata(response)
        streamed = run.streamed or any(
            isinstance(g, ChatGenerationChunk) for gens in response.generations for g in gens
        )
        notice = metadata.get(FALLBACK_KEY) or metadata.get(RESTART_KEY)
        if isinstance(notice, Mapping) and not run.fallback_sent:
            self._fallback(run, fallback_details(notice, restarted=FALLBACK_KEY not in metadata))
        usage, actual_model = usage_from_result(response)
        served_by = notice.get("provider") if isinstance(notice, Mapping) else None
        cache = cache_served(response)
        cost = 0.0 if cache is not None else self._cost(usage, actual_model, served_by)
        measures: dict[str, Any] = {
            "duration_ms": duration,
            "input_tokens": usage.prompt_tokens if usage else None,
            "output_tokens": usage.completion_tokens if usage else None,
            "cache_read_tokens": usage.cache_read_tokens if usage else None,
            "cost": cost,
        }
        details: dict[str, Any] = {"finish_reason": finish_reason_of(metadata)}
        if actual_model:
            details["response_model"] = actual_model
        if run.first_token_ms is not None and streamed:
            details["time_to_first_token_ms"] = round(run.first_token_ms, 1)
        if served_by:
            details["served_by"] = served_by
        if aborted:
            details["aborted"] = True
        if cache is not None:
            details["cache"] = cache
            self._emit("cache_hit", run, streamed=streamed, details={"cache": cache}, **measures)
        if run.span is not None:
            answered_by = self._members.get(served_by) if served_by else None
            attributes = response_attributes(
                metadata, message_id, actual_model, measures, details, answered_by
            )
            SpanRecorder.succeed(run.span, attributes)
        self._emit("response", run, streamed=streamed, details=details, **measures)

    def _fallback(self, run: _Run, details: dict[str, Any]) -> None:
        run.fallback_sent = True
        if run.span is not None:
            failed = [f"{item.get('provider')}: {item.get('error')}" for item in details["failed"]]
            attributes = {"served_by": details.get("served_by"), "failed": failed}
            SpanRecorder.add_event(run.span, "modelforge.fallback", attributes)
        self._emit("fallback", run, details=details)

    def _cost(self, usage: TokenUsage | None, actual_model: str | None, served_by: Any) -> float | None:
        if usage is None:
            return None
        provider, model = self.provider, self.model
        if isinstance(served_by, str) and served_by:  # priced as the model that answered
            provider, _, alias = served_by.partition("/")
            model = alias or actual_model or model
        return price_counts(provider, model, usage, actual_model, self._catalog)

    def _emit(self, kind: EventKind, run: _Run, **fields: Any) -> None:
        fields.setdefault("streamed", run.streamed)
        event = ProviderEvent(
            kind=kind,
            provider=self.provider,
            model=self.model,
            run_id=run.run_id,
            timestamp=time.time(),
            **fields,
        )
        self._dispatch.emit(event)


class _MemberRelay(BaseCallbackHandler):
    """On a fallback member: links its runs to the outer run, so the member's retries are reported."""

    run_inline = True

    def __init__(self, owner: ObservabilityHandler, label: str) -> None:
        super().__init__()
        self.owner = owner
        self.label = label

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.owner.adopt_child(run_id, parent_run_id, self.label)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.owner.on_custom_event(name, data, run_id=run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.owner.forget_child(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.owner.forget_child(run_id)


def _with_handler(existing: Any, handler: BaseCallbackHandler) -> Any:
    """The model's callbacks plus ``handler`` as a local (non-inherited) one."""
    if existing is None:
        return [handler]
    if isinstance(existing, BaseCallbackManager):
        manager = existing.copy()
        manager.add_handler(handler, inherit=False)
        return manager
    return [*existing, handler]


def observe(
    llm: BaseChatModel,
    *,
    provider: str,
    model: str,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    callbacks: Any = None,
    tracing: bool | None = None,
    tracer_provider: Any = None,
) -> BaseChatModel:
    """A copy of ``llm`` whose calls send ``ProviderEvent``\\ s to ``callbacks`` and ``logger`` and, when
    tracing, OpenTelemetry spans (see the module docstring). The model's own callbacks are kept.

    Raises ``InvalidInputError`` for callbacks that cannot be used, and ``ConfigurationError`` for
    ``tracing=True`` without OpenTelemetry installed.
    """
    handler = ObservabilityHandler(
        provider,
        model,
        callbacks=callbacks,
        logger=logger,
        tracing=tracing,
        tracer_provider=tracer_provider,
    )
    handler.learn(llm)
    update: dict[str, Any] = {"callbacks": _with_handler(llm.callbacks, handler)}
    if isinstance(llm, ModelChain):  # copies of the members, so the originals are left alone
        update["models"] = [
            member.model_copy(
                update={
                    "callbacks": _with_handler(member.callbacks, _MemberRelay(handler, _member_label(member)))
                }
            )
            for member in llm.models
        ]
    return llm.model_copy(update=update)
