"""HTTP/1.1 over raw asyncio streams, parsed with h11, with the socket control fault scripts need.

Owns one TCP connection (``HttpConnection``: keep-alive request cycles, a background reader that notices
the client going away at any time) and one request/response exchange (``Exchange``: fixed-length or
chunked answers, abrupt abort, interruptible sleeps, waiting for the client to leave).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from urllib.parse import parse_qsl, urlsplit

import h11

__all__ = ["ConnectionHooks", "Exchange", "Handler", "HttpConnection", "PatternRoute"]

_log = logging.getLogger(__name__)

# A route matched by method and a full-path regular expression; the handler gets the match.
PatternRoute = tuple[str, "re.Pattern[str]", Callable[["Exchange", "re.Match[str]"], Awaitable[None]]]

_READ_SIZE = 65536


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:  # e.g. Anthropic's 529
        return b"Overloaded" if status == 529 else b""


class ConnectionHooks:
    """Callbacks a connection reports to (the server's counters)."""

    def __init__(
        self,
        on_client_gone: Callable[[], None],
        on_server_abort: Callable[[], None],
    ) -> None:
        self.on_client_gone = on_client_gone
        self.on_server_abort = on_server_abort


class Exchange:
    """One request and the means to answer it."""

    def __init__(self, conn: HttpConnection, request: h11.Request, body: bytes) -> None:
        self._conn = conn
        self.method = request.method.decode("ascii")
        self.target = request.target.decode("latin-1")
        parts = urlsplit(self.target)
        self.path = parts.path
        self.query: dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers: dict[str, str] = {}
        for name, value in request.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text
        self.body = body
        self.connection_id = conn.connection_id
        self.started = False
        self.complete = False
        self.aborted = False
        self.gone_counted = False

    # -- state -----------------------------------------------------------------------------------------

    @property
    def client_gone(self) -> bool:
        """Whether the client closed (or reset) the connection."""
        return self._conn.gone.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; ``False`` (early) when the client went away meanwhile."""
        if self.client_gone:
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self._conn.gone.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def wait_client_gone(self) -> None:
        """Block until the client goes away (or the server stops and cancels the connection)."""
        await self._conn.gone.wait()

    # -- answering -------------------------------------------------------------------------------------

    async def respond(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> bool:
        """Send a complete fixed-length answer."""
        hdrs = dict(headers or {})
        hdrs["content-length"] = str(len(body))
        if not await self._send_head(status, hdrs, content_type):
            return False
        data = self._conn.h11.send(h11.Data(data=body)) if body else b""
        return await self._write((data or b"") + (self._conn.h11.send(h11.EndOfMessage()) or b""), last=True)

    async def start(
        self, status: int, headers: Mapping[str, str] | None = None, content_type: str = "text/event-stream"
    ) -> bool:
        """Send the status line and headers of a chunked (streamed) answer."""
        hdrs = dict(headers or {})
        hdrs.setdefault("cache-control", "no-cache")
        return await self._send_head(status, hdrs, content_type)

    async def send(self, data: bytes) -> bool:
        """Send one chunk of a streamed answer; ``False`` if the client is gone."""
        if not data:
            return not self.client_gone
        return await self._write(self._conn.h11.send(h11.Data(data=data)) or b"")

    async def finish(self, data: bytes = b"") -> bool:
        """Send ``data`` (if any) and the chunked terminator in one write."""
        out = self._conn.h11.send(h11.Data(data=data)) if data else b""
        return await self._write((out or b"") + (self._conn.h11.send(h11.EndOfMessage()) or b""), last=True)

    def abort(self) -> None:
        """Drop the TCP connection at once (no terminator, nothing flushed)."""
        if self.aborted:
            return
        self.aborted = True
        self._conn.hooks.on_server_abort()
        self._conn.abort()

    # -- internals -------------------------------------------------------------------------------------

    async def _send_head(self, status: int, headers: dict[str, str], content_type: str) -> bool:
        base = {
            "content-type": content_type,
            "date": formatdate(usegmt=True),
            "server": "modelforge-test",
        }
        base.update({k.lower(): v for k, v in headers.items()})
        self.started = True
        event = h11.Response(status_code=status, headers=list(base.items()), reason=_reason(status))
        return await self._write(self._conn.h11.send(event) or b"")

    async def _write(self, data: bytes, last: bool = False) -> bool:
        conn = self._conn
        if self.aborted or conn.writer.is_closing() or self.client_gone:
            conn.note_client_gone()
            return False
        try:
            conn.writer.write(data)
            if last:
                self.complete = True
            await conn.writer.drain()
        except (ConnectionError, OSError):
            conn.note_client_gone()
            return False
        return True


Handler = Callable[[Exchange], Awaitable[None]]


class HttpConnection:
    """Serves keep-alive request cycles on one accepted socket."""

    def __init__(
        self,
        connection_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        hooks: ConnectionHooks,
    ) -> None:
        self.connection_id = connection_id
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.hooks = hooks
        self.h11 = h11.Connection(h11.SERVER)
        self.gone = asyncio.Event()
        self._wake = asyncio.Event()
        self.current: Exchange | None = None

    def note_client_gone(self) -> None:
        """The client went away: count it once if an answer was still under way."""
        self.gone.set()
        ex = self.current
        if ex is not None and not ex.complete and not ex.aborted and not ex.gone_counted:
            ex.gone_counted = True
            self.hooks.on_client_gone()

    def abort(self) -> None:
        """Close the socket at once, dropping anything not yet sent."""
        self.writer.transport.abort()

    async def serve(self) -> None:
        """Answer requests until either side closes the connection."""
        pump = asyncio.create_task(self._pump())
        try:
            await self._cycles()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._close()

    async def _cycles(self) -> None:
        while True:
            try:
                event = await self._next_event()
                if not isinstance(event, h11.Request):
                    return
                body = await self._read_body()
            except h11.RemoteProtocolError:
                await self._bad_request()
                return
            if body is None:
                return
            exchange = Exchange(self, event, body)
            self.current = exchange
            try:
                await self.handler(exchange)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("test server handler failed for %s %s", exchange.method, exchange.target)
                if not exchange.started and not exchange.client_gone:
                    await exchange.respond(500, b'{"error": "test server handler failed"}')
                else:
                    exchange.abort()
            if not exchange.complete or exchange.aborted or self.gone.is_set():
                return
            self.current = None
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                return
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            self._wake.clear()
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                await self._wake.wait()
                continue
            return event

    async def _read_body(self) -> bytes | None:
        parts: list[bytes] = []
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                return None

    async def _pump(self) -> None:
        # Cancellation (normal end of the connection, server stop) skips the bookkeeping below on purpose:
        # only a client that closed or reset the socket counts as gone.
        try:
            while True:
                data = await self.reader.read(_READ_SIZE)
                if not data:
                    break
                self.h11.receive_data(data)
                self._wake.set()
        except (ConnectionError, OSError):
            pass
        with contextlib.suppress(RuntimeError, h11.RemoteProtocolError):
            self.h11.receive_data(b"")
        self._wake.set()
        self.note_client_gone()

    async def _bad_request(self) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = b'{"error": "bad request"}'
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        with contextlib.suppress(Exception):
            self.writer.write(self.h11.send(h11.Response(status_code=400, headers=headers)) or b"")
            self.writer.write(self.h11.send(h11.Data(data=body)) or b"")
            self.writer.write(self.h11.send(h11.EndOfMessage()) or b"")
            await self.writer.drain()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
