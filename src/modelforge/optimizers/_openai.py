"""Optimizer for the OpenAI chat-completions protocol (``openai_compatible``, ``local``, ``github_copilot``).

* ``seed``: sent with every call (``DEFAULT_SEED`` unless the section sets one) so sampling is as
  reproducible as the server allows; a seed the model or the call already sets wins.
* JSON mode: when the prompt (a system message or the last user message) asks for a JSON answer ("respond
  in JSON", "as a JSON object", "return valid JSON"...) and the call brings no ``tools``, ``functions`` or
  ``response_format`` of its own, ``response_format={"type": "json_object"}`` is sent. OpenAI then
  guarantees a parseable object; it requires the word JSON in the messages, which the trigger ensures.
* ``prepare_batch_body``: a Batch API request body (``/v1/chat/completions`` shape) gets the same seed,
  JSON mode and marker removal, so batched and live calls behave alike.
* The ``<<STATIC>>``/``<<DYNAMIC>>`` markers are removed (OpenAI caches long prefixes by itself).

GitHub Copilot relays to several vendors' models that do not all take ``seed`` or ``response_format``, so
both are off for it unless its section turns them on. llama.cpp (the ``local`` family) supports both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from modelforge._chunks import chunk_text
from modelforge.optimizers._base import PreparedCall, RequestOptimizer
from modelforge.optimizers._config import DEFAULT_SEED, OptimizationConfig
from modelforge.optimizers._markers import strip_markers, strip_message_markers

__all__ = ["OpenAIOptimizer", "asks_for_json"]

JSON_OBJECT = {"type": "json_object"}
# Families whose servers may refuse OpenAI's sampling extras: off unless the section turns them on.
_CAUTIOUS_FAMILIES = frozenset({"github_copilot"})
# Call arguments that already decide the answer's shape.
_OWN_FORMAT_KEYS = ("tools", "functions", "response_format", "ls_structured_output_format")

_ASKS_FOR_JSON = re.compile(
    r"\b(?:in|as|into|with|return|returns|output|outputs|respond|responds|reply|answer|give|produce|emit|only)"
    r"\s+(?:(?:a|an|the|only|valid|strict|pure|single|one|well-formed|raw|plain)\s+)*json\b"
    r"(?!\s*(?:array|list|lines|files?|schemas?|pars\w*|syntax|documents?|and|or|vs\.?|versus)\b)"
    r"|\bjson[- ]only\b",
    re.IGNORECASE,
)


def asks_for_json(messages: Sequence[BaseMessage]) -> bool:
    """Whether the system messages or the last user message ask for an answer in JSON (an object)."""
    last_user = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
    texts = [chunk_text(m) for m in messages if isinstance(m, SystemMessage)]
    if last_user is not None:
        texts.append(chunk_text(last_user))
    return any(_ASKS_FOR_JSON.search(text) for text in texts)


def _dict_asks_for_json(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    texts: list[str] = []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    for message in [m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")]:
        texts.append(_dict_text(message))
    if users:
        texts.append(_dict_text(users[-1]))
    return any(_ASKS_FOR_JSON.search(text) for text in texts)


def _dict_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _strip_dict_markers(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": strip_markers(content)}
    if isinstance(content, list):
        parts = [
            {**part, "text": strip_markers(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
        return {**message, "content": parts}
    return message


class OpenAIOptimizer(RequestOptimizer):
    """Seed, JSON mode and marker removal for OpenAI-protocol servers."""

    family: ClassVar[str] = "openai"

    def __init__(
        self, config: OptimizationConfig, *, provider_name: str, model_name: str, llm_type: str
    ) -> None:
        super().__init__(config, provider_name=provider_name, model_name=model_name, llm_type=llm_type)
        cautious = llm_type in _CAUTIOUS_FAMILIES
        if config.seed is None:
            self.seed: int | None = None if cautious else DEFAULT_SEED
        else:
            self.seed = None if config.seed is False else config.seed
        self.json_mode = (not cautious) if config.json_mode is None else config.json_mode

    def prepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        call = PreparedCall(strip_message_markers(messages), kwargs)
        self.step("seed", call, lambda c: self._add_seed(leaf, c.kwargs))
        self.step("json_mode", call, lambda c: self._add_json_mode(leaf, c.messages, c.kwargs))
        return call

    def _add_seed(self, leaf: BaseChatModel, kwargs: dict[str, Any]) -> bool:
        if self.seed is None or "seed" in kwargs or getattr(leaf, "seed", None) is not None:
            return False
        if "seed" in (getattr(leaf, "model_kwargs", None) or {}):
            return False
        kwargs["seed"] = self.seed
        return True

    def _add_json_mode(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> bool:
        if not self.json_mode or any(kwargs.get(key) for key in _OWN_FORMAT_KEYS):
            return False
        if "response_format" in (getattr(leaf, "model_kwargs", None) or {}):
            return False
        if not asks_for_json(messages):
            return False
        kwargs["response_format"] = dict(JSON_OBJECT)
        return True

    def prepare_batch_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat-completions body for the Batch API with the seed, JSON mode and markers as live calls."""
        shaped = dict(body)
        messages = shaped.get("messages")
        if isinstance(messages, list):
            shaped["messages"] = [_strip_dict_markers(m) for m in messages]
        if self.seed is not None and "seed" not in shaped:
            shaped["seed"] = self.seed
        if (
            self.json_mode
            and not any(shaped.get(key) for key in ("tools", "functions", "response_format"))
            and _dict_asks_for_json(shaped.get("messages"))
        ):
            shaped["response_format"] = dict(JSON_OBJECT)
        return shaped
