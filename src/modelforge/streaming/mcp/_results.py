"""Turning an MCP tool result's content blocks into the one string a chat model reads.

Text blocks are kept as they are; text embedded resources contribute their text; everything else becomes a
one-line summary, e.g. ``[image: image/png, 1234 bytes]`` or ``[resource link: file:///a.txt]``. Blocks are
joined with newlines. A result with no content but ``structuredContent`` answers that as JSON. Blocks are read
by duck typing (``type``, ``text``, ``mime_type``...), so this module needs no import of the ``mcp`` SDK.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["content_text", "result_text"]


def _decoded_size(data: str) -> int:
    """Bytes in base64 ``data`` (estimated from its length if it is not valid base64)."""
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data) * 3 // 4


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(getattr(block, "text", ""))
    if kind in ("image", "audio"):
        mime = getattr(block, "mime_type", None) or "unknown type"
        return f"[{kind}: {mime}, {_decoded_size(getattr(block, 'data', '') or '')} bytes]"
    if kind == "resource":
        resource = getattr(block, "resource", None)
        uri = str(getattr(resource, "uri", "") or "")
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            return text
        mime = getattr(resource, "mime_type", None) or "unknown type"
        size = _decoded_size(getattr(resource, "blob", "") or "")
        return f"[resource: {uri}, {mime}, {size} bytes]"
    if kind == "resource_link":
        return f"[resource link: {getattr(block, 'uri', '')}]"
    return f"[{kind or 'unknown'} content]"


def content_text(blocks: Iterable[Any]) -> str:
    """The blocks as one string: texts joined by newlines, other blocks summarised on their own line."""
    return "\n".join(_block_text(block) for block in blocks)


def result_text(result: Any) -> str:
    """The string a model sees for a ``CallToolResult``."""
    content = list(getattr(result, "content", None) or [])
    if content:
        return content_text(content)
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        return json.dumps(structured, ensure_ascii=False)
    return ""
