"""Which calls share a pool, and how pools close: on demand, with their event loop, and at exit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from modelforge.pooling import PoolLimits, aclose_pools, close_pools, pool_stats, shared_http_clients
from modelforge.registry import ModelForgeRegistry
from modelforge.streaming import stream_sync
from modelforge.testing import ProviderServer
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.pooling.conftest import WriteConfig, chat_connections
from tests.providers.conftest import CASES, FamilyCase

URL = "https://api.example.test/v1"


def test_one_pool_per_provider_base_url_and_key() -> None:
    limits = PoolLimits()
    pooled = shared_http_clients("acme", URL, OPENAI_KEY, limits)
    again = shared_http_clients("acme", URL + "/", OPENAI_KEY, limits)
    assert again.pool is pooled.pool
    assert again.client is not pooled.client  # each model has clients (and cookies) of its own
    assert shared_http_clients("other", URL, OPENAI_KEY, limits).pool is not pooled.pool
    elsewhere = shared_http_clients("acme", "https://eu.example.test/v1", OPENAI_KEY, limits)
    assert elsewhere.pool is not pooled.pool
    assert shared_http_clients("acme", URL, OPENAI_KEY, PoolLimits(max_connections=3)).pool is not pooled.pool
    assert shared_http_clients("acme", URL, ANTHROPIC_KEY, limits).pool is not pooled.pool
    assert OPENAI_KEY not in repr(pooled)


def test_callable_credentials_key_by_provider_and_base_url() -> None:
    # The Copilot token source is a callable api_key: every model of the provider shares one pool.
    limits = PoolLimits()
    first = shared_http_clients("copilot", URL, lambda: "token-a", limits)
    assert shared_http_clients("copilot", URL, lambda: "token-b", limits).pool is first.pool


def test_flavours_get_their_own_clients() -> None:
    import httpx
    import httpx2

    limits = PoolLimits()
    classic = shared_http_clients("acme", URL, None, limits, flavor="httpx")
    modern = shared_http_clients("acme", URL, None, limits, flavor="httpx2")
    assert isinstance(classic.client, httpx.Client) and isinstance(classic.async_client, httpx.AsyncClient)
    assert isinstance(modern.client, httpx2.Client) and isinstance(modern.async_client, httpx2.AsyncClient)


def test_models_keep_working_after_close_pools(case: FamilyCase, server: ProviderServer) -> None:
    llm = ModelForgeRegistry().get_llm(case.provider, case.model)
    llm.invoke("before")
    ModelForgeRegistry().close()
    assert pool_stats().open_sync_pools == 0
    assert llm.invoke("after").text
    assert chat_connections(server) == 2  # the first connection was closed; a new one was opened


async def test_aclose_closes_the_running_loops_pool(case: FamilyCase, server: ProviderServer) -> None:
    llm = ModelForgeRegistry().get_llm(case.provider, case.model)
    await llm.ainvoke("before")
    await llm.ainvoke("again")
    assert chat_connections(server) == 1
    await ModelForgeRegistry().aclose()
    assert (await llm.ainvoke("after")).text
    assert chat_connections(server) == 2


def test_a_loop_closes_its_pool_when_it_shuts_down(write_config: WriteConfig, server: ProviderServer) -> None:
    write_config()
    llm = ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b")
    loops_before = pool_stats().event_loops

    async def call_and_count() -> int:
        await llm.ainvoke("hello")
        return pool_stats().event_loops

    assert asyncio.run(call_and_count()) == loops_before + 1
    assert pool_stats().event_loops == loops_before  # asyncio.run's shutdown closed that loop's pool


def test_close_pools_reaches_a_loop_running_in_another_thread(
    write_config: WriteConfig, server: ProviderServer
) -> None:
    write_config()
    llm = ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b")
    loops_before = pool_stats().event_loops
    assert "".join(stream_sync(llm, "hello"))  # runs on the background stream loop
    assert pool_stats().event_loops == loops_before + 1
    close_pools()
    assert pool_stats().event_loops == loops_before


async def test_aclose_pools_from_async_code_waits_for_other_loops(
    write_config: WriteConfig, server: ProviderServer
) -> None:
    write_config()
    llm = ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b")
    await llm.ainvoke("here")
    await asyncio.to_thread(lambda: "".join(stream_sync(llm, "there")))
    loops_before = pool_stats().event_loops
    await aclose_pools()
    assert pool_stats().event_loops == loops_before - 2


EXIT_SCRIPT = textwrap.dedent(
    """
    import atexit, asyncio, json, sys

    # Registered first, so it runs last: after modelforge closed its pools at exit.
    atexit.register(lambda: print("at exit:", __import__("modelforge.pooling").pooling.pool_stats()))

    from modelforge.registry import ModelForgeRegistry
    from modelforge.streaming import stream_sync

    for provider, model in json.loads(sys.argv[1]):
        llm = ModelForgeRegistry().get_llm(provider, model)
        llm.invoke("sync")
        asyncio.run(llm.ainvoke("async"))
        "".join(stream_sync(llm, "background loop"))
    print("answered")
    """
)


def test_a_process_exits_with_every_connection_closed(
    write_config: WriteConfig, server: ProviderServer, tmp_path: Path
) -> None:
    write_config()
    script = tmp_path / "use_models.py"
    script.write_text(EXIT_SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"}
    for case in CASES:
        env.update(case.env)
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::ResourceWarning",
            str(script),
            json.dumps([[c.provider, c.model] for c in CASES]),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "answered" in done.stdout
    for trouble in ("ResourceWarning", "nclosed", "Exception ignored", "Traceback"):
        assert trouble not in done.stderr, done.stderr[-2000:]
    assert "open_sync_pools=0, event_loops=0" in done.stdout
    assert server.client_disconnects == 0  # no answer was cut off: every connection was idle when closed


def test_closing_one_models_client_leaves_the_pool_open(server: ProviderServer) -> None:
    limits = PoolLimits()
    pooled = shared_http_clients("acme", server.openai_base_url, OPENAI_KEY, limits)
    other = shared_http_clients("acme", server.openai_base_url, OPENAI_KEY, limits)
    assert pooled.client.get(server.openai_base_url + "/models").status_code == 200
    pooled.client.close()  # as ``openai.OpenAI(http_client=...).close()`` would
    assert not other.client.is_closed
    assert other.client.get(server.openai_base_url + "/models").status_code == 200
    assert other.client.get(server.openai_base_url + "/models").status_code == 200
    assert server.connections_opened == 1


async def test_closing_from_two_tasks_at_once(write_config: WriteConfig, server: ProviderServer) -> None:
    write_config()
    llm = ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b")
    await llm.ainvoke("hello")
    await asyncio.gather(aclose_pools(), aclose_pools(), ModelForgeRegistry().aclose())
    assert (await llm.ainvoke("again")).text
    assert server.connections_opened == 2
