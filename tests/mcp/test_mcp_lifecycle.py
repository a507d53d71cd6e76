"""Opening and closing MCP toolsets: cleanup, a killed server, failed or silent servers, a missing SDK."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

import modelforge.streaming.mcp
from modelforge.exceptions import InvalidInputError, ProviderNotAvailableError
from modelforge.streaming.mcp import (
    MCPConnectionError,
    MCPServer,
    MCPTimeoutError,
    MCPToolset,
    MCPToolsetClosedError,
)
from tests.mcp.conftest import calc_stdio, pid_alive, wait_until


async def test_closing_stops_the_server_and_leaves_no_task() -> None:
    before = asyncio.all_tasks()
    async with MCPToolset([calc_stdio()]) as toolset:
        tool = toolset.get_tool("add")
        pid = int(await toolset.call("pid"))
        assert pid_alive(pid)
        assert asyncio.all_tasks() - before  # the connection task
    assert not pid_alive(pid)  # the subprocess has exited and been reaped
    assert asyncio.all_tasks() - before == set()
    assert toolset.closed

    with pytest.raises(MCPToolsetClosedError) as caught:
        await tool.ainvoke({"a": 1, "b": 2})
    assert str(caught.value) == "MCP tool 'add' on server 'calc': the MCP toolset is closed"
    with pytest.raises(MCPToolsetClosedError):
        await toolset.call("add", {"a": 1, "b": 2})
    with pytest.raises(MCPToolsetClosedError):
        await asyncio.to_thread(tool.invoke, {"a": 1, "b": 2})
    await toolset.aclose()  # twice is fine


async def test_a_killed_server_gives_a_clear_error_for_calls_in_flight_and_later() -> None:
    before = asyncio.all_tasks()
    async with MCPToolset([calc_stdio()], call_timeout=10) as toolset:
        pid = int(await toolset.call("pid"))
        in_flight = asyncio.create_task(toolset.call("slow", {"seconds": 10}))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        with pytest.raises(MCPConnectionError) as caught:
            await in_flight
        assert time.monotonic() - started < 2  # not the 10 s call timeout
        assert (caught.value.server, caught.value.tool) == ("calc", "slow")
        assert "MCP tool 'slow' on server 'calc'" in str(caught.value)

        with pytest.raises(MCPConnectionError) as caught:
            await toolset.call("add", {"a": 1, "b": 2})
        message = str(caught.value)
        assert message.startswith("MCP tool 'add' on server 'calc': the ")
        assert "stdio server at" in message and "calc_server.py" in message
    assert asyncio.all_tasks() - before == set()


async def test_when_one_server_fails_to_start_the_others_are_closed(tmp_path: Path) -> None:
    before = asyncio.all_tasks()
    pidfile = tmp_path / "calc.pid"
    # Exits without a word once calc is running, so calc is always started, then has to be stopped.
    wait_then_exit = (
        "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.01)\nsys.exit(3)"
    )
    broken = MCPServer.stdio("broken", command=sys.executable, args=["-c", wait_then_exit, str(pidfile)])
    with pytest.raises(MCPConnectionError) as caught:
        async with MCPToolset([calc_stdio("calc", "calc", "--pidfile", str(pidfile)), broken]):
            pytest.fail("must not open")
    assert caught.value.server == "broken"
    assert str(caught.value).startswith("MCP server 'broken': could not connect (")
    # calc had started (it wrote its pid) and was stopped again.
    assert not pid_alive(int(pidfile.read_text()))
    assert asyncio.all_tasks() - before == set()


async def test_a_missing_command_is_a_connection_error() -> None:
    with pytest.raises(MCPConnectionError, match=r"could not connect \((FileNotFoundError|OSError).*"):
        async with MCPToolset([MCPServer.stdio("ghost", command="/nonexistent/mcp-server")]):
            pytest.fail("must not open")


async def test_a_silent_server_hits_the_connect_timeout() -> None:
    before = asyncio.all_tasks()
    # Reads stdin until it closes and never answers the handshake.
    mute = MCPServer.stdio("mute", command=sys.executable, args=["-c", "import sys; sys.stdin.read()"])
    started = time.monotonic()
    with pytest.raises(MCPTimeoutError) as caught:
        async with MCPToolset([mute], connect_timeout=0.5):
            pytest.fail("must not open")
    assert time.monotonic() - started < 2.5
    assert str(caught.value) == "Timed out after 0.5s: connecting to MCP server 'mute'"
    assert asyncio.all_tasks() - before == set()


async def test_cancelling_the_open_closes_everything() -> None:
    before = asyncio.all_tasks()
    mute = MCPServer.stdio("mute", command=sys.executable, args=["-c", "import sys; sys.stdin.read()"])
    toolset = MCPToolset([mute])
    opening = asyncio.create_task(toolset.open())
    await asyncio.sleep(0.3)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    await wait_until(lambda: asyncio.all_tasks() - before == set(), within=3)
    assert toolset.closed


async def test_without_the_mcp_package_opening_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` raises ImportError, as without the extra
    with pytest.raises(ProviderNotAvailableError) as caught:
        async with MCPToolset([calc_stdio()]):
            pytest.fail("must not open")
    assert str(caught.value) == (
        "Provider 'mcp' is not available: the 'mcp' package is not installed; "
        "run: pip install 'model-forge-llm[mcp]'"
    )
    assert caught.value.suggestion == "Install it with: pip install 'model-forge-llm[mcp]'"


def test_the_package_imports_mcp_only_inside_functions() -> None:
    """So ``import modelforge.streaming.mcp`` works without the extra installed."""
    package = Path(modelforge.streaming.mcp.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.parse(module.read_text()).body:  # module level only
            names = [alias.name for alias in getattr(node, "names", [])]
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name == "mcp" or name.startswith("mcp.") for name in names), module.name


def test_server_descriptions_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="letters, digits"):
        MCPServer.stdio("has space", command="x")
    with pytest.raises(InvalidInputError, match="http:// or https://"):
        MCPServer.http("web", url="ftp://example.com/mcp")
    with pytest.raises(InvalidInputError, match="unique; repeated: calc"):
        MCPToolset([calc_stdio(), calc_stdio()])
    with pytest.raises(InvalidInputError, match="call_timeout must be a number greater than 0"):
        MCPToolset([calc_stdio()], call_timeout=0)
    with pytest.raises(InvalidInputError, match="connect_timeout must be a number greater than 0"):
        MCPToolset([calc_stdio()], connect_timeout=float("nan"))


async def test_a_call_from_another_loop_while_the_toolsets_loop_is_stopped_fails_at_once() -> None:
    owner = asyncio.new_event_loop()  # the toolset's loop, run in a thread only while opening and closing
    toolset = MCPToolset([calc_stdio()], call_timeout=5)
    try:
        await asyncio.to_thread(owner.run_until_complete, toolset.open())
        assert not toolset.closed and not owner.is_running()
        with pytest.raises(MCPToolsetClosedError):
            await asyncio.wait_for(toolset.call("calc__add", {"a": 1, "b": 2}), 5)  # never handed over
    finally:
        await asyncio.to_thread(owner.run_until_complete, toolset.aclose())
        owner.close()


async def test_closing_a_connection_that_does_not_wind_down_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelforge.streaming.mcp import _connection

    monkeypatch.setattr(_connection, "_CLOSE_TIMEOUT", 0.05)
    connection = _connection.Connection(calc_stdio())
    stuck = asyncio.Event()

    async def ignores_the_stop() -> None:  # a transport whose shutdown never ends, until cancelled
        await stuck.wait()

    connection._task = asyncio.create_task(ignores_the_stop())
    connection._session = object()  # connected: close() first lets it wind down by itself
    await asyncio.wait_for(connection.close(), 2)
    assert connection._task.cancelled()
