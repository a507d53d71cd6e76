"""A fresh wire-protocol server per test, every provider family configured against it, pools closed after."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelforge import config
from modelforge.pooling import close_pools
from modelforge.testing import ProviderServer
from tests.providers.conftest import CASES, FamilyCase, provider_config

WriteConfig = Callable[..., dict[str, Any]]


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running
    close_pools()  # connections to this server are of no use to the next test


@pytest.fixture
def write_config(server: ProviderServer) -> WriteConfig:
    """Write the six-family config; ``connection_pool`` (when given) is set on every provider."""

    def write(connection_pool: dict[str, Any] | None = None) -> dict[str, Any]:
        data = provider_config(server)
        if connection_pool is not None:
            for provider in data["providers"].values():
                provider["connection_pool"] = dict(connection_pool)
        config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
        return data

    return write


@pytest.fixture(params=CASES, ids=str)
def case(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, write_config: WriteConfig
) -> FamilyCase:
    chosen: FamilyCase = request.param
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    write_config()
    return chosen


def chat_connections(server: ProviderServer) -> int:
    """Distinct TCP connections that carried chat requests (Copilot's token exchange left out)."""
    return len({r.connection_id for r in server.requests if r.protocol != "github"})
