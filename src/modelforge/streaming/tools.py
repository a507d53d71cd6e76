"""Tool handlers for the tool loop: ``ToolManager`` runs tool calls, ``ToolResult`` is what one gave.

::

    def get_weather(city: str) -> str:
        "Get the weather for a city."
        return f"Sunny in {city}"

    tools = ToolManager([get_weather], max_concurrency=4, parallel=True, call_timeout=30.0)
    tools.register(get_time)                 # sync or async function, or a LangChain BaseTool
    tools.unregister("get_time")             # at any time, also while a loop runs
    llm.bind_tools(tools.tools)              # list[BaseTool], in registration order
    results = await tools.run(calls)         # one ToolResult per call, in the calls' order
    messages += [result.to_message() for result in results]

What this module owns:

* ``ToolManager``: the registry of handlers (a function becomes a ``StructuredTool`` whose argument schema
  comes from its type hints and whose description is its docstring; re-registering a name replaces it) and
  the runner. ``run`` / ``run_events`` run calls in parallel, at most ``max_concurrency`` handlers of one run
  at a time (a semaphore), or one after the other (``parallel=False``). Each handler gets ``call_timeout``
  seconds (a sync handler runs in a worker thread, which a timeout abandons but cannot stop).
* ``ToolResult`` (``_tool_results``): the call, the output as text, the error (or None) and the duration;
  ``to_message()`` is the ``ToolMessage`` the model gets back.
* ``ToolCallStarted`` / ``ToolCallFinished`` (``_tool_results``): the events ``run_events`` yields as
  handlers start and finish (also yielded by ``run_tool_loop``).
* The errors of a call that could not run as asked (``_tool_results``, re-exported here)::

      ToolCallError(tool, call_id, message)          TOOL_CALL_ERROR
      ├── UnknownToolError                           UNKNOWN_TOOL       no handler has that name
      ├── ToolArgumentsError                         TOOL_ARGUMENTS     the arguments fail the tool's schema
      └── ToolTimeoutError                           TOOL_TIMEOUT       the handler took over call_timeout

A call never raises out of ``run``: an unknown tool, bad arguments, a timeout, or a handler that raises
(its own exception is kept as ``error``) all give a ``ToolResult`` with ``error`` set, whose message tells
the model what went wrong (secrets masked), so the conversation can go on. Only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from modelforge.exceptions import InvalidInputError
from modelforge.streaming._tool_results import (
    ToolArgumentsError,
    ToolCallError,
    ToolCallFinished,
    ToolCallStarted,
    ToolEvent,
    ToolResult,
    ToolTimeoutError,
    UnknownToolError,
)
from modelforge.streaming.events import ToolCallComplete
from modelforge.validation import InputValidator

__all__ = [
    "ToolArgumentsError",
    "ToolCallError",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolEvent",
    "ToolHandler",
    "ToolManager",
    "ToolResult",
    "ToolTimeoutError",
    "UnknownToolError",
]

logger = logging.getLogger(__name__)

ToolHandler = Callable[..., Any] | BaseTool


# --- the manager -----------------------------------------------------------------------------------------


def _as_tool(handler: ToolHandler, name: str | None, description: str | None) -> BaseTool:
    if isinstance(handler, BaseTool):
        update = {key: value for key, value in (("name", name), ("description", description)) if value}
        return handler.model_copy(update=update) if update else handler
    if not callable(handler):
        raise InvalidInputError(
            f"A tool handler must be a function or a LangChain BaseTool, not {type(handler).__name__}"
        )
    tool_name = name or getattr(handler, "__name__", None)
    if not tool_name or tool_name == "<lambda>":
        raise InvalidInputError("This handler has no usable name: pass name=... to register it")
    doc = description or inspect.getdoc(handler) or f"Run {tool_name}."
    is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004  (async callable objects)
    )
    return StructuredTool.from_function(
        func=None if is_async else handler,
        coroutine=handler if is_async else None,
        name=tool_name,
        description=doc,
    )


def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, ToolMessage):
        return value.text
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _check_arguments(tool: BaseTool, call: ToolCallComplete) -> None:
    """Validate the arguments against a pydantic argument schema (a JSON-schema dict is left to the tool)."""
    schema = tool.args_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            schema.model_validate(call.arguments)
        except PydanticValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'arguments'}: {item['msg']}"
                for item in err.errors()
            )
            raise ToolArgumentsError(call.name, call.id, problems) from None


class ToolManager:
    """Named tool handlers and the runner of a model's tool calls (see the module docstring).

    ``max_concurrency`` bounds the handlers running at once within one ``run``; ``parallel`` is the default
    mode of ``run``; ``call_timeout`` bounds each handler (seconds, None for no limit).
    """

    def __init__(
        self,
        handlers: Iterable[ToolHandler] = (),
        *,
        max_concurrency: int = 4,
        parallel: bool = True,
        call_timeout: float | None = 30.0,
    ) -> None:
        self.max_concurrency = InputValidator.validate_positive_integer(max_concurrency, "max_concurrency")
        self.parallel = parallel
        self.call_timeout = (
            None
            if call_timeout is None
            else InputValidator.validate_positive_number(call_timeout, "call_timeout")
        )
        self._tools: dict[str, BaseTool] = {}
        for handler in handlers:
            self.register(handler)

    # registry

    def register(
        self, handler: ToolHandler, *, name: str | None = None, description: str | None = None
    ) -> BaseTool:
        """Add ``handler`` (a sync or async function, or a ``BaseTool``) and return its tool.

        A function's argument schema comes from its type hints, its description from its docstring (or
        ``description``); ``name`` renames it. A name already registered is replaced.
        """
        tool = _as_tool(handler, name, description)
        self._tools.pop(tool.name, None)  # a replaced tool moves to the end, like a new one
        self._tools[tool.name] = tool
        return tool

    def unregister(self, name: str) -> bool:
        """Remove the tool called ``name``; False if there was none. Calls already running finish."""
        return self._tools.pop(name, None) is not None

    def get(self, name: str) -> BaseTool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    @property
    def tools(self) -> list[BaseTool]:
        """The registered tools, for ``llm.bind_tools(manager.tools)``."""
        return list(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return (
            f"ToolManager({self.names!r}, max_concurrency={self.max_concurrency}, parallel={self.parallel})"
        )

    # running

    async def call(self, call: ToolCallComplete, *, config: RunnableConfig | None = None) -> ToolResult:
        """Run one call; never raises (except on cancellation): failures are in ``ToolResult.error``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        output = ""
        error: Exception | None = None
        tool = self._tools.get(call.name)
        try:
            if tool is None:
                raise UnknownToolError(call.name, call.id, self.names)
            _check_arguments(tool, call)
            scope = asyncio.timeout(self.call_timeout)
            try:
                async with scope:
                    value = await tool.ainvoke(dict(call.arguments), config=config)
            except TimeoutError as err:
                if self.call_timeout is not None and scope.expired():
                    raise ToolTimeoutError(call.name, call.id, self.call_timeout) from err
                raise  # the handler's own TimeoutError
            output = _output_text(value)
        except Exception as err:
            error = err
            logger.debug("Tool call %s (%s) failed: %s", call.name, call.id, type(err).__name__)
        return ToolResult(call, output, error, loop.time() - started)

    async def run(
        self,
        calls: Sequence[ToolCallComplete],
        *,
        parallel: bool | None = None,
        config: RunnableConfig | None = None,
    ) -> list[ToolResult]:
        """Run ``calls`` (in parallel, bounded, or in order) and return their results in the calls' order
        (one per call, also when the same call is given twice)."""
        results: dict[int, ToolResult] = {}
        async with contextlib.aclosing(self._run(calls, parallel, config)) as events:
            async for position, event in events:
                if isinstance(event, ToolCallFinished):
                    results[position] = event.result
        return [results[position] for position in range(len(calls))]

    async def run_events(
        self,
        calls: Sequence[ToolCallComplete],
        *,
        parallel: bool | None = None,
        config: RunnableConfig | None = None,
    ) -> AsyncGenerator[ToolEvent, None]:
        """Run ``calls``, yielding ``ToolCallStarted`` as each handler starts and ``ToolCallFinished`` as it
        ends (in order of completion when parallel). Leaving early cancels the handlers still running."""
        async with contextlib.aclosing(self._run(calls, parallel, config)) as events:
            async for _, event in events:
                yield event

    async def _run(
        self, calls: Sequence[ToolCallComplete], parallel: bool | None, config: RunnableConfig | None
    ) -> AsyncGenerator[tuple[int, ToolEvent], None]:
        """The events of ``run_events``, each with the position of its call in ``calls``."""
        calls = list(calls)
        if not (self.parallel if parallel is None else parallel) or len(calls) <= 1:
            for position, call in enumerate(calls):
                yield position, ToolCallStarted(call)
                yield position, ToolCallFinished(await self.call(call, config=config))
            return
        events: asyncio.Queue[tuple[int, ToolEvent]] = asyncio.Queue()
        slots = asyncio.Semaphore(self.max_concurrency)

        async def one(position: int, call: ToolCallComplete) -> None:
            async with slots:
                events.put_nowait((position, ToolCallStarted(call)))
                result = await self.call(call, config=config)
            events.put_nowait((position, ToolCallFinished(result)))

        tasks = [
            asyncio.create_task(one(position, call), name=f"modelforge-tool-{call.name}")
            for position, call in enumerate(calls)
        ]
        try:
            for _ in range(2 * len(calls)):
                yield await events.get()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
