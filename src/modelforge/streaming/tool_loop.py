"""``run_tool_loop``: stream an answer, run the tools it calls, stream the follow-up, until it is done.

::

    tools = ToolManager([get_weather, get_time])
    async for event in run_tool_loop(llm, "Weather and time in Paris?", tools, max_turns=8):
        match event:
            case TextDelta(text=text): print(text, end="")
            case ToolCallStarted(call=call): print(f"[{call.name}({call.arguments})]")
            case ToolCallFinished(result=result): ...
            case LoopEnd(reason=reason, text=text, messages=messages): ...

A *turn* is one model stream. Each turn binds the manager's current tools to the model
(``llm.bind_tools(tools.tools)``, so tools registered or unregistered meanwhile count from the next turn; no
binding while none is registered), streams the answer over the whole history through a ``StreamQueue``
(one per loop, under the loop's ``AbortSignal``), and appends the answer to the history as an ``AIMessage``
(its text, its tool calls, its usage). If the answer called tools, they run (``tools.run_events``: in
parallel up to ``max_concurrency``, or in order), their ``ToolMessage`` answers join the history and the
next turn streams the follow-up.

Events, in order, for each turn::

    TextDelta* ToolCallDelta* ToolCallComplete* Usage? StreamEnd       (the turn's stream, as stream_events)
    (ToolCallStarted | ToolCallFinished)*                              (when it called tools)

and then exactly one ``LoopEnd``, always the last event, whose ``reason`` is:

* ``"done"``: a turn answered without tool calls; ``text`` is that answer.
* ``"max_turns"``: turn ``max_turns`` still called tools. They are not run: they are in ``pending_calls``
  (the history ends with that ``AIMessage``; ``await tools.run(pending_calls)`` to go on by hand).
* ``"error"``: a turn's stream failed: its ``StreamError`` was yielded just before (nothing is raised), and
  ``error`` holds the error; the failed turn is not in the history.
* ``"aborted"``: the signal was aborted. During a stream it ends with ``StreamError(StreamAbortedError)``;
  after a turn's ``StreamEnd`` was yielded and before its tool calls started, they are not run (they are in
  ``pending_calls``, as for ``"max_turns"``); during tool calls, the calls finish (bounded by
  ``call_timeout``) and no follow-up starts; before the first turn, nothing starts (``turns == 0``).

``turns`` counts the streams started; ``usage`` adds up the turns that reported usage (``None`` if none
did), ``cost`` every turn's cost (``None`` if one was unknown). Closing the loop early (``aclose()``,
e.g. ``break`` inside ``contextlib.aclosing(...)``, or cancellation) closes the running stream and cancels
running tools before it returns.

Processors: each ``pre_process`` function rewrites one ``TextDelta``'s text before it is yielded (returning
``None`` or ``""`` drops the delta); a turn's text is the join of its processed deltas. Each
``post_process`` function then rewrites that whole text once, at the end of the turn: the result is the
turn's ``StreamEnd.text`` as yielded, the content of its ``AIMessage`` in the history, and, for the last
turn, ``LoopEnd.text``. ``StreamError.partial_text`` is left as the stream delivered it. A ``StreamRestart``
(a fallback model took over the turn's stream) is yielded and voids the turn's text so far: the turn's text
is that of the new answer only.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig

from modelforge.exceptions import InvalidInputError
from modelforge.streaming._session import Limits, check_prompt
from modelforge.streaming._wrapper import TextProcessor, apply_processors
from modelforge.streaming.events import (
    StreamEnd,
    StreamError,
    StreamEvent,
    StreamRestart,
    TextDelta,
    ToolCallComplete,
    Usage,
)
from modelforge.streaming.queue import AbortSignal, StreamAbortedError, StreamQueue
from modelforge.streaming.tools import ToolCallFinished, ToolEvent, ToolManager, ToolResult
from modelforge.validation import InputValidator

__all__ = ["LoopEnd", "LoopEndReason", "ToolLoopEvent", "run_tool_loop"]

LoopEndReason = Literal["done", "max_turns", "error", "aborted"]


@dataclass(frozen=True, slots=True)
class LoopEnd:
    """The loop is over: why, after how many turns, the whole history, and the last turn's text."""

    reason: LoopEndReason
    turns: int
    messages: tuple[BaseMessage, ...]
    text: str
    error: Exception | None = None
    pending_calls: tuple[ToolCallComplete, ...] = ()
    usage: Usage | None = None
    cost: float | None = None


ToolLoopEvent = StreamEvent | ToolEvent | LoopEnd


def _messages(prompt: Any) -> list[BaseMessage]:
    check_prompt(prompt)
    if isinstance(prompt, str):
        return [HumanMessage(prompt)]
    if isinstance(prompt, PromptValue):
        return list(prompt.to_messages())
    return list(convert_to_messages(prompt))


def _ai_message(end: StreamEnd, text: str) -> AIMessage:
    usage = end.usage
    return AIMessage(
        content=text,
        tool_calls=[
            {"name": call.name, "args": dict(call.arguments), "id": call.id, "type": "tool_call"}
            for call in end.tool_calls
        ],
        usage_metadata=None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        response_metadata={"finish_reason": end.finish_reason},
    )


