"""The protocol-neutral chat endpoint: one scripted answer played through any protocol's renderer.

Owns ``ChatProtocol`` (what each wire format must render), ``ChatRequest`` (what was asked) and
``serve_chat`` (auth, rate limits, the script queue, latency, streaming and every stream fault).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar
from typing import Protocol as TypingProtocol

from modelforge.testing._common import default_message
from modelforge.testing._http import Exchange
from modelforge.testing._limits import LimitDecision, retry_after_headers
from modelforge.testing.script import (
    Disconnect,
    Fault,
    ProtocolName,
    Recorded,
    RecordedRequest,
    Reply,
    ScriptItem,
    Usage,
)

__all__ = [
    "ChatHost",
    "ChatProtocol",
    "ChatRequest",
    "WireError",
    "request_record",
    "send_error",
    "serve_chat",
]


class WireError(Exception):
    """A request the protocol refuses (rendered as that protocol's error with ``status``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ChatRequest:
    """What a chat request asked for, as far as rendering the answer needs."""

    model: str
    stream: bool
    prompt_tokens: int
    include_usage: bool = False
    response_id: str = ""
    created: int = 0


class ChatHost(TypingProtocol):
    """What the chat endpoint needs from the server."""

    def next_item(self, request: RecordedRequest) -> ScriptItem:
        """The answer for ``request``: the next scripted item, else the responder's, else the default."""
        ...

    def admit(self, prompt_tokens: int) -> LimitDecision | None: ...

    def count_completion(self, tokens: int) -> None: ...


class ChatProtocol(ABC):
    """One wire format of a chat endpoint."""

    name: ClassVar[ProtocolName]
    stream_content_type: ClassVar[str] = "text/event-stream; charset=utf-8"
    error_content_type: ClassVar[str] = "application/json"

    @abstractmethod
    def parse(self, ex: Exchange, data: Any, path_model: str | None) -> ChatRequest:
        """Read the request (raise ``WireError`` to refuse it)."""

    def authorize(self, ex: Exchange) -> str | None:
        """``None`` when the request is authorised, else the error message for a 401."""
        return None

    @abstractmethod
    def error_body(self, status: int, message: str) -> bytes:
        """The protocol's error body."""

    def response_headers(self, chat: ChatRequest) -> dict[str, str]:
        """Headers on every answer of this protocol (request ids and such)."""
        return {}

    @abstractmethod
    def render(self, reply: Reply, chat: ChatRequest, usage: Usage) -> Any:
        """The non-streamed answer as a JSON value."""

    @abstractmethod
    def stream_open(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        """Events before the first text chunk."""

    @abstractmethod
    def stream_text(self, text: str, chat: ChatRequest) -> bytes:
        """The event carrying one text chunk."""

    @abstractmethod
    def stream_close(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        """Events after the text: tool calls, finish, usage, terminator."""

    @abstractmethod
    def stream_malformed(self, chat: ChatRequest) -> bytes:
        """One event, framed like the others, whose JSON does not parse."""

    def stream_error(self, data: bytes, chat: ChatRequest) -> bytes:
        """The in-stream error event carrying ``data`` (an error body), framed as an SSE ``data:`` line."""
        return b"data: " + data + b"\n\n"

    def stream_error_data(self, status: int, message: str, chat: ChatRequest) -> bytes:
        """The data of the in-stream error event for ``status``: by default the protocol's error body."""
        return self.error_body(status, message)


def request_record(ex: Exchange, data: Any, protocol: ProtocolName) -> RecordedRequest:
    """What the responder sees of a chat request: the exchange with its parsed JSON body."""
    return RecordedRequest(
        method=ex.method,
        path=ex.path,
        query=dict(ex.query),
        headers=dict(ex.headers),
        body=ex.body,
        json=data,
        protocol=protocol,
        received_at=time.monotonic(),
        connection_id=ex.connection_id,
        target=ex.target,
    )


async def send_error(
    ex: Exchange, proto: ChatProtocol, status: int, message: str = "", headers: dict[str, str] | None = None
) -> None:
    """Answer with the protocol's error body."""
    body = proto.error_body(status, message or default_message(status))
    await ex.respond(status, body, headers, proto.error_content_type)


async def serve_chat(
    host: ChatHost, proto: ChatProtocol, ex: Exchange, path_model: str | None = None
) -> None:
    """Answer one chat request with the next scripted item."""
    try:
        data = json.loads(ex.body) if ex.body else {}
    except ValueError:
        await send_error(ex, proto, 400, "The request body is not valid JSON.")
        return
    try:
        chat = proto.parse(ex, data, path_model)
    except WireError as err:
        await send_error(ex, proto, err.status, err.message)
        return
    denied = proto.authorize(ex)
    if denied is not None:
        await send_error(ex, proto, 401, denied)
        return
    decision = host.admit(chat.prompt_tokens)
    limit_headers = decision.headers if decision is not None else {}
    if decision is not None and not decision.allowed:
        headers = {**limit_headers, **retry_after_headers(decision.retry_after)}
        message = f"Rate limit reached ({decision.reason} per minute). Please retry later."
        await send_error(ex, proto, 429, message, {**proto.response_headers(chat), **headers})
        return
    item = host.next_item(request_record(ex, data, proto.name))
    if isinstance(item, Disconnect) or (isinstance(item, Fault) and item.status == 0):
        if await ex.sleep(item.latency):
            ex.abort()
        return
    base_headers = {**proto.response_headers(chat), **limit_headers}
    if isinstance(item, Fault):
        await _send_fault(ex, proto, item, base_headers)
        return
    if isinstance(item, Recorded):
        await ex.respond(item.status, item.body, {**base_headers, **item.headers}, item.media_type())
        return
    if not await ex.sleep(item.latency):
        return
    if item.model:
        chat.model = item.model
    usage = item.usage or Usage(chat.prompt_tokens, item.estimated_output_tokens())
    host.count_completion(usage.output_tokens)
    headers = {**base_headers, **item.headers}
    if chat.stream:
        await _stream(ex, proto, item, chat, usage, headers)
    else:
        await _respond(ex, proto, item, chat, usage, headers)


async def _send_fault(ex: Exchange, proto: ChatProtocol, fault: Fault, base: dict[str, str]) -> None:
    if not await ex.sleep(fault.latency):
        return
    headers = dict(base)
    if fault.retry_after is not None:
        headers["retry-after"] = str(fault.retry_after)
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
    headers.update(fault.headers)
    if fault.body is None:
        await send_error(ex, proto, fault.status, fault.message, headers)
        return
    body = fault.body.encode("utf-8") if isinstance(fault.body, str) else fault.body
    await ex.respond(fault.status, body, headers, proto.error_content_type)


async def _respond(
    ex: Exchange, proto: ChatProtocol, reply: Reply, chat: ChatRequest, usage: Usage, headers: dict[str, str]
) -> None:
    if reply.stall_after is not None:
        await ex.wait_client_gone()
        return
    if reply.disconnect_after is not None:
        ex.abort()
        return
    body = json.dumps(proto.render(reply, chat, usage), ensure_ascii=False).encode("utf-8")
    if reply.cut_after is not None:
        body = body[: len(body) // 2]
    elif reply.malformed_after is not None:
        body = b'{"malformed": ' + body[:20]
    await ex.respond(200, body, headers)


async def _stream(
    ex: Exchange, proto: ChatProtocol, reply: Reply, chat: ChatRequest, usage: Usage, headers: dict[str, str]
) -> None:
    if not await ex.start(200, headers, proto.stream_content_type):
        return
    if not await ex.send(b"".join(proto.stream_open(reply, chat, usage))):
        return
    chunks = reply.text_chunks()
    malformed_sent = False

    def hits(after: int | None, sent: int) -> bool:
        return after is not None and (after == sent or (sent == len(chunks) and after > sent))

    async def fault_point(sent: int) -> bool:
        """Apply the faults due after ``sent`` text chunks; ``True`` when the answer ends here."""
        nonlocal malformed_sent
        if not malformed_sent and hits(reply.malformed_after, sent):
            malformed_sent = True
            if not await ex.send(proto.stream_malformed(chat)):
                return True
        if hits(reply.stall_after, sent):
            await ex.wait_client_gone()
            return True
        if hits(reply.disconnect_after, sent):
            ex.abort()
            return True
        if hits(reply.cut_after, sent):
            await ex.finish()
            return True
        if hits(reply.error_after, sent):
            fault = reply.error or Fault(500)
            if fault.body is not None:
                data = fault.body.encode("utf-8") if isinstance(fault.body, str) else fault.body
            else:
                data = proto.stream_error_data(
                    fault.status, fault.message or default_message(fault.status), chat
                )
            await ex.finish(proto.stream_error(data, chat))
            return True
        return False

    for index, chunk in enumerate(chunks):
        if await fault_point(index):
            return
        if index and reply.chunk_delay > 0 and not await ex.sleep(reply.chunk_delay):
            return
        if not await ex.send(proto.stream_text(chunk, chat)):
            return
    if await fault_point(len(chunks)):
        return
    await ex.finish(b"".join(proto.stream_close(reply, chat, usage)))
