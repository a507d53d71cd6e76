"""Google Gemini wire format: ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, plus ``GET /v1beta/models``.

Each answer (and each SSE ``data:`` event when streamed) is a ``GenerateContentResponse``:
``candidates[0].content.parts`` with ``text`` or ``functionCall {name, args}`` parts, ``finishReason`` on the
last one (``STOP``, ``MAX_TOKENS``, ...), and ``usageMetadata`` (cumulative when streamed:
``promptTokenCount`` on every event, ``candidatesTokenCount`` / ``totalTokenCount`` in full on the last).
The API key is the ``x-goog-api-key`` header or the ``key`` query parameter. Errors are
``{"error": {"code", "message", "status"}}``.

Context caching: ``generateContent`` with ``cachedContent: "cachedContents/{id}"`` uses a cached content of
``ProviderCaches`` (404 when it is unknown or expired, 400 when the request also sets ``systemInstruction``,
``tools`` or ``toolConfig`` or names another model, as the API does) and reports its tokens as
``usageMetadata.cachedContentTokenCount`` (included in ``promptTokenCount``). ``GeminiCacheEndpoints`` serves
``POST /v1beta/cachedContents``, ``GET /v1beta/cachedContents`` and ``GET/PATCH/DELETE
/v1beta/cachedContents/{id}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelforge.testing._caches import GEMINI_DEFAULT_TTL_SECONDS, CachedContent, ProviderCaches
from modelforge.testing._chat import ChatProtocol, ChatRequest, WireError
from modelforge.testing._common import collect_text, default_message, dumps, estimate_tokens, new_id
from modelforge.testing._http import Exchange
from modelforge.testing.script import Reply, Usage

__all__ = ["GeminiCacheEndpoints", "GeminiChatRequest", "GeminiProtocol", "models_list"]

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


def _error_body(status: int, message: str) -> bytes:
    code = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return dumps({"error": {"code": status, "message": message, "status": code}})


def _model_name(model: str) -> str:
    return model if model.startswith("models/") else f"models/{model}"


@dataclass
class GeminiChatRequest(ChatRequest):
    """A Gemini chat request, with the tokens it takes from a cached content."""

    cached_tokens: int = 0


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
        cached_tokens = self._cached_tokens(data, model)
        chat = GeminiChatRequest(
            model=model or "gemini-2.5-flash",
            stream=action == "streamGenerateContent",
            prompt_tokens=estimate_tokens(prompt) + cached_tokens,
            cached_tokens=cached_tokens,
        )
        chat.response_id = new_id("", 22)
        return chat

    def _cached_tokens(self, data: dict[str, Any], model: str) -> int:
        name = data.get("cachedContent")
        if not name:
            return 0
        if not isinstance(name, str):
            raise WireError(400, "Invalid value at 'cached_content' (TYPE_STRING)")
        content = self._caches.get_content(name)
        if content is None:
            raise WireError(404, f"CachedContent not found (or permission denied): {name}")
        if any(data.get(key) for key in ("systemInstruction", "tools", "toolConfig")):
            raise WireError(
                400,
                "CachedContent can not be used with GenerateContent request setting system_instruction, "
                "tools or tool_config.\n\nProposed fix: move those values to CachedContent from "
                "GenerateContent request.",
            )
        if model and content.model != _model_name(model):
            raise WireError(
                400,
                f"Model used by GenerateContent request ({_model_name(model)}) and CachedContent "
                f"({content.model}) has to be the same.",
            )
        return content.token_count

    def authorize(self, ex: Exchange) -> str | None:
        required = self._required_key()
        if required is None:
            return None
        presented = ex.headers.get("x-goog-api-key") or ex.query.get("key")
        if presented == required:
            return None
        return "API key not valid. Please pass a valid API key."

    def error_body(self, status: int, message: str) -> bytes:
        return _error_body(status, message)

    # -- non-streamed ----------------------------------------------------------------------------------

    def render(self, reply: Reply, chat: ChatRequest, usage: Usage) -> Any:
        parts: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            parts.append({"text": reply.text})
        parts.extend(self._calls(reply))
        return self._response(chat, parts, self._finish(reply), self._usage(usage, chat))

    # -- streamed --------------------------------------------------------------------------------------

    def stream_open(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        return []

    def stream_text(self, text: str, chat: ChatRequest) -> bytes:
        usage = {"promptTokenCount": chat.prompt_tokens, "totalTokenCount": chat.prompt_tokens}
        cached = getattr(chat, "cached_tokens", 0)
        if cached:
            usage["cachedContentTokenCount"] = cached
        return _sse(self._response(chat, [{"text": text}], None, usage))

    def stream_close(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        parts = self._calls(reply) or [{"text": ""}]
        return [_sse(self._response(chat, parts, self._finish(reply), self._usage(usage, chat)))]

    def stream_malformed(self, chat: ChatRequest) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [\r\n\r\n'

    def stream_error(self, data: bytes, chat: ChatRequest) -> bytes:
        return b"data: " + data + b"\r\n\r\n"

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
    def _usage(usage: Usage, chat: ChatRequest) -> dict[str, int]:
        shaped = {
            "promptTokenCount": usage.input_tokens,
            "candidatesTokenCount": usage.output_tokens,
            "totalTokenCount": usage.total_tokens,
        }
        cached = getattr(chat, "cached_tokens", 0)
        if cached:
            shaped["cachedContentTokenCount"] = min(cached, usage.input_tokens)
        return shaped

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


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


class GeminiCacheEndpoints:
    """``/v1beta/cachedContents``: create, list, get, update (TTL / expire time) and delete."""

    def __init__(self, caches: ProviderCaches, required_key: Callable[[], str | None]) -> None:
        self._caches = caches
        self._required_key = required_key

    async def create(self, ex: Exchange, match: re.Match[str]) -> None:
        if not await self._admitted(ex):
            return
        data = _body(ex)
        if data is None:
            await _send(ex, 400, _error_body(400, "Invalid JSON payload received."))
            return
        model = data.get("model")
        if not isinstance(model, str) or not model:
            message = "* CreateCachedContentRequest.cached_content.model: required"
            await _send(ex, 400, _error_body(400, message))
            return
        tokens = estimate_tokens(
            collect_text([data.get(k) or {} for k in ("systemInstruction", "contents", "tools")])
        )
        if tokens < self._caches.gemini_min_tokens:
            message = (
                f"Cached content is too small. total_token_count={tokens}, "
                f"min_total_token_count={self._caches.gemini_min_tokens}"
            )
            await _send(ex, 400, _error_body(400, message))
            return
        try:
            expire_at = _expire_time(data, self._caches.clock(), GEMINI_DEFAULT_TTL_SECONDS)
        except ValueError as err:
            await _send(ex, 400, _error_body(400, str(err)))
            return
        content = self._caches.create_content(
            model=_model_name(model),
            display_name=str(data.get("displayName") or ""),
            tokens=tokens,
            ttl=expire_at - self._caches.clock(),
            body=data,
        )
        await _send(ex, 200, dumps(content.resource()))

    async def list(self, ex: Exchange, match: re.Match[str]) -> None:
        if not await self._admitted(ex):
            return
        contents = [c.resource() for c in self._caches.cached_contents]
        await _send(ex, 200, dumps({"cachedContents": contents} if contents else {}))

    async def get(self, ex: Exchange, match: re.Match[str]) -> None:
        if not await self._admitted(ex):
            return
        content = await self._found(ex, match.group(1))
        if content is not None:
            await _send(ex, 200, dumps(content.resource()))

    async def update(self, ex: Exchange, match: re.Match[str]) -> None:
        if not await self._admitted(ex):
            return
        content = await self._found(ex, match.group(1))
        if content is None:
            return
        data = _body(ex)
        if data is None or not (data.get("ttl") or data.get("expireTime")):
            await _send(ex, 400, _error_body(400, "Either ttl or expire_time must be set."))
            return
        try:
            expire_at = _expire_time(data, self._caches.clock(), GEMINI_DEFAULT_TTL_SECONDS)
        except ValueError as err:
            await _send(ex, 400, _error_body(400, str(err)))
            return
        updated = self._caches.update_content(content.name, expire_at)
        if updated is None:
            await _send(ex, 404, _error_body(404, f"CachedContent not found: {content.name}"))
            return
        await _send(ex, 200, dumps(updated.resource()))

    async def delete(self, ex: Exchange, match: re.Match[str]) -> None:
        if not await self._admitted(ex):
            return
        name = match.group(1)
        if not self._caches.delete_content(name):
            await _send(ex, 404, _error_body(404, f"CachedContent not found (or permission denied): {name}"))
            return
        await _send(ex, 200, b"{}")

    async def _admitted(self, ex: Exchange) -> bool:
        """Check the key and play a scripted fault; ``False`` when an error was sent instead."""
        required = self._required_key()
        presented = ex.headers.get("x-goog-api-key") or ex.query.get("key")
        if required is not None and presented != required:
            await _send(ex, 401, _error_body(401, "API key not valid. Please pass a valid API key."))
            return False
        fault = self._caches.next_fault()
        if fault is None:
            return True
        if fault.status == 0:
            ex.abort()
            return False
        body = (
            fault.body
            if fault.body is not None
            else _error_body(fault.status, fault.message or default_message(fault.status))
        )
        await _send(ex, fault.status, body.encode("utf-8") if isinstance(body, str) else body, fault.headers)
        return False

    async def _found(self, ex: Exchange, name: str) -> CachedContent | None:
        content = self._caches.get_content(name)
        if content is None:
            await _send(ex, 404, _error_body(404, f"CachedContent not found (or permission denied): {name}"))
        return content


async def _send(ex: Exchange, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    await ex.respond(status, body, headers)


def _body(ex: Exchange) -> dict[str, Any] | None:
    try:
        data = json.loads(ex.body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _expire_time(data: dict[str, Any], now: float, default_ttl: float) -> float:
    """The POSIX expire time a create/update body asks for (``ttl: "300s"`` or ``expireTime``)."""
    ttl, expire = data.get("ttl"), data.get("expireTime")
    if ttl:
        found = _DURATION.match(str(ttl))
        if found is None:
            raise ValueError(f"Invalid value at 'cached_content.ttl' (Duration), {ttl!r}")
        return now + float(found.group(1))
    if expire:
        try:
            return datetime.fromisoformat(str(expire).replace("Z", "+00:00")).timestamp()
        except ValueError:
            message = f"Invalid value at 'cached_content.expire_time' (Timestamp), {expire!r}"
            raise ValueError(message) from None
    return now + default_ttl
