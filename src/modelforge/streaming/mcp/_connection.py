"""One live connection to one MCP server: a background task that owns the SDK session, and error translation.

The ``mcp`` SDK is built on anyio: its transports and ``ClientSession`` hold task groups and cancel scopes
that must be entered and left by the same task. So each connection runs in a task of its own (``_run``) that
opens the transport, performs the handshake, reports ready, and then waits for ``close()``; calls from any
task of the same loop go through the session, and the toolset can be opened and closed from different tasks
(as pytest fixtures and web-framework lifespans do). When the transport dies (the process exited, the HTTP
server vanished), the task ends, records why, and every later call fails at once with that reason.

Every SDK error is translated here, once: ``MCPError`` timeouts become ``MCPTimeoutError``, a closed
connection ``MCPConnectionError`` (or ``MCPToolsetClosedError`` after ``close()``), an error answer or an
``isError`` result ``ToolExecutionError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

from modelforge._secrets import mask_secrets
from modelforge.streaming.mcp._errors import (
    MCPConnectionError,
    MCPTimeoutError,
    MCPToolsetClosedError,
    ToolExecutionError,
)
from modelforge.streaming.mcp._results import result_text
from modelforge.streaming.mcp._servers import MCPServer, open_transport

__all__ = ["Connection"]

logger = logging.getLogger(__name__)

# JSON-RPC error codes the SDK uses for its own failures (stable across SDK versions).
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001
# Extra time past the SDK's own read timeout before our backstop fires (a write stuck on a full pipe).
_BACKSTOP_GRACE = 1.0
# Pages of tools/list followed at most: a server whose cursor never ends cannot hang a listing.
_MAX_PAGES = 100
# Seconds close() waits for the connection to wind down (the SDK gives a stdio server 2 s to exit before it
# terminates it), and then again after cancelling it, before giving up on it.
_CLOSE_TIMEOUT = 5.0


def _root_cause(err: BaseException) -> BaseException:
    """The first meaningful exception inside (possibly nested) exception groups."""
    while isinstance(err, BaseExceptionGroup):
        inner = [e for e in err.exceptions if not isinstance(e, asyncio.CancelledError)]
        err = (inner or list(err.exceptions))[0]
    return err


def _describe(err: BaseException) -> str:
    cause = _root_cause(err)
    text = str(cause).strip()
    return mask_secrets(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)


class Connection:
    """A connected MCP session to ``server``, run by a background task. Use ``open()`` then ``close()``."""

    def __init__(self, server: MCPServer, *, on_tools_changed: Callable[[str], None] | None = None) -> None:
        self.server = server
        self._on_tools_changed = on_tools_changed
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def open(self, limit: float | None) -> None:
        """Start the connection task and wait for the handshake; on any failure nothing is left running."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._task = loop.create_task(self._run(), name=f"modelforge-mcp[{self.server.name}]")
        try:
            done, _ = await asyncio.wait(
                {self._ready, self._task}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # cancelled while connecting
            await self.close()
            raise
        if self._ready in done and self._ready.exception() is None:
            return
        if done:
            error: Exception = self._connection_error(None, "could not connect")
        else:
            error = MCPTimeoutError(self.server.name, "connecting to", limit)
        await self.close()
        raise error

    async def close(self) -> None:
        """Stop the connection task and wait for it: the subprocess has exited (or been killed) on return.

        The wait is bounded: a connection that does not wind down within ``_CLOSE_TIMEOUT`` seconds is
        cancelled, and one that does not end within as long again is given up (and logged)."""
        self._closed = True
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        if self._session is None:  # still connecting: nothing to wind down gracefully
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=_CLOSE_TIMEOUT)
        if done:
            return
        logger.debug("MCP server %r did not close within %gs: cancelling", self.server.name, _CLOSE_TIMEOUT)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=_CLOSE_TIMEOUT)
        if not done:
            logger.warning("MCP server %r could not be closed; giving up on it", self.server.name)

    async def _run(self) -> None:
        assert self._ready is not None
        try:
            from mcp import ClientSession

            async with AsyncExitStack() as stack:
                read, write = await open_transport(self.server, stack)
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message)
                )
                await session.initialize()
                self._session = session
                self._ready.set_result(None)
                logger.debug("Connected to MCP server %r (%s)", self.server.name, self.server.transport)
                await self._stop.wait()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # the task's outcome is reported through _failure, never raised
            if not isinstance(_root_cause(err), asyncio.CancelledError):
                self._failure = err
                logger.debug("MCP server %r disconnected: %s", self.server.name, _describe(err))
        finally:
            self._session = None
            if not self._ready.done():
                self._ready.set_exception(MCPConnectionError(self.server.name, "could not connect"))
                self._ready.exception()  # retrieved: no "never retrieved" warning

    async def _on_message(self, message: Any) -> None:
        notification = getattr(message, "root", message)
        if getattr(notification, "method", None) == "notifications/tools/list_changed":
            logger.debug("MCP server %r says its tools changed", self.server.name)
            if self._on_tools_changed is not None:
                self._on_tools_changed(self.server.name)

    # --- requests ------------------------------------------------------------------------------------------

    def _live_session(self, tool: str | None) -> Any:
        if self._closed:
            raise MCPToolsetClosedError(self.server.name, tool)
        if self._session is None:
            raise self._connection_error(tool, "the server is gone")
        return self._session

    def _connection_error(self, tool: str | None, what: str) -> MCPConnectionError:
        if self._closed:
            return MCPToolsetClosedError(self.server.name, tool)
        why = f" ({_describe(self._failure)})" if self._failure is not None else ""
        return MCPConnectionError(
            self.server.name,
            f"{what}{why}; {self.server.transport} server at {self.server.location}",
            tool=tool,
            url=self.server.location if self.server.transport == "http" else None,
        )

    def _translate(self, err: Exception, tool: str | None, operation: str, limit: float | None) -> Exception:
        from mcp.shared.exceptions import MCPError

        if isinstance(err, TimeoutError) or (isinstance(err, MCPError) and err.code == _REQUEST_TIMEOUT):
            return MCPTimeoutError(self.server.name, operation, limit, tool=tool)
        if isinstance(err, MCPError) and err.code == _CONNECTION_CLOSED:
            return self._connection_error(tool, "the server went away (connection closed)")
        if self._closed or self._session is None or isinstance(err, OSError):
            return self._connection_error(tool, "the connection failed")
        reason = mask_secrets(err.message) if isinstance(err, MCPError) else _describe(err)
        if tool is None:
            return self._connection_error(None, f"the server answered tools/list with an error: {reason}")
        return ToolExecutionError(self.server.name, tool, reason)

    @contextlib.asynccontextmanager
    async def _request(
        self, tool: str | None, operation: str, limit: float | None, *, grace: float = 0.0
    ) -> AsyncIterator[Any]:
        """The live session, with every error inside the block translated and ``limit + grace`` enforced."""
        session = self._live_session(tool)
        try:
            async with asyncio.timeout(None if limit is None else limit + grace):
                yield session
        except (MCPConnectionError, MCPTimeoutError, ToolExecutionError):
            raise
        except Exception as err:
            raise self._translate(err, tool, operation, limit) from err

    async def list_tools(self, limit: float | None) -> list[Any]:
        """Every tool the server offers now (all pages), as the SDK's ``Tool`` objects."""
        from mcp.types import PaginatedRequestParams

        tools: list[Any] = []
        async with self._request(None, "listing the tools of", limit) as session:
            cursor: str | None = None
            for _ in range(_MAX_PAGES):
                params = None if cursor is None else PaginatedRequestParams(cursor=cursor)
                page = await session.list_tools(params=params)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        return tools

    async def call_tool(self, tool: str, arguments: dict[str, Any], limit: float | None) -> str:
        """Run ``tool`` and answer its text; an ``isError`` result raises ``ToolExecutionError``."""
        # The SDK's read timeout ends the request (and tells the server to stop); ours is the backstop for
        # a write that never completes.
        async with self._request(tool, "calling", limit, grace=_BACKSTOP_GRACE) as session:
            result = await session.call_tool(tool, arguments, read_timeout_seconds=limit)
        text = result_text(result)
        if result.is_error:
            raise ToolExecutionError(self.server.name, tool, text or "the tool reported an error")
        return text
