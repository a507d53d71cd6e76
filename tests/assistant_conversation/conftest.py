"""A test server, a config pointing at it, and the OpenAI-compatible chat model the conversations use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, convert_to_messages

from modelforge import config
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import provider_config


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture
def configured(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    data = provider_config(server)
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    return data


@pytest.fixture
def llm(configured: dict[str, Any]) -> BaseChatModel:
    return ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")


def chat_requests(server: ProviderServer) -> list[dict[str, Any]]:
    """The JSON bodies of the chat requests that reached the server's OpenAI endpoint."""
    return [r.json for r in server.requests_for("openai") if r.path.endswith("/chat/completions")]


def received_messages(body: dict[str, Any]) -> list[BaseMessage]:
    """The messages of one OpenAI chat request, back as LangChain messages."""
    return convert_to_messages(body["messages"])
