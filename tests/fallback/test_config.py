"""Fallback chains from a provider's ``fallbacks`` list: built, checked, and never nested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from modelforge.exceptions import ConfigurationValidationError
from modelforge.managed import ManagedChatModel
from modelforge.policies.circuit import CircuitBreakerRegistry
from modelforge.policies.fallback import FallbackChatModel
from modelforge.policies.fallback_config import (
    FallbackTarget,
    build_fallback_chain,
    no_fallbacks,
    parse_fallbacks,
)
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.fallback.conftest import fallback_config, protocols, write_config

pytestmark = pytest.mark.usefixtures("api_keys")


def registry_with(server: ProviderServer, tmp_path: Path, fallbacks: Any, **extra: Any) -> ModelForgeRegistry:
    data = fallback_config(server, fallbacks=fallbacks)
    for provider, settings in extra.items():
        data["providers"][provider].update(settings)
    return ModelForgeRegistry(config_path=write_config(tmp_path / "config.json", data))


async def test_chain_from_the_config(
    registry: ModelForgeRegistry, breakers: CircuitBreakerRegistry, server: ProviderServer
) -> None:
    llm = build_fallback_chain(registry, "openai", "gpt-4o-mini", circuit_breakers=breakers)
    assert isinstance(llm, FallbackChatModel)
    assert llm.labels == ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-6", "ollama/qwen3:1.7b"]
    assert all(isinstance(model, ManagedChatModel) for model in llm.models)
    server.script(Fault(status=503), Fault(status=529), Reply(text="from ollama"))
    assert (await llm.ainvoke("hi")).content == "from ollama"
    assert protocols(server) == ["openai", "anthropic", "ollama"]


def test_no_fallbacks_gives_the_model_itself(registry: ModelForgeRegistry) -> None:
    llm = build_fallback_chain(registry, "anthropic", "claude-sonnet-4-6")
    assert isinstance(llm, ManagedChatModel)
    with no_fallbacks():
        primary = registry.get_llm("openai", "gpt-4o-mini")
        assert build_fallback_chain(registry, "openai", "gpt-4o-mini", primary=primary) is primary
    assert isinstance(primary, ManagedChatModel)


def test_primary_and_builder_are_used(registry: ModelForgeRegistry) -> None:
    with no_fallbacks():
        primary = registry.get_llm("openai", "gpt-4o-mini")
    built: list[tuple[str, str]] = []

    def build(provider: str, alias: str) -> BaseChatModel:
        built.append((provider, alias))
        return registry.get_llm(provider, alias)

    llm = build_fallback_chain(
        registry, "openai", "gpt-4o-mini", primary=primary, build=build, restart_streams=False
    )
    assert isinstance(llm, FallbackChatModel)
    assert llm.models[0] is primary and not llm.restart_streams
    assert built == [("anthropic", "claude-sonnet-4-6"), ("ollama", "qwen3:1.7b")]


def test_a_get_llm_that_chains_itself_does_not_nest_or_loop(server: ProviderServer, tmp_path: Path) -> None:
    # openai -> anthropic -> openai: a cycle if the fallbacks' own lists were followed.
    registry = registry_with(server, tmp_path, ["anthropic"], anthropic={"fallbacks": ["openai"]})

    def get_llm(provider: str, alias: str) -> BaseChatModel:
        """What get_llm does once it chains: build the model alone, then ask for its chain."""
        with no_fallbacks():
            alone = registry.get_llm(provider, alias)
        return build_fallback_chain(registry, provider, alias, primary=alone, build=get_llm)

    llm = get_llm("openai", "gpt-4o-mini")
    assert isinstance(llm, FallbackChatModel)
    assert [type(model).sdk_class() for model in llm.models] == [ChatOpenAI, ChatAnthropic]  # type: ignore[attr-defined]
    other = get_llm("anthropic", "claude-sonnet-4-6")  # its own list applies when it is the first model
    assert isinstance(other, FallbackChatModel)
    assert other.labels == ["anthropic/claude-sonnet-4-6", "openai/gpt-4o-mini"]


PROVIDERS = {
    "openai": ["gpt-4o-mini"],
    "anthropic": ["claude-sonnet-4-6"],
    "ollama": ["qwen3:1.7b", "llama3.2"],
}


def test_entries_are_parsed() -> None:
    targets = parse_fallbacks(
        "openai", "gpt-4o-mini", ["anthropic", {"provider": "ollama", "model": "llama3.2"}], PROVIDERS
    )
    assert targets == [FallbackTarget("anthropic", "claude-sonnet-4-6"), FallbackTarget("ollama", "llama3.2")]
    assert parse_fallbacks("openai", "gpt-4o-mini", None, PROVIDERS) == []
    # A provider with several models: the current model when it is on that provider.
    assert parse_fallbacks(
        "openai", "gpt-4o-mini", ["ollama"], PROVIDERS, current=("ollama", "llama3.2")
    ) == [FallbackTarget("ollama", "llama3.2")]


@pytest.mark.parametrize(
    ("entries", "key", "says"),
    [
        (["mistral"], "providers.openai.fallbacks[0]", "not configured"),
        (
            ["anthropic", {"provider": "ollama", "model": "gpt-5"}],
            "providers.openai.fallbacks[1].model",
            "llama3.2",
        ),
        ([{"provider": "ollama"}], "providers.openai.fallbacks[0]", "say which"),
        ([{"provider": "anthropic", "weight": 2}], "providers.openai.fallbacks[0]", "weight"),
        ([{"model": "x"}], "providers.openai.fallbacks[0].provider", "configured provider"),
        ([42], "providers.openai.fallbacks[0]", "provider name"),
        (["openai"], "providers.openai.fallbacks[0]", "the model itself"),
        (["anthropic", "anthropic"], "providers.openai.fallbacks[1]", "earlier entry"),
        ("anthropic", "providers.openai.fallbacks", "list"),
    ],
)
def test_mistakes_name_the_key_and_what_is_allowed(entries: Any, key: str, says: str) -> None:
    with pytest.raises(ConfigurationValidationError) as info:
        parse_fallbacks("openai", "gpt-4o-mini", entries, PROVIDERS, source="/etc/mf.json")
    err = info.value
    assert err.details["key"] == key
    assert says in str(err) and key in str(err) and "/etc/mf.json" in str(err)


def test_a_mistake_in_the_file_names_the_file(server: ProviderServer, tmp_path: Path) -> None:
    registry = registry_with(server, tmp_path, ["nope"])
    with pytest.raises(ConfigurationValidationError) as info:
        build_fallback_chain(registry, "openai", "gpt-4o-mini")
    assert str(tmp_path / "config.json") in str(info.value)
    assert "providers.openai.fallbacks[0]" in str(info.value)
