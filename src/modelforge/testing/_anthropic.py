"""Anthropic Messages wire format (``POST /v1/messages``).

Non-streamed: a ``message`` object with ``text`` / ``tool_use`` content blocks. Streamed: SSE ``event:`` +
``data:`` pairs — ``message_start`` (with ``usage.input_tokens``), ``content_block_start`` / ``ping`` (after
the first block's start, as recorded from the API) / ``content_block_delta`` (``text_delta``,
``input_json_delta`` fragments) / ``content_block_stop`` per block,
``message_delta`` (``stop_reason``; ``usage`` with ``output_tokens`` and, as the API now sends, the
``input_tokens``) and ``message_stop``. Errors are ``{"type": "error", "error": {"type", "message"}}``;
529 is ``overloaded_error``.

Prompt caching: blocks carrying ``cache_control`` (tools, then system, then messages, in that order) are
breakpoints; when the request is answered, ``ProviderCaches.anthropic_use`` reads the longest cached prefix
and writes the longer ones, and the usage (JSON answer, and both ``message_start`` and ``message_delta``
when streamed) reports ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` with
``input_tokens`` only the rest. More than four breakpoints is refused with 400, as the API does. (The real
API also sends ``usage.cache_creation.ephemeral_5m_input_tokens``; it is left out here.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelforge.testing._caches import (
    ANTHROPIC_LONG_TTL_SECONDS,
    ANTHROPIC_TTL_SECONDS,
    CacheBreakpoint,
    ProviderCaches,
)
from modelforge.testing._chat import ChatProtocol, ChatRequest, WireError
from modelforge.testing._common import collect_text, dumps, estimate_tokens, new_id, split_fragments
from modelforge.testing._http import Exchange
from modelforge.testing.script import Reply, Usage

__all__ = ["AnthropicChatRequest", "AnthropicProtocol", "cache_breakpoints", "models_list"]

MAX_BREAKPOINTS = 4

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def models_list(names: list[str]) -> bytes:
    """``GET /v1/models`` body in Anthropic's shape."""
    data = [
        {"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"} for n in names
    ]
    return dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def _blocks(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every cacheable block of a request in the API's prefix order: tools, system, then messages."""
    tools = data.get("tools") or []
    found: list[tuple[str, Any]] = [("tool", tool) for tool in tools if isinstance(tool, dict)]
    system = data.get("system")
    if isinstance(system, str) and system:
        found.append(("system", {"type": "text", "text": system}))
    elif isinstance(system, list):
        found.extend(("system", block) for block in system)
    for message in data.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role"))
        content = message.get("content")
        if isinstance(content, str):
            found.append((role, {"type": "text", "text": content}))
        elif isinstance(content, list):
            found.extend((role, block) for block in content)
    return found


def cache_breakpoints(model: str, data: dict[str, Any]) -> list[CacheBreakpoint]:
    """The ``cache_control`` breakpoints of a request: each the hash and token count of its prefix."""
    digest = hashlib.sha256(model.encode())
    tokens = 0
    points: list[CacheBreakpoint] = []
    for where, block in _blocks(data):
        control = block.get("cache_control") if isinstance(block, dict) else None
        plain = {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
        digest.update(json.dumps([where, plain], sort_keys=True, default=str).encode())
        tokens += len(collect_text(plain).split())
        if isinstance(control, dict):
            ttl = ANTHROPIC_LONG_TTL_SECONDS if control.get("ttl") == "1h" else ANTHROPIC_TTL_SECONDS
            points.append(CacheBreakpoint(digest.copy().hexdigest(), tokens, ttl))
    return points


@dataclass
class AnthropicChatRequest(ChatRequest):
    """An Anthropic chat request with its cache breakpoints (applied once, when it is answered)."""

    breakpoints: list[CacheBreakpoint] = field(default_factory=list)
    cache_read: int = 0
    cache_creation: int = 0
    cache_applied: bool = False


class AnthropicProtocol(ChatProtocol):
    """Anthropic ``/v1/messages``."""

    name = "anthropic"

    def __init__(self, required_key: Callable[[], str | None], caches: ProviderCaches | None = None) -> None:
        self._required_key = required_key
        self._caches = caches if caches is not None else ProviderCaches()

    def parse(self, ex: Exchange, data: Any, path_model: str | None) -> ChatRequest:
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise WireError(400, "messages: Field required")
        prompt = collect_text([data.get("system") or "", data["messages"]])
        model = str(data.get("model") or "claude-sonnet-4-6")
        breakpoints = cache_breakpoints(model, data)
        if len(breakpoints) > MAX_BREAKPOINTS:
            raise WireError(
                400,
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(breakpoints)}.",
            )
        chat = AnthropicChatRequest(
            model=model,
            stream=bool(data.get("stream")),
            prompt_tokens=estimate_tokens(prompt),
            breakpoints=breakpoints,
        )
        chat.response_id = new_id("msg_01", 22)
        return chat

    def authorize(self, ex: Exchange) -> str | None:
        required = self._required_key()
        if required is None:
            return None
        presented = ex.headers.get("x-api-key")
        if presented is None:
            scheme, _, token = ex.headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else None
        return None if presented == required else "invalid x-api-key"

    def error_body(self, status: int, message: str) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error")
        return dumps(
            {"type": "error", "error": {"type": kind, "message": message}, "request_id": new_id("req_")}
        )

    def response_headers(self, chat: ChatRequest) -> dict[str, str]:
        return {"request-id": new_id("req_01", 22)}

    # -- non-streamed ----------------------------------------------------------------------------------

    def render(self, reply: Reply, chat: ChatRequest, usage: Usage) -> Any:
        content: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            content.append({"type": "text", "text": reply.text})
        for call in reply.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id or new_id("toolu_01", 22),
                    "name": call.name,
                    "input": call.arguments,
                }
            )
        message = self._message(chat, reply, content, self._stop(reply))
        message["usage"] = self._usage(self._cached(chat), usage.input_tokens, usage.output_tokens)
        return message

    # -- streamed --------------------------------------------------------------------------------------

    def stream_open(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        message = self._message(chat, reply, [], None)
        message["usage"] = self._usage(self._cached(chat), usage.input_tokens, 1)
        events = [_event("message_start", {"type": "message_start", "message": message})]
        if self._has_text_block(reply):
            start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            events.append(_event("content_block_start", start))
        events.append(_event("ping", {"type": "ping"}))  # after the first block's start, as the API sends it
        return events

    def stream_text(self, text: str, chat: ChatRequest) -> bytes:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        return _event("content_block_delta", delta)

    def stream_close(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        events: list[bytes] = []
        index = 0
        if self._has_text_block(reply):
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for call in reply.tool_calls:
            block = {
                "type": "tool_use",
                "id": call.id or new_id("toolu_01", 22),
                "name": call.name,
                "input": {},
            }
            events.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            for fragment in split_fragments(json.dumps(call.arguments)):
                delta = {"type": "input_json_delta", "partial_json": fragment}
                events.append(
                    _event(
                        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                    )
                )
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop(reply), "stop_sequence": None},
            "usage": self._usage(self._cached(chat), usage.input_tokens, usage.output_tokens),
        }
        events.append(_event("message_delta", message_delta))
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events

    def stream_malformed(self, chat: ChatRequest) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n'

    def stream_error(self, data: bytes, chat: ChatRequest) -> bytes:
        return b"event: error\ndata: " + data + b"\n\n"

    # -- helpers ---------------------------------------------------------------------------------------

    @staticmethod
    def _has_text_block(reply: Reply) -> bool:
        return bool(reply.text_chunks()) or not reply.tool_calls

    @staticmethod
    def _stop(reply: Reply) -> str:
        neutral = reply.neutral_finish()
        return _STOP.get(neutral, neutral)

    def _cached(self, chat: ChatRequest) -> tuple[int, int]:
        """``(cache_read, cache_creation)`` of an answered request (the cache is used once per request)."""
        if not isinstance(chat, AnthropicChatRequest) or not chat.breakpoints:
            return 0, 0
        if not chat.cache_applied:
            chat.cache_applied = True
            chat.cache_read, chat.cache_creation = self._caches.anthropic_use(chat.model, chat.breakpoints)
        return chat.cache_read, chat.cache_creation

    @staticmethod
    def _usage(cached: tuple[int, int], input_tokens: int, output_tokens: int) -> dict[str, Any]:
        read, creation = cached
        return {
            "input_tokens": max(0, input_tokens - read - creation),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
        }

    @staticmethod
    def _message(
        chat: ChatRequest, reply: Reply, content: list[dict[str, Any]], stop: str | None
    ) -> dict[str, Any]:
        return {
            "id": chat.response_id,
            "type": "message",
            "role": "assistant",
            "model": chat.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
        }
