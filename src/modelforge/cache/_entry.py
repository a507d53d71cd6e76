"""Cache entries: a whole answer (``ChatResult``) or a stream's chunks, as JSON bytes and back.

An entry is one JSON document::

    {"v": 1, "kind": "result" | "stream", "created": t, "expires_at": t, "keep_until": t,
     "generations": [{"message": <message_to_dict>, "info": {...}}, ...],  "llm_output": {...}}   # result
     "chunks":      [{"message": <message_to_dict of an AIMessageChunk>, "info": {...}}, ...]      # stream

Messages go through ``langchain_core.messages.message_to_dict`` / ``messages_from_dict``, which keep
``AIMessageChunk`` tool-call chunks, usage and metadata, so a stream replays with its original chunk
boundaries. Message ids are dropped (LangChain gives each replayed answer the id of its own run) and so are
HTTP response headers. An entry stored from a stream can answer an invoke (its chunks merged) and an entry
stored from an invoke can answer a stream (as one chunk).

Only complete answers are stored (``ending_of`` / ``result_ending``): those whose provider finish reason is a
normal ending (OpenAI ``stop`` / ``tool_calls`` / ``function_call``, Anthropic ``end_turn`` / ``tool_use`` /
``stop_sequence``, Gemini ``STOP``, Ollama ``stop`` or ``done`` without a reason). A truncated (``length``,
``max_tokens``), filtered (``content_filter``, ``SAFETY``), paused or unknown ending is returned to the
caller but never stored.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models.chat_models import _gen_info_and_msg_metadata
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    message_chunk_to_message,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel

from modelforge._chunks import CACHE_MARKER

__all__ = [
    "MARKER",
    "CachedAnswer",
    "chunk_record",
    "decode",
    "encode_chunks",
    "encode_result",
    "is_complete",
    "result_ending",
    "stream_ending",
]

# response_metadata key that says an answer came from the cache: "hit" or "stale".
MARKER = CACHE_MARKER
_FORMAT = 1
_DROPPED_METADATA = ("headers", MARKER)
# Provider finish reasons (lower-cased) that mean the answer is whole.
_COMPLETE = frozenset({"stop", "tool_calls", "function_call", "end_turn", "tool_use", "stop_sequence"})
_FINISH_KEYS = ("finish_reason", "stop_reason", "done_reason")


def _jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for the odd non-JSON value an SDK puts in metadata."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _message_record(message: BaseMessage) -> dict[str, Any]:
    record = message_to_dict(message)
    data = record["data"]
    data["id"] = None
    metadata = data.get("response_metadata")
    if isinstance(metadata, dict) and any(key in metadata for key in _DROPPED_METADATA):
        data["response_metadata"] = {k: v for k, v in metadata.items() if k not in _DROPPED_METADATA}
    return record


def chunk_record(chunk: ChatGenerationChunk) -> dict[str, Any]:
    """One streamed chunk as plain data (taken as it passes: LangChain mutates chunks after)."""
    info = chunk.generation_info
    return {"message": _message_record(chunk.message), "info": dict(info) if info else None}


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=_jsonable).encode("utf-8")


def encode_result(result: ChatResult, *, created: float, expires_at: float, keep_until: float) -> bytes:
    """A whole answer as entry bytes."""
    generations = [
        {"message": _message_record(g.message), "info": dict(g.generation_info or {}) or None}
        for g in result.generations
    ]
    return _dumps(
        {
            "v": _FORMAT,
            "kind": "result",
            "created": created,
            "expires_at": expires_at,
            "keep_until": keep_until,
            "generations": generations,
            "llm_output": result.llm_output,
        }
    )


def encode_chunks(
    records: Sequence[dict[str, Any]], *, created: float, expires_at: float, keep_until: float
) -> bytes:
    """A whole stream (``chunk_record`` of each chunk) as entry bytes."""
    return _dumps(
        {
            "v": _FORMAT,
            "kind": "stream",
            "created": created,
            "expires_at": expires_at,
            "keep_until": keep_until,
            "chunks": list(records),
        }
    )


def ending_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The provider's own finish reason in generation info or response metadata (lower-cased), or None."""
    if not metadata:
        return None
    for key in _FINISH_KEYS:
        value = metadata.get(key)
        if isinstance(value, enum.Enum):
            value = value.name
        if isinstance(value, str) and value:
            return value.lower()
    if metadata.get("done") is True:  # Ollama's last line without a done_reason
        return "stop"
    status = metadata.get("status")  # OpenAI's Responses API: "completed", or "incomplete" (cut short)
    if status == "completed":
        return "stop"
    if status == "incomplete":
        return "length"
    return None


