"""Local HTTP servers speaking each provider's real wire protocol, for tests over real HTTP on 127.0.0.1.

One ``ProviderServer`` (an asyncio HTTP/1.1 server on h11, in a daemon thread, keep-alive and chunked
streaming) answers every protocol on one free port, so a test starts one server and points any SDK at it::

    from modelforge.testing import Fault, ProviderServer, Reply, ToolCall, Usage

    with ProviderServer() as server:            # or server = ProviderServer().start(); ...; server.stop()
        server.script(Reply(text="Hi there"), Fault(status=429, retry_after="2"))
        ...

Pointing the SDKs at it (set retries off in error tests):

* OpenAI: ``openai.OpenAI(base_url=server.openai_base_url, api_key=..., max_retries=0)`` /
  ``ChatOpenAI(base_url=server.openai_base_url, api_key=..., max_retries=0)`` (``stream_usage=True`` to get
  streamed usage: ChatOpenAI sends ``stream_options.include_usage`` only when asked for a custom base URL).
* Anthropic: ``anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=..., max_retries=0)`` /
  ``ChatAnthropic(model=..., base_url=server.anthropic_base_url, api_key=..., max_retries=0)``. The SDK
  appends ``/v1/messages``. anthropic 2.x sends the key as ``Authorization: Bearer``; the server also
  takes ``x-api-key``.
* Ollama: ``ChatOllama(model=..., base_url=server.ollama_base_url)`` / ``ollama.Client(host=...)``. The
  model must be in ``server.ollama_models`` (a missing ``:tag`` means ``:latest``), else 404
  ``model "x" not found, try pulling it first``. Ollama has no retries and no API key.
* Gemini: ``ChatGoogleGenerativeAI(model=..., google_api_key=..., base_url=server.gemini_base_url,
  max_retries=1)`` — ``base_url`` (alias ``client_options``) becomes google-genai's
  ``HttpOptions(base_url=...)``; ``max_retries`` is the number of *attempts* (1 = no retry). Directly:
  ``genai.Client(api_key=..., http_options=types.HttpOptions(base_url=server.gemini_base_url))`` — keep
  that client in a variable, a garbage-collected ``genai.Client`` closes its HTTP client. Requests go to
  ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse`` (streamed answers are
  always SSE). langchain-google-genai raises ``GoogleRateLimitError`` & co. without the response; the
  google-genai ``ClientError`` / ``ServerError`` (``.code``, ``.response.headers``) is its ``__cause__``.
* GitHub: device flow at ``server.github_base_url + "/login/device/code"`` and
  ``"/login/oauth/access_token"`` (``DeviceFlowScript``), Copilot token at
  ``server.github_base_url + "/copilot_internal/v2/token"`` (``Authorization: token <oauth>``).
* Copilot chat: ``ChatOpenAI(base_url=server.copilot_base_url, api_key=<copilot token>)`` posts to
  ``/copilot/chat/completions``; only tokens this server issued and that are still valid are accepted.
* models.dev: ``GET server.modelsdev_url`` serves ``server.modelsdev_catalog``.

What a test can set and read on the server:

* ``script(*items)`` / ``script_remaining``: FIFO answers for every chat endpoint, whatever the protocol:
  ``Reply`` (text, tool calls, usage, finish reason, chunking, latency and stream faults), ``Fault``
  (an HTTP error in the protocol's error format), ``Disconnect`` (same as ``Fault(status=0)``: accept,
  then drop the connection without answering) or ``Recorded`` (a real provider's recorded response body,
  replayed byte for byte). ``default_reply`` answers when the queue is empty.
* ``responder``: consulted when the script queue is empty, for every chat request and every line of a
  batch job: a function of the request (a ``RecordedRequest`` whose ``json`` is the parsed chat body)
  returning a ``Reply`` / ``Fault`` / ``Disconnect``, or ``None`` for ``default_reply``. It runs on the
  server's thread. It lets a test answer each prompt by its content, so order can be checked whatever the
  concurrency::

      server.responder = lambda r: Reply(text="echo: " + r.json["messages"][-1]["content"])

* ``batches`` (``BatchService``): the providers' batch APIs — OpenAI ``/v1/files`` (multipart upload,
  ``purpose=batch``; ``GET`` a file and its ``/content``) and ``/v1/batches`` (create, retrieve, cancel;
  output and error files), Anthropic ``/v1/messages/batches`` (create, retrieve, ``/results`` JSONL,
  cancel), in the real APIs' shapes. Each line is answered like a chat request (script, responder,
  default reply) by the protocol's non-streamed renderer; result files list lines in a shuffled order. A
  job stays in progress for ``batches.complete_after_polls`` retrieves (default 1) and while
  ``batches.hold()`` is in force (until ``batches.release()``); ``batches.expire_after = N`` ends jobs as
  expired after their first N lines; ``batches.max_requests_per_job`` refuses bigger jobs. Records:
  ``batches.jobs`` / ``batches.job(id)`` (lines, status, polls) and ``batches.uploads``.
* ``caches`` (``ProviderCaches``): provider-side prompt caching. Anthropic ``cache_control`` breakpoints
  cache the prefix up to each one when it is at least ``caches.anthropic_min_tokens`` long (answers report
  ``cache_creation_input_tokens``, then ``cache_read_input_tokens`` for 5 minutes); Gemini
  ``/v1beta/cachedContents`` (create, get, list, patch, delete; ``generateContent`` with ``cachedContent``
  reports ``cachedContentTokenCount``). ``caches.clock`` is injectable; ``caches.fail_next(...)`` scripts
  faults for the cache endpoints; records: ``anthropic_uses``, ``cached_contents``, ``deleted``.
* ``limits = ServerLimits(rpm=..., tpm=..., window=60.0)``: 429 with ``Retry-After`` / ``retry-after-ms`` /
  ``x-ratelimit-*`` when exceeded (a refused request does not use a scripted item).
* ``require_api_key``: OpenAI (Bearer), Anthropic (x-api-key or Bearer), Gemini (x-goog-api-key or
  ``?key=``) must present it, else 401 in the protocol's format. ``None`` accepts anything.
* Model lists: ``openai_models``, ``anthropic_models``, ``gemini_models``, ``ollama_models``,
  ``copilot_models``.
* GitHub: ``device_flow``, ``device_polls`` (time, answer and interval of each poll), ``github_client_id``,
  ``valid_oauth_tokens``, ``copilot_token_ttl``, ``copilot_token_refresh_in``, ``copilot_token_exchanges``,
  ``copilot_tokens``, ``expire_copilot_tokens()``.
* Records and counters: ``requests`` / ``requests_for(protocol)`` (``RecordedRequest``),
  ``connections_opened``, ``client_disconnects`` (the client left before an answer was complete),
  ``server_disconnects`` (the server aborted on purpose), ``wait_for_disconnects(n, timeout)``, ``reset()``
  (batch jobs and files included).

A pytest fixture is three lines::

    @pytest.fixture
    def server() -> Iterator[ProviderServer]:
        with ProviderServer() as srv:
            yield srv
"""

from __future__ import annotations

from modelforge.testing.script import (
    DeviceFlowScript,
    DevicePoll,
    Disconnect,
    Fault,
    ProtocolName,
    Recorded,
    RecordedRequest,
    Reply,
    ServerLimits,
    ToolCall,
    Usage,
)
from modelforge.testing.server import ProviderServer

__all__ = [
    "DeviceFlowScript",
    "DevicePoll",
    "Disconnect",
    "Fault",
    "ProtocolName",
    "ProviderServer",
    "Recorded",
    "RecordedRequest",
    "Reply",
    "ServerLimits",
    "ToolCall",
    "Usage",
]
