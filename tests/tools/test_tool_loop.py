"""The tool loop against the provider test servers: tools in parallel, follow-ups, limits, errors, aborts."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableLambda

from modelforge.exceptions import InvalidInputError, StreamInterruptedError
from modelforge.registry import ModelForgeRegistry
from modelforge.streaming import (
    AbortSignal,
    LoopEnd,
    StreamAbortedError,
    StreamEnd,
    StreamError,
    StreamRestart,
    TextDelta,
    ToolCallComplete,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopEvent,
    ToolManager,
    UnknownToolError,
    run_tool_loop,
)
from modelforge.testing import Fault, ProviderServer, Reply, ToolCall
from tests.providers.conftest import FamilyCase

TWO_CALLS = Reply(
    text="Let me check.",
    tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"zone": "CET"})],
)


async def collect(events: Any) -> list[ToolLoopEvent]:
    return [event async for event in events]


def weather_tools(barrier: asyncio.Barrier | None = None) -> ToolManager:
    """``get_weather`` and ``get_time``; with a barrier, each waits there for the other (a proof that
    they run together: run one after the other, the first would time out at the barrier)."""

    async def get_weather(city: str) -> str:
        """Get the weather for a city."""
        if barrier is not None:
            await barrier.wait()
        return f"Sunny in {city}"

    async def get_time(zone: str) -> str:
        """Get the time in a time zone."""
        if barrier is not None:
            await barrier.wait()
        return f"12:00 {zone}"

    return ToolManager([get_weather, get_time], call_timeout=5)


def tool_results_sent(provider: str, body: dict[str, Any]) -> list[tuple[str | None, str]]:
    """The tool results in a follow-up request, as (call id or tool name, content), in each protocol."""
    if provider == "anthropic":
        return [
            (block["tool_use_id"], block["content"])
            for block in body["messages"][-1]["content"]
            if block["type"] == "tool_result"
        ]
    if provider == "google":
        return [
            (part["functionResponse"]["name"], part["functionResponse"]["response"]["output"])
            for part in body["contents"][-1]["parts"]
        ]
    if provider == "openai_responses":  # function_call_output items in the Responses API's input
        return [
            (item["call_id"], item["output"])
            for item in body["input"]
            if item.get("type") == "function_call_output"
        ]
    tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
    if provider == "ollama":  # Ollama's tool messages carry no call id
        return [(None, m["content"]) for m in tool_messages]
    return [(m["tool_call_id"], m["content"]) for m in tool_messages]


def llm_for(case: FamilyCase) -> Any:
    return ModelForgeRegistry().get_llm(case.provider, case.model)


async def test_two_tools_run_in_parallel_and_the_follow_up_answers(
    case: FamilyCase, server: ProviderServer
) -> None:
    server.script(TWO_CALLS, Reply(text="Sunny in Paris, and it is noon."))
    events = await collect(
        run_tool_loop(llm_for(case), "Weather and time in Paris?", weather_tools(asyncio.Barrier(2)))
    )

    # Turn 1 streams and asks for both tools; both start before either finishes; turn 2 streams the answer.
    kinds = [type(e).__name__ for e in events if not isinstance(e, TextDelta)]
    first_end = kinds.index("StreamEnd")
    assert kinds[first_end + 1 : first_end + 5] == [
        "ToolCallStarted",
        "ToolCallStarted",
        "ToolCallFinished",
        "ToolCallFinished",
    ]
    finished = [e.result for e in events if isinstance(e, ToolCallFinished)]
    assert all(r.error is None for r in finished), [r.error for r in finished]
    calls = {r.call.name: r.call for r in finished}
    assert calls["get_weather"].arguments == {"city": "Paris"}

    # The follow-up request carried both results, each answering its call.
    expected = ["Sunny in Paris", "12:00 CET"]
    sent = tool_results_sent(case.provider, server.requests[-1].json)
    assert [content for _, content in sent] == expected
    if case.provider == "google":
        assert [key for key, _ in sent] == ["get_weather", "get_time"]
    elif case.provider != "ollama":
        assert [key for key, _ in sent] == [calls["get_weather"].id, calls["get_time"].id]

    # The follow-up answer streamed as text and ends the loop.
    ends = [e for e in events if isinstance(e, StreamEnd)]
    assert [e.finish_reason for e in ends] == ["tool_calls", "stop"]
    second_turn = events[events.index(ends[0]) + 1 :]
    assert (
        "".join(e.text for e in second_turn if isinstance(e, TextDelta)) == "Sunny in Paris, and it is noon."
    )
    end = events[-1]
    assert isinstance(end, LoopEnd)
    assert (end.reason, end.turns, end.text, end.error) == (
        "done",
        2,
        "Sunny in Paris, and it is noon.",
        None,
    )
    assert [type(m) for m in end.messages] == [HumanMessage, AIMessage, ToolMessage, ToolMessage, AIMessage]
    ai = end.messages[1]
    assert isinstance(ai, AIMessage) and ai.content == "Let me check."
    assert [c["name"] for c in ai.tool_calls] == ["get_weather", "get_time"]
    assert end.usage is not None and end.usage.total_tokens == sum(
        e.usage.total_tokens for e in ends if e.usage
    )
    assert len([r for r in server.requests if r.protocol != "github"]) == 2


async def test_the_turn_limit_ends_the_loop_with_the_calls_not_run(
    server: ProviderServer, openai_llm: Any
) -> None:
    server.script(
        Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Rome"})]),
    )
    tools = weather_tools()
    events = await collect(run_tool_loop(openai_llm, "Weather everywhere?", tools, max_turns=2))
    end = events[-1]
    assert isinstance(end, LoopEnd) and end.reason == "max_turns" and end.turns == 2
    assert [c.arguments for c in end.pending_calls] == [{"city": "Rome"}]
    assert [e.result.output for e in events if isinstance(e, ToolCallFinished)] == ["Sunny in Paris"]
    assert len(server.requests) == 2
    last = end.messages[-1]
    assert isinstance(last, AIMessage) and last.tool_calls[0]["args"] == {"city": "Rome"}
    # The pending calls can be run by hand to go on.
    assert [r.output for r in await tools.run(end.pending_calls)] == ["Sunny in Rome"]


async def test_a_stream_error_mid_loop_is_yielded_and_ends_it(
    server: ProviderServer, openai_llm: Any
) -> None:
    server.script(TWO_CALLS, Reply(text="It is sunny in Paris today", disconnect_after=2))
    events = await collect(run_tool_loop(openai_llm, "Weather?", weather_tools()))
    error, end = events[-2:]
    assert isinstance(error, StreamError) and isinstance(error.error, StreamInterruptedError)
    assert error.partial_text == "It is "
    assert isinstance(end, LoopEnd)
    assert (end.reason, end.turns, end.error) == ("error", 2, error.error)
    # The failed turn is not in the history: the last message is the second tool result.
    assert [type(m) for m in end.messages] == [HumanMessage, AIMessage, ToolMessage, ToolMessage]


async def test_a_failing_first_request_ends_the_loop_at_once(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Fault(400, "bad request"))
    events = await collect(run_tool_loop(openai_llm, "Weather?", weather_tools()))
    assert [type(e) for e in events] == [StreamError, LoopEnd]
    end = events[-1]
    assert isinstance(end, LoopEnd) and end.reason == "error" and end.turns == 1 and end.text == ""


async def test_tool_failures_go_back_to_the_model_and_the_loop_goes_on(
    server: ProviderServer, openai_llm: Any
) -> None:
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        raise RuntimeError(f"station {city} offline")

    server.script(
        Reply(
            text="",
            tool_calls=[ToolCall("get_weather", {"city": "Oslo"}), ToolCall("launch_rockets", {"n": 3})],
        ),
        Reply(text="Sorry, I could not find out."),
    )
    events = await collect(run_tool_loop(openai_llm, "Weather in Oslo?", ToolManager([get_weather])))
    results = sorted(
        (e.result for e in events if isinstance(e, ToolCallFinished)), key=lambda r: r.call.index
    )
    assert isinstance(results[0].error, RuntimeError) and isinstance(results[1].error, UnknownToolError)
    contents = [content for _, content in tool_results_sent("openai", server.requests[-1].json)]
    assert contents == [
        "Error: tool 'get_weather' failed: RuntimeError: station Oslo offline",
        "Error: There is no tool named 'launch_rockets'. Available tools: get_weather.",
    ]
    end = events[-1]
    assert isinstance(end, LoopEnd) and end.reason == "done" and end.text == "Sorry, I could not find out."


async def test_processors_rewrite_deltas_and_each_turns_text(server: ProviderServer, openai_llm: Any) -> None:
    server.script(
        Reply(text="Checking the secret weather.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Reply(text="  It is secret sunny.  "),
    )

    def drop_secret(text: str) -> str | None:
        return None if "secret" in text else text

    events = await collect(
        run_tool_loop(
            openai_llm,
            "Weather?",
            weather_tools(),
            pre_process=[drop_secret, str.upper],
            post_process=[str.strip, lambda text: f"{text}!"],
        )
    )
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["CHECKING ", "THE ", "WEATHER.", "  ", "IT ", "IS ", "SUNNY.  "]
    ends = [e for e in events if isinstance(e, StreamEnd)]
    assert [e.text for e in ends] == ["CHECKING THE WEATHER.!", "IT IS SUNNY.!"]
    end = events[-1]
    assert isinstance(end, LoopEnd) and end.text == "IT IS SUNNY.!"
    assert [m.content for m in end.messages if isinstance(m, AIMessage)] == [e.text for e in ends]
    # The history sent back to the model holds the processed text.
    assert server.requests[-1].json["messages"][1]["content"] == "CHECKING THE WEATHER.!"


async def test_tools_registered_during_the_loop_are_offered_from_the_next_turn(
    server: ProviderServer, openai_llm: Any
) -> None:
    tools = ToolManager()

    def enable_weather() -> str:
        """Enable the weather tool."""
        tools.register(weather_tools().get("get_weather"))  # type: ignore[arg-type]
        tools.unregister("enable_weather")
        return "weather enabled"

    tools.register(enable_weather)
    server.script(
        Reply(text="", tool_calls=[ToolCall("enable_weather")]),
        Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Reply(text="Sunny."),
    )
    events = await collect(run_tool_loop(openai_llm, "Weather?", tools))
    offered = [[t["function"]["name"] for t in r.json["tools"]] for r in server.requests]
    assert offered == [["enable_weather"], ["get_weather"], ["get_weather"]]
    assert [e.result.output for e in events if isinstance(e, ToolCallFinished)] == [
        "weather enabled",
        "Sunny in Paris",
    ]
    end = events[-1]
    assert isinstance(end, LoopEnd) and end.reason == "done" and end.turns == 3


async def test_messages_in_and_no_tools_registered(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="Bonjour."))
    prompt = [SystemMessage("Answer in French."), ("human", "Hello")]
    events = await collect(run_tool_loop(openai_llm, prompt, ToolManager()))
    end = events[-1]
    assert isinstance(end, LoopEnd) and end.reason == "done" and end.text == "Bonjour."
    body = server.requests[0].json
    assert "tools" not in body  # nothing bound while no tool is registered
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


async def test_abort_during_tool_calls_starts_no_follow_up(server: ProviderServer, openai_llm: Any) -> None:
    signal = AbortSignal()

    async def get_weather(city: str) -> str:
        """Get the weather for a city."""
        signal.abort("user pressed stop")  # on the loop's thread, as AbortSignal requires
        return "Sunny"

    server.script(TWO_CALLS, Reply(text="never requested"))
    events = await collect(
        run_tool_loop(
            openai_llm, "Weather?", ToolManager([get_weather, weather_tools().get("get_time")]), abort=signal
        )  # type: ignore[list-item]
    )
    assert len([e for e in events if isinstance(e, ToolCallFinished)]) == 2  # calls already running finish
    end = events[-1]
    assert isinstance(end, LoopEnd) and end.reason == "aborted" and end.turns == 1
    assert isinstance(end.error, StreamAbortedError) and end.error.reason == "user pressed stop"
    assert len(server.requests) == 1


async def test_abort_while_the_turn_end_is_delivered_runs_no_tool(
    server: ProviderServer, openai_llm: Any
) -> None:
    ran: list[str] = []

    async def get_weather(city: str) -> str:
        """Get the weather for a city."""
        ran.append(city)
        return "Sunny"

    signal = AbortSignal()
    server.script(
        Reply(text="x", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]), Reply(text="never")
    )
    events: list[ToolLoopEvent] = []
    async for event in run_tool_loop(openai_llm, "Weather?", ToolManager([get_weather]), abort=signal):
        events.append(event)
        if isinstance(event, StreamEnd):
            signal.abort("stop now")
    assert ran == []
    assert not any(isinstance(e, ToolCallStarted) for e in events)
    end = events[-1]
    assert isinstance(end, LoopEnd) and (end.reason, end.turns) == ("aborted", 1)
    assert isinstance(end.error, StreamAbortedError) and end.error.reason == "stop now"
    assert [c.arguments for c in end.pending_calls] == [{"city": "Paris"}]
    assert len(server.requests) == 1


async def test_a_restart_on_the_fallback_model_voids_the_turns_text(
    server: ProviderServer, fallback_llm: Any
) -> None:
    server.script(
        Reply(text="one two three", disconnect_after=2),  # OpenAI drops the stream after "one two "
        Reply(text="Sunny in Paris."),  # Anthropic takes over
    )
    events = await collect(run_tool_loop(fallback_llm, "Weather?", weather_tools()))
    restarts = [e for e in events if isinstance(e, StreamRestart)]
    assert len(restarts) == 1 and restarts[0].discarded_text == "one two "
    end_of_turn = next(e for e in events if isinstance(e, StreamEnd))
    assert end_of_turn.text == "Sunny in Paris."
    end = events[-1]
    assert isinstance(end, LoopEnd) and (end.reason, end.text) == ("done", "Sunny in Paris.")
    assert [m.content for m in end.messages if isinstance(m, AIMessage)] == ["Sunny in Paris."]


async def test_an_aborted_signal_starts_nothing(server: ProviderServer, openai_llm: Any) -> None:
    signal = AbortSignal()
    signal.abort("closed before it began")
    events = await collect(run_tool_loop(openai_llm, "Weather?", weather_tools(), abort=signal))
    assert len(events) == 1
    end = events[0]
    assert isinstance(end, LoopEnd) and (end.reason, end.turns, end.text) == ("aborted", 0, "")
    assert [m.content for m in end.messages] == ["Weather?"]
    assert server.requests == []


async def test_abort_mid_stream_closes_it(server: ProviderServer, openai_llm: Any) -> None:
    signal = AbortSignal()
    server.script(Reply(text="one two three four", stall_after=2))
    seen: list[ToolLoopEvent] = []
    async for event in run_tool_loop(openai_llm, "Count", weather_tools(), abort=signal):
        seen.append(event)
        if isinstance(event, TextDelta) and event.text == "two ":
            signal.abort()
    assert await asyncio.to_thread(server.wait_for_disconnects, 1)
    error, end = seen[-2:]
    assert isinstance(error, StreamError) and isinstance(error.error, StreamAbortedError)
    assert error.partial_text == "one two "
    assert isinstance(end, LoopEnd) and end.reason == "aborted"


async def test_leaving_the_loop_early_closes_the_stream(server: ProviderServer, openai_llm: Any) -> None:
    server.script(Reply(text="one two three four", stall_after=1))
    loop = run_tool_loop(openai_llm, "Count", weather_tools())
    async with contextlib.aclosing(loop):
        async for event in loop:
            if isinstance(event, TextDelta):
                break
    assert await asyncio.to_thread(server.wait_for_disconnects, 1)


async def test_arguments_are_checked_at_the_call(openai_llm: Any) -> None:
    tools = weather_tools()
    with pytest.raises(InvalidInputError):
        run_tool_loop(openai_llm, "  ", tools)
    with pytest.raises(InvalidInputError):
        run_tool_loop(openai_llm, "Hi", tools, max_turns=0)
    with pytest.raises(InvalidInputError):
        run_tool_loop(openai_llm, "Hi", tools, idle_timeout=0)
    with pytest.raises(InvalidInputError, match="bind_tools"):
        run_tool_loop(RunnableLambda(lambda prompt: prompt), "Hi", tools)


def test_tool_call_ids_and_events_are_plain_values() -> None:
    call = ToolCallComplete(0, "c1", "get_weather", {"city": "Paris"})
    assert ToolCallStarted(call) == ToolCallStarted(call)
