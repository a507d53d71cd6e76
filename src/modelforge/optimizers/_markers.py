"""The ``<<STATIC>>`` / ``<<DYNAMIC>>`` markers: how a prompt says which part of it never changes.

A message text written as ``"<<STATIC>>long instructions...<<DYNAMIC>>today's question"`` has a static part
(before ``<<DYNAMIC>>``, after an optional leading ``<<STATIC>>``) that a provider can cache, and a dynamic
part that changes from call to call. Anthropic's optimizer sends the two as separate content blocks (a
cache breakpoint on the first), Gemini's caches the static part in a cached content; every other family
just removes the markers, so a prompt written with them works with any provider. A marker's own line end
goes with it (``"A\\n<<DYNAMIC>>\\nB"`` reads ``"A\\nB"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

__all__ = [
    "DYNAMIC_MARKER",
    "STATIC_MARKER",
    "has_markers",
    "message_has_markers",
    "split_markers",
    "split_message",
    "strip_markers",
    "strip_message_markers",
    "with_text",
]

STATIC_MARKER = "<<STATIC>>"
DYNAMIC_MARKER = "<<DYNAMIC>>"
_ANY_MARKER = re.compile(r"<<(?:STATIC|DYNAMIC)>>(?:[ \t]*\r?\n)?")
_LEADING_STATIC = re.compile(r"^\s*<<STATIC>>(?:[ \t]*\r?\n)?")


def has_markers(text: str) -> bool:
    return STATIC_MARKER in text or DYNAMIC_MARKER in text


def strip_markers(text: str) -> str:
    """``text`` with every marker (and its line end) removed."""
    return _ANY_MARKER.sub("", text) if has_markers(text) else text


def split_markers(text: str) -> tuple[str, str] | None:
    """``(static, dynamic)`` parts of a text that has ``<<DYNAMIC>>``, markers removed; else ``None``.

    A text with only a leading ``<<STATIC>>`` is all static: ``(text, "")``.
    """
    if DYNAMIC_MARKER not in text:
        if _LEADING_STATIC.match(text):
            return strip_markers(_LEADING_STATIC.sub("", text, count=1)), ""
        return None
    before, _, after = text.partition(DYNAMIC_MARKER)
    static = strip_markers(_LEADING_STATIC.sub("", before, count=1))
    dynamic = strip_markers(re.sub(r"^[ \t]*\r?\n", "", after, count=1))
    return static, dynamic


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            block if isinstance(block, str) else str(block.get("text", ""))
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        ]
    return []


def message_has_markers(message: BaseMessage) -> bool:
    return any(has_markers(text) for text in _texts(message.content))


def with_text(message: BaseMessage, change: Callable[[str], str]) -> BaseMessage:
    """A copy of ``message`` with ``change`` applied to each of its texts (itself if none changed)."""
    content = message.content
    if isinstance(content, str):
        changed = change(content)
        return message if changed == content else message.model_copy(update={"content": changed})
    if not isinstance(content, list):
        return message
    blocks: list[Any] = []
    for block in content:
        if isinstance(block, str):
            blocks.append(change(block))
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            blocks.append({**block, "text": change(block["text"])})
        else:
            blocks.append(block)
    if blocks == content:
        return message
    return message.model_copy(update={"content": blocks})


def strip_message_markers(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """``messages`` with the markers removed from every text (unchanged messages are not copied)."""
    return [with_text(m, strip_markers) if message_has_markers(m) else m for m in messages]


def split_message(message: BaseMessage) -> tuple[BaseMessage | None, BaseMessage | None] | None:
    """``(static, dynamic)`` copies of a message split at its first ``<<DYNAMIC>>`` (or all static after a
    leading ``<<STATIC>>``); either is ``None`` when empty. ``None`` when the message has no split."""
    content = message.content
    if isinstance(content, str):
        parts = split_markers(content)
        if parts is None:
            return None
        static_blocks: list[Any] = [parts[0]] if parts[0].strip() else []
        dynamic_blocks: list[Any] = [parts[1]] if parts[1].strip() else []
        return _part(message, static_blocks, True), _part(message, dynamic_blocks, True)
    if not isinstance(content, list):
        return None
    for index, block in enumerate(content):
        text = block if isinstance(block, str) else block.get("text") if isinstance(block, dict) else None
        if not isinstance(text, str) or (isinstance(block, dict) and block.get("type") != "text"):
            continue
        parts = split_markers(text)
        if parts is None:
            continue
        before = [_strip_block(b) for b in content[:index]]
        after = [_strip_block(b) for b in content[index + 1 :]]
        static = before + ([_retext(block, parts[0])] if parts[0].strip() else [])
        dynamic = ([_retext(block, parts[1])] if parts[1].strip() else []) + after
        return _part(message, static, False), _part(message, dynamic, False)
    return None


def _retext(block: Any, text: str) -> Any:
    return text if isinstance(block, str) else {**block, "text": text}


def _strip_block(block: Any) -> Any:
    if isinstance(block, str):
        return strip_markers(block)
    if isinstance(block, dict) and isinstance(block.get("text"), str):
        return {**block, "text": strip_markers(block["text"])}
    return block


def _part(message: BaseMessage, blocks: list[Any], as_string: bool) -> BaseMessage | None:
    if not blocks:
        return None
    content: Any = blocks[0] if as_string and len(blocks) == 1 else blocks
    return message.model_copy(update={"content": content})
