"""``MCPToolset``: connect to several MCP servers at once, list their tools, hand them out as LangChain tools.

::

    async with MCPToolset([MCPServer.stdio("calc", command="calc-server")], call_timeout=30.0) as toolset:
        llm_with_tools = llm.bind_tools(toolset.tools)
        text = await toolset.call("add", {"a": 1, "b": 2})

Opening connects every server concurrently and lists its tools; if any server fails, every connection
already made is closed before the error is raised. Closing stops every connection and waits for it (a stdio
server's process has exited when ``__aexit__`` returns). The toolset may be opened and closed from different
tasks of one loop; its tools may be run from any task of that loop, from another loop (handed over to the
toolset's loop), or synchronously from another thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from langchain_core.tools import BaseTool

from modelforge.exceptions import InvalidInputError
from modelforge.streaming.mcp._connection import Connection
from modelforge.streaming.mcp._errors import MCPToolsetClosedError, require_mcp
from modelforge.streaming.mcp._servers import MCPServer
from modelforge.streaming.mcp._tools import MCPTool, assign_names, live_loop, tool_schema
from modelforge.validation import InputValidator

__all__ = ["MCPToolset"]

logger = logging.getLogger(__name__)


def _seconds(value: float | None, name: str) -> float | None:
    return None if value is None else InputValidator.validate_positive_number(value, name)


class MCPToolset:
    """Tools of one or more MCP servers, as LangChain ``BaseTool``s, for as long as the ``async with`` lasts.

    Options (keyword-only):

    * ``call_timeout``: seconds a tool call may take (``None``: no limit); on expiry the server is told to
      stop and ``MCPTimeoutError`` names the server and the tool. Also bounds ``refresh()``.
    * ``connect_timeout``: seconds to start/reach each server and complete the MCP handshake.
    * ``handle_tool_errors``: set ``handle_tool_error`` on every tool, so a tool's ``isError`` answer reaches
      the model as the tool message (LangChain's standard) instead of raising ``ToolExecutionError``.
      Timeouts and lost connections raise either way.
    """

    def __init__(
        self,
        servers: Sequence[MCPServer],
        *,
        call_timeout: float | None = 30.0,
        connect_timeout: float | None = 30.0,
        handle_tool_errors: bool = False,
    ) -> None:
        names = [server.name for server in servers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InvalidInputError(f"MCP server names must be unique; repeated: {', '.join(duplicates)}")
        self._servers = tuple(servers)
        self._call_timeout = _seconds(call_timeout, "call_timeout")
        self._connect_timeout = _seconds(connect_timeout, "connect_timeout")
        self._handle_tool_errors = handle_tool_errors
        self._connections: dict[str, Connection] = {}
        self._tools: list[MCPTool] = []
        self._by_name: dict[str, MCPTool] = {}
        self._changed: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"  # new -> open -> closed

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> MCPToolset:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect every server concurrently and list the tools. A toolset opens once."""
        if self._state != "new":
            raise InvalidInputError(f"this MCPToolset is already {self._state}; build a new one to reconnect")
        require_mcp()
        self._state = "open"
        self._loop = asyncio.get_running_loop()
        self._connections = {
            server.name: Connection(server, on_tools_changed=self._changed.add) for server in self._servers
        }
        try:
            results = await asyncio.gather(
                *(self._connect(conn) for conn in self._connections.values()), return_exceptions=True
            )
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures:
                raise failures[0]
            self._install([tool for result in results if isinstance(result, list) for tool in result])
        except BaseException:
            await self.aclose()
            raise
        logger.debug("MCP toolset open: %d servers, %d tools", len(self._servers), len(self._tools))

    async def _connect(self, conn: Connection) -> list[tuple[str, Any]]:
        await conn.open(self._connect_timeout)
        return [(conn.server.name, tool) for tool in await conn.list_tools(self._connect_timeout)]

    async def aclose(self) -> None:
        """Close every connection and wait for each to end. Safe to call twice."""
        self._state = "closed"
        await asyncio.gather(*(conn.close() for conn in self._connections.values()))

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` ran (tools then raise ``MCPToolsetClosedError``)."""
        return self._state == "closed"

    # --- tools ---------------------------------------------------------------------------------------------

    @property
    def servers(self) -> tuple[MCPServer, ...]:
        """The servers, in the order given."""
        return self._servers

    @property
    def tools(self) -> list[BaseTool]:
        """The tools of every server, in server order, with unique names (a new list each time)."""
        return list(self._tools)

    @property
    def tools_changed(self) -> bool:
        """Whether a server sent ``notifications/tools/list_changed`` since the last listing."""
        return bool(self._changed)

    def get_tool(self, name: str) -> BaseTool:
        """The tool called ``name`` (as in ``tools``; ``<server>__<tool>`` always works too)."""
        return self._lookup(name)

    async def refresh(self) -> list[BaseTool]:
        """List every server's tools again and rebuild ``tools``; returns the new list."""
        self._check_open()
        self._changed.clear()
        listings = await asyncio.gather(
            *(conn.list_tools(self._call_timeout) for conn in self._connections.values())
        )
        self._install(
            [
                (conn.server.name, tool)
                for conn, tools in zip(self._connections.values(), listings, strict=True)
                for tool in tools
            ]
        )
        return self.tools

    def _install(self, listing: list[tuple[str, Any]]) -> None:
        names = assign_names((server, tool.name) for server, tool in listing)
        tools = []
        for server, tool in listing:
            name = names[(server, tool.name)]
            description = (
                tool.description or tool.title or f"The '{tool.name}' tool of MCP server '{server}'."
            )
            tools.append(
                MCPTool(
                    caller=self,
                    name=name,
                    description=description,
                    args_schema=tool_schema(tool.input_schema),
                    server=server,
                    remote_name=tool.name,
                    handle_tool_error=self._handle_tool_errors,
                    metadata={"mcp_server": server, "mcp_tool": tool.name},
                )
            )
        self._tools = tools
        self._by_name = {tool.name: tool for tool in tools}

    # --- calls ---------------------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the connections live on (``None`` before ``open()``)."""
        return self._loop

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, call_timeout: float | None = None
    ) -> str:
        """Run tool ``name`` with ``arguments`` and answer its text (see ``tools`` for names).

        ``call_timeout`` replaces the toolset's for this call. Raises ``ToolExecutionError`` (the tool
        reported an error), ``MCPTimeoutError``, ``MCPConnectionError`` (server gone) or
        ``MCPToolsetClosedError``.
        """
        tool = self._lookup(name)
        limit = self._call_timeout if call_timeout is None else call_timeout
        return await self._call(tool.server, tool.remote_name, dict(arguments or {}), limit)

    async def call_remote(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        """Run ``tool`` on ``server`` under ``call_timeout`` (what an ``MCPTool`` calls)."""
        return await self._call(server, tool, arguments, self._call_timeout)

    async def _call(self, server: str, tool: str, arguments: dict[str, Any], limit: float | None) -> str:
        if self._state != "open" or self._loop is None:
            raise MCPToolsetClosedError(server, tool)
        connection = self._connections[server]
        if asyncio.get_running_loop() is not self._loop:  # the SDK's streams belong to the toolset's loop
            loop = live_loop(self._loop, server, tool)
            call = connection.call_tool(tool, arguments, limit)
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, loop))
        return await connection.call_tool(tool, arguments, limit)

    def _lookup(self, name: str) -> MCPTool:
        tool = self._by_name.get(name)
        if tool is None:
            server, _, remote = name.partition("__")
            matches = [t for t in self._tools if t.server == server and t.remote_name == remote]
            tool = matches[0] if matches else None
        if tool is None:
            self._check_open()
            known = ", ".join(sorted(self._by_name)) or "none"
            raise InvalidInputError(f"No MCP tool named '{name}'; available: {known}")
        return tool

    def _check_open(self) -> None:
        if self._state != "open":
            raise MCPToolsetClosedError()

    def __repr__(self) -> str:
        return f"MCPToolset({list(self._servers)!r}, state={self._state!r}, tools={len(self._tools)})"
