"""What a model reads for each kind of MCP content block (the SDK's own types, no server needed)."""

from __future__ import annotations

import base64

import mcp.types as types

from modelforge.streaming.mcp import content_text
from modelforge.streaming.mcp._results import result_text


def _b64(size: int) -> str:
    return base64.b64encode(b"x" * size).decode()


def test_every_block_kind_becomes_text_or_a_one_line_summary() -> None:
    blocks = [
        types.TextContent(type="text", text="first"),
        types.ImageContent(type="image", data=_b64(1234), mime_type="image/png"),
        types.AudioContent(type="audio", data=_b64(10), mime_type="audio/wav"),
        types.EmbeddedResource(
            type="resource",
            resource=types.TextResourceContents(
                uri="file:///a.txt", mime_type="text/plain", text="file text"
            ),
        ),
        types.EmbeddedResource(
            type="resource",
            resource=types.BlobResourceContents(
                uri="file:///b.bin", mime_type="application/octet-stream", blob=_b64(5)
            ),
        ),
        types.ResourceLink(type="resource_link", uri="file:///c.md", name="c"),
        types.TextContent(type="text", text="last"),
    ]
    assert content_text(blocks).splitlines() == [
        "first",
        "[image: image/png, 1234 bytes]",
        "[audio: audio/wav, 10 bytes]",
        "file text",
        "[resource: file:///b.bin, application/octet-stream, 5 bytes]",
        "[resource link: file:///c.md]",
        "last",
    ]


def test_a_result_without_content_answers_its_structured_content() -> None:
    assert result_text(types.CallToolResult(content=[], structured_content={"total": 3})) == '{"total": 3}'
    assert result_text(types.CallToolResult(content=[])) == ""
