"""The tool loop with tools served by a real MCP server (``tests/mcp/calc_server.py`` over stdio)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool

from modelforge.streaming import LoopEnd, ToolCallFinished, ToolCallStarted, ToolManager, run_tool_loop
from modelforge.streaming.mcp import MCPToolset, ToolExecutionError
from modelforge.testing import ProviderServer, Reply, ToolCall
from tests.mcp.conftest import calc_stdio


async def test_mcp_tools_run_in_parallel_and_the_follow_up_answers(
    server: ProviderServer, openai_llm: Any
) -> None:
    server.script(
        Reply(
            text="Computing.",
            tool_calls=[ToolCall("add", {"a": 2, "b": 3}), ToolCall("multiply", {"a": 4, "b": 2.5})],
        ),
        Reply(text="", tool_calls=[ToolCall("fail", {"reason": "division by zero"})]),
        Reply(text="2 + 3 = 5 and 4 * 2.5 = 10."),
    )
    async with MCPToolset([calc_stdio()], call_timeout=10) as toolset:
        tools = ToolManager(toolset.tools)
        assert {"add", "multiply", "fail"} <= set(tools.names)
        assert all(isinstance(t, BaseTool) for t in tools.tools)
        events = [e async for e in run_tool_loop(openai_llm, "2+3 and 4*2.5?", tools)]

    # Both calls of the first turn were in flight together: both started before either finished.
    tool_events = [e for e in events if isinstance(e, ToolCallStarted | ToolCallFinished)]
    assert [type(e) for e in tool_events[:4]] == [
        ToolCallStarted,
        ToolCallStarted,
        ToolCallFinished,
        ToolCallFinished,
    ]
    results = {e.result.call.name: e.result for e in tool_events if isinstance(e, ToolCallFinished)}
    assert (results["add"].output, results["multiply"].output) == ("5", "10.0")
    assert isinstance(results["fail"].error, ToolExecutionError)

    # The model was offered the server's tools, with the server's schemas, and got the results back.
    first = server.requests[0].json
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in first["tools"]}
    assert offered["add"]["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    second = server.requests[1].json
    assert [(m["role"], m["content"]) for m in second["messages"] if m["role"] == "tool"] == [
        ("tool", "5"),
        ("tool", "10.0"),
    ]
    failure = [m for m in server.requests[2].json["messages"] if m["role"] == "tool"][-1]
    assert "division by zero" in failure["content"] and failure["content"].startswith("Error:")

    end = events[-1]
    assert isinstance(end, LoopEnd)
    assert (end.reason, end.turns, end.text) == ("done", 3, "2 + 3 = 5 and 4 * 2.5 = 10.")
