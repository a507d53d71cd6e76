"""Fixtures for the tool-loop tests: the provider fixtures (``server``, ``configured``, ``case``) and helpers.

``openai_llm`` is one family (OpenAI) against the test server, for tests that need a model but not all six.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import case, configured, server

__all__ = ["case", "configured", "openai_llm", "server"]


@pytest.fixture
def openai_llm(server: ProviderServer, configured: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    return ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
