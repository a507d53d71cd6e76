"""The call pipeline: the policies one model call goes through, as small ordered steps.

A ``Call`` is one ``invoke`` or ``stream`` of a chat model (its messages, stop words, run manager and
options, plus the attempts made so far). A ``Step`` is one policy (the response cache, the optimizer,
stream integrity and metrics, rate limits with retries and error translation): it gets the call and
``send``, the rest of the pipeline, and may change the call, answer it itself, try ``send`` again or look at
what comes back. A ``Pipeline`` runs its steps in order around a last ``send``, the SDK's own method.

The four call shapes (sync and async, invoke and stream) are four methods of a step; a step that does
nothing for one of them inherits the pass-through. The order of the steps ``get_llm`` uses is set in one
place, ``modelforge.pipeline``; docs/architecture.md draws it.

This module is a leaf: it knows LangChain's types and nothing of ModelForge's policies.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

__all__ = [
    "AsyncSend",
    "AsyncStreamSend",
    "Call",
    "CallAttempts",
    "Pipeline",
    "Send",
    "Step",
    "StreamSend",
    "batching",
    "in_batch",
]

# True while a batch of calls runs (LangChain runs batch items as invokes): retries then follow the
# provider's ``retry.batch`` settings.
_batching: contextvars.ContextVar[bool] = contextvars.ContextVar("modelforge_batching", default=False)


@contextlib.contextmanager
def batching() -> Iterator[None]:
    """Mark the calls made inside (and in tasks or thread contexts copied from here) as batch items."""
    token = _batching.set(True)
    try:
        yield
    finally:
        _batching.reset(token)


def in_batch() -> bool:
    """Whether the current call is a batch item."""
    return _batching.get()


class CallAttempts:
    """The attempts of one call: which operation, how many so far, since when, what was repaired."""

    __slots__ = ("attempt", "operation", "recovered", "started", "waited")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.attempt = 1
        self.started = time.monotonic()
        self.waited = 0.0
        self.recovered = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def next(self, wait: float) -> None:
        self.attempt += 1
        self.waited += wait


class Call:
    """One call of a chat model, as the steps see it.

    ``model`` is the model called (a step reads its settings: model id, sampling, SDK client);
    ``attempts`` is shared by every step of the call, so the step that counts the call knows how many
    attempts the retry step made.
    """

    __slots__ = ("attempts", "kwargs", "last", "messages", "model", "run_manager", "stop")

    def __init__(
        self,
        operation: str,
        model: BaseChatModel,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: Any,
        kwargs: dict[str, Any],
    ) -> None:
        self.attempts = CallAttempts(operation)
        self.model = model
        self.messages = messages
        self.stop = stop
        self.run_manager = run_manager
        self.kwargs = kwargs
        # The last send (the SDK's own method), set by ``Pipeline`` when the call starts.
        self.last: Callable[[Call], Any] = _unset

    @property
    def operation(self) -> str:
        """``invoke`` or ``stream`` (``batch`` once a batch item was seen by the retry step)."""
        return self.attempts.operation

    def with_request(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Call:
        """This call with other messages and options (an optimizer's rewrite); the attempts stay shared."""
        changed = Call.__new__(Call)
        changed.attempts = self.attempts
        changed.model = self.model
        changed.messages = messages
        changed.stop = self.stop
        changed.run_manager = self.run_manager
        changed.kwargs = kwargs
        changed.last = self.last
        return changed


Send = Callable[[Call], ChatResult]
AsyncSend = Callable[[Call], Awaitable[ChatResult]]
StreamSend = Callable[[Call], Iterator[ChatGenerationChunk]]
AsyncStreamSend = Callable[[Call], AsyncIterator[ChatGenerationChunk]]


class Step:
    """One policy of the pipeline. Each method gets the call and ``send`` (the steps after this one and
    the SDK); the defaults pass the call on unchanged, without adding a frame to streams."""

    #: Shown by ``Pipeline.describe()`` and in docs/architecture.md.
    name = "step"

    def generate(self, call: Call, send: Send) -> ChatResult:
        return send(call)

    async def agenerate(self, call: Call, send: AsyncSend) -> ChatResult:
        return await send(call)

    def stream(self, call: Call, send: StreamSend) -> Iterator[ChatGenerationChunk]:
        return send(call)

    def astream(self, call: Call, send: AsyncStreamSend) -> AsyncIterator[ChatGenerationChunk]:
        return send(call)

    def recipe(self) -> tuple[str, Any] | None:
        """How a pickled model gets this step back: ``(kind, picklable data)``, or None for a step the
        registry builds from the config anyway."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _unset(call: Call) -> Any:
    raise RuntimeError("a Call ran outside a Pipeline")


def _last(call: Call) -> Any:
    return call.last(call)


def _chain(steps: Sequence[Step], method: str) -> Callable[[Call], Any]:
    """The steps' ``method`` composed, outermost first, ending with the call's last send."""
    send: Callable[[Call], Any] = _last
    for step in reversed(steps):
        send = _bound(getattr(step, method), send)
    return send


def _bound(method: Callable[[Call, Any], Any], send: Callable[[Call], Any]) -> Callable[[Call], Any]:
    def run(call: Call) -> Any:
        return method(call, send)

    return run


class Pipeline:
    """Steps run in order (the first sees the call first), around the last ``send``."""

    __slots__ = ("_agenerate", "_astream", "_generate", "_stream", "steps")

    def __init__(self, steps: Sequence[Step] = ()) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        # Composed once: a call only walks the chain.
        self._generate = _chain(self.steps, "generate")
        self._agenerate = _chain(self.steps, "agenerate")
        self._stream = _chain(self.steps, "stream")
        self._astream = _chain(self.steps, "astream")

    def find(self, kind: type[Any]) -> Any:
        """The first step of type ``kind``, or None."""
        return next((step for step in self.steps if isinstance(step, kind)), None)

    def describe(self) -> list[str]:
        """The names of the steps, in the order a call meets them."""
        return [step.name for step in self.steps]

    def generate(self, call: Call, last: Send) -> ChatResult:
        call.last = last
        result: ChatResult = self._generate(call)
        return result

    async def agenerate(self, call: Call, last: AsyncSend) -> ChatResult:
        call.last = last
        result: ChatResult = await self._agenerate(call)
        return result

    def stream(self, call: Call, last: StreamSend) -> Iterator[ChatGenerationChunk]:
        call.last = last
        chunks: Iterator[ChatGenerationChunk] = self._stream(call)
        return chunks

    def astream(self, call: Call, last: AsyncStreamSend) -> AsyncIterator[ChatGenerationChunk]:
        call.last = last
        chunks: AsyncIterator[ChatGenerationChunk] = self._astream(call)
        return chunks

    def __repr__(self) -> str:
        return f"Pipeline({' -> '.join(self.describe()) or 'empty'})"
