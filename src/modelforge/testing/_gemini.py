"""Google Gemini wire format: ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, plus ``GET /v1beta/models``.

Each answer (and each SSE ``data:`` event when streamed) is a ``GenerateContentResponse``:
``candidates[0].content.parts`` with ``text`` or ``functionCall {name, args}`` parts, ``finishReason`` on the
last one (``STOP``, ``MAX_TOKENS``, ...), and ``usageMetadata`` (cumulative when streamed:
``promptTokenCount`` on every event, ``candidatesTokenCount`` / ``totalTokenCount`` in full on the last).
The API key is the ``x-goog-api-key`` header or the ``key`` query parameter. Errors are
``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelforge.testing._caches import ProviderCaches
from modelforge.testing._chat import ChatProtocol, ChatRequest, WireError
from modelforge.testing._common import collect_text, dumps, estimate_tokens, new_id
from modelforge.testing._http import Exchange
from modelforge.testing.script import Reply, Usage

__all__ = ["GeminiProtocol", "models_list"]

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}


def models_list(names: list[str]) -> bytes:
    """``GET /v1beta/models`` body."""
    models = [
        {
            "name": f"models/{n}",
            "version": "001",
            "displayName": n,
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        }
        for n in names
    ]
    return dumps({"models": models})


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + dumps(data) + b"\r\n\r\n"


class GeminiProtocol(ChatProtocol):
    """Gemini ``generateContent`` / ``streamGenerateContent``."""

    name = "gemini"

    def __init__(self, required_key: Callable[[], str | None], caches: ProviderCaches | None = None) -> None:
        self._required_key = required_key
        self._caches = caches if caches is not None else ProviderCaches()

    def parse(self, ex: Exchange, data: Any, path_model: str | None) -> ChatRequest:
        if not isinstance(data, dict) or not isinstance(data.get("contents"), list):
            raise WireError(400, "* GenerateContentRequest.contents: contents is not specified")
        model, _, action = (path_model or "").partition(":")
        prompt = collect_text([data.get("systemInstruction") or {}, data["contents"]])
        chat = ChatRequest(
            model=model or "gemini-2.5-flash",
            stream=action == "streamGenerateContent",
            prompt_tokens=estimate_tokens(prompt),
        )
        chat.response_id = new_id("", 22)
        return chat

    def authorize(self, ex: Exchange) -> str | None:
        required = self._required_key()
        if required is None:
            return None
        presented = ex.headers.get("x-goog-api-key") or ex.query.get("key")
        if presented == required:
            return None
        return "API key not valid. Please pass a valid API key."

    def error_body(self, status: int, message: str) -> bytes:
        code = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return dumps({"error": {"code": status, "message": message, "status": code}})

    # -- non-streamed ----------------------------------------------------------------------------------

    def render(self, reply: Reply, chat: ChatRequest, usage: Usage) -> Any:
        parts: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            parts.append({"text": reply.text})
        parts.extend(self._calls(reply))
        return self._response(chat, parts, self._finish(reply), self._usage(usage))

    # -- streamed --------------------------------------------------------------------------------------

    def stream_open(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        return []

    def stream_text(self, text: str, chat: ChatRequest) -> bytes:
        usage = {"promptTokenCount": chat.prompt_tokens, "totalTokenCount": chat.prompt_tokens}
        return _sse(self._response(chat, [{"text": text}], None, usage))

    def stream_close(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        parts = self._calls(reply) or [{"text": ""}]
        return [_sse(self._response(chat, parts, self._finish(reply), self._usage(usage)))]

    def stream_malformed(self, chat: ChatRequest) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [\r\n\r\n'

    # -- helpers ---------------------------------------------------------------------------------------

    @staticmethod
    def _calls(reply: Reply) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for call in reply.tool_calls:
            function: dict[str, Any] = {"name": call.name, "args": call.arguments}
            if call.id:
                function["id"] = call.id
            parts.append({"functionCall": function})
        return parts

    @staticmethod
    def _finish(reply: Reply) -> str:
        neutral = reply.neutral_finish()
        return _FINISH.get(neutral, neutral.upper())

    @staticmethod
    def _usage(usage: Usage) -> dict[str, int]:
        return {
            "promptTokenCount": usage.input_tokens,
            "candidatesTokenCount": usage.output_tokens,
            "totalTokenCount": usage.total_tokens,
        }

    @staticmethod
    def _response(
        chat: ChatRequest, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int]
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": chat.model,
            "responseId": chat.response_id,
        }
