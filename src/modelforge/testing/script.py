"""What a test tells the provider server to do, and what the server saw.

Owns the protocol-neutral value types of :mod:`modelforge.testing`:

* ``Reply`` / ``ToolCall`` / ``Usage``: one model answer, rendered by every chat endpoint in its own wire
  format, streamed or not, with optional faults (latency, slow chunks, stall, abrupt disconnect, a stream
  cut without its terminator, a malformed event).
* ``Fault``: an HTTP error answer rendered in the protocol's error body format.
* ``Disconnect``: accept the request, then drop the connection without answering (``Fault(status=0)``
  means the same).
* ``Recorded``: answer with bytes recorded from a real provider (a replayed HTTP response body).
* ``ServerLimits``: server-side requests/tokens per minute enforcement.
* ``DeviceFlowScript`` / ``DevicePoll``: how the GitHub OAuth device flow answers, and each poll seen.
* ``RecordedRequest``: every request the server received.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "DEFAULT_REPLY_TEXT",
    "DeviceFlowScript",
    "DevicePoll",
    "Disconnect",
    "Fault",
    "ProtocolName",
    "Recorded",
    "RecordedRequest",
    "Reply",
    "ScriptItem",
    "ServerLimits",
    "ToolCall",
    "Usage",
    "split_words",
]

DEFAULT_REPLY_TEXT = "Hello from the ModelForge test server."

ProtocolName: TypeAlias = Literal[
    "openai", "anthropic", "ollama", "gemini", "github", "copilot", "modelsdev", "other"
]

_WORD_CHUNK = re.compile(r"\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """Split ``text`` word by word, each piece keeping its trailing spaces (``"".join`` gives ``text``)."""
    return _WORD_CHUNK.findall(text)


@dataclass
class ToolCall:
    """One tool (function) call in a reply; ``id`` is generated in the protocol's style when ``None``.

    Gemini and Ollama answers carry no tool-call id unless one is given here.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass
