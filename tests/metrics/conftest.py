"""A wire-protocol server and a config pointing an ``openai`` provider (gpt-4o-mini, priced in the
catalogue) at it; each test's stats file is under its own HOME."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelforge import config
from modelforge.testing import ProviderServer
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import openai_section

# Retries that wait a few milliseconds, so a retried call is quick.
QUICK_RETRY = {"max_attempts": 3, "initial_wait": 0.01, "max_wait": 0.02}

WriteConfig = Callable[..., dict[str, Any]]


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture
def write_config(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> WriteConfig:
    """Write a config whose ``openai`` provider has ``settings`` (retry, cache, rate_limit...) over a quick
    retry; ``top`` goes to the file's top level (``settings``)."""
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)

    def write(top: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
        section = openai_section(server, **{"retry": QUICK_RETRY, **settings})
        data = {
            "providers": {"openai": section},
            "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
            **(top or {}),
        }
        config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
        return data

    return write
