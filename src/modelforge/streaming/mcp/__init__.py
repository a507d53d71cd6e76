"""MCP tools for ModelForge: connect to MCP servers and use their tools as LangChain tools.

::

    from modelforge.streaming.mcp import MCPServer, MCPToolset

    servers = [
        MCPServer.stdio("calc", command=sys.executable, args=["-m", "my_server"]),
        MCPServer.http("search", url="http://127.0.0.1:8123/mcp", headers={"Authorization": "Bearer ..."}),
    ]
    async with MCPToolset(servers, call_timeout=30.0) as toolset:
        llm_with_tools = llm.bind_tools(toolset.tools)     # list[BaseTool], names unique across servers
        text = await toolset.call("add", {"a": 1, "b": 2})  # -> "3"
        await toolset.refresh()                            # servers may change their tools at run time

Needs the official ``mcp`` SDK (``pip install 'model-forge-llm[mcp]'``); it is imported only when a toolset
opens, and its absence raises ``ProviderNotAvailableError`` naming that command. (This ``MCPServer`` describes
a server to connect to; it is not the SDK's ``mcp.server.mcpserver.MCPServer``, which builds one.)

What this package owns:

* ``MCPServer`` (``_servers``): how to reach one server over stdio or streamable HTTP. Secret-looking header
  and environment values are registered with ``modelforge._secrets`` and never shown.
* ``MCPToolset`` (``_toolset``): concurrent connect, tool listing and naming (``<server>__<tool>`` only on a
  clash), ``refresh()``, ``call()``, clean shutdown.
* ``MCPTool`` (``_tools``): one server tool as a LangChain ``BaseTool`` whose ``args_schema`` is the server's
  JSON input schema, ready for ``bind_tools`` and the tool loop.
* The connection task per server and SDK error translation (``_connection``); content blocks to text
  (``_results``): text joined by newlines, other blocks summarised as ``[image: image/png, 1234 bytes]``.
* The errors (``_errors``)::

      MCPConnectionError(NetworkConnectionError)  unreachable, handshake failed, or the server went away
      └── MCPToolsetClosedError                    used outside `async with`
      MCPTimeoutError(NetworkTimeoutError)         connect, listing or call took too long; names server, tool
      ToolExecutionError(ProviderError, ToolException)   the tool answered isError, or refused the call
"""

from __future__ import annotations

from modelforge.streaming.mcp._errors import (
    INSTALL_HINT,
    MCPConnectionError,
    MCPTimeoutError,
    MCPToolsetClosedError,
    ToolExecutionError,
)
from modelforge.streaming.mcp._results import content_text
from modelforge.streaming.mcp._servers import MCPServer
from modelforge.streaming.mcp._tools import MCPTool
from modelforge.streaming.mcp._toolset import MCPToolset

__all__ = [
    "INSTALL_HINT",
    "MCPConnectionError",
    "MCPServer",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolset",
    "MCPToolsetClosedError",
    "ToolExecutionError",
    "content_text",
]