def is_complete(ending: str | None) -> bool:
    """Whether a finish reason is a normal ending (not truncated, filtered, paused or missing)."""
    return ending in _COMPLETE


def stream_ending(records: Sequence[dict[str, Any]]) -> str | None:
    """The finish reason a recorded stream ended with, or None (a stream cut short carried none)."""
    for record in reversed(records):
        metadata = record["message"]["data"].get("response_metadata")
        ending = ending_of(record.get("info")) or ending_of(metadata)
        if ending is not None:
            return ending
    return None


def result_ending(result: ChatResult) -> str | None:
    """The finish reason of a whole answer: the first that is not a normal ending, else the last one
    (None when a generation carried none). Some providers (Anthropic) report it in ``llm_output``."""
    ending: str | None = None
    for generation in result.generations:
        ending = (
            ending_of(generation.generation_info)
            or ending_of(generation.message.response_metadata)
            or ending_of(result.llm_output)
        )
        if not is_complete(ending):
            return ending
    return ending


def _marked(message: BaseMessage, marker: str) -> None:
    message.response_metadata = {**(message.response_metadata or {}), MARKER: marker}


@dataclass(frozen=True)
class CachedAnswer:
    """A decoded entry: its kind, times, and the records it rebuilds messages from.

    The messages are built from the records once and handed out as copies (each answer served has message
    objects and metadata of its own, as a fresh ``messages_from_dict`` would give), so an entry that answers
    again and again (``ResponseCache`` keeps decoded entries) does not parse its records every time.
    """

    kind: Literal["result", "stream"]
    created: float
    expires_at: float
    keep_until: float
    records: list[dict[str, Any]]
    llm_output: dict[str, Any] | None = None
    # Built on first use: the records' messages, and what the metrics priced this answer at.
    _built: dict[int, BaseMessage] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    _prices: dict[tuple[str, str], Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    _results: dict[str, bytes] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def priced(self, key: tuple[str, str], price: Any) -> Any:
        """``price()``, remembered under ``key`` (provider, model) for this entry."""
        if key not in self._prices:
            self._prices[key] = price()
        return self._prices[key]

    def _message(self, index: int) -> BaseMessage:
        template = self._built.get(index)
        if template is None:
            template = self._built[index] = _message(self.records[index])
        return _copy(template)

    def fresh(self, now: float) -> bool:
        return now < self.expires_at

    def kept(self, now: float) -> bool:
        return now < self.keep_until

    def result(self, marker: str) -> ChatResult:
        """The answer as an invoke returns it, marked ``response_metadata[MARKER] = marker``: a copy of its
        own each time (built once, then cloned through pickle, faster than building it again; the bytes are
        this process's own, never read from a backend)."""
        blob = self._results.get(marker)
        if blob is None:
            blob = pickle.dumps(self._result(marker), protocol=pickle.HIGHEST_PROTOCOL)
            self._results[marker] = blob
        answer: ChatResult = pickle.loads(blob)
        return answer

    def _result(self, marker: str) -> ChatResult:
        if self.kind == "result":
            generations = [
                ChatGeneration(message=self._message(index), generation_info=_deep(record.get("info")))
                for index, record in enumerate(self.records)
            ]
            result = ChatResult(generations=generations, llm_output=_deep(self.llm_output))
        else:
            merged: ChatGenerationChunk | None = None
            for chunk in self._chunks():
                # As LangChain does for a streamed invoke: each chunk's info joins its message's metadata.
                metadata = chunk.message.response_metadata
                chunk.message.response_metadata = {**(chunk.generation_info or {}), **metadata}
                merged = chunk if merged is None else merged + chunk
            if merged is None:
                message: BaseMessage = AIMessage(content="")
                info = None
            else:
                message = message_chunk_to_message(merged.message)
                info = merged.generation_info
            result = ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])
        # As LangChain hands an answer back: each generation's info in its message's metadata, and the
        # llm_output too for a single answer (done here, once per entry).
        for generation in result.generations:
            generation.message.response_metadata = _gen_info_and_msg_metadata(generation)
            _marked(generation.message, marker)
        if len(result.generations) == 1 and result.llm_output:
            only = result.generations[0].message
            only.response_metadata = {**result.llm_output, **only.response_metadata}
        return result

    def chunks(self, marker: str) -> list[ChatGenerationChunk] | None:
        """The answer as a stream replays it (the first chunk marked), or None if it cannot stream (n > 1)."""
        if self.kind == "stream":
            chunks = self._chunks()
        elif len(self.records) == 1:
            info = _deep(self.records[0].get("info"))
            chunks = [ChatGenerationChunk(message=_to_chunk(self._message(0)), generation_info=info)]
        else:
            return None
        if chunks:
            _marked(chunks[0].message, marker)
        return chunks

    def _chunks(self) -> list[ChatGenerationChunk]:
        return [
            ChatGenerationChunk(
                message=_as_chunk_message(self._message(index)), generation_info=_deep(record.get("info"))
            )
            for index, record in enumerate(self.records)
        ]


