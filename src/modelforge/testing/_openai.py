"""OpenAI chat completions wire format (``POST /v1/chat/completions``), also used by GitHub Copilot.

Non-streamed: a ``chat.completion`` object. Streamed: ``data: {chat.completion.chunk}`` SSE lines — a
first delta with the role, one delta per text chunk, tool-call deltas (id + name + empty arguments, then
argument fragments by index), a chunk with ``finish_reason``, a ``choices: []`` usage chunk when the
request set ``stream_options.include_usage``, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

from modelforge.testing._chat import ChatProtocol, ChatRequest, WireError
from modelforge.testing._common import collect_text, dumps, estimate_tokens, new_id, split_fragments
from modelforge.testing._http import Exchange
from modelforge.testing.script import ProtocolName, Reply, Usage

__all__ = ["CopilotProtocol", "OpenAIProtocol", "models_list"]

_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}

_FINISH = {"stop": "stop", "tool_calls": "tool_calls", "length": "length", "content_filter": "content_filter"}


def models_list(names: list[str]) -> bytes:
    """``GET /v1/models`` body."""
    data = [{"id": n, "object": "model", "created": 1700000000, "owned_by": "modelforge-test"} for n in names]
    return dumps({"object": "list", "data": data})


def _bearer(ex: Exchange) -> str | None:
    value = ex.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class OpenAIProtocol(ChatProtocol):
    """OpenAI ``/v1/chat/completions``."""

    name: ClassVar[ProtocolName] = "openai"

    def __init__(self, required_key: Callable[[], str | None]) -> None:
        self._required_key = required_key

    def parse(self, ex: Exchange, data: Any, path_model: str | None) -> ChatRequest:
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise WireError(400, "Missing required parameter: 'messages'.")
        options = data.get("stream_options") or {}
        chat = ChatRequest(
            model=str(data.get("model") or "gpt-4o-mini"),
            stream=bool(data.get("stream")),
            prompt_tokens=estimate_tokens(collect_text(data["messages"])),
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        )
        chat.response_id = new_id("chatcmpl-", 29)
        chat.created = int(time.time())
        return chat

    def authorize(self, ex: Exchange) -> str | None:
        required = self._required_key()
        if required is None or _bearer(ex) == required:
            return None
        return "Incorrect API key provided."

    def error_body(self, status: int, message: str) -> bytes:
        kind, code = _ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        return dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})

    def response_headers(self, chat: ChatRequest) -> dict[str, str]:
        return {"x-request-id": new_id("req_", 32), "openai-processing-ms": "1"}

    # -- non-streamed ----------------------------------------------------------------------------------

    def render(self, reply: Reply, chat: ChatRequest, usage: Usage) -> Any:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if (reply.text or not reply.tool_calls) else None,
            "refusal": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or new_id("call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": chat.response_id,
            "object": "chat.completion",
            "created": chat.created,
            "model": chat.model,
            "system_fingerprint": "fp_modelforge",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish(reply)}
            ],
            "usage": self._usage(usage),
        }

    # -- streamed --------------------------------------------------------------------------------------

    def stream_open(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        return [self._chunk(chat, {"role": "assistant", "content": "", "refusal": None})]

    def stream_text(self, text: str, chat: ChatRequest) -> bytes:
        return self._chunk(chat, {"content": text})

    def stream_close(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        events: list[bytes] = []
        for index, call in enumerate(reply.tool_calls):
            head = {
                "index": index,
                "id": call.id or new_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(self._chunk(chat, {"tool_calls": [head]}))
            for fragment in split_fragments(json.dumps(call.arguments)):
                delta = {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                events.append(self._chunk(chat, delta))
        events.append(self._chunk(chat, {}, self._finish(reply)))
        if chat.include_usage:
            final = self._envelope(chat)
            final["choices"] = []
            final["usage"] = self._usage(usage)
            events.append(b"data: " + dumps(final) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events

    def stream_malformed(self, chat: ChatRequest) -> bytes:
        return b'data: {"id": "' + chat.response_id.encode() + b'", "choices": [{"delta": {\n\n'

    # -- helpers ---------------------------------------------------------------------------------------

    @staticmethod
    def _finish(reply: Reply) -> str:
        neutral = reply.neutral_finish()
        return _FINISH.get(neutral, neutral)

    @staticmethod
    def _usage(usage: Usage) -> dict[str, int]:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        }

    @staticmethod
    def _envelope(chat: ChatRequest) -> dict[str, Any]:
        return {
            "id": chat.response_id,
            "object": "chat.completion.chunk",
            "created": chat.created,
            "model": chat.model,
            "system_fingerprint": "fp_modelforge",
        }

    def _chunk(self, chat: ChatRequest, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = self._envelope(chat)
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if chat.include_usage:
            body["usage"] = None
        return b"data: " + dumps(body) + b"\n\n"


class CopilotProtocol(OpenAIProtocol):
    """GitHub Copilot chat: the OpenAI format behind a short-lived Copilot token (``Bearer``)."""

    name = "copilot"

    def __init__(self, token_valid: Callable[[str], bool]) -> None:
        super().__init__(lambda: None)
        self._token_valid = token_valid

    def authorize(self, ex: Exchange) -> str | None:
        token = _bearer(ex)
        if token and self._token_valid(token):
            return None
        return "Unauthorized: the Copilot token is missing, unknown or expired."
