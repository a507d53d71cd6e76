"""``ProviderServer``: one local HTTP server answering every provider protocol on one 127.0.0.1 port.

Owns the server's life (an asyncio loop in a daemon thread), its shared state (the script queue,
recorded requests, connection counters, rate limits, auth settings, model lists) and the routing of each
path to its protocol. Usable from sync and async tests alike, and as a context manager.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from modelforge.testing._batches import BatchService
from modelforge.testing._caches import ProviderCaches
from modelforge.testing._chat import request_record
from modelforge.testing._github import GitHubService
from modelforge.testing._http import ConnectionHooks, Exchange, HttpConnection
from modelforge.testing._limits import LimitDecision, RateLimiter
from modelforge.testing._modelsdev import default_catalog
from modelforge.testing._routes import Router, classify
from modelforge.testing.script import (
    DeviceFlowScript,
    DevicePoll,
    Disconnect,
    Fault,
    ProtocolName,
    Recorded,
    RecordedRequest,
    Reply,
    ScriptItem,
    ServerLimits,
)

__all__ = ["ProviderServer"]


class _Host:
    """The chat endpoint's view of the server (script queue, rate limits)."""

    def __init__(self, server: ProviderServer) -> None:
        self._server = server

    def next_item(self, request: RecordedRequest) -> ScriptItem:
        return self._server._next_item(request)

    def admit(self, prompt_tokens: int) -> LimitDecision | None:
        limits = self._server.limits
        if limits is None:
            return None
        return self._server._limiter.admit(limits, prompt_tokens, time.monotonic())

    def count_completion(self, tokens: int) -> None:
        if self._server.limits is not None:
            self._server._limiter.add_tokens(tokens, time.monotonic())


