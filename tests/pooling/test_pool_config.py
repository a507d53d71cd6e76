"""The ``connection_pool`` section: validation, and limits that reach the real pools."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from modelforge import config
from modelforge.pooling import PoolLimits, validate_section
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.conftest import OPENAI_KEY
from tests.pooling.conftest import WriteConfig, chat_connections
from tests.providers.conftest import FamilyCase


def test_defaults_and_values_from_config() -> None:
    assert PoolLimits.from_config(None) == PoolLimits(100, 20, 30.0, True)
    limits = PoolLimits.from_config(
        {"max_connections": 10, "max_keepalive_connections": 5, "keepalive_expiry": 30}
    )
    assert (limits.max_connections, limits.max_keepalive_connections, limits.keepalive_expiry) == (10, 5, 30)
    assert PoolLimits.from_config({"enabled": False}).enabled is False


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"max_conections": 5}, "connection_pool.max_conections"),
        ({"max_connections": 0}, "connection_pool.max_connections"),
        ({"max_connections": True}, "connection_pool.max_connections"),
        ({"max_connections": "10"}, "connection_pool.max_connections"),
        ({"max_keepalive_connections": -1}, "connection_pool.max_keepalive_connections"),
        ({"keepalive_expiry": -1}, "connection_pool.keepalive_expiry"),
        ({"keepalive_expiry": float("nan")}, "connection_pool.keepalive_expiry"),
        ({"enabled": "no"}, "connection_pool.enabled"),
    ],
)
def test_bad_sections_name_the_key(section: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        validate_section(section)
    with pytest.raises(ValueError, match=re.escape(named)):
        PoolLimits.from_config(section)


def test_unknown_key_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError) as caught:
        validate_section({"size": 3})
    assert "max_connections, max_keepalive_connections, keepalive_expiry, enabled" in str(caught.value)


async def test_max_connections_one_serialises_concurrent_calls(
    case: FamilyCase, server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config({"max_connections": 1})
    server.script(Reply(text="first", latency=0.3), Reply(text="second", latency=0.3))
    first = ModelForgeRegistry().get_llm(case.provider, case.model)
    second = ModelForgeRegistry().get_llm(case.provider, case.model)
    answers = await asyncio.gather(first.ainvoke("a"), second.ainvoke("b"))
    assert sorted(answer.text for answer in answers) == ["first", "second"]
    assert chat_connections(server) == 1


async def test_without_that_limit_concurrent_calls_open_two(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config({"max_connections": 10})
    server.script(Reply(text="first", latency=0.3), Reply(text="second", latency=0.3))
    first = ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b")
    second = ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b")
    await asyncio.gather(first.ainvoke("a"), second.ainvoke("b"))
    assert server.connections_opened == 2


@pytest.mark.parametrize("section", [{"keepalive_expiry": 0}, {"max_keepalive_connections": 0}])
def test_keepalive_settings_reach_the_pool(
    case: FamilyCase, server: ProviderServer, write_config: WriteConfig, section: dict[str, Any]
) -> None:
    write_config(section)
    llm = ModelForgeRegistry().get_llm(case.provider, case.model)
    llm.invoke("one")
    llm.invoke("two")
    assert chat_connections(server) == 2  # nothing kept alive: each call opens its own connection


def test_disabled_pooling_leaves_the_sdk_its_own_clients(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config({"enabled": False})
    unpooled = [ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b") for _ in range(2)]
    for llm in unpooled:
        llm.invoke("hello")
    assert server.connections_opened == 2  # each ChatOllama has its own httpx client when not pooled
    for llm in unpooled:
        # ChatOllama never closes the client it made itself (private ``_client``): close it here, or its
        # socket is left to the garbage collector (a ResourceWarning in a later test).
        llm._client.close()  # type: ignore[attr-defined]
    write_config({"max_connections": 5})
    ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b").invoke("three")
    ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b").invoke("four")
    assert server.connections_opened == 3


def _point_at_unreachable_host(data: dict[str, Any], provider: str, url: str) -> None:
    data["providers"][provider]["base_url"] = url
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))


def test_openai_proxy_reaches_the_pool(
    write_config: WriteConfig, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server doubles as the proxy: it answers absolute-form request targets too.
    _point_at_unreachable_host(write_config(), "openai", "http://api.openai.invalid/v1")
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_PROXY", server.openai_base_url.removesuffix("/v1"))
    for _ in range(2):
        assert ModelForgeRegistry().get_llm("openai", "gpt-4o-mini").invoke("through the proxy").text
    assert [r.target for r in server.requests] == ["http://api.openai.invalid/v1/chat/completions"] * 2
    assert server.connections_opened == 1


def test_environment_proxy_reaches_the_pool(
    write_config: WriteConfig, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at_unreachable_host(write_config(), "ollama", "http://ollama.invalid:11434")
    monkeypatch.setenv("HTTP_PROXY", server.ollama_base_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert ModelForgeRegistry().get_llm("ollama", "qwen3:1.7b").invoke("through the proxy").text
    assert server.requests[-1].target == "http://ollama.invalid:11434/api/chat"
