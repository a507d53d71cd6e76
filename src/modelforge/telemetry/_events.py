"""The events of provider calls and how they reach a user's callbacks and logger.

``ProviderEvent`` is what every callback receives (see ``modelforge.telemetry.observability`` for when
each kind is sent). ``resolve_callbacks`` turns what a user passed as ``callbacks=`` into listeners once,
up front, so bad input fails at once with ``InvalidInputError``:

* an object with ``on_<kind>`` methods (a ``ProviderCallbacks``, or any object) gets the matching method;
* a plain function or method named ``on_<kind>`` (``def on_request(event)``) gets that kind only;
* any other callable gets every event;
* a mapping ``{"request": fn, "error": fn}`` gets the kinds it names.

``Dispatcher.emit`` logs the event on the user's logger (if any) and calls each listener. A listener that
raises never breaks the model call: a WARNING names it and the exception. A coroutine function's coroutine is
scheduled on the running event loop (async calls), or run to completion when the thread has none.

The helpers ``request_options``, ``answer_metadata``, ``fallback_details`` and ``started_by_stream`` read
what the events say from LangChain's callback arguments (never message content).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal, get_args

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from modelforge._secrets import mask_secrets
from modelforge.exceptions import InvalidInputError, ModelForgeError

__all__ = [
    "EVENT_KINDS",
    "Dispatcher",
    "EventKind",
    "Listener",
    "ProviderCallbacks",
    "ProviderEvent",
    "answer_metadata",
    "describe_error",
    "fallback_details",
    "request_options",
    "resolve_callbacks",
    "started_by_stream",
]

logger = logging.getLogger("modelforge.observability")

EventKind = Literal["request", "response", "error", "retry", "fallback", "cache_hit"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)

# The level each kind is logged at on the user's logger.
_LEVELS: dict[str, int] = {
    "request": logging.DEBUG,
    "response": logging.INFO,
    "cache_hit": logging.INFO,
    "retry": logging.WARNING,
    "fallback": logging.WARNING,
    "error": logging.ERROR,
}


def describe_error(error: BaseException) -> str:
    """``Type: message`` for logs and events; the message is masked and, for non-ModelForge errors, cut."""
    text = str(error)
    if not isinstance(error, ModelForgeError):  # an SDK's message: its first line, cut short
        text = text.splitlines()[0] if text else ""
        text = text[:157] + "..." if len(text) > 160 else text
    text = mask_secrets(text)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True)
class ProviderEvent:
    """One thing that happened in a provider call (no prompt text, no secrets).

    ``cost`` is in USD from the models.dev catalogue; ``None`` when the price (or the token count) is
    unknown, ``0.0`` for local models and cache hits. ``details`` depends on the kind: request (message
    count, options such as ``max_tokens``), retry (``attempt``, ``wait_seconds``, ``reason``,
    ``status_code``), fallback (``failed``, ``served_by``), response (``finish_reason``, ``aborted``...).
    """

    kind: EventKind
    provider: str
    model: str
    run_id: str
    timestamp: float
    duration_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cost: float | None = None
    streamed: bool = False
    error: BaseException | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        head = f"{self.kind} {self.provider}/{self.model}"
        body = _BODIES[self.kind](self)
        return f"{head}: {body} [run {self.run_id[-8:]}]" if body else f"{head} [run {self.run_id[-8:]}]"


def _measures(event: ProviderEvent) -> str:
    parts: list[str] = []
    if event.duration_ms is not None:
        parts.append(f"{event.duration_ms:.0f} ms")
    if event.input_tokens is not None or event.output_tokens is not None:
        tokens = f"{event.input_tokens or 0} in / {event.output_tokens or 0} out tokens"
        if event.cache_read_tokens:
            tokens += f" ({event.cache_read_tokens} cached)"
        parts.append(tokens)
    parts.append("cost unknown" if event.cost is None else f"${event.cost:.6f}")
    if event.streamed:
        parts.append("streamed")
    return ", ".join(parts)


def _request_body(event: ProviderEvent) -> str:
    options = ", ".join(f"{k}={v}" for k, v in event.details.items() if k != "messages")
    count = event.details.get("messages")
    text = f"{count} message{'s' if count != 1 else ''}" if count is not None else "call"
    text += f" ({options})" if options else ""
    return text + (", streamed" if event.streamed else "")


def _response_body(event: ProviderEvent) -> str:
    text = _measures(event)
    if event.details.get("aborted"):
        text += ", stopped early by the caller"
    if event.details.get("served_by"):
        text += f", answered by {event.details['served_by']}"
    if event.details.get("cache"):
        text += f", from the response cache ({event.details['cache']})"
    return text


def _error_body(event: ProviderEvent) -> str:
    took = f"after {event.duration_ms:.0f} ms: " if event.duration_ms is not None else ""
    what = describe_error(event.error) if event.error is not None else "failed"
    return took + what + (" (streamed)" if event.streamed else "")


def _retry_body(event: ProviderEvent) -> str:
    d = event.details
    cause = f"HTTP {d['status_code']}" if d.get("status_code") else d.get("error_type") or "a failure"
    who = f" of {d['member']}" if d.get("member") else ""
    return (
        f"attempt {d.get('next_attempt', '?')}{who} in {float(d.get('wait_seconds') or 0):.2f}s "
        f"after {cause} ({d.get('reason', 'retry')})"
    )


def _fallback_body(event: ProviderEvent) -> str:
    d = event.details
    failed = ", ".join(f"{f.get('provider')} ({f.get('error')})" for f in d.get("failed") or []) or "?"
    restart = " after its answer had started" if d.get("restarted") else ""
    return f"{failed} failed{restart}; {d.get('served_by', '?')} answered"


def _cache_body(event: ProviderEvent) -> str:
    return f"served from the response cache ({event.details.get('cache', 'hit')}), " + _measures(event)


_BODIES: dict[str, Callable[[ProviderEvent], str]] = {
    "request": _request_body,
    "response": _response_body,
    "error": _error_body,
    "retry": _retry_body,
    "fallback": _fallback_body,
    "cache_hit": _cache_body,
}


def request_options(
    messages: list[list[BaseMessage]], params: Mapping[str, Any], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """Request details: message count and sampling options of a call (never content)."""
    options: dict[str, Any] = {"messages": sum(len(batch) for batch in messages)}
    max_tokens = next(
        (
            params[name]
            for name in ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict")
            if params.get(name) is not None
        ),
        metadata.get("ls_max_tokens"),
    )
    found = {
        "max_tokens": max_tokens,
        "temperature": params.get("temperature", metadata.get("ls_temperature")),
        "top_p": params.get("top_p"),
        "top_k": params.get("top_k"),
    }
    options.update({key: value for key, value in found.items() if isinstance(value, int | float)})
    tools = params.get("tools")
    if isinstance(tools, list) and tools:
        options["tools"] = len(tools)
    return options


def fallback_details(info: Mapping[str, Any], *, restarted: bool) -> dict[str, Any]:
    """Fallback details from an answer's ``modelforge_fallback`` or a restart chunk's notice."""
    if restarted:  # the restart chunk's notice
        failed = [{"provider": info.get("failed"), "error": info.get("error_type")}]
        return {"served_by": info.get("provider"), "failed": failed, "restarted": True}
    failed = [dict(item) for item in info.get("failed") or [] if isinstance(item, Mapping)]
    return {"served_by": info.get("provider"), "failed": failed, "index": info.get("index")}


# The frames of LangChain's ``stream`` / ``astream``: a run started from one of them is a streamed call.
_STREAM_CODES = frozenset({BaseChatModel.stream.__code__, BaseChatModel.astream.__code__})


def started_by_stream() -> bool:
    """Whether the current callback runs inside ``BaseChatModel.stream`` / ``astream`` (a few frames up)."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(5):  # handler <- handle_event (<- its async helper) <- manager <- stream / generate
        if frame is None:
            return False
        if frame.f_code in _STREAM_CODES:
            return True
        frame = frame.f_back
    return False


