"""MCP tools as LangChain tools: ``MCPTool`` (a ``BaseTool``), and the names they get across servers.

An ``MCPTool`` carries the server tool's JSON input schema unchanged as its ``args_schema`` (a dict, which
langchain-core 1.x accepts as is), so ``llm.bind_tools(tools)`` sends the model exactly what the server
declared. Running it asks its toolset to call the server; the toolset owns connections and errors.

Names: a tool keeps its server's name, made safe for every provider (``[A-Za-z0-9_-]``, at most 64
characters); when two servers offer the same name, each of those tools is named ``<server>__<tool>`` instead.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from langchain_core.tools import BaseTool
from pydantic import PrivateAttr

from modelforge.streaming.mcp._errors import MCPToolsetClosedError

__all__ = ["MCPTool", "RemoteCaller", "assign_names", "live_loop", "tool_schema"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 64


class RemoteCaller(Protocol):
    """What an ``MCPTool`` needs from its toolset."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the connections live on (``None`` before opening)."""
        ...

    async def call_remote(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        """Run ``tool`` on ``server`` and answer its text."""
        ...


def live_loop(loop: asyncio.AbstractEventLoop | None, server: str, tool: str) -> asyncio.AbstractEventLoop:
    """``loop`` if a call can be handed to it (it runs), else ``MCPToolsetClosedError``: a call handed to a
    loop that does not run would wait forever."""
    if loop is None or loop.is_closed() or not loop.is_running():
        raise MCPToolsetClosedError(server, tool)
    return loop


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name)[:_MAX_NAME] or "tool"


def assign_names(tools: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Unique LangChain names for ``(server, tool)`` pairs, in order: prefixed with the server on a clash."""
    pairs = list(tools)
    counts = Counter(_safe(tool) for _, tool in pairs)
    taken: set[str] = set()
    names: dict[tuple[str, str], str] = {}
    for server, tool in pairs:
        name = _safe(tool)
        if counts[name] > 1:
            name = f"{server}__{name}"[:_MAX_NAME]
        candidate, number = name, 2
        while candidate in taken:  # only a server that lists one name twice, or a 64-character cut, gets here
            suffix = f"_{number}"
            candidate, number = name[: _MAX_NAME - len(suffix)] + suffix, number + 1
        taken.add(candidate)
        names[(server, tool)] = candidate
    return names


def tool_schema(input_schema: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of an MCP ``inputSchema`` fit for ``args_schema``: always an object with ``properties``."""
    schema = copy.deepcopy(input_schema) if input_schema else {}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


class MCPTool(BaseTool):
    """One MCP server tool as a LangChain tool. Async (``ainvoke``); ``invoke`` works from other threads.

    ``server`` and ``remote_name`` say where it runs; ``name`` is what the model sees (they differ on a
    clash). Errors: ``ToolExecutionError`` when the tool reports ``isError`` (a LangChain ``ToolException``,
    so ``handle_tool_error=True`` hands the message to the model), ``MCPTimeoutError``,
    ``MCPConnectionError`` and ``MCPToolsetClosedError`` otherwise.
    """

    server: str
    remote_name: str
    _caller: RemoteCaller = PrivateAttr()

    def __init__(self, *, caller: RemoteCaller, **data: Any) -> None:
        super().__init__(**data)
        self._caller = caller

    async def _arun(self, *args: Any, **kwargs: Any) -> str:
        if args:  # a plain string input: only meaningful for a tool with exactly one parameter
            kwargs = {**dict(zip(self._parameter_names(), args, strict=False)), **kwargs}
        return await self._caller.call_remote(self.server, self.remote_name, kwargs)

    def _run(self, *args: Any, **kwargs: Any) -> str:
        loop = self._caller.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is loop:
            raise RuntimeError(
                f"MCP tool '{self.name}' was invoked synchronously on the event loop that owns its toolset, "
                "which would deadlock: use `await tool.ainvoke(...)` there"
            )
        future = asyncio.run_coroutine_threadsafe(
            self._arun(*args, **kwargs), live_loop(loop, self.server, self.remote_name)
        )
        return future.result()

    def _parameter_names(self) -> list[str]:
        schema = self.args_schema if isinstance(self.args_schema, dict) else {}
        return list(schema.get("properties", {}))