class _Totals:
    """Usage and cost added up over the turns."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.cost: float | None = 0.0
        self.turns = 0

    def add(self, end: StreamEnd) -> None:
        if end.usage is not None:
            before = self.usage or Usage(0, 0, 0)
            self.usage = Usage(
                before.input_tokens + end.usage.input_tokens,
                before.output_tokens + end.usage.output_tokens,
                before.total_tokens + end.usage.total_tokens,
            )
        self.cost = None if self.cost is None or end.cost is None else self.cost + end.cost


def run_tool_loop(
    llm: Runnable[Any, Any],
    prompt: Any,
    tools: ToolManager,
    *,
    max_turns: int = 8,
    timeout: float | None = 300.0,
    idle_timeout: float | None = None,
    pre_process: Sequence[TextProcessor] = (),
    post_process: Sequence[TextProcessor] = (),
    parallel: bool | None = None,
    abort: AbortSignal | None = None,
    config: RunnableConfig | None = None,
    **kwargs: Any,
) -> AsyncGenerator[ToolLoopEvent, None]:
    """Run the tool loop (see the module docstring) and yield its events, ending with one ``LoopEnd``.

    ``llm`` is a chat model with ``bind_tools``; ``prompt`` a str, a ``PromptValue`` or a list of messages
    (anything ``convert_to_messages`` takes). ``timeout`` and ``idle_timeout`` apply to each turn's stream;
    ``parallel`` overrides the manager's mode; ``abort`` is an ``AbortSignal`` to share (else one of the
    loop's own). ``config`` goes to the model and the tools, ``kwargs`` to the model's ``astream``.
    Arguments are checked here, at the call.
    """
    if not isinstance(llm, BaseChatModel) and not callable(getattr(llm, "bind_tools", None)):
        raise InvalidInputError(f"run_tool_loop needs a chat model with bind_tools, not {type(llm).__name__}")
    messages = _messages(prompt)
    turns = InputValidator.validate_positive_integer(max_turns, "max_turns")
    limits = Limits.checked(timeout, idle_timeout)
    return _loop(
        llm,
        messages,
        tools,
        abort,
        limits,
        max_turns=turns,
        pre=tuple(pre_process),
        post=tuple(post_process),
        parallel=parallel,
        config=config,
        kwargs=kwargs,
    )


def _bound(llm: Any, tools: ToolManager) -> Runnable[Any, Any]:
    current = tools.tools
    return llm.bind_tools(current) if current else llm


async def _loop(
    llm: Any,
    messages: list[BaseMessage],
    tools: ToolManager,
    abort: AbortSignal | None,
    limits: Limits,
    *,
    max_turns: int,
    pre: tuple[TextProcessor, ...],
    post: tuple[TextProcessor, ...],
    parallel: bool | None,
    config: RunnableConfig | None,
    kwargs: dict[str, Any],
) -> AsyncGenerator[ToolLoopEvent, None]:
    totals = _Totals()
    queue = StreamQueue(abort, timeout=limits.timeout, idle_timeout=limits.idle_timeout)

    def end(reason: LoopEndReason, text: str = "", **extra: Any) -> LoopEnd:
        return LoopEnd(
            reason, totals.turns, tuple(messages), text, usage=totals.usage, cost=totals.cost, **extra
        )

    def start_turn() -> None:
        totals.turns += 1
        queue.add(_bound(llm, tools), list(messages), config=config, **kwargs)

    try:
        if queue.aborted:
            yield end("aborted", error=StreamAbortedError(queue.signal.reason))
            return
        start_turn()
        parts: list[str] = []
        async for _, event in queue:
            if isinstance(event, TextDelta):
                text = apply_processors(pre, event.text) if pre else event.text
                if text:
                    parts.append(text)
                    yield event if text == event.text else TextDelta(text)
                continue
            if isinstance(event, StreamRestart):  # a fallback model took over: the turn's text so far is void
                parts = []
                yield event
                continue
            if isinstance(event, StreamError):
                yield event
                reason: LoopEndReason = "aborted" if isinstance(event.error, StreamAbortedError) else "error"
                yield end(reason, error=event.error)
                return
            if not isinstance(event, StreamEnd):
                yield event
                continue
            text = "".join(parts)
            parts = []
            if post:
                text = apply_processors(post, text)
            totals.add(event)
            messages.append(_ai_message(event, text))
            yield dataclasses.replace(event, text=text) if text != event.text else event
            if not event.tool_calls:
                yield end("done", text)
                return
            if totals.turns >= max_turns:
                yield end("max_turns", text, pending_calls=event.tool_calls)
                return
            if queue.aborted:  # aborted while the turn's end was being delivered: run nothing more
                yield end(
                    "aborted", error=StreamAbortedError(queue.signal.reason), pending_calls=event.tool_calls
                )
                return
            results: dict[int, ToolResult] = {}
            async with contextlib.aclosing(
                tools.run_events(event.tool_calls, parallel=parallel, config=config)
            ) as runs:
                async for tool_event in runs:
                    if isinstance(tool_event, ToolCallFinished):
                        results[tool_event.result.call.index] = tool_event.result
                    yield tool_event
            messages.extend(results[call.index].to_message() for call in event.tool_calls)
            if queue.aborted:
                yield end("aborted", error=StreamAbortedError(queue.signal.reason))
                return
            start_turn()
    finally:
        await queue.aclose()
