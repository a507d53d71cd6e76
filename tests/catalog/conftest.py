"""A provider test server per module, a URL that refuses connections, and a small api.json document."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from modelforge.testing import ProviderServer


@pytest.fixture(scope="module")
def module_server() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture
def server(module_server: ProviderServer) -> Iterator[ProviderServer]:
    """The module's server with a fresh script, records and models.dev catalogue for each test."""
    module_server.reset()
    module_server.modelsdev_catalog = api_document()
    yield module_server


@pytest.fixture
def refused_url() -> str:
    """An api.json URL on 127.0.0.1 where nothing listens (the port was just freed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api.json"


def model_entry(
    name: str, *, cost: tuple[float, float] | None = (1.0, 2.0), context: int = 100_000, **extra: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": name,
        "name": name.upper(),
        "tool_call": True,
        "limit": {"context": context, "output": 8_000},
        "modalities": {"input": ["text", "image"], "output": ["text"]},
    }
    if cost is not None:
        entry["cost"] = {"input": cost[0], "output": cost[1]}
    entry.update(extra)
    return entry


def api_document() -> dict[str, Any]:
    """An api.json-shaped document whose models are not in the bundled snapshot (so sources can be told)."""
    return {
        "openai": {
            "id": "openai",
            "name": "OpenAI",
            "env": ["OPENAI_API_KEY"],
            "models": {
                "gpt-4o": model_entry("gpt-4o", cost=(2.5, 10.0)),
                "gpt-test-fresh": model_entry("gpt-test-fresh", cost=(0.5, 1.5), reasoning=True),
            },
        },
        "acme": {
            "id": "acme",
            "name": "Acme AI",
            "env": ["ACME_API_KEY"],
            "api": "https://api.acme.test/v1",
            "models": {"acme-1": model_entry("acme-1", cost=(0.1, 0.2))},
        },
    }