def answer_metadata(response: LLMResult) -> tuple[dict[str, Any], str | None]:
    """The answer's merged ``response_metadata`` and its message id."""
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                message = generation.message
                message_id = message.id if message.id and not message.id.startswith("lc_") else None
                return dict(message.response_metadata or {}), message_id
    return {}, None


class ProviderCallbacks:
    """Subclass and override the kinds you want; every method does nothing by default."""

    def on_request(self, event: ProviderEvent) -> Any:
        """A call is about to be sent."""

    def on_response(self, event: ProviderEvent) -> Any:
        """A call answered (also after a fallback or from the cache)."""

    def on_error(self, event: ProviderEvent) -> Any:
        """A call failed (after its retries and fallbacks)."""

    def on_retry(self, event: ProviderEvent) -> Any:
        """A failed attempt is about to be tried again."""

    def on_fallback(self, event: ProviderEvent) -> Any:
        """Another model answered after the first one(s) failed."""

    def on_cache_hit(self, event: ProviderEvent) -> Any:
        """The response cache answered; no provider request was made."""


@dataclass(frozen=True)
class Listener:
    """One user callback and the kinds it is called for (None: every kind)."""

    fn: Callable[[ProviderEvent], Any]
    kinds: frozenset[str] | None
    name: str


def _name_of(fn: Any) -> str:
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(qualname) if qualname else type(fn).__name__


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(
        message,
        suggestion=(
            f"Pass callables, objects with on_<kind> methods (ProviderCallbacks), or a mapping of kinds to "
            f"callables; the kinds are: {', '.join(EVENT_KINDS)}"
        ),
        details={"accepted_kinds": list(EVENT_KINDS)},
    )