def _message(record: Mapping[str, Any]) -> BaseMessage:
    return messages_from_dict([dict(record["message"])])[0]


def _copy(message: BaseMessage) -> BaseMessage:
    """A copy of ``message`` whose containers (metadata, kwargs, tool calls and their arguments, usage) are
    its own, all the way down: what one caller does to its answer never shows in the next."""
    copied = message.model_copy()
    state = copied.__dict__
    for name, value in message.__dict__.items():
        if isinstance(value, dict | list):
            state[name] = _deep(value)
    return copied


def _deep(value: Any) -> Any:
    """A copy of plain data (dicts and lists all the way down; other values are immutable here)."""
    if isinstance(value, dict):
        return {key: _deep(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep(item) for item in value]
    return value


def _as_chunk_message(message: BaseMessage) -> AIMessageChunk:
    if isinstance(message, AIMessageChunk):
        return message
    return _to_chunk(message)


def _to_chunk(message: BaseMessage) -> AIMessageChunk:
    """A whole answer as the single chunk a stream of it would have been."""
    tool_calls = getattr(message, "tool_calls", None) or []
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=dict(message.additional_kwargs),
        response_metadata=dict(message.response_metadata),
        usage_metadata=getattr(message, "usage_metadata", None),
        name=message.name,
        tool_call_chunks=[
            {
                "name": call["name"],
                "args": json.dumps(call.get("args") or {}),
                "id": call.get("id"),
                "index": index,
                "type": "tool_call_chunk",
            }
            for index, call in enumerate(tool_calls)
        ],
    )


def decode(data: bytes) -> CachedAnswer | None:
    """The entry in ``data``, or None if it is not one this version can read (treated as a miss)."""
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("v") != _FORMAT:
            return None
        kind = document["kind"]
        records = document["generations"] if kind == "result" else document["chunks"]
        if kind not in ("result", "stream") or not isinstance(records, list):
            return None
        return CachedAnswer(
            kind=kind,
            created=float(document["created"]),
            expires_at=float(document["expires_at"]),
            keep_until=float(document["keep_until"]),
            records=records,
            llm_output=document.get("llm_output") if kind == "result" else None,
        )
    except (ValueError, KeyError, TypeError):
        return None
