"""Optimizer for Anthropic (``ChatAnthropic``): prompt-cache breakpoints on the static part of long prompts.

Anthropic caches a prompt prefix (tools, then system, then messages) up to each content block marked
``cache_control: {"type": "ephemeral"}``; a later call with the same prefix within 5 minutes reads it at a
tenth of the price (``cache_read_input_tokens``), the first one writes it (``cache_creation_input_tokens``).
This optimizer marks, in prefix order:

1. the last tool of a call that has tools,
2. the end of the system prompt (or its static part, see below),
3. the static part of every message written with ``<<STATIC>>`` / ``<<DYNAMIC>>`` (the text before
   ``<<DYNAMIC>>`` becomes its own block with the breakpoint, the rest a separate uncached block; the
   markers are removed),
4. the end of the conversation so far (the message before the last user turn), so the next turn reads it.

A breakpoint is placed only where the prefix up to it is long enough to be cached at all (Anthropic's
minimum: 1024 tokens, 2048 for Haiku models; ``prompt_caching: {min_tokens: N}`` changes it) and at most
four per request (Anthropic's limit), breakpoints the caller placed included: with more candidates, the
first and the longest ones are kept. Tokens are estimated at four characters a token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from modelforge._token_estimate import PER_MESSAGE_TOKENS
from modelforge.optimizers._base import PreparedCall, RequestOptimizer, estimate_text_tokens
from modelforge.optimizers._markers import (
    message_has_markers,
    split_markers,
    strip_markers,
    strip_message_markers,
)

__all__ = ["MAX_BREAKPOINTS", "AnthropicOptimizer", "min_cacheable_tokens"]

MAX_BREAKPOINTS = 4
EPHEMERAL = {"type": "ephemeral"}


def min_cacheable_tokens(model: str) -> int:
    """Anthropic's shortest cacheable prefix for ``model``: 2048 tokens for Haiku, 1024 otherwise."""
    return 2048 if "haiku" in model.lower() else 1024


@dataclass
class _Candidate:
    """A block that may carry a breakpoint: where it is and the prefix tokens up to its end."""

    tokens: int
    message: int  # index into the messages, -1 for the tools
    block: int


def _blocks(content: Any) -> list[Any]:
    """A message's content as a list of blocks (a plain string becomes one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [{"type": "text", "text": b} if isinstance(b, str) else b for b in content]
    return []


def _block_tokens(block: Any) -> int:
    if isinstance(block, dict) and block.get("type") == "text":
        return estimate_text_tokens(str(block.get("text", "")))
    return estimate_text_tokens(json.dumps(block, default=str))


def _has_control(blocks: list[Any]) -> int:
    return sum(1 for b in blocks if isinstance(b, dict) and "cache_control" in b)


def _split_blocks(blocks: list[Any]) -> tuple[list[Any], int | None]:
    """Blocks with each marked text split into a static and a dynamic block; the last static block's index."""
    out: list[Any] = []
    static_end: int | None = None
    for block in blocks:
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        parts = split_markers(text) if isinstance(text, str) else None
        if parts is None:
            if isinstance(text, str):
                block = {**block, "text": strip_markers(text)}
            out.append(block)
            continue
        static, dynamic = parts
        if static.strip():
            out.append({**block, "text": static})
            static_end = len(out) - 1
        if dynamic.strip():
            out.append({k: v for k, v in {**block, "text": dynamic}.items() if k != "cache_control"})
    return out, static_end