class ProviderServer:
    """Speaks the OpenAI, Anthropic, Ollama, Gemini, GitHub (device flow, Copilot token), Copilot chat and
    models.dev protocols on one free 127.0.0.1 port. See the package docstring for the whole surface."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._bind = (host, port)
        self.default_reply: Reply = Reply()
        # Consulted when the script queue is empty: an answer chosen from the request (None: default_reply).
        self.responder: Callable[[RecordedRequest], ScriptItem | None] | None = None
        self.limits: ServerLimits | None = None
        self.require_api_key: str | None = None
        self.openai_models: list[str] = ["gpt-4o-mini", "gpt-4o"]
        self.anthropic_models: list[str] = ["claude-sonnet-4-6", "claude-haiku-4-5"]
        self.gemini_models: list[str] = ["gemini-2.5-flash", "gemini-2.5-pro"]
        self.copilot_models: list[str] = ["gpt-4o", "claude-sonnet-4"]
        self.ollama_models: list[str] = ["qwen3:1.7b", "llama3.2:1b"]
        self.modelsdev_catalog: dict[str, Any] = default_catalog()
        self._lock = threading.Condition()
        self._script: collections.deque[ScriptItem] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._connections_opened = 0
        self._client_disconnects = 0
        self._server_disconnects = 0
        self._limiter = RateLimiter()
        self._github = GitHubService("", "")
        # Provider-side prompt caches (Anthropic breakpoints, Gemini cached contents) and batch jobs.
        self.caches = ProviderCaches()
        self.batches = BatchService(self)
        self._host = _Host(self)
        self._router = Router(self, self._host, self._github)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._port = 0

    # -- life ------------------------------------------------------------------------------------------

    def start(self) -> ProviderServer:
        """Start serving (idempotent); returns ``self``."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._accept, *self._bind))
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="modelforge-provider-server", daemon=True)
        thread.start()
        ready.wait(10)
        if failure:
            thread.join(5)
            raise RuntimeError(f"the provider test server could not start: {failure[0]}") from failure[0]
        assert self._server is not None
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._loop, self._thread = loop, thread
        self._github.base_url = self.base_url
        self._github.copilot_base_url = self.copilot_base_url
        return self

    def stop(self) -> None:
        """Stop serving: close the listener and every open connection (stalled ones included)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (a free one chosen at ``start()``)."""
        if not self._port:
            raise RuntimeError("the provider test server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the root every protocol is served under."""
        return f"http://{self._bind[0]}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For ``ChatOpenAI(base_url=...)`` / ``openai.OpenAI(base_url=...)``: the root plus ``/v1``."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``ChatAnthropic(base_url=...)``: the root (the SDK appends ``/v1/messages``)."""
        return self.base_url

    @property
    def ollama_base_url(self) -> str:
        """For ``ChatOllama(base_url=...)``: the root."""
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """For ``ChatGoogleGenerativeAI(base_url=...)``: the root."""
        return self.base_url

    @property
    def github_base_url(self) -> str:
        """GitHub's device flow and Copilot token exchange live under this root."""
        return self.base_url

    @property
    def copilot_base_url(self) -> str:
        """The Copilot chat API (OpenAI-compatible): the root plus ``/copilot``."""
        return self.base_url + "/copilot"

    @property
    def modelsdev_url(self) -> str:
        """The models.dev catalogue (``modelsdev_catalog``) as ``GET /api.json``."""
        return self.base_url + "/api.json"

    # -- script and records ----------------------------------------------------------------------------

    def script(self, *items: ScriptItem) -> None:
        """Queue answers (``Reply``, ``Fault``, ``Disconnect``, ``Recorded``) for the model endpoints."""
        for item in items:
            if not isinstance(item, Reply | Fault | Disconnect | Recorded):
                raise TypeError(
                    f"cannot script {type(item).__name__}; use Reply, Fault, Disconnect or Recorded"
                )
        with self._lock:
            self._script.extend(items)

    @property
    def script_remaining(self) -> int:
        """Scripted items not yet used."""
        with self._lock:
            return len(self._script)

    def _next_item(self, request: RecordedRequest) -> ScriptItem:
        """The answer for a chat request or a batch line: scripted, else the responder's, else the default."""
        with self._lock:
            if self._script:
                return self._script.popleft()
            responder = self.responder
        if responder is not None:
            item = responder(request)
            if item is not None:
                if not isinstance(item, Reply | Fault | Disconnect | Recorded):
                    raise TypeError(
                        f"the responder returned {type(item).__name__}; use Reply, Fault, Disconnect or "
                        "Recorded"
                    )
                return item
        return self.default_reply

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, protocol: ProtocolName) -> list[RecordedRequest]:
        """The recorded requests of one protocol."""
        return [r for r in self.requests if r.protocol == protocol]

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted."""
        return self._connections_opened

    @property
    def client_disconnects(self) -> int:
        """Times a client closed the connection before an answer (or stream) was complete."""
        return self._client_disconnects

    @property
    def server_disconnects(self) -> int:
        """Times the server aborted a connection on purpose (``disconnect_after``, ``Disconnect``)."""
        return self._server_disconnects

    def wait_for_disconnects(self, n: int, timeout: float = 2.0) -> bool:
        """Wait until ``client_disconnects >= n``; ``False`` on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._client_disconnects >= n, timeout)

    def reset(self) -> None:
        """Clear the script, records, counters, limits, device-flow sessions, issued Copilot tokens, batch
        jobs, uploaded files and provider-side prompt caches.

        Settings (``default_reply``, ``responder``, ``require_api_key``, model lists, ``device_flow``, TTLs,
        batch settings) are kept.
        """
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._connections_opened = 0
            self._client_disconnects = 0
            self._server_disconnects = 0
            self.limits = None
        self._limiter.clear()
        self._github.reset()
        self.batches.reset()
        self.caches.reset()

    # -- GitHub settings (delegated) -------------------------------------------------------------------

    @property
    def device_flow(self) -> DeviceFlowScript:
        return self._github.device_flow

    @device_flow.setter
    def device_flow(self, script: DeviceFlowScript) -> None:
        self._github.device_flow = script

    @property
    def device_polls(self) -> list[DevicePoll]:
        """Every access-token poll of the device flow, in order."""
        return list(self._github.polls)

    @property
    def github_client_id(self) -> str | None:
        """When set, device-flow requests with another ``client_id`` are refused."""
        return self._github.client_id

    @github_client_id.setter
    def github_client_id(self, value: str | None) -> None:
        self._github.client_id = value

    @property
    def valid_oauth_tokens(self) -> set[str] | None:
        """OAuth tokens the Copilot token exchange accepts (``None``: any non-empty; granted ones join)."""
        return self._github.valid_oauth_tokens

    @valid_oauth_tokens.setter
    def valid_oauth_tokens(self, value: set[str] | None) -> None:
        self._github.valid_oauth_tokens = value

    @property
    def copilot_token_ttl(self) -> float:
        return self._github.copilot_token_ttl

    @copilot_token_ttl.setter
    def copilot_token_ttl(self, seconds: float) -> None:
        self._github.copilot_token_ttl = seconds

    @property
    def copilot_token_refresh_in(self) -> int | None:
        return self._github.copilot_token_refresh_in

    @copilot_token_refresh_in.setter
    def copilot_token_refresh_in(self, seconds: int | None) -> None:
        self._github.copilot_token_refresh_in = seconds

    @property
    def copilot_token_exchanges(self) -> int:
        return self._github.copilot_token_exchanges

    @property
    def copilot_tokens(self) -> list[str]:
        """Every Copilot token issued so far."""
        return self._github.issued_copilot_tokens()

    def expire_copilot_tokens(self) -> None:
        """Make every Copilot token issued so far invalid (the chat endpoint answers 401 to them)."""
        self._github.expire_copilot_tokens()

    # -- serving ---------------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._lock:
            self._connections_opened += 1
            connection_id = self._connections_opened
        hooks = ConnectionHooks(self._on_client_gone, self._on_server_abort)
        try:
            await HttpConnection(connection_id, reader, writer, self._dispatch, hooks).serve()
        except asyncio.CancelledError:
            pass  # the server is stopping; ending quietly keeps asyncio from logging the cancellation
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _on_client_gone(self) -> None:
        with self._lock:
            self._client_disconnects += 1
            self._lock.notify_all()

    def _on_server_abort(self) -> None:
        with self._lock:
            self._server_disconnects += 1

    async def _dispatch(self, ex: Exchange) -> None:
        protocol = classify(ex.path, ex.headers)
        self._record(ex, protocol)
        await self._router.dispatch(ex, protocol)

    def _record(self, ex: Exchange, protocol: ProtocolName) -> None:
        parsed: Any = None
        if ex.body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(ex.body)
        record = request_record(ex, parsed, protocol)
        with self._lock:
            self._requests.append(record)
