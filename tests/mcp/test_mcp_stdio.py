"""MCP tools over stdio: listing, calling through LangChain, schemas for bind_tools, errors, names, refresh.

One toolset for the module: the ``calc`` and ``text`` flavours of the real test server, as two stdio
subprocesses, whose ``add`` tools clash.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import ToolException
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from modelforge.exceptions import InvalidInputError, NetworkTimeoutError, ProviderError
from modelforge.streaming.mcp import MCPTimeoutError, MCPTool, MCPToolset, ToolExecutionError
from tests.mcp.conftest import calc_stdio, wait_until

ADD_PARAMETERS = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


@pytest.fixture(scope="module")
async def toolset() -> AsyncIterator[MCPToolset]:
    async with MCPToolset([calc_stdio("calc"), calc_stdio("text", "text")], call_timeout=10) as opened:
        yield opened


async def test_lists_every_tool_with_unique_names(toolset: MCPToolset) -> None:
    names = [tool.name for tool in toolset.tools]
    assert len(names) == len(set(names))
    # Only the clashing name is prefixed, with its server; the others keep their own names.
    assert {"calc__add", "text__add", "multiply", "slow", "fail", "picture", "upper"} <= set(names)
    assert "add" not in names
    add = toolset.get_tool("calc__add")
    assert isinstance(add, MCPTool)
    assert (add.server, add.remote_name) == ("calc", "add")
    assert add.description == "Add two integers."
    assert add.metadata == {"mcp_server": "calc", "mcp_tool": "add"}
    # The server's JSON schema, unchanged.
    assert add.args_schema == {
        "properties": {"a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer"}},
        "required": ["a", "b"],
        "title": "addArguments",
        "type": "object",
    }


async def test_a_langchain_tool_calls_the_server(toolset: MCPToolset) -> None:
    add = toolset.get_tool("calc__add")
    assert await add.ainvoke({"a": 2, "b": 3}) == "5"
    message = await add.ainvoke(
        {"name": "calc__add", "args": {"a": 40, "b": 2}, "id": "c1", "type": "tool_call"}
    )
    assert isinstance(message, ToolMessage)
    assert (message.content, message.tool_call_id, message.status) == ("42", "c1", "success")
    # Same name, other server, other tool.
    assert await toolset.get_tool("text__add").ainvoke({"a": "foo", "b": "bar"}) == "foobar"
    assert await toolset.call("multiply", {"a": 1.5, "b": 4}) == "6.0"
    assert await toolset.call("upper", {"text": "mcp"}) == "MCP"


async def test_bind_tools_sends_the_server_schema(toolset: MCPToolset) -> None:
    llm = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key=SecretStr("x"), model="gpt-4o-mini")
    bound = llm.bind_tools(toolset.tools)
    functions = {spec["function"]["name"]: spec["function"] for spec in bound.kwargs["tools"]}  # type: ignore[attr-defined]
    assert set(functions) == {tool.name for tool in toolset.tools}
    assert functions["calc__add"] == {
        "name": "calc__add",
        "description": "Add two integers.",
        "parameters": ADD_PARAMETERS,
    }
    assert functions["text__add"]["parameters"]["properties"] == {
        "a": {"type": "string"},
        "b": {"type": "string"},
    }
    # Optional parameters keep their default; parameterless tools are an empty object.
    assert functions["fail"]["parameters"] == {
        "type": "object",
        "properties": {"reason": {"default": "boom", "type": "string"}},
    }
    assert functions["pid"]["parameters"] == {"type": "object", "properties": {}}


async def test_non_text_content_is_summarised(toolset: MCPToolset) -> None:
    assert await toolset.call("picture") == "a tiny picture\n[image: image/png, 68 bytes]"


async def test_is_error_raises_a_tool_execution_error(toolset: MCPToolset) -> None:
    with pytest.raises(ToolExecutionError) as caught:
        await toolset.get_tool("fail").ainvoke({"reason": "disk on fire"})
    err = caught.value
    assert isinstance(caught.value, ProviderError)
    assert isinstance(caught.value, ToolException)  # so LangChain's handle_tool_error can hand it on
    assert (err.server, err.tool) == ("calc", "fail")
    assert "disk on fire" in err.reason
    assert str(err).startswith("MCP tool 'fail' on server 'calc' failed: ")
    assert err.error_code == "TOOL_EXECUTION_ERROR"
    assert err.retryable is False


async def test_a_call_that_takes_too_long_times_out_and_names_the_tool(toolset: MCPToolset) -> None:
    started = time.monotonic()
    with pytest.raises(MCPTimeoutError) as caught:
        await toolset.call("slow", {"seconds": 30}, call_timeout=0.3)
    assert time.monotonic() - started < 2
    err = caught.value
    assert isinstance(err, NetworkTimeoutError)
    assert str(err) == "Timed out after 0.3s: calling MCP tool 'slow' on server 'calc'"
    assert (err.server, err.tool, err.timeout) == ("calc", "slow", 0.3)
    # The connection is still good.
    assert await toolset.call("calc__add", {"a": 1, "b": 1}) == "2"


async def test_unknown_tool_names_the_available_ones(toolset: MCPToolset) -> None:
    with pytest.raises(InvalidInputError, match=r"No MCP tool named 'nope'; available: .*calc__add"):
        await toolset.call("nope", {})
    # The <server>__<tool> form always works, prefixed or not.
    assert await toolset.call("calc__multiply", {"a": 2, "b": 3}) == "6.0"


async def test_parallel_calls_share_a_connection(toolset: MCPToolset) -> None:
    started = time.monotonic()
    results = await asyncio.gather(
        toolset.call("slow", {"seconds": 0.3}),
        toolset.call("slow", {"seconds": 0.3}),
        toolset.call("calc__add", {"a": 1, "b": 2}),
    )
    assert results == ["slept 0.3", "slept 0.3", "3"]
    # One after the other the two calls take 0.6 s at least: under 0.55 s they overlapped.
    assert time.monotonic() - started < 0.55


async def test_sync_invoke_from_another_thread_and_ainvoke_from_another_loop(toolset: MCPToolset) -> None:
    add = toolset.get_tool("calc__add")
    assert await asyncio.to_thread(add.invoke, {"a": 1, "b": 2}) == "3"

    answers: list[str] = []
    thread = threading.Thread(target=lambda: answers.append(asyncio.run(add.ainvoke({"a": 3, "b": 4}))))
    thread.start()
    await asyncio.to_thread(thread.join)
    assert answers == ["7"]

    with pytest.raises(RuntimeError, match=r"use `await tool\.ainvoke"):
        add.invoke({"a": 1, "b": 2})  # on the toolset's own loop this would deadlock


async def test_refresh_picks_up_a_tool_the_server_added(toolset: MCPToolset) -> None:
    assert "power" not in {tool.name for tool in toolset.tools}
    assert toolset.tools_changed is False
    assert await toolset.call("enable_power") == "power enabled"
    # The server announces the change (notifications/tools/list_changed).
    await wait_until(lambda: toolset.tools_changed)
    tools = await toolset.refresh()
    assert toolset.tools_changed is False
    assert "power" in {tool.name for tool in tools}
    assert {"calc__add", "text__add"} <= {tool.name for tool in tools}
    assert await toolset.get_tool("power").ainvoke({"base": 2, "exponent": 10}) == "1024"
