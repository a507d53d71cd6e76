"""Provider batch APIs on the test server: OpenAI Files + Batches, Anthropic Message Batches.

OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}``, ``GET
/v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.
A batch is ``validating`` when created; its first retrieve checks the input file (every line a JSON object
with a unique ``custom_id``, ``method: POST``, the batch's ``url``, one model for the file, at most
``max_requests_per_job`` lines) and fails it with ``errors.data`` when the file is wrong. Successful lines
go to the output file (``response.status_code`` 200 and the chat completion as ``body``); lines answered
with an HTTP error go to the error file (``response.status_code`` and the protocol's error ``body``); lines
never run (expired, cancelled) go to the error file with ``response: null`` and ``error: {code, message}``.

Anthropic: ``POST /v1/messages/batches`` (validated at once: ``custom_id`` ``^[a-zA-Z0-9_-]{1,64}$``,
unique, ``params`` with ``model``, ``max_tokens`` and ``messages``, no ``stream``), ``GET
/v1/messages/batches/{id}`` (``processing_status``, ``request_counts``, ``results_url`` once ended), ``GET
.../results`` (JSONL of ``{"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" |
"expired", ...}}``) and ``POST .../cancel``.

Each line is answered like a chat request (the script queue, then ``server.responder``, then
``default_reply``), rendered by the protocol's non-streamed renderer; latency and stream faults of a
``Reply`` do not apply. Results files list lines in a shuffled order, as the real APIs allow, so clients
must map them back by ``custom_id``. A job stays in progress for ``complete_after_polls`` retrieves, and for
as long as it is held (``hold()`` / ``release()``); with ``expire_after=N`` it ends as expired after
answering its first N lines. ``jobs`` / ``job(id)`` / ``uploads`` record what arrived.

Faults of the control plane: ``lose_next_create(item)`` (one shot) creates the next job as usual but
answers its create request with ``item`` (a ``Fault`` or a ``Disconnect``), as when a provider's answer is
lost on the way; ``enabled = False`` answers every Files and Batches endpoint 404 (a server with no batch
API: vLLM, OpenRouter); ``max_enqueued_tokens`` fails the validation of an OpenAI job whose estimated input
tokens (about 4 characters of its messages each) exceed it, with OpenAI's ``token_limit_exceeded`` error.
``GET /v1/batches`` and ``GET /v1/messages/batches`` list the jobs, newest first.

This module holds the shared state (``BatchService``: files, jobs, how each line is answered) and the route
table; ``_batches_openai`` and ``_batches_anthropic`` render each API's endpoints.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from modelforge.testing._chat import ChatProtocol, WireError
from modelforge.testing._common import default_message, dumps, new_id
from modelforge.testing._http import Exchange
from modelforge.testing.script import Disconnect, Fault, Recorded, RecordedRequest, Usage

if TYPE_CHECKING:
    from modelforge.testing.server import ProviderServer

__all__ = [
    "CHAT_URL",
    "CUSTOM_ID_PATTERN",
    "DAY_SECONDS",
    "BatchEndpoints",
    "BatchJob",
    "BatchLine",
    "BatchService",
    "StoredFile",
    "page_of_jobs",
    "stamp",
]

Handler = Callable[[Exchange, "re.Match[str]"], Awaitable[None]]
CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
CHAT_URL = "/v1/chat/completions"
DAY_SECONDS = 24 * 3600


@dataclass
class StoredFile:
    """One uploaded (or generated) file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class BatchLine:
    """One request of a batch: its ``custom_id`` and chat body."""

    custom_id: str
    body: dict[str, Any]


@dataclass
class BatchJob:
    """One batch job as the server holds it (``status`` in the protocol's own words)."""

    id: str
    protocol: Literal["openai", "anthropic"]
    lines: list[BatchLine]
    created_at: float
    status: str
    polls: int = 0  # retrieves so far
    endpoint: str = CHAT_URL
    input_file_id: str | None = None
    metadata: dict[str, Any] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # Anthropic result lines
    succeeded: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    ended_at: float | None = None
    cancel_requested_at: float | None = None
    times: dict[str, float] = field(default_factory=dict)


