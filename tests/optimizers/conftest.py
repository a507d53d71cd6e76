"""Fixtures for the optimizer tests: a wire-protocol server, a config pointing every family at it (with an
``optimizations`` section per provider as the test asks), the keys in the environment, and a fake clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel

from modelforge import config
from modelforge.optimizers import close_context_caches
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.conftest import ANTHROPIC_KEY, GITHUB_TOKEN, GOOGLE_KEY, OPENAI_KEY
from tests.providers.conftest import provider_config

ENV = {
    "MODELFORGE_OPENAI_API_KEY": OPENAI_KEY,
    "MODELFORGE_ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    "MODELFORGE_GOOGLE_API_KEY": GOOGLE_KEY,
    "MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN": GITHUB_TOKEN,
}
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-6",
    "ollama": "qwen3:1.7b",
    "google": "gemini-2.5-flash",
    "github_copilot": "gpt-4o",
    "local": "smollm2",
}

ConfigWriter = Callable[..., dict[str, Any]]
LlmFactory = Callable[..., BaseChatModel]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _delete_gemini_caches(server: ProviderServer) -> Iterator[None]:
    """Delete the cached contents a test left while its server still answers (not at interpreter exit)."""
    yield
    close_context_caches()


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def write_config(server: ProviderServer) -> ConfigWriter:
    """``write_config(openai={"seed": 7}, ...)``: the config file, with those ``optimizations`` sections
    (``models={"anthropic": {...}}`` replaces a provider's models)."""

    def write(models: dict[str, dict[str, Any]] | None = None, **sections: Any) -> dict[str, Any]:
        data = provider_config(server)
        for provider, section in sections.items():
            data["providers"][provider]["optimizations"] = section
        for provider, entries in (models or {}).items():
            data["providers"][provider]["models"] = entries
        config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
        return data

    return write


@pytest.fixture
def make_llm(write_config: ConfigWriter) -> LlmFactory:
    """``make_llm("anthropic", optimizations={...})``: an optimized model of that provider."""

    def make(
        provider: str,
        *,
        optimizations: dict[str, Any] | None = None,
        enable: bool = True,
        model: str | None = None,
        models: dict[str, dict[str, Any]] | None = None,
    ) -> BaseChatModel:
        sections = {provider: optimizations} if optimizations is not None else {}
        write_config(models={provider: models} if models else None, **sections)
        return ModelForgeRegistry(enable_optimizations=enable).get_llm(provider, model or MODELS[provider])

    return make


@pytest.fixture
def clock() -> Clock:
    return Clock()
