"""ToolManager: run-time registration, sync and async handlers, bounded parallel or in-order runs, errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from langchain_core.tools import BaseTool, StructuredTool, tool

from modelforge.exceptions import InvalidInputError
from modelforge.streaming import (
    ToolArgumentsError,
    ToolCallComplete,
    ToolCallFinished,
    ToolCallStarted,
    ToolManager,
    ToolResult,
    ToolTimeoutError,
    UnknownToolError,
)
from tests.conftest import OPENAI_KEY


def call(name: str, index: int = 0, **arguments: object) -> ToolCallComplete:
    return ToolCallComplete(index=index, id=f"call_{index}", name=name, arguments=dict(arguments))


def get_weather(city: str, days: int = 1) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city} for {days} day(s)"


async def get_time(zone: str) -> dict[str, str]:
    """Get the time in a time zone."""
    await asyncio.sleep(0)
    return {"zone": zone, "time": "12:00"}


class Concurrency:
    """Counts handlers running at once; ``peak`` is the most seen together."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            self.now -= 1


def test_functions_become_tools_with_schemas_from_type_hints() -> None:
    tools = ToolManager([get_weather, get_time])
    assert tools.names == ["get_weather", "get_time"]
    assert all(isinstance(t, BaseTool) for t in tools.tools)
    weather = tools.get("get_weather")
    assert weather is not None and weather.description == "Get the weather for a city."
    assert weather.args == {
        "city": {"title": "City", "type": "string"},
        "days": {"title": "Days", "type": "integer", "default": 1},
    }
    assert tools.get("get_time").coroutine is not None  # type: ignore[union-attr]


async def test_register_and_unregister_at_run_time() -> None:
    tools = ToolManager()
    assert len(tools) == 0
    [missing] = await tools.run([call("get_weather", city="Paris")])
    assert isinstance(missing.error, UnknownToolError)

    tools.register(get_weather)
    [found] = await tools.run([call("get_weather", city="Paris")])
    assert found.ok and found.output == "Sunny in Paris for 1 day(s)"

    # Re-registering a name replaces the handler; name= and description= rename and describe.
    tools.register(lambda city: f"Rainy in {city}", name="get_weather", description="Weather, pessimistic.")
    assert tools.names == ["get_weather"] and tools.get("get_weather").description == "Weather, pessimistic."  # type: ignore[union-attr]
    [replaced] = await tools.run([call("get_weather", city="Oslo")])
    assert replaced.output == "Rainy in Oslo"

    # A handler may register another tool while a run is going on: the next run sees it.
    def enable_time() -> str:
        """Enable the clock."""
        tools.register(get_time)
        return "enabled"

    tools.register(enable_time)
    results = await tools.run([call("enable_time"), call("get_time", 1, zone="UTC")], parallel=False)
    assert [r.output for r in results] == ["enabled", '{"zone": "UTC", "time": "12:00"}']

    assert tools.unregister("get_weather") is True
    assert tools.unregister("get_weather") is False
    assert "get_weather" not in tools and tools.names == ["enable_time", "get_time"]
    [gone] = await tools.run([call("get_weather", city="Paris")])
    assert isinstance(gone.error, UnknownToolError)
    assert "enable_time, get_time" in gone.to_message().content


async def test_langchain_tools_register_as_they_are_or_renamed() -> None:
    @tool
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    tools = ToolManager([shout])
    assert tools.get("shout") is shout
    renamed = tools.register(shout, name="yell")
    assert isinstance(renamed, StructuredTool) and renamed.name == "yell" and shout.name == "shout"
    results = await tools.run([call("shout", text="hi"), call("yell", 1, text="ho")])
    assert [r.output for r in results] == ["HI", "HO"]


