"""How to reach one MCP server (``MCPServer.stdio(...)``, ``MCPServer.http(...)``), and opening its transport.

An ``MCPServer`` is a frozen description, cheap to build and safe to print: its repr shows header and
environment *names* only, and the values of headers, variables and URL query parameters that look secret
(``Authorization``, ``*KEY*``, ``*TOKEN*``, ...) and a URL's password are registered with
``modelforge._secrets`` the moment the description is built, so they are masked in every later error and log
line. A URL's ``user:password@`` is sent as HTTP Basic auth, never as part of the URL, so no request line or
log of the HTTP client carries it. Only ``open_transport`` touches the ``mcp`` SDK.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from modelforge._secrets import mask_secrets, register_secret
from modelforge.exceptions import InvalidInputError

__all__ = ["HTTP_READ_TIMEOUT", "HTTP_TIMEOUT", "MCPServer", "display_url", "open_transport"]

# The SDK's own defaults for streamable HTTP: 30 s to connect/write, 5 min for a held-open event stream.
HTTP_TIMEOUT = 30.0
HTTP_READ_TIMEOUT = 300.0

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECRET_NAME = re.compile(r"auth|key|token|secret|password|passwd|cookie|session|credential", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/@?#]*@")

Transport = Literal["stdio", "http"]


def _register_secret_values(values: Mapping[str, str]) -> None:
    """Register every value whose name looks secret, and its token part (``Bearer <token>``)."""
    for name, value in values.items():
        if _SECRET_NAME.search(name):
            register_secret(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                register_secret(token.strip())


def display_url(url: str) -> str:
    """``url`` fit for a message: no ``user:password@`` part, known secrets masked."""
    return mask_secrets(_USERINFO.sub("", url))


@dataclass(frozen=True, repr=False)
class MCPServer:
    """One MCP server to connect to. Build it with ``MCPServer.stdio(...)`` or ``MCPServer.http(...)``.

    ``name`` identifies the server in tool names (``<server>__<tool>`` on a clash) and in every error; it
    must be 1-64 letters, digits, ``_`` or ``-`` so prefixed names stay valid for every provider.
    """

    name: str
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidInputError(
                f"MCP server name {self.name!r} must be 1-64 letters, digits, '_' or '-' "
                "(it becomes part of tool names)"
            )
        if self.transport == "stdio" and not self.command:
            raise InvalidInputError(f"MCP server '{self.name}': a stdio server needs a command")
        if self.transport == "http" and not (self.url and self.url.startswith(("http://", "https://"))):
            raise InvalidInputError(
                f"MCP server '{self.name}': an HTTP server needs an http:// or https:// url"
            )
        # Read-only copies: the description cannot change under a running connection.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        if self.env is not None:
            object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        _register_secret_values(self.headers)
        _register_secret_values(self.env or {})
        if self.url:
            parts = urllib.parse.urlsplit(self.url)
            register_secret(parts.password)
            _register_secret_values(dict(urllib.parse.parse_qsl(parts.query)))

    @classmethod
    def stdio(
        cls,
        name: str,
        *,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> MCPServer:
        """A server started as a subprocess that speaks MCP on its stdin/stdout.

        ``env`` is added to the SDK's small safe environment (``HOME``, ``PATH``, ``USER``, ...); the rest of
        this process's environment is not passed on. The server's stderr goes to this process's stderr.
        """
        return cls(
            name,
            "stdio",
            command=command,
            args=tuple(args),
            env=env,
            cwd=None if cwd is None else str(cwd),
        )

    @classmethod
    def http(cls, name: str, *, url: str, headers: Mapping[str, str] | None = None) -> MCPServer:
        """A server reached over streamable HTTP at ``url`` (e.g. ``http://127.0.0.1:8000/mcp``).

        ``headers`` go with every request (``Authorization``, API keys); their values never appear in a
        repr, an error or a log line.
        """
        return cls(name, "http", url=url, headers=dict(headers or {}))

    @property
    def location(self) -> str:
        """Where the server is, fit for a message: the command line or the URL without credentials."""
        if self.transport == "stdio":
            return mask_secrets(" ".join([self.command or "", *self.args]))
        return display_url(self.url or "")

    def __repr__(self) -> str:
        if self.transport == "stdio":
            env = "" if self.env is None else f", env={sorted(self.env)!r}"
            return f"MCPServer.stdio({self.name!r}, command={self.location!r}{env})"
        headers = f", headers={sorted(self.headers)!r}" if self.headers else ""
        return f"MCPServer.http({self.name!r}, url={self.location!r}{headers})"


async def open_transport(server: MCPServer, stack: AsyncExitStack) -> tuple[Any, Any]:
    """Open ``server``'s transport on ``stack`` and return its (read, write) streams. Needs ``mcp``."""
    if server.transport == "stdio":
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=server.command or "",
            args=list(server.args),
            env=None if server.env is None else dict(server.env),
            cwd=server.cwd,
        )
        return await stack.enter_async_context(stdio_client(params))

    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    url = server.url or ""
    parts = urllib.parse.urlsplit(url)
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = httpx2.BasicAuth(
            urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")
        )
        url = _USERINFO.sub("", url)
    client: Any = await stack.enter_async_context(
        httpx2.AsyncClient(
            headers=dict(server.headers),
            auth=auth,
            timeout=httpx2.Timeout(HTTP_TIMEOUT, read=HTTP_READ_TIMEOUT),
        )
    )
    return await stack.enter_async_context(streamable_http_client(url, http_client=client))
