"""Fixtures that start the real MCP test server (``calc_server.py``) over stdio and streamable HTTP.

* ``calc_stdio(name="calc", flavour="calc", *extra)``: the ``MCPServer.stdio`` description that starts the
  server as ``sys.executable tests/mcp/calc_server.py ...`` (absolute path: each test runs in a temp folder).
* ``http_server``: one ``calc_server.py --http PORT`` subprocess for the whole session, on a free loopback
  port; yields its ``/mcp`` URL. ``start_http_server()`` starts a private one (for tests that kill it).
* ``pid_alive(pid)`` and ``wait_until(predicate)`` for the lifecycle tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelforge.streaming.mcp import MCPServer

CALC_SERVER = Path(__file__).with_name("calc_server.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


def calc_stdio(name: str = "calc", flavour: str = "calc", *extra: str) -> MCPServer:
    """The test server over stdio."""
    return MCPServer.stdio(
        name, command=sys.executable, args=[str(CALC_SERVER), "--flavour", flavour, *extra]
    )


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms until it holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def start_http_server(flavour: str = "calc") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``calc_server.py --http`` on a free port until the block ends; yields (url, process)."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, str(CALC_SERVER), "--http", str(port), "--flavour", flavour],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        pytest.fail(f"the MCP HTTP test server did not start:\n{log.read().decode()}")
                    time.sleep(0.02)
            yield f"http://127.0.0.1:{port}/mcp", process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture(scope="session")
def http_server() -> Iterator[str]:
    with start_http_server() as (url, _process):
        yield url
