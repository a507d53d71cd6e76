"""A real MCP server for the MCP adapter's tests, built with the official SDK's ``MCPServer`` (ex-FastMCP).

Run it over stdio (the default) or streamable HTTP on 127.0.0.1::

    python tests/mcp/calc_server.py [--flavour calc|text] [--pidfile PATH]
    python tests/mcp/calc_server.py --http PORT [--flavour calc|text] [--pidfile PATH]

Flavour ``calc`` (the default) serves ``add``, ``multiply``, ``slow``, ``fail``, ``pid``, ``picture``,
``whoami`` and ``enable_power`` (which adds a ``power`` tool at run time and tells the client its tool list
changed). Flavour ``text`` serves ``add`` (string concatenation, to clash with calc's ``add``) and ``upper``.

``whoami`` answers the SHA-256 of the HTTP ``Authorization`` header, never the header itself, so a test can
check the header arrived without the secret reaching any output.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import zlib

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image


def _png(width: int = 1, height: int = 1) -> bytes:
    """A valid, fully transparent RGBA PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\x00" * 4 * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


PNG_BYTES = _png()


def build_calc(server: MCPServer) -> None:
    """Register the ``calc`` flavour's tools."""

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def multiply(a: float, b: float) -> float:
        """Multiply two numbers."""
        return a * b

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleep for ``seconds``, then answer."""
        await anyio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool()
    def fail(reason: str = "boom") -> str:
        """Always fails with ``reason`` (an MCP ``isError`` result)."""
        raise ToolError(reason)

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool(structured_output=False)
    def picture() -> list[object]:
        """A caption and a 1x1 PNG."""
        return ["a tiny picture", Image(data=PNG_BYTES, format="png")]

    @server.tool()
    def whoami(ctx: Context) -> str:
        """SHA-256 of the Authorization header this request carried ("none" without one)."""
        headers = ctx.headers or {}
        value = headers.get("authorization")
        return hashlib.sha256(value.encode()).hexdigest() if value else "none"

    @server.tool()
    async def enable_power(ctx: Context) -> str:
        """Add a ``power`` tool and announce the new tool list."""

        def power(base: int, exponent: int) -> int:
            """``base`` raised to ``exponent``."""
            return int(base**exponent)

        server.add_tool(power)
        await ctx.request_context.session.send_tool_list_changed()
        return "power enabled"


def build_text(server: MCPServer) -> None:
    """Register the ``text`` flavour's tools."""

    @server.tool()
    def add(a: str, b: str) -> str:
        """Concatenate two strings."""
        return a + b

    @server.tool()
    def upper(text: str) -> str:
        """Upper-case ``text``."""
        return text.upper()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT")
    parser.add_argument("--flavour", choices=("calc", "text"), default="calc")
    parser.add_argument("--pidfile", help="write this process's id to PIDFILE once the tools are ready")
    options = parser.parse_args()

    server = MCPServer(options.flavour, log_level="WARNING")
    (build_calc if options.flavour == "calc" else build_text)(server)
    if options.pidfile:
        with open(options.pidfile, "w") as file:
            file.write(str(os.getpid()))
    if options.http:
        server.run("streamable-http", host="127.0.0.1", port=options.http)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
