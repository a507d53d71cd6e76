"""A fresh wire-protocol server per test and a config that points every provider family at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelforge import config
from modelforge.testing import ProviderServer
from tests.conftest import ANTHROPIC_KEY, GITHUB_TOKEN, GOOGLE_KEY, OPENAI_KEY


@dataclass(frozen=True)
class FamilyCase:
    """How one provider family is configured against the test server."""

    provider: str
    model: str
    env: dict[str, str] = field(repr=False)  # holds test secrets: keep them out of failure reports
    # Whether the protocol carries response headers into the SDK error (Ollama's client drops them).
    errors_carry_headers: bool = True

    def __str__(self) -> str:
        return self.provider


CASES = [
    FamilyCase("openai", "gpt-4o-mini", {"MODELFORGE_OPENAI_API_KEY": OPENAI_KEY}),
    # The same provider's Responses API (``api: responses``), as langchain-openai sends it.
    FamilyCase("openai_responses", "gpt-5.5", {"MODELFORGE_OPENAI_RESPONSES_API_KEY": OPENAI_KEY}),
    FamilyCase("anthropic", "claude-sonnet-4-6", {"MODELFORGE_ANTHROPIC_API_KEY": ANTHROPIC_KEY}),
    FamilyCase("ollama", "qwen3:1.7b", {}, errors_carry_headers=False),
    FamilyCase("google", "gemini-2.5-flash", {"MODELFORGE_GOOGLE_API_KEY": GOOGLE_KEY}),
    FamilyCase("github_copilot", "gpt-4o", {"MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN": GITHUB_TOKEN}),
    FamilyCase("local", "smollm2", {}),
]


def openai_section(server: ProviderServer, **settings: Any) -> dict[str, Any]:
    """An ``openai_compatible`` provider section against ``server`` (key from the env), with ``settings``
    (``models``, ``retry``...) added or replaced."""
    return {
        "llm_type": "openai_compatible",
        "base_url": server.openai_base_url,
        "auth_strategy": "api_key",
        "models": {"gpt-4o-mini": {}},
        **settings,
    }


def provider_config(server: ProviderServer) -> dict[str, Any]:
    """A config with all six families (and OpenAI's Responses API), each against ``server``, with SDK
    retries off."""
    no_retry = {"max_attempts": 1}
    return {
        "providers": {
            "openai": {
                "llm_type": "openai_compatible",
                "base_url": server.openai_base_url,
                "auth_strategy": "api_key",
                "models": {"gpt-4o-mini": {"api_model_name": "gpt-4o-mini"}},
                "retry": no_retry,
            },
            "openai_responses": {
                "llm_type": "openai_compatible",
                "base_url": server.openai_base_url,
                "auth_strategy": "api_key",
                "models": {"gpt-5.5": {"api": "responses"}},
                "retry": no_retry,
            },
            "anthropic": {
                "llm_type": "anthropic",
                "base_url": server.anthropic_base_url,
                "auth_strategy": "api_key",
                "models": {"claude-sonnet-4-6": {}},
                "retry": no_retry,
            },
            "ollama": {
                "llm_type": "ollama",
                "base_url": server.ollama_base_url,
                "models": {"qwen3:1.7b": {}},
                "retry": no_retry,
            },
            "google": {
                "llm_type": "google_genai",
                "base_url": server.gemini_base_url,
                "auth_strategy": "api_key",
                "models": {"gemini-2.5-flash": {}},
                "retry": no_retry,
            },
            "github_copilot": {
                "llm_type": "github_copilot",
                "base_url": server.copilot_base_url,
                "auth_strategy": "device_flow",
                "auth_details": {
                    "client_id": "01ab8ac9400c4e429b23",
                    "device_code_url": server.github_base_url + "/login/device/code",
                    "token_url": server.github_base_url + "/login/oauth/access_token",
                    "scope": "read:user",
                    "token_exchange_url": server.github_base_url + "/copilot_internal/v2/token",
                },
                "models": {"gpt-4o": {}},
                "retry": no_retry,
            },
            "local": {
                "llm_type": "local",
                "base_url": server.openai_base_url,
                "models": {"smollm2": {}},
                "retry": no_retry,
            },
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture
def configured(server: ProviderServer) -> dict[str, Any]:
    data = provider_config(server)
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    return data


@pytest.fixture(params=CASES, ids=str)
def case(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, configured: dict[str, Any]
) -> FamilyCase:
    chosen: FamilyCase = request.param
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    return chosen
