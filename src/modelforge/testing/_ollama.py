"""Ollama wire format: ``POST /api/chat`` (NDJSON stream by default), ``/api/tags``, ``/api/show``,
``/api/version``.

Streamed (Ollama's default, unless ``"stream": false``): one JSON object per line
``{"model", "created_at", "message": {"role": "assistant", "content"}, "done": false}``; tool calls come in
``message.tool_calls: [{"function": {"name", "arguments": {...}}}]``; the last line has ``"done": true``,
``done_reason``, ``prompt_eval_count`` and ``eval_count``. Errors are ``{"error": "..."}``; an unknown model
answers 404 ``model "x" not found, try pulling it first``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from modelforge.testing._chat import ChatProtocol, ChatRequest, WireError
from modelforge.testing._common import collect_text, dumps, estimate_tokens
from modelforge.testing._http import Exchange
from modelforge.testing.script import Reply, Usage

__all__ = ["OLLAMA_VERSION", "OllamaProtocol", "normalize_model", "show_body", "tags_body"]

OLLAMA_VERSION = "0.12.6"

_DONE = {"stop": "stop", "tool_calls": "stop", "length": "length"}


def normalize_model(name: str) -> str:
    """``llama3.2`` -> ``llama3.2:latest`` (Ollama's default tag)."""
    return name if ":" in name else f"{name}:latest"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _details(name: str) -> dict[str, Any]:
    family = name.split(":", 1)[0].rstrip("0123456789.")
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family or name,
        "families": [family or name],
        "parameter_size": "1.7B",
        "quantization_level": "Q4_K_M",
    }


def tags_body(names: list[str]) -> bytes:
    """``GET /api/tags`` body."""
    models = [
        {
            "name": normalize_model(n),
            "model": normalize_model(n),
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 1_000_000_000,
            "digest": hashlib.sha256(n.encode()).hexdigest(),
            "details": _details(n),
        }
        for n in names
    ]
    return dumps({"models": models})


def show_body(name: str) -> bytes:
    """``POST /api/show`` body for a known model."""
    return dumps(
        {
            "modelfile": f"FROM {name}\n",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": _details(name),
            "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
            "capabilities": ["completion", "tools"],
        }
    )


class OllamaProtocol(ChatProtocol):
    """Ollama ``/api/chat``."""

    name = "ollama"
    stream_content_type = "application/x-ndjson"

    def __init__(self, models: Callable[[], list[str]]) -> None:
        self._models = models

    def parse(self, ex: Exchange, data: Any, path_model: str | None) -> ChatRequest:
        if not isinstance(data, dict):
            raise WireError(400, "invalid request body")
        model = str(data.get("model") or "")
        if not model:
            raise WireError(400, "model is required")
        if normalize_model(model) not in {normalize_model(m) for m in self._models()}:
            raise WireError(404, f'model "{model}" not found, try pulling it first')
        stream = data.get("stream")
        return ChatRequest(
            model=model,
            stream=True if stream is None else bool(stream),
            prompt_tokens=estimate_tokens(collect_text(data.get("messages") or [])),
        )

    def error_body(self, status: int, message: str) -> bytes:
        return dumps({"error": message})

    # -- non-streamed ----------------------------------------------------------------------------------

    def render(self, reply: Reply, chat: ChatRequest, usage: Usage) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = self._tool_calls(reply)
        return self._final(reply, chat, usage, message)

    # -- streamed --------------------------------------------------------------------------------------

    def stream_open(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        return []

    def stream_text(self, text: str, chat: ChatRequest) -> bytes:
        line = {
            "model": chat.model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": text},
            "done": False,
        }
        return dumps(line) + b"\n"

    def stream_close(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        events: list[bytes] = []
        if reply.tool_calls:
            line = {
                "model": chat.model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": "", "tool_calls": self._tool_calls(reply)},
                "done": False,
            }
            events.append(dumps(line) + b"\n")
        final = self._final(reply, chat, usage, {"role": "assistant", "content": ""})
        events.append(dumps(final) + b"\n")
        return events

    def stream_malformed(self, chat: ChatRequest) -> bytes:
        return b'{"model": "' + chat.model.encode() + b'", "message": {"role": \n'

    def stream_error(self, data: bytes, chat: ChatRequest) -> bytes:
        return data + b"\n"  # {"error": "..."} as one line of the stream, as Ollama sends it

    # -- helpers ---------------------------------------------------------------------------------------

    @staticmethod
    def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        for call in reply.tool_calls:
            entry: dict[str, Any] = {"function": {"name": call.name, "arguments": call.arguments}}
            if call.id:
                entry["id"] = call.id
            calls.append(entry)
        return calls

    @staticmethod
    def _final(reply: Reply, chat: ChatRequest, usage: Usage, message: dict[str, Any]) -> dict[str, Any]:
        neutral = reply.neutral_finish()
        return {
            "model": chat.model,
            "created_at": _now(),
            "message": message,
            "done": True,
            "done_reason": _DONE.get(neutral, neutral),
            "total_duration": 2_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": usage.input_tokens,
            "prompt_eval_duration": 500_000,
            "eval_count": usage.output_tokens,
            "eval_duration": 1_000_000,
        }
