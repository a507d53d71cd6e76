"""Small helpers shared by the protocol renderers: ids, JSON, token estimates, fragment splitting."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

__all__ = [
    "DEFAULT_ERROR_MESSAGES",
    "collect_text",
    "default_message",
    "dumps",
    "estimate_tokens",
    "new_id",
    "split_fragments",
]

_ALPHABET = string.ascii_letters + string.digits

DEFAULT_ERROR_MESSAGES: dict[int, str] = {
    400: "Bad request.",
    401: "Invalid API key.",
    403: "Permission denied.",
    404: "Not found.",
    408: "Request timed out.",
    413: "Request too large.",
    422: "Unprocessable request.",
    429: "Rate limit exceeded. Please retry later.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service unavailable.",
    504: "Gateway timeout.",
    529: "Overloaded.",
}


def default_message(status: int) -> str:
    """A plain message for an error status."""
    return DEFAULT_ERROR_MESSAGES.get(status, f"HTTP error {status}.")


def new_id(prefix: str, length: int = 24) -> str:
    """A random id such as ``call_AbC...`` (``prefix`` + ``length`` alphanumerics)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def dumps(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_NOT_PROSE = frozenset(
    {"role", "type", "id", "tool_call_id", "tool_use_id", "name", "model", "mime_type", "mimeType"}
    | {"cache_control"}
)


def collect_text(value: Any) -> str:
    """The prose strings of a JSON value (message texts, not roles or ids), space-joined (for estimates)."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for key, item in v.items():
                if key not in _NOT_PROSE:
                    walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)
    return " ".join(out)


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: the number of whitespace-separated words, at least 1."""
    return max(1, len(text.split()))


def split_fragments(text: str, parts: int = 3) -> list[str]:
    """Split ``text`` into up to ``parts`` non-empty consecutive pieces (for streamed tool arguments)."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]
