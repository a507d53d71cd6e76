"""Fixtures for the tool-loop tests: the provider fixtures (``server``, ``configured``, ``case``) and helpers.

``openai_llm`` is one family (OpenAI) against the test server, for tests that need a model but not all six;
``fallback_llm`` is OpenAI falling back to Anthropic, for streams that restart on the fallback model.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelforge.policies.fallback import FallbackChatModel
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.providers.conftest import case, configured, server

__all__ = ["case", "configured", "fallback_llm", "openai_llm", "server"]


@pytest.fixture
def openai_llm(server: ProviderServer, configured: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    return ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")


@pytest.fixture
def fallback_llm(openai_llm: Any, monkeypatch: pytest.MonkeyPatch) -> FallbackChatModel:
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    anthropic = ModelForgeRegistry().get_llm("anthropic", "claude-sonnet-4-6")
    return FallbackChatModel(models=[openai_llm, anthropic], use_circuit_breakers=False)
