"""One wire-protocol server per module, a config pointing three providers at it, and event recorders.

``openai`` retries (tiny waits, so retry tests stay fast); ``primary`` is the same OpenAI-compatible model
without retries and with ``anthropic`` as its configured fallback; ``anthropic`` answers when it takes over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelforge.cache import close_caches
from modelforge.observability import ProviderEvent
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.providers.conftest import openai_section

FAST_RETRY = {"max_attempts": 3, "initial_wait": 0.001, "max_wait": 0.01}


def observability_config(server: ProviderServer) -> dict[str, Any]:
    return {
        "providers": {
            "openai": openai_section(server, retry=FAST_RETRY),
            "primary": openai_section(server, retry={"max_attempts": 1}, fallbacks=["anthropic"]),
            "anthropic": {
                "llm_type": "anthropic",
                "base_url": server.anthropic_base_url,
                "auth_strategy": "api_key",
                "models": {"claude-sonnet-4-6": {}},
                "retry": {"max_attempts": 1},
            },
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    """One server per module; reset before each test."""
    with ProviderServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    if "server" in request.fixturenames:
        server: ProviderServer = request.getfixturevalue("server")
        server.reset()
        server.default_reply = Reply()
    yield
    close_caches()  # no cached answer leaks into the next test


@pytest.fixture
def registry(server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelForgeRegistry:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_PRIMARY_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(observability_config(server)))
    return ModelForgeRegistry(config_path=path)


class Recorder:
    """A callback that keeps every event it gets."""

    def __init__(self) -> None:
        self.events: list[ProviderEvent] = []

    def __call__(self, event: ProviderEvent) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def only(self, kind: str) -> ProviderEvent:
        found = [event for event in self.events if event.kind == kind]
        assert len(found) == 1, self.kinds
        return found[0]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
