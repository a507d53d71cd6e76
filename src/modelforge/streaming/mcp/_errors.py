"""The errors of the MCP adapter, and the one place that imports the optional ``mcp`` SDK's presence check.

::

    ModelForgeError
    ├── NetworkError
    │   ├── NetworkTimeoutError
    │   │   └── MCPTimeoutError(server, operation, timeout, tool=None)     MCP_TIMEOUT
    │   └── NetworkConnectionError
    │       └── MCPConnectionError(server, reason, tool=None, url=None)    MCP_CONNECTION_ERROR
    │           └── MCPToolsetClosedError(server=None, tool=None)          MCP_TOOLSET_CLOSED
    └── ProviderError
        ├── ProviderNotAvailableError("mcp", ...)   the ``mcp`` package is missing (names the pip command)
        └── ToolExecutionError(server, tool, reason)                       TOOL_EXECUTION_ERROR
            (also a LangChain ``ToolException``: the tool ran and reported ``isError``, or the server
            refused the call; with ``handle_tool_error=True`` LangChain hands the message to the model)

None of these is retryable by default: a tool call may have side effects, so only the caller can tell
whether running it again is safe.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import ToolException

from modelforge.exceptions import (
    NetworkConnectionError,
    NetworkError,
    NetworkTimeoutError,
    ProviderError,
    ProviderNotAvailableError,
)

__all__ = [
    "INSTALL_HINT",
    "MCPConnectionError",
    "MCPTimeoutError",
    "MCPToolsetClosedError",
    "ToolExecutionError",
    "require_mcp",
]

INSTALL_HINT = "pip install 'model-forge-llm[mcp]'"


def _where(server: str | None, tool: str | None) -> str:
    if server and tool:
        return f"MCP tool '{tool}' on server '{server}'"
    if server:
        return f"MCP server '{server}'"
    return "the MCP toolset"


class MCPConnectionError(NetworkConnectionError):
    """An MCP server could not be reached, failed its handshake, or went away (its process died)."""

    default_code = "MCP_CONNECTION_ERROR"
    default_retryable = False

    def __init__(
        self,
        server: str | None,
        reason: str,
        *,
        tool: str | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("suggestion", "Check that the MCP server starts and stays up, then reconnect.")
        details = {"server": server, "tool": tool, "url": url, **kwargs.pop("details", {})}
        # NetworkError's constructor, not NetworkConnectionError's: the message says what happened, without
        # a "Connection failed" prefix that would be wrong for a closed toolset.
        NetworkError.__init__(self, f"{_where(server, tool)}: {reason}", details=details, **kwargs)
        self.operation = _where(server, tool)
        self.url = url
        self.server = server
        self.tool = tool
        self.reason = reason


class MCPToolsetClosedError(MCPConnectionError):
    """A tool (or the toolset) was used outside its ``async with MCPToolset(...)`` block."""

    default_code = "MCP_TOOLSET_CLOSED"

    def __init__(self, server: str | None = None, tool: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault(
            "suggestion", "Call MCP tools inside `async with MCPToolset(...)`, or open a new toolset."
        )
        super().__init__(server, "the MCP toolset is closed", tool=tool, **kwargs)


class MCPTimeoutError(NetworkTimeoutError):
    """Connecting to an MCP server, listing its tools or a tool call did not finish in time.

    ``operation`` reads before the place: ``"calling"`` gives "Timed out after 2s: calling MCP tool 'slow' on
    server 'calc'".
    """

    default_code = "MCP_TIMEOUT"
    default_retryable = False

    def __init__(
        self,
        server: str,
        operation: str,
        timeout: float | None,
        *,
        tool: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("suggestion", "Raise call_timeout (or connect_timeout), or check the MCP server.")
        details = {"server": server, "tool": tool, **kwargs.pop("details", {})}
        super().__init__(f"{operation} {_where(server, tool)}", timeout, details=details, **kwargs)
        self.server = server
        self.tool = tool


class ToolExecutionError(ProviderError, ToolException):
    """An MCP tool reported an error (``isError``) or the server refused the call.

    ``reason`` is the server's text, which is what a model should see; being a LangChain
    ``ToolException`` too, a tool with ``handle_tool_error=True`` returns the message to the model instead of
    raising.
    """

    default_code = "TOOL_EXECUTION_ERROR"

    def __init__(self, server: str, tool: str, reason: str, **kwargs: Any) -> None:
        details = {"server": server, "tool": tool, **kwargs.pop("details", {})}
        super().__init__(f"{_where(server, tool)} failed: {reason}", details=details, **kwargs)
        self.server = server
        self.tool = tool
        self.reason = reason


def require_mcp() -> None:
    """Fail with the exact install command when the optional ``mcp`` SDK is missing."""
    try:
        import mcp  # noqa: F401
    except ImportError as err:
        raise ProviderNotAvailableError(
            "mcp",
            f"the 'mcp' package is not installed; run: {INSTALL_HINT}",
            suggestion=f"Install it with: {INSTALL_HINT}",
        ) from err
