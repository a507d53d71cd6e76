"""Typed stream events, the same for every provider family.

``EventAssembler`` turns LangChain message chunks (whatever the provider: OpenAI-style tool-call argument
fragments, Anthropic content blocks, Ollama's and Gemini's whole tool calls, per-chunk or cumulative usage)
into one sequence of events::

    TextDelta*  (ToolCallDelta* ToolCallComplete)*  Usage?  StreamEnd        on success
    ...                                                     StreamError      on failure

A ``StreamRestart`` (a fallback model took over after text was delivered) voids what came before it; the
events after it are those of the new answer.

``finish_reason_of`` reads the provider's finish/stop reason from a chunk's ``response_metadata`` and
normalises it to ``stop``, ``tool_calls``, ``length`` or ``content_filter`` (others pass through
lower-cased); a stream whose chunks never carried one did not finish.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import UsageMetadata, add_usage

from modelforge._chunks import chunk_text, finish_reason_of, restart_of
from modelforge.catalog.prices import reported_model_id
from modelforge.exceptions import ModelForgeError, StreamInterruptedError

__all__ = [
    "EventAssembler",
    "StreamEnd",
    "StreamError",
    "StreamEvent",
    "StreamRestart",
    "TextDelta",
    "ToolCallComplete",
    "ToolCallDelta",
    "Usage",
    "chunk_text",
    "finish_reason_of",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call as it streams: ``arguments`` is a piece of its JSON text.

    ``index`` is the call's position among the answer's tool calls (0, 1, ...), the same as the
    ``ToolCallComplete`` it becomes, whatever the provider numbers it (Anthropic counts text blocks too).
    """

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallComplete:
    """A whole tool call, arguments parsed from the reassembled JSON; ``index``: its position (0, 1, ...)."""

    index: int
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider for the whole response."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The stream finished: why, what it said, what it cost (``cost`` is None when no price is known)."""

    finish_reason: str
    text: str
    tool_calls: tuple[ToolCallComplete, ...] = ()
    usage: Usage | None = None
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """The stream failed; ``partial_text`` is everything that arrived before."""

    error: Exception
    partial_text: str


@dataclass(frozen=True, slots=True)
class StreamRestart:
    """Text already delivered is void: the answer starts again (e.g. on a fallback provider)."""

    reason: str
    discarded_text: str


StreamEvent = TextDelta | ToolCallDelta | ToolCallComplete | Usage | StreamEnd | StreamError | StreamRestart


@dataclass
class _PendingCall:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


class EventAssembler:
    """Feeds on message chunks, returns the events each one completes; ``finish()`` ends the stream."""

    def __init__(self, *, provider: str | None = None) -> None:
        self.provider = provider
        self.text_parts: list[str] = []
        self.finish_reason: str | None = None
        self._calls: dict[object, _PendingCall] = {}  # by the provider's own index, in order of arrival
        self._input = self._output = self._total = 0
        self._saw_usage = False
        self.usage_metadata: UsageMetadata | None = None  # every chunk's, added up (with its token details)
        self.reported_model: str | None = None  # the model id the provider said answered

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def feed(self, chunk: AIMessageChunk) -> list[StreamEvent]:
        """The events carried by ``chunk`` (text and tool-call fragments; usage and the end are held)."""
        restart = restart_of(chunk)
        if restart is not None:  # a fallback model takes over: what was said so far is void
            discarded = self.text
            self.text_parts, self._calls, self.finish_reason = [], {}, None
            return [StreamRestart(str(restart.get("reason") or "the answer restarted"), discarded)]
        events: list[StreamEvent] = []
        text = chunk_text(chunk)
        if text:
            self.text_parts.append(text)
            events.append(TextDelta(text))
        for fragment in chunk.tool_call_chunks:
            events.append(self._fragment(fragment))
        usage = chunk.usage_metadata
        if usage:
            self._saw_usage = True
            self._input += int(usage.get("input_tokens") or 0)
            self._output += int(usage.get("output_tokens") or 0)
            self._total += int(usage.get("total_tokens") or 0)
            self.usage_metadata = add_usage(self.usage_metadata, usage)
        metadata = chunk.response_metadata
        if metadata:
            self.reported_model = reported_model_id(metadata) or self.reported_model
            reason = finish_reason_of(metadata)
            if reason is not None:
                self.finish_reason = reason
        return events

    def _fragment(self, fragment: Mapping[str, Any]) -> ToolCallDelta:
        """A fragment's delta; a provider index seen for the first time gets the next position (0, 1, ...)."""
        raw = fragment.get("index")
        key: object = object() if raw is None else int(raw)  # None: a whole call in one piece (Ollama)
        pending = self._calls.get(key)
        if pending is None:
            pending = self._calls[key] = _PendingCall(len(self._calls))
        pending.id = pending.id or fragment.get("id")
        pending.name = pending.name or fragment.get("name")
        arguments = fragment.get("args") or ""
        pending.arguments.append(arguments)
        return ToolCallDelta(pending.index, fragment.get("id"), fragment.get("name"), arguments)

    def tool_calls(self) -> list[ToolCallComplete]:
        """Every tool call so far, arguments parsed; ``StreamInterruptedError`` if one is not valid JSON."""
        calls: list[ToolCallComplete] = []
        for pending in self._calls.values():
            raw = "".join(pending.arguments).strip() or "{}"
            try:
                arguments = json.loads(raw)
            except json.JSONDecodeError as err:
                raise StreamInterruptedError(
                    self.provider,
                    self.text,
                    reason=f"the arguments of tool call '{pending.name}' are not valid JSON ({err.msg})",
                ) from None
            if not isinstance(arguments, dict):
                arguments = {"value": arguments}
            calls.append(
                ToolCallComplete(
                    index=pending.index,
                    id=pending.id or f"call_{pending.index}",
                    name=pending.name or "",
                    arguments=arguments,
                )
            )
        return calls

    def usage(self) -> Usage | None:
        if not self._saw_usage:
            return None
        return Usage(self._input, self._output, self._total or self._input + self._output)

    def finish(self, *, cost: float | None = None) -> list[StreamEvent]:
        """The closing events: completed tool calls, usage and ``StreamEnd``.

        The finish reason is ``"unknown"`` when no chunk carried one: a model that is not a ModelForge
        model may not report it (ModelForge models raise ``StreamInterruptedError`` for a cut stream).
        """
        calls = self.tool_calls()
        reason = self.finish_reason or "unknown"
        if calls and reason in ("stop", "unknown"):
            reason = "tool_calls"
        usage = self.usage()
        events: list[StreamEvent] = list(calls)
        if usage is not None:
            events.append(usage)
        events.append(StreamEnd(reason, self.text, tuple(calls), usage, cost))
        return events

    def error(self, err: Exception) -> StreamError:
        """The event for a failure, carrying the text so far (also set on the error when it has room)."""
        if isinstance(err, ModelForgeError) and hasattr(err, "partial_text") and not err.partial_text:
            err.partial_text = self.text
        return StreamError(err, self.text)
