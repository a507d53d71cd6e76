"""MCP tools over streamable HTTP: calls, headers that arrive but never show, tool errors for the model, a
server that dies, a server that is not there."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import signal
import socket

import pytest
from langchain_core.messages import ToolMessage

from modelforge._secrets import mask_secrets
from modelforge.streaming.mcp import MCPConnectionError, MCPServer, MCPToolset
from tests.mcp.conftest import start_http_server

# A realistic bearer token and API key, registered as secrets by MCPServer.http(); the suite's secret scan
# fails the run if either reaches a log record, captured output or a ModelForge error.
TOKEN = "mcp-test-token-7f3a9c1e5b2d4f6a8c0e"
API_KEY = "mcp-test-apikey-0b1c2d3e4f5a6b7c"


def _server(url: str, name: str = "calc") -> MCPServer:
    return MCPServer.http(name, url=url, headers={"Authorization": f"Bearer {TOKEN}", "X-Api-Key": API_KEY})


async def test_tools_over_http_with_headers_that_arrive_and_never_show(
    http_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = _server(http_server)
    assert TOKEN not in repr(server) and API_KEY not in repr(server)
    assert (
        repr(server) == f"MCPServer.http('calc', url='{http_server}', headers=['Authorization', 'X-Api-Key'])"
    )
    assert TOKEN not in mask_secrets(f"token={TOKEN}") and API_KEY not in mask_secrets(API_KEY)

    async with MCPToolset([server], handle_tool_errors=True) as toolset:
        assert await toolset.get_tool("add").ainvoke({"a": 20, "b": 22}) == "42"
        # The server saw the header (it answers a hash of it, never the header itself).
        assert await toolset.call("whoami") == hashlib.sha256(f"Bearer {TOKEN}".encode()).hexdigest()

        # handle_tool_errors: an isError answer becomes the tool message the model reads.
        message = await toolset.get_tool("fail").ainvoke(
            {"name": "fail", "args": {"reason": "quota exceeded"}, "id": "c9", "type": "tool_call"}
        )
        assert isinstance(message, ToolMessage)
        assert message.status == "error"
        assert (
            message.content
            == "MCP tool 'fail' on server 'calc' failed: Error executing tool fail: quota exceeded"
        )
    assert TOKEN not in caplog.text and API_KEY not in caplog.text


async def test_credentials_in_the_url_go_as_basic_auth(http_server: str) -> None:
    password = "url-pass-5e6f7a8b9c"
    url = http_server.replace("http://", f"http://alice:{password}@")
    server = MCPServer.http("basic", url=url)
    assert password not in repr(server)
    async with MCPToolset([server]) as toolset:
        expected = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
        assert await toolset.call("whoami") == hashlib.sha256(expected.encode()).hexdigest()


async def test_a_killed_http_server_gives_a_clear_error() -> None:
    before = asyncio.all_tasks()
    with start_http_server() as (url, process):
        async with MCPToolset([_server(url, "search")], call_timeout=5) as toolset:
            assert await toolset.call("add", {"a": 1, "b": 2}) == "3"
            process.send_signal(signal.SIGKILL)
            process.wait()
            with pytest.raises(MCPConnectionError) as caught:
                await toolset.call("add", {"a": 1, "b": 2})
            message = str(caught.value)
            assert message.startswith("MCP tool 'add' on server 'search': ")
            assert url in message
            assert TOKEN not in message
            # Later calls fail the same way, at once.
            with pytest.raises(MCPConnectionError):
                await toolset.call("add", {"a": 1, "b": 2})
    assert asyncio.all_tasks() - before == set()


async def test_an_unreachable_url_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here once the socket closes
    url = f"http://user:hunter2pass@127.0.0.1:{port}/mcp"
    with pytest.raises(MCPConnectionError) as caught:
        async with MCPToolset([_server(url, "down")], connect_timeout=5):
            pytest.fail("must not open")
    message = str(caught.value)
    assert message.startswith("MCP server 'down': could not connect (")
    assert f"http://127.0.0.1:{port}/mcp" in message and "hunter2pass" not in message
