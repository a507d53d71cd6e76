"""Reading streamed LangChain message chunks the same way for every provider: their text, their finish.

``chunk_text`` is the answer text of a chunk (a plain string, or the ``text`` blocks of Anthropic-style
content lists; reasoning and tool-call blocks are not text). ``finish_reason_of`` reads the provider's
finish/stop reason from a chunk's ``response_metadata`` (``finish_reason`` for OpenAI and Gemini,
``stop_reason`` for Anthropic, ``done_reason``/``done`` for Ollama, the response's ``status`` for OpenAI's
Responses API: ``completed``, or ``incomplete`` with its ``incomplete_details``) and normalises it to
``stop``, ``tool_calls``, ``length`` or ``content_filter`` (others pass through lower-cased). A stream
whose chunks never carried one did not finish. ``restart_of`` reads the notice a fallback model sends when
it takes over a stream after text was delivered. The marker keys and the retry event's name are here too,
so whoever reads them (observers, cost trackers) needs nothing of the code that writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CACHE_MARKER",
    "FALLBACK_KEY",
    "RESTART_KEY",
    "RETRY_EVENT",
    "chunk_text",
    "finish_reason_of",
    "restart_of",
]

# The ``response_metadata`` key that marks an answer served by the response cache ("hit" or "stale").
CACHE_MARKER = "modelforge_cache"

# response_metadata key of the chunk a fallback model sends when it takes over after text was delivered.
RESTART_KEY = "modelforge_restart"

# The ``response_metadata`` key an answer carries when a model other than the first gave it after failures.
FALLBACK_KEY = "modelforge_fallback"

# The name of the custom callback event the retry step sends before every retry (``on_custom_event``).
RETRY_EVENT = "modelforge.retry"

_FINISH_KEYS = ("finish_reason", "stop_reason", "done_reason")
_FINISH_NAMES = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "refusal": "content_filter",
    "prohibited_content": "content_filter",
}


# The Responses API's incomplete_details.reason -> the normalised finish reason.
_INCOMPLETE_NAMES = {"max_output_tokens": "length", "content_filter": "content_filter"}


def finish_reason_of(metadata: Mapping[str, Any]) -> str | None:
    """The normalised finish reason in a chunk's ``response_metadata``, or None if it carries none."""
    for key in _FINISH_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value:
            lowered = value.lower()
            return _FINISH_NAMES.get(lowered, lowered)
    if metadata.get("done") is True:  # Ollama's last line
        return "stop"
    status = metadata.get("status")  # the Responses API's last event (response.completed / .incomplete)
    if status == "completed":
        return "stop"
    if status == "incomplete":
        details = metadata.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return _INCOMPLETE_NAMES.get(str(reason), "length")
    return None


def chunk_text(chunk: object) -> str:
    """The answer text in one streamed chunk: a ``str``, or a message chunk's text content blocks."""
    if isinstance(chunk, str):
        return chunk
    content = getattr(chunk, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block if isinstance(block, str) else block.get("text", "")
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        )
    return ""


def restart_of(chunk: object) -> Mapping[str, Any] | None:
    """The restart notice a chunk carries (a fallback took over after text was delivered), if any."""
    metadata = getattr(chunk, "response_metadata", None)
    if type(metadata) is dict:  # the usual case, without an ABC check per chunk
        info = metadata.get(RESTART_KEY)
    else:
        info = metadata.get(RESTART_KEY) if isinstance(metadata, Mapping) else None
    return info if info is not None and isinstance(info, Mapping) else None