class Usage:
    """Token counts reported with a reply."""

    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Reply:
    """A protocol-neutral model answer.

    ``finish_reason``: ``None`` means ``"stop"``, or ``"tool_calls"`` when there are tool calls;
    ``"length"`` maps to each protocol's max-tokens reason; anything else is passed through.

    The ``*_after`` faults count streamed *text* chunks: after N chunks were sent (N larger than the
    number of chunks acts after the last chunk, before the protocol's closing events):

    * ``stall_after``: send nothing more and keep the connection open until the client goes away (counted
      in ``client_disconnects``) or the server stops.
    * ``disconnect_after``: abort the TCP connection (no chunked terminator; counted in
      ``server_disconnects``).
    * ``cut_after``: end the HTTP response cleanly without the protocol's finish/terminator events.
    * ``malformed_after``: send one event whose JSON does not parse, then go on normally.
    * ``error_after``: send the protocol's in-stream error event for ``error`` (default ``Fault(500)``; its
      status picks the error type, e.g. 529 is Anthropic's ``overloaded_error``; a ``body`` is sent as the
      event's data unchanged), then end the response, as a provider does when it fails mid-answer.

    For a non-streamed answer the same faults apply to the whole body: stall / disconnect before any
    byte of the response, ``cut_after`` sends the first half of the JSON body (the HTTP framing is
    valid), ``malformed_after`` sends a body that is not JSON.
    """

    text: str = DEFAULT_REPLY_TEXT
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    chunks: list[str] | None = None
    latency: float = 0.0
    chunk_delay: float = 0.0
    stall_after: int | None = None
    disconnect_after: int | None = None
    cut_after: int | None = None
    malformed_after: int | None = None
    error_after: int | None = None
    error: Fault | None = None
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None

    def text_chunks(self) -> list[str]:
        """The pieces the text is streamed in (``chunks`` or word by word)."""
        if self.chunks is not None:
            return list(self.chunks)
        return split_words(self.text)

    def neutral_finish(self) -> str:
        """The protocol-neutral finish reason: explicit, else ``tool_calls`` / ``stop``."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def estimated_output_tokens(self) -> int:
        """Deterministic completion-token estimate: words of the text and of each tool call (min 1)."""
        words = len(self.text.split())
        for call in self.tool_calls:
            words += 1 + len(json.dumps(call.arguments).split())
        return max(1, words)


@dataclass
class Fault:
    """An HTTP error answer rendered in the protocol's error format.

    ``status=0`` means "accept, then close the connection without answering" (same as ``Disconnect``).
    ``retry_after`` becomes the ``Retry-After`` header (seconds or an HTTP date, sent as given),
    ``retry_after_ms`` the ``retry-after-ms`` header. ``body`` replaces the rendered error body.
    """

    status: int
    message: str = ""
    retry_after: str | float | None = None
    retry_after_ms: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes | None = None
    latency: float = 0.0


@dataclass
class Disconnect:
    """Accept the request, wait ``latency`` seconds, then abort the connection without any answer."""

    latency: float = 0.0


@dataclass
class Recorded:
    """Answer with a real provider's recorded response body, byte for byte (a replay).

    ``content_type`` defaults to ``text/event-stream`` for a body that starts as a server-sent event
    stream (``event:`` or ``data:``), else ``application/json``. The request is still authorised, counted
    and recorded as any other; whether it asked for a stream does not change what is sent.
    """

    body: bytes
    status: int = 200
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def media_type(self) -> str:
        if self.content_type is not None:
            return self.content_type
        start = self.body.lstrip()[:6]
        return "text/event-stream" if start.startswith((b"event:", b"data:")) else "application/json"


ScriptItem: TypeAlias = Reply | Fault | Disconnect | Recorded


@dataclass
class ServerLimits:
    """Server-side rate limits over a sliding window (60 s unless ``window`` says otherwise).

    ``rpm``: requests per window; ``tpm``: tokens per window, counting the prompt estimate of each request
    and the completion tokens of each answer. ``None`` means unlimited. When a limit would be exceeded the
    server answers 429 (in the protocol's error format) with ``Retry-After`` and ``x-ratelimit-*`` headers,
    without consuming a scripted item.
    """

    rpm: int | None = None
    tpm: int | None = None
    window: float = 60.0


@dataclass
class DeviceFlowScript:
    """How the GitHub device flow answers ``POST /login/oauth/access_token`` polls.

    Polls are numbered from 1 per device code. The first ``pending_polls`` polls answer
    ``authorization_pending``, except those whose number is in ``slow_down_on``, which answer ``slow_down``
    with the interval raised by 5 s (as GitHub does). The next poll answers the ``outcome``: an access
    token (``granted``), ``access_denied`` (``denied``) or ``expired_token`` (``expired``). A poll after
    ``expires_in`` seconds from the code's issue answers ``expired_token`` whatever the script says.
    With ``enforce_interval``, a poll sooner than the current interval after the previous one answers
    ``slow_down`` (and does not count as a poll). ``refresh_token`` / ``token_expires_in`` make the token
    refreshable (``grant_type=refresh_token``). With the defaults: polls 1 and 2 ``authorization_pending``,
    poll 3 the token (pass ``slow_down_on=(2,)`` for pending -> slow_down -> granted).
    """

    pending_polls: int = 2
    slow_down_on: tuple[int, ...] = ()
    outcome: Literal["granted", "denied", "expired"] = "granted"
    interval: float = 5
    expires_in: int = 900
    access_token: str = "gho_modelforgetesttoken0000000000000000"
    refresh_token: str | None = None
    token_expires_in: int | None = None
    refresh_token_expires_in: int | None = None
    scope: str = "read:user"
    user_code: str = "WDJB-MJHT"
    device_code: str = "3584d83530557fdd1f46af8289938c8ef79f9dc5"
    enforce_interval: bool = False


@dataclass
class DevicePoll:
    """One access-token poll: when (``time.monotonic()``), what it answered, and the interval in force."""

    at: float
    answer: str
    interval: float
    device_code: str


@dataclass
class RecordedRequest:
    """One HTTP request the server received (headers lower-cased; ``json`` is ``None`` if not JSON)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    protocol: ProtocolName
    received_at: float
    connection_id: int = 0
    target: str = ""
