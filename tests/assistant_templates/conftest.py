"""A test server, a config pointing every provider at it, and a registry model for the OpenAI protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from langchain_core.language_models import BaseChatModel

from modelforge import config
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.providers.conftest import provider_config


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.GLOBAL_CONFIG_FILE.write_text(json.dumps(provider_config(running)))
        monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        yield running


@pytest.fixture
def llm(server: ProviderServer) -> BaseChatModel:
    return ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