def stamp(seconds: float | None) -> str | None:
    """An ISO 8601 UTC time (``...Z``) for a ``time.time()`` value, or None."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


class BatchService:
    """The batch jobs and uploaded files of one server, and the settings that drive them."""

    def __init__(self, server: ProviderServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._jobs: dict[str, BatchJob] = {}
        self._held = False
        # Retrieves answered "in progress" before a job ends.
        self.complete_after_polls = 1
        # When set, a job ends as expired after answering only its first N lines.
        self.expire_after: int | None = None
        # The most requests one job may hold (OpenAI's 50,000; Anthropic's 100,000 when None here).
        self.max_requests_per_job: int | None = None
        # False: every batch and file endpoint answers 404, as on a server without a batch API.
        self.enabled = True
        # The most estimated input tokens one OpenAI job may hold (OpenAI's enqueued-token limit).
        self.max_enqueued_tokens: int | None = None
        self._lost_create: Fault | Disconnect | None = None

    # -- what a test sets and reads ----------------------------------------------------------------

    def hold(self) -> None:
        """Keep every job in progress, whatever ``complete_after_polls`` says, until ``release()``."""
        self._held = True

    def release(self) -> None:
        self._held = False

    def lose_next_create(self, item: Fault | Disconnect | None = None) -> None:
        """Create the next job, but answer its create request with ``item`` (default: a ``Disconnect``)."""
        self._lost_create = item if item is not None else Disconnect()

    def _take_lost_create(self) -> Fault | Disconnect | None:
        with self._lock:
            item, self._lost_create = self._lost_create, None
        return item

    async def answer_create(self, ex: Exchange, proto: ChatProtocol, body: Any) -> None:
        """Answer a create request whose job exists: ``body``, or the fault ``lose_next_create`` set."""
        lost = self._take_lost_create()
        if lost is None:
            await ex.respond(200, dumps(body))
        elif isinstance(lost, Disconnect) or lost.status == 0:
            ex.abort()
        else:
            await ex.respond(
                lost.status, proto.error_body(lost.status, lost.message or default_message(lost.status))
            )

    @property
    def jobs(self) -> list[BatchJob]:
        """Every job created so far, in order."""
        with self._lock:
            return list(self._jobs.values())

    def job(self, job_id: str) -> BatchJob:
        with self._lock:
            return self._jobs[job_id]

    @property
    def uploads(self) -> list[StoredFile]:
        """Files uploaded by clients (not the output files the server wrote)."""
        with self._lock:
            return [f for f in self._files.values() if f.purpose == "batch"]

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._jobs.clear()
            self._lost_create = None
        self._held = False

    # -- shared ------------------------------------------------------------------------------------

    def _add_file(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(new_id("file-", 24), filename, purpose, content, int(time.time()))
        with self._lock:
            self._files[stored.id] = stored
        return stored

    def _file(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def _find(self, job_id: str, protocol: str) -> BatchJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.protocol == protocol else None

    def _register(self, job: BatchJob) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def _ready(self, job: BatchJob) -> bool:
        """Whether the job may end now (after ``complete_after_polls`` retrieves, unless held)."""
        return job.cancel_requested_at is not None or (
            not self._held and job.polls > self.complete_after_polls
        )

    def _limit(self, default: int) -> int:
        return self.max_requests_per_job if self.max_requests_per_job is not None else default

    def answer(
        self, proto: ChatProtocol, ex: Exchange, job: BatchJob, body: dict[str, Any]
    ) -> tuple[int, Any]:
        """Answer one line of ``job`` like a chat request: (HTTP status, the protocol's JSON answer)."""
        record = RecordedRequest(
            method="POST",
            path="/v1/messages" if proto.name == "anthropic" else CHAT_URL,
            query={},
            headers={},
            body=dumps(body),
            json=body,
            protocol=proto.name,
            received_at=time.monotonic(),
        )
        try:
            if body.get("stream"):
                raise WireError(400, "stream: streaming is not supported in batches")
            chat = proto.parse(ex, body, None)
            item = self._server._next_item(record)
        except WireError as err:
            return err.status, json.loads(proto.error_body(err.status, err.message))
        if isinstance(item, Disconnect) or (isinstance(item, Fault) and item.status == 0):
            return 500, json.loads(proto.error_body(500, default_message(500)))
        if isinstance(item, Fault):
            status = item.status
            return status, json.loads(proto.error_body(status, item.message or default_message(status)))
        if isinstance(item, Recorded):
            return item.status, json.loads(item.body)
        if item.model:
            chat.model = item.model
        usage = item.usage or Usage(chat.prompt_tokens, item.estimated_output_tokens())
        job.input_tokens += usage.input_tokens
        job.output_tokens += usage.output_tokens
        return 200, proto.render(item, chat, usage)


# -- OpenAI ----------------------------------------------------------------------------------------


class BatchEndpoints:
    """What the OpenAI and Anthropic batch endpoints share: the server, its batch state, and the chat
    protocol (``protocol_name`` on the router) whose auth and error bodies they use."""

    protocol_name: ClassVar[str]

    def __init__(self, server: ProviderServer, service: BatchService) -> None:
        self._server = server
        self._service = service

    @property
    def _proto(self) -> ChatProtocol:
        proto: ChatProtocol = getattr(self._server._router, self.protocol_name)
        return proto

    async def _error(self, ex: Exchange, status: int, message: str) -> None:
        await ex.respond(status, self._proto.error_body(status, message))

    async def _denied(self, ex: Exchange) -> bool:
        """Answer 401 in the protocol's format when the request is not authorised."""
        message = self._proto.authorize(ex)
        if message is not None:
            await ex.respond(401, self._proto.error_body(401, message))
        return message is not None


def page_of_jobs(
    service: BatchService, protocol: str, after: str | None, limit_text: str | None
) -> tuple[list[BatchJob], bool]:
    """One page of ``protocol``'s jobs, newest first, after the job ``after``: (page, has_more)."""
    jobs = [job for job in reversed(service.jobs) if job.protocol == protocol]
    if after:
        ids = [job.id for job in jobs]
        jobs = jobs[ids.index(after) + 1 :] if after in ids else []
    limit = int(limit_text or 20)
    return jobs[:limit], len(jobs) > limit