def test_bad_handlers_and_options_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        ToolManager().register(lambda: "no name")
    with pytest.raises(InvalidInputError):
        ToolManager().register("not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ToolManager(max_concurrency=0)
    with pytest.raises(InvalidInputError):
        ToolManager(call_timeout=-1)


async def test_sync_and_async_handlers_run_in_parallel() -> None:
    """Both handlers must be inside the barrier together: a sequential run would time out there."""
    barrier = asyncio.Barrier(2)

    async def first(x: int) -> int:
        """First."""
        await barrier.wait()
        return x + 1

    def second(x: int) -> int:
        """Second (sync: runs in a worker thread)."""
        asyncio.run_coroutine_threadsafe(barrier.wait(), loop).result(timeout=5)
        return x * 10

    loop = asyncio.get_running_loop()
    tools = ToolManager([first, second], call_timeout=5)
    results = await tools.run([call("first", 0, x=1), call("second", 1, x=2)])
    assert [(r.output, r.error) for r in results] == [("2", None), ("20", None)]
    assert all(r.duration_s >= 0 for r in results)


async def test_max_concurrency_bounds_the_handlers_running_at_once() -> None:
    seen = Concurrency()

    async def work(n: int) -> int:
        """Work a while."""
        async with seen.running():
            for _ in range(5):
                await asyncio.sleep(0)
        return n

    tools = ToolManager([work], max_concurrency=1)
    results = await tools.run([call("work", i, n=i) for i in range(4)])
    assert [r.output for r in results] == ["0", "1", "2", "3"]
    assert seen.peak == 1

    # With a bound of 2 the handlers pair up: the barrier proves two run together, the counter that
    # never more than two do.
    barrier = asyncio.Barrier(2)
    paired = Concurrency()

    async def pair(n: int) -> int:
        """Meet a partner."""
        async with paired.running():
            await barrier.wait()
            for _ in range(5):
                await asyncio.sleep(0)
        return n

    tools = ToolManager([pair], max_concurrency=2, call_timeout=5)
    results = await tools.run([call("pair", i, n=i) for i in range(4)])
    assert all(r.ok for r in results)
    assert paired.peak == 2


async def test_results_come_in_the_calls_order_whatever_finishes_first() -> None:
    second_done = asyncio.Event()

    async def slow() -> str:
        """Waits for fast."""
        await second_done.wait()
        return "slow"

    async def fast() -> str:
        """Finishes first."""
        second_done.set()
        return "fast"

    tools = ToolManager([slow, fast], call_timeout=5)
    calls = [call("slow", 0), call("fast", 1)]
    finished = [e.result.output async for e in tools.run_events(calls) if isinstance(e, ToolCallFinished)]
    assert finished == ["fast", "slow"]
    assert [r.output for r in await tools.run(calls)] == ["slow", "fast"]


@pytest.mark.parametrize("parallel", [True, False])
async def test_the_same_call_given_twice_gets_two_results(parallel: bool) -> None:
    tools = ToolManager([get_weather])
    twice = call("get_weather", 0, city="Paris")
    results = await tools.run([twice, call("get_weather", 1, city="Rome"), twice], parallel=parallel)
    assert [(r.call, r.output) for r in results] == [
        (twice, "Sunny in Paris for 1 day(s)"),
        (call("get_weather", 1, city="Rome"), "Sunny in Rome for 1 day(s)"),
        (twice, "Sunny in Paris for 1 day(s)"),
    ]


async def test_in_order_mode_runs_one_call_after_the_other() -> None:
    seen = Concurrency()

    async def step(n: int) -> int:
        """A step."""
        async with seen.running():
            for _ in range(3):
                await asyncio.sleep(0)
        return n

    tools = ToolManager([step], parallel=False)
    calls = [call("step", i, n=i) for i in range(3)]
    events = [e async for e in tools.run_events(calls)]
    assert [
        (type(e).__name__, e.call.index if isinstance(e, ToolCallStarted) else e.result.call.index)
        for e in events
    ] == [
        ("ToolCallStarted", 0),
        ("ToolCallFinished", 0),
        ("ToolCallStarted", 1),
        ("ToolCallFinished", 1),
        ("ToolCallStarted", 2),
        ("ToolCallFinished", 2),
    ]
    assert seen.peak == 1
    # parallel=True on the call overrides the manager's mode.
    await tools.run(calls, parallel=True)
    assert seen.peak == 3


async def test_every_failure_is_a_result_the_model_is_told_about() -> None:
    never = asyncio.Event()

    def broken(city: str) -> str:
        """Raises."""
        raise ValueError(f"no weather station in {city} (key {OPENAI_KEY})")

    async def hangs() -> str:
        """Never answers."""
        await never.wait()
        return "late"

    async def own_timeout() -> str:
        """Raises its own TimeoutError."""
        raise TimeoutError("upstream API timed out")

    tools = ToolManager([get_weather, broken, hangs, own_timeout], call_timeout=0.05)
    results = await tools.run(
        [
            call("nope", 0),
            call("get_weather", 1, city=3, days="many"),
            call("get_weather", 2),
            call("broken", 3, city="Atlantis"),
            call("hangs", 4),
            call("own_timeout", 5),
        ]
    )
    assert all(isinstance(r, ToolResult) and not r.ok and r.output == "" for r in results)
    unknown, wrong_types, missing, raised, timed_out, own = results
    assert isinstance(unknown.error, UnknownToolError) and unknown.error.tool == "nope"
    assert isinstance(wrong_types.error, ToolArgumentsError)
    assert "city" in wrong_types.error.reason and "days" in wrong_types.error.reason
    assert isinstance(missing.error, ToolArgumentsError) and "city: Field required" in missing.error.reason
    assert isinstance(raised.error, ValueError)
    assert isinstance(timed_out.error, ToolTimeoutError) and timed_out.error.timeout == 0.05
    assert type(own.error) is TimeoutError

    messages = [r.to_message() for r in results]
    assert [m.tool_call_id for m in messages] == [f"call_{i}" for i in range(6)]
    assert all(m.status == "error" for m in messages)
    assert messages[0].content.startswith("Error: There is no tool named 'nope'")
    assert messages[3].content.startswith("Error: tool 'broken' failed: ValueError: no weather station")
    assert OPENAI_KEY not in messages[3].content  # secrets masked before they reach the model
    assert "did not finish within 0.05s" in messages[4].content
    assert "TimeoutError: upstream API timed out" in messages[5].content

    ok = (await tools.run([call("get_weather", 0, city="Rome")]))[0].to_message()
    assert (ok.content, ok.status, ok.name) == ("Sunny in Rome for 1 day(s)", "success", "get_weather")


async def test_leaving_run_events_early_cancels_running_handlers() -> None:
    both_running = asyncio.Barrier(3)
    cancelled: list[str] = []

    async def forever(label: str) -> str:
        """Runs until cancelled."""
        try:
            await both_running.wait()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(label)
            raise
        return label

    tools = ToolManager([forever])
    events = tools.run_events([call("forever", 0, label="a"), call("forever", 1, label="b")])
    first = await anext(events)
    assert isinstance(first, ToolCallStarted)
    async with asyncio.timeout(5):
        await both_running.wait()
    await events.aclose()
    assert sorted(cancelled) == ["a", "b"]