def _listeners_of(item: Any) -> list[Listener]:
    if isinstance(item, Mapping):
        found: list[Listener] = []
        for kind, fn in item.items():
            if kind not in EVENT_KINDS:
                raise _bad(f"Unknown observability event kind {kind!r} in the callbacks mapping")
            if not callable(fn):
                raise _bad(f"The callback for {kind!r} is not callable ({type(fn).__name__})")
            found.append(Listener(fn, frozenset({kind}), _name_of(fn)))
        return found
    if isinstance(item, type):
        raise _bad(f"Got the class {item.__name__} as a callback; pass an instance of it")
    if not (inspect.isfunction(item) or inspect.ismethod(item) or inspect.isbuiltin(item)):
        methods = [
            Listener(method, frozenset({kind}), _name_of(method))
            for kind in EVENT_KINDS
            if callable(method := getattr(item, f"on_{kind}", None))
        ]
        if methods:
            return methods
    if not callable(item):
        raise _bad(f"A callback must be callable; got {type(item).__name__}")
    name = getattr(item, "__name__", "")
    kind = name[3:] if isinstance(name, str) and name.startswith("on_") else None
    if kind in EVENT_KINDS:
        return [Listener(item, frozenset({kind}), _name_of(item))]
    return [Listener(item, None, _name_of(item))]


def resolve_callbacks(callbacks: Any) -> list[Listener]:
    """The listeners for ``callbacks`` (None, one callback / object / mapping, or a list of them)."""
    if callbacks is None:
        return []
    items: Iterable[Any]
    if isinstance(callbacks, Mapping) or callable(callbacks) or not isinstance(callbacks, Iterable):
        items = [callbacks]
    elif isinstance(callbacks, str | bytes):
        raise _bad(f"callbacks must be a list of callables; got the string {callbacks!r}")
    else:
        items = list(callbacks)
    return [listener for item in items for listener in _listeners_of(item)]


_pending: set[asyncio.Future[Any]] = set()


class Dispatcher:
    """Delivers events to the listeners and the user's logger."""

    __slots__ = ("listeners", "log")

    def __init__(self, listeners: list[Listener], log: logging.Logger | logging.LoggerAdapter[Any] | None):
        self.listeners = listeners
        self.log = log

    def emit(self, event: ProviderEvent) -> None:
        if self.log is not None:
            try:
                _log_event(self.log, event)
            except Exception as err:  # a broken user handler must not break the call
                logger.warning("Logging a %s event failed: %s", event.kind, describe_error(err))
        for listener in self.listeners:
            if listener.kinds is None or event.kind in listener.kinds:
                self._call(listener, event)

    def _call(self, listener: Listener, event: ProviderEvent) -> None:
        try:
            result = listener.fn(event)
        except Exception as err:
            _warn(listener, err)
            return
        if inspect.iscoroutine(result):
            _schedule(listener, result)


def _log_event(log: logging.Logger | logging.LoggerAdapter[Any], event: ProviderEvent) -> None:
    """``log.log(level, "%s", event)``; for a plain ``logging.Logger``, without its search of the stack.

    That search (about a third of a log call's cost) would only find this module, the same for every
    event, so the record names this function directly; the message is still formatted only if a handler
    formats it. Adapters, ``Logger`` subclasses (which may override ``log`` or ``_log``) and other
    logger-like objects are called as they expect.
    """
    level = _LEVELS[event.kind]
    if type(log) not in _PLAIN_LOGGERS:
        log.log(level, "%s", event)
    elif log.isEnabledFor(level):
        assert isinstance(log, logging.Logger)
        log.handle(log.makeRecord(log.name, level, _SOURCE, _LOG_LINE, "%s", (event,), None, "_log_event"))


def _warn(listener: Listener, err: BaseException) -> None:
    logger.warning("Observability callback %s raised %s; ignored", listener.name, describe_error(err))


async def _guarded(listener: Listener, coro: Coroutine[Any, Any, Any]) -> None:
    try:
        await coro
    except Exception as err:
        _warn(listener, err)


def _schedule(listener: Listener, coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine callback: as a task of the running loop, else to completion here."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_guarded(listener, coro))
        return
    task = loop.create_task(_guarded(listener, coro))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


# Loggers whose records _log_event may build itself, and where those records say they came from.
_PLAIN_LOGGERS = (logging.Logger, logging.RootLogger)
_SOURCE, _LOG_LINE = _log_event.__code__.co_filename, _log_event.__code__.co_firstlineno
