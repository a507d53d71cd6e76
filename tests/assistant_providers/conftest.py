"""A test server and the environment the issue's snippets expect: keys and base URLs from MODELFORGE_* vars.

``ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI)`` reads ``MODELFORGE_OPENAI_API_KEY`` and
``MODELFORGE_OPENAI_BASE_URL``, so the snippets run as written against the local server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelforge.testing import ProviderServer
from tests.conftest import ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY

# Transport retries that do not slow the tests down.
FAST_RETRY = {"max_attempts": 3, "initial_wait": 0.001, "max_wait": 0.001}


@pytest.fixture(scope="module")
def module_server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture
def server(module_server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> ProviderServer:
    module_server.reset()
    module_server.responder = None
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("MODELFORGE_GOOGLE_API_KEY", GOOGLE_KEY)
    monkeypatch.setenv("MODELFORGE_OPENAI_BASE_URL", module_server.openai_base_url)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_BASE_URL", module_server.anthropic_base_url)
    monkeypatch.setenv("MODELFORGE_OLLAMA_BASE_URL", module_server.ollama_base_url)
    monkeypatch.setenv("MODELFORGE_GOOGLE_BASE_URL", module_server.gemini_base_url)
    return module_server


CHAT_PATHS = {
    "openai": "/chat/completions",
    "anthropic": "/v1/messages",
    "ollama": "/api/chat",
    "gemini": "generateContent",
}


def chat_bodies(server: ProviderServer, protocol: str = "openai") -> list[dict[str, Any]]:
    """The JSON bodies of the chat requests that reached one protocol's chat endpoint, oldest first."""
    return [
        r.json
        for r in server.requests_for(protocol)  # type: ignore[arg-type]
        if CHAT_PATHS[protocol] in r.path and r.json is not None
    ]
