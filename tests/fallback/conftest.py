"""Two or three providers of different families against one wire-protocol server, and a fake clock.

The server answers every protocol from one FIFO script, so ``server.script(Fault(status=503), Reply(...))``
makes the first model's request fail and the next model's succeed; ``server.requests`` tells which protocol
(so which provider) each request went to. Retries are off (``max_attempts: 1``) so each model makes one
request, and every test gets its own circuit breakers on a fake clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel

from modelforge.policies.circuit import CircuitBreakerRegistry, default_breakers
from modelforge.policies.fallback import FallbackChatModel
from modelforge.policies.fallback_config import no_fallbacks
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

NO_RETRY = {"max_attempts": 1}


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fallback_config(server: ProviderServer, *, fallbacks: list[Any] | None = None) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {
                "llm_type": "openai_compatible",
                "base_url": server.openai_base_url,
                "auth_strategy": "api_key",
                "models": {"gpt-4o-mini": {"timeout": 0.3}},
                "retry": NO_RETRY,
                "fallbacks": fallbacks
                if fallbacks is not None
                else ["anthropic", {"provider": "ollama", "model": "qwen3:1.7b"}],
            },
            "anthropic": {
                "llm_type": "anthropic",
                "base_url": server.anthropic_base_url,
                "auth_strategy": "api_key",
                "models": {"claude-sonnet-4-6": {"timeout": 2.0}},
                "retry": NO_RETRY,
            },
            "ollama": {
                "llm_type": "ollama",
                "base_url": server.ollama_base_url,
                "models": {"qwen3:1.7b": {}, "llama3.2": {}},
                "retry": NO_RETRY,
            },
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    """One server per module (starting one per test costs more than the tests); reset before each test."""
    with ProviderServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_server(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        server: ProviderServer = request.getfixturevalue("server")
        server.reset()
        server.default_reply = Reply()


@pytest.fixture(scope="module")
def keys() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
        patch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        yield


@pytest.fixture
def api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys, for a test that builds models itself (the suite clears them before every test)."""
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)


@pytest.fixture(scope="module")
def registry(
    server: ProviderServer, keys: None, tmp_path_factory: pytest.TempPathFactory
) -> ModelForgeRegistry:
    path = write_config(tmp_path_factory.mktemp("fallback") / "config.json", fallback_config(server))
    return ModelForgeRegistry(config_path=path)


@pytest.fixture(scope="module")
def models(registry: ModelForgeRegistry) -> dict[str, BaseChatModel]:
    """The three providers' models, built once per module (with the keys still in the environment)."""
    with no_fallbacks():  # each model alone, even once get_llm builds the configured chain
        return {
            "openai": registry.get_llm("openai", "gpt-4o-mini"),
            "anthropic": registry.get_llm("anthropic", "claude-sonnet-4-6"),
            "ollama": registry.get_llm("ollama", "qwen3:1.7b"),
        }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breakers(clock: FakeClock) -> CircuitBreakerRegistry:
    return CircuitBreakerRegistry(failure_threshold=3, cooldown=30.0, clock=clock)


@pytest.fixture(autouse=True)
def _closed_process_breakers() -> Iterator[None]:
    default_breakers().reset()
    yield
    default_breakers().reset()


@pytest.fixture
def chain(models: dict[str, BaseChatModel], breakers: CircuitBreakerRegistry) -> FallbackChatModel:
    """openai -> anthropic, built in code, with this test's breakers."""
    return FallbackChatModel(models=[models["openai"], models["anthropic"]], circuit_breakers=breakers)


def protocols(server: ProviderServer) -> list[str]:
    """The protocol of each chat request the server received, in order."""
    return [request.protocol for request in server.requests if request.method == "POST"]