class AnthropicOptimizer(RequestOptimizer):
    """Cache breakpoints on the static part of long prompts."""

    family: ClassVar[str] = "anthropic"

    def prepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        call = PreparedCall(messages, kwargs)
        if self.config.prompt_caching:
            self.step("prompt_caching", call, self._add_breakpoints)
        if any(message_has_markers(m) for m in call.messages):
            call.messages = strip_message_markers(call.messages)
        return call

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "prompt_caching_min_tokens": self.min_tokens()}

    def min_tokens(self) -> int:
        return self.config.prompt_caching_min_tokens or min_cacheable_tokens(self.model_name)

    def _add_breakpoints(self, call: PreparedCall) -> bool:
        tools = call.kwargs.get("tools")
        tools = list(tools) if isinstance(tools, list | tuple) else []
        contents = [_blocks(m.content) for m in call.messages]
        used = _has_control(tools) + sum(_has_control(blocks) for blocks in contents)
        used += 1 if call.kwargs.get("cache_control") else 0
        slots = MAX_BREAKPOINTS - used
        if slots <= 0:
            return False
        candidates: list[_Candidate] = []
        tokens = 0
        if tools:
            tokens += sum(estimate_text_tokens(json.dumps(t, default=str)) for t in tools)
            if isinstance(tools[-1], dict):
                candidates.append(_Candidate(tokens, -1, len(tools) - 1))
        last_user = max((i for i, m in enumerate(call.messages) if isinstance(m, HumanMessage)), default=-1)
        leading_system = True
        split: dict[int, list[Any]] = {}
        for index, message in enumerate(call.messages):
            blocks = contents[index]
            static_end: int | None = None
            if message_has_markers(message):
                blocks, static_end = _split_blocks(blocks)
                split[index] = blocks
            is_system = isinstance(message, SystemMessage)
            start = tokens + PER_MESSAGE_TOKENS
            ends = [start]
            for block in blocks:
                ends.append(ends[-1] + _block_tokens(block))
            tokens = ends[-1]
            chosen: int | None = None
            if static_end is not None:
                chosen = static_end
            elif is_system and leading_system and blocks:
                chosen = len(blocks) - 1  # the whole system prompt
            elif index == last_user - 1 and blocks and not is_system:
                chosen = len(blocks) - 1  # the conversation before the last user turn
            if chosen is not None and _can_mark(blocks[chosen]):
                candidates.append(_Candidate(ends[chosen + 1], index, chosen))
            leading_system = leading_system and is_system
        worth = [c for c in candidates if c.tokens >= self.min_tokens()]
        if len(worth) > slots:
            worth = worth[:1] + worth[len(worth) - (slots - 1) :] if slots > 1 else worth[-1:]
        for index, blocks in split.items():
            contents[index] = blocks
        changed: set[int] = set(split)
        for candidate in worth:
            if candidate.message < 0:
                tools[candidate.block] = {**tools[candidate.block], "cache_control": dict(EPHEMERAL)}
                call.kwargs["tools"] = tools
                continue
            blocks = contents[candidate.message]
            blocks[candidate.block] = {**blocks[candidate.block], "cache_control": dict(EPHEMERAL)}
            changed.add(candidate.message)
        if not changed:
            return bool(worth)
        call.messages = [
            m.model_copy(update={"content": contents[i]}) if i in changed else m
            for i, m in enumerate(call.messages)
        ]
        return bool(worth)

    def prepare_batch_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Message Batches ``params`` body with the markers removed and, when prompt caching is on, a
        breakpoint at the end of a long system prompt (requests of one batch often share it)."""
        shaped = dict(body)
        system = shaped.get("system")
        if isinstance(system, str):
            system = [{"type": "text", "text": strip_markers(system)}] if system else system
        if isinstance(system, list):
            system = [_strip_dict_block(b) for b in system]
        messages = shaped.get("messages")
        if isinstance(messages, list):
            shaped["messages"] = [_strip_dict_message(m) for m in messages]
        if isinstance(system, list) and system:
            tools = shaped.get("tools") if isinstance(shaped.get("tools"), list) else []
            used = _has_control(list(tools or [])) + _has_control(system)
            for message in shaped.get("messages") or []:
                content = message.get("content") if isinstance(message, dict) else None
                used += _has_control(content) if isinstance(content, list) else 0
            tokens = sum(estimate_text_tokens(json.dumps(t, default=str)) for t in tools or [])
            tokens += sum(_block_tokens(b) for b in system)
            if (
                self.config.prompt_caching
                and used < MAX_BREAKPOINTS
                and tokens >= self.min_tokens()
                and _can_mark(system[-1])
                and "cache_control" not in system[-1]
            ):
                system[-1] = {**system[-1], "cache_control": dict(EPHEMERAL)}
            elif isinstance(body.get("system"), str) and not any("cache_control" in b for b in system):
                system = system[0]["text"]  # nothing added: keep the caller's plain string
        if system is not None and "system" in shaped:
            shaped["system"] = system
        return shaped


def _strip_dict_block(block: Any) -> Any:
    if isinstance(block, dict) and isinstance(block.get("text"), str):
        return {**block, "text": strip_markers(block["text"])}
    return block


def _strip_dict_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": strip_markers(content)}
    if isinstance(content, list):
        return {**message, "content": [_strip_dict_block(b) for b in content]}
    return message


def _can_mark(block: Any) -> bool:
    """Whether a breakpoint may go on ``block`` (a non-empty text, image, document or tool block)."""
    if not isinstance(block, dict):
        return False
    if block.get("type") == "text":
        return bool(str(block.get("text", "")).strip())
    return block.get("type") in ("image", "document", "tool_use", "tool_result")
