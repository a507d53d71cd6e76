"""Optimizer for the OpenAI chat-completions protocol (``openai_compatible``, ``local``, ``github_copilot``).

* ``seed``: sent with every call (``DEFAULT_SEED`` unless the section sets one) so sampling is as
  reproducible as the server allows; a seed the model or the call already sets wins. Note that the
  default seed (42) makes repeated sampling of the same prompt at ``temperature > 0`` return the same
  answer: for variety (several candidates, retries that should differ) set ``seed: false`` in the
  provider's ``optimizations`` section, or pass a ``seed`` per call.
* JSON mode: when a system message or the last user message clearly tells the model to answer in JSON
  ("Respond in JSON", "Return the result as a JSON object", "Answer with valid JSON only", "JSON only")
  and the call brings no ``tools``, ``functions`` or ``response_format`` of its own,
  ``response_format={"type": "json_object"}`` is sent. OpenAI then guarantees a parseable object; it
  requires the word JSON in the messages, which the trigger ensures. Mentioning JSON is not asking for it
  ("The API returns JSON", "Here is my config in JSON: ..."); an instruction with "not", "never",
  "without"... in the few words before it is ignored ("Do not answer in JSON"); and a prompt that asks for
  a list or an array is left alone unless it says "JSON object" (JSON mode would wrap the list in an
  object). Earlier user messages, assistant and tool messages are not read.
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
from modelforge.optimizers._markers import strip_markers, strip_message_markers
from modelforge.sections.optimizations import DEFAULT_SEED, OptimizationConfig

__all__ = ["OpenAIOptimizer", "asks_for_json", "json_object_wanted"]

JSON_OBJECT = {"type": "json_object"}
# Families whose servers may refuse OpenAI's sampling extras: off unless the section turns them on.
_CAUTIOUS_FAMILIES = frozenset({"github_copilot"})
# Call arguments that already decide the answer's shape.
_OWN_FORMAT_KEYS = ("tools", "functions", "response_format", "ls_structured_output_format")

# An instruction to answer in JSON: an imperative verb where an instruction starts (the start of a
# sentence or line, after "please"/"always"/"you must"/"and then"...), up to four words, then "in/as/with
# JSON" ("Respond in JSON", "Return the result as a JSON object", "Answer with valid JSON only"); or the
# verb right before the format ("Return a JSON object", "Output valid JSON", "Return only JSON"); or "your
# answer must be (in) JSON"; or "JSON only" / "only JSON" standing as an instruction of its own.
_ANSWER_VERB = r"(?:respond|reply|answer)"
_VERB = r"(?:respond|reply|answer|output|return|give(?:\s+me)?|format|write|provide|produce|emit|print)"
_LEAD = (
    r"(?:^|(?<=[.!?:;\n(\[])|(?<=[.!?:;]\s)|"
    r"\b(?:please|always|only|just|and|then|also|instead|you\s+(?:must|should|shall|will|need\s+to)|"
    r"i\s+(?:want|need)\s+you\s+to|make\s+sure\s+(?:that\s+)?you)\s+)"
)
_ADJECTIVES = (
    r"(?:(?:a|an|only|valid|strict|pure|single|one|well-formed|raw|plain|proper|parseable|compact)\s+)*"
)
# JSON must end the clause ("... in JSON.", "... as a JSON object only"): "in JSON and YAML", "with JSON
# support" or "using JSON files" name a topic, not the answer's format.
_CLAUSE_END = (
    r"(?=\s*(?:$|[.,!?;:)\]]|only\b|format(?:ted)?\b|please\b|(?:that|which|with|containing|where)\b))"
)
_FORMAT = _ADJECTIVES + r"json(?:\s+(?:object|dict(?:ionary)?))?\b" + _CLAUSE_END
_SENTENCE_START = r"(?:^|(?<=[.!?:;\n(\[])|(?<=[.!?:;]\s))"
_INSTRUCTIONS = (
    # "Respond with JSON", "Answer using valid JSON"; other verbs only "in/as": "write a parser using JSON"
    # or "provide an example with JSON" are about JSON, not the answer's format.
    _LEAD + r"\s*" + _ANSWER_VERB + r"\b(?:\s+[\w'\-]+){0,4}?\s+(?:in|as|with|using)\s+" + _FORMAT,
    _LEAD + r"\s*" + _VERB + r"\b(?:\s+[\w'\-]+){0,4}?\s+(?:in|as)\s+" + _FORMAT,
    _LEAD + r"\s*" + _VERB + r"\s+" + _FORMAT,
    r"\b(?:your|the)\s+(?:answer|response|reply|output)\s+(?:must|should|shall|will)\s+be\s+(?:in\s+)?"
    + _FORMAT,
    _SENTENCE_START + r"\s*(?:only\s+json|json[- ]only)\b",
)
_ASKS_FOR_JSON = re.compile("|".join(f"(?:{part})" for part in _INSTRUCTIONS), re.IGNORECASE | re.MULTILINE)
# "not", "never", "without"... among the few words before the instruction (or inside it) turn it around.
_NEGATION = re.compile(
    r"\b(?:not|no|never|without|don'?t|doesn'?t|avoid|instead\s+of|rather\s+than|neither|nor)\b|n't\b",
    re.IGNORECASE,
)
# A list or an array asked for: JSON mode would force an object around it.
_WANTS_LIST = re.compile(r"\b(?:lists?|listing|arrays?|jsonl|ndjson)\b", re.IGNORECASE)
_WORDS_BEFORE = 4
_OBJECT = re.compile(r"\bjson\s+(?:object|dict)", re.IGNORECASE)


def _instruction(text: str) -> tuple[bool, bool]:
    """``(asked, object)``: whether ``text`` tells the model to answer in JSON (not negated), and whether
    it says "object" explicitly."""
    asked = explicit_object = False
    for found in _ASKS_FOR_JSON.finditer(text):
        sentence_start = max(text.rfind(mark, 0, found.start()) for mark in (".", "!", "?", "\n", ";"))
        before = text[sentence_start + 1 : found.start()].split()[-_WORDS_BEFORE:]
        if _NEGATION.search(" ".join(before)) or _NEGATION.search(found.group(0)):
            continue
        asked = True
        explicit_object = explicit_object or bool(_OBJECT.search(found.group(0)))
    return asked, explicit_object


def json_object_wanted(texts: Sequence[str]) -> bool:
    """Whether ``texts`` (the system prompts and the last user message) ask for an answer that is a JSON
    object: a clear, not negated instruction to answer in JSON, and no list or array asked for unless the
    instruction says "object" itself."""
    found = [_instruction(text) for text in texts]
    if not any(asked for asked, _ in found):
        return False
    if any(asked and explicit for asked, explicit in found):
        return True
    return not any(_WANTS_LIST.search(text) for text in texts)


def asks_for_json(messages: Sequence[BaseMessage]) -> bool:
    """Whether the system messages or the last user message ask for an answer in JSON (an object)."""
    last_user = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
    texts = [chunk_text(m) for m in messages if isinstance(m, SystemMessage)]
    if last_user is not None:
        texts.append(chunk_text(last_user))
    return json_object_wanted(texts)


def _dict_asks_for_json(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    texts: list[str] = []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    for message in [m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")]:
        texts.append(_dict_text(message))
    if users:
        texts.append(_dict_text(users[-1]))
    return json_object_wanted(texts)


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

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "seed": self.seed, "json_mode": self.json_mode}

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
