"""Tools, structured output and LCEL chains keep the fallback: each provider formats the tools its own way."""

from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel

import modelforge
from modelforge.exceptions import AllProvidersFailedError, BadRequestError
from modelforge.policies.circuit import CircuitBreakerRegistry, CircuitState
from modelforge.policies.fallback import FallbackChatModel, FallbackRunnable
from modelforge.streaming import StreamEnd, ToolCallComplete
from modelforge.testing import Fault, ProviderServer, Reply, ToolCall
from tests.fallback.conftest import protocols

MODES = ["sync", "async"]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Weather(BaseModel):
    city: str
    temperature: int


def bodies(server: ProviderServer) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r.protocol: r.json for r in server.requests if r.method == "POST"}


@pytest.mark.parametrize("mode", MODES)
async def test_bind_tools_keeps_the_fallback(
    chain: FallbackChatModel, server: ProviderServer, mode: str
) -> None:
    with_tools = chain.bind_tools([get_weather])
    assert isinstance(with_tools, FallbackChatModel)
    server.script(Fault(status=503), Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    message = await (
        asyncio.to_thread(with_tools.invoke, "Paris?") if mode == "sync" else with_tools.ainvoke("Paris?")
    )
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    sent = bodies(server)
    assert sent["openai"]["tools"][0]["function"]["name"] == "get_weather"  # OpenAI's format
    assert sent["anthropic"]["tools"][0]["name"] == "get_weather"  # Anthropic's format
    assert "input_schema" in sent["anthropic"]["tools"][0]


async def test_bound_tools_stream_through_a_fallback(
    chain: FallbackChatModel, server: ProviderServer
) -> None:
    server.script(Fault(status=529), Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    seen = [e async for e in modelforge.stream_events(chain.bind_tools([get_weather]), "Oslo?")]
    calls = [e for e in seen if isinstance(e, ToolCallComplete)]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert isinstance(seen[-1], StreamEnd) and seen[-1].finish_reason == "tool_calls"


async def test_tool_choice_reaches_each_provider(chain: FallbackChatModel, server: ProviderServer) -> None:
    forced = chain.bind_tools([get_weather], tool_choice="get_weather")
    server.script(Fault(status=503), Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Rome"})]))
    await forced.ainvoke("Rome?")
    sent = bodies(server)
    assert sent["openai"]["tool_choice"]["function"]["name"] == "get_weather"
    assert sent["anthropic"]["tool_choice"] == {"type": "tool", "name": "get_weather"}


@pytest.mark.parametrize("mode", MODES)
async def test_structured_output_uses_each_providers_method_and_falls_back(
    chain: FallbackChatModel, server: ProviderServer, mode: str
) -> None:
    structured = chain.with_structured_output(Weather)
    assert isinstance(structured, FallbackRunnable)
    server.script(
        Fault(status=503),
        Reply(text="", tool_calls=[ToolCall("Weather", {"city": "Lima", "temperature": 19})]),
    )
    result = await (
        asyncio.to_thread(structured.invoke, "Lima?") if mode == "sync" else structured.ainvoke("Lima?")
    )
    assert result == Weather(city="Lima", temperature=19)
    assert protocols(server) == ["openai", "anthropic"]

    server.reset()
    server.script(Reply(text=json.dumps({"city": "Quito", "temperature": 14})))
    assert await structured.ainvoke("Quito?") == Weather(city="Quito", temperature=14)
    assert protocols(server) == ["openai"]


async def test_structured_output_raises_a_bad_request_at_once(
    chain: FallbackChatModel, server: ProviderServer
) -> None:
    server.script(Fault(status=400, message="bad schema"), Reply(text="never"))
    with pytest.raises(BadRequestError):
        await chain.with_structured_output(Weather).ainvoke("x")
    assert protocols(server) == ["openai"]


async def test_structured_output_all_failing_and_the_breaker(
    chain: FallbackChatModel, breakers: CircuitBreakerRegistry, server: ProviderServer
) -> None:
    structured = chain.with_structured_output(Weather)
    for _ in range(3):
        server.script(Fault(status=503), Fault(status=502))
        with pytest.raises(AllProvidersFailedError) as info:
            await structured.ainvoke("x")
        assert len(info.value.errors) == 2
    assert breakers.get("openai").state is CircuitState.OPEN
    assert breakers.get("anthropic").state is CircuitState.OPEN


async def test_structured_output_streams_fall_back_before_the_first_output(
    chain: FallbackChatModel, server: ProviderServer
) -> None:
    structured = chain.with_structured_output(Weather)
    server.script(
        Fault(status=503),
        Reply(text="", tool_calls=[ToolCall("Weather", {"city": "Bern", "temperature": 8})]),
    )
    outputs = [item async for item in structured.astream("Bern?")]
    assert outputs[-1] == Weather(city="Bern", temperature=8)
    server.script(
        Fault(status=503),
        Reply(text="", tool_calls=[ToolCall("Weather", {"city": "Graz", "temperature": 9})]),
    )
    assert list(structured.stream("Graz?"))[-1] == Weather(city="Graz", temperature=9)


@pytest.mark.parametrize("mode", MODES)
async def test_in_an_lcel_chain(chain: FallbackChatModel, server: ProviderServer, mode: str) -> None:
    pipeline = ChatPromptTemplate.from_messages([("user", "Say {word}")]) | chain | StrOutputParser()
    server.script(Fault(status=503), Reply(text="rescued"))
    if mode == "sync":
        answer = await asyncio.to_thread(pipeline.invoke, {"word": "hi"})
    else:
        answer = await pipeline.ainvoke({"word": "hi"})
    assert answer == "rescued"
    server.script(Fault(status=503), Reply(text="streamed rescue"))
    pieces = [piece async for piece in pipeline.astream({"word": "hi"})]
    assert "".join(pieces) == "streamed rescue"
