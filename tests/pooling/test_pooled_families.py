"""Every provider family sends through one pooled connection per provider, base URL and key.

Two models from two ``ModelForgeRegistry().get_llm()`` calls, a hundred sequential calls: one TCP connection
to the test server, sync and async alike (async: one per event loop). The real SDKs over real HTTP.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from modelforge import config
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.conftest import OPENAI_KEY
from tests.pooling.conftest import WriteConfig, chat_connections
from tests.providers.conftest import FamilyCase

CALLS = 100


def two_models(case: FamilyCase):  # type: ignore[no-untyped-def]
    return ModelForgeRegistry().get_llm(case.provider, case.model), ModelForgeRegistry().get_llm(
        case.provider, case.model
    )


def assert_one_connection(case: FamilyCase, server: ProviderServer) -> None:
    assert chat_connections(server) == 1
    if case.provider != "github_copilot":  # Copilot also opens one for its token exchange (auth's client)
        assert server.connections_opened == 1


def test_hundred_sync_calls_from_two_models_use_one_connection(
    case: FamilyCase, server: ProviderServer
) -> None:
    first, second = two_models(case)
    for i in range(CALLS):
        answer = (first if i % 2 else second).invoke(f"question {i}")
        assert answer.text
    assert len([r for r in server.requests if r.protocol != "github"]) == CALLS
    assert_one_connection(case, server)


async def test_hundred_async_calls_from_two_models_use_one_connection(
    case: FamilyCase, server: ProviderServer
) -> None:
    first, second = two_models(case)
    for i in range(CALLS):
        answer = await (first if i % 2 else second).ainvoke(f"question {i}")
        assert answer.text
    assert_one_connection(case, server)


async def test_async_streams_and_calls_share_the_connection(case: FamilyCase, server: ProviderServer) -> None:
    first, second = two_models(case)
    await first.ainvoke("one")
    assert "".join([chunk.text async for chunk in second.astream("two")])
    await first.ainvoke("three")
    assert_one_connection(case, server)


# The OpenAI SDK's sync stream closes its response at ``data: [DONE]``, before reading the end of the
# chunked body, so httpcore drops that connection (pooled or not); its async stream drains and reuses it.
OPENAI_SYNC_STREAM_DROPS = {"openai", "github_copilot", "local"}


def test_sync_streams_and_calls_share_the_connection(case: FamilyCase, server: ProviderServer) -> None:
    first, second = two_models(case)
    first.invoke("one")
    assert "".join(chunk.text for chunk in second.stream("two"))
    first.invoke("three")
    if case.provider not in OPENAI_SYNC_STREAM_DROPS:
        assert_one_connection(case, server)
        return
    # What a user of these families sees: the stream costs its connection, the calls around it share one.
    assert chat_connections(server) == 2
    assert server.client_disconnects == 0  # the stream was read to its end before the SDK closed it


def test_the_same_model_answers_from_two_event_loops(case: FamilyCase, server: ProviderServer) -> None:
    # langchain-openai's own cached async client fails here with "Event loop is closed".
    llm, _ = two_models(case)
    first = asyncio.run(llm.ainvoke("first loop"))
    second = asyncio.run(llm.ainvoke("second loop"))
    assert first.text and second.text
    assert chat_connections(server) == 2  # one per event loop: a connection never outlives its loop


def test_providers_with_different_keys_do_not_share_a_pool(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, server: ProviderServer
) -> None:
    data = write_config()
    data["providers"]["openai_team"] = dict(data["providers"]["openai"])
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_OPENAI_TEAM_API_KEY", OPENAI_KEY + "team")
    for provider in ("openai", "openai_team", "openai"):
        ModelForgeRegistry().get_llm(provider, "gpt-4o-mini").invoke("hello")
    assert server.connections_opened == 2
    # Each request still carries its own provider's key: the pool shares connections, never credentials.
    team_key = [r.headers.get("authorization") == f"Bearer {OPENAI_KEY}team" for r in server.requests]
    assert team_key == [False, True, False]
