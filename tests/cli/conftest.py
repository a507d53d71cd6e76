"""Fixtures for the CLI tests: a click runner, config helpers, and one provider test server per module.

The suite-wide ``isolated_home`` fixture (tests/conftest.py) already gives every test its own HOME and
working directory, no ``MODELFORGE_*`` variables and an unreachable models.dev URL. Here the credential
store is forced to the owner-only file, so no test touches a real keyring.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modelforge.cli import cli
from modelforge.testing import ProviderServer

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def file_credential_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "file")


@pytest.fixture
def invoke() -> Invoke:
    """Run ``modelforge ARGS...`` in-process; ``input`` feeds stdin."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def config_file(isolated_home: Path) -> Path:
    """Where the global config lives for this test."""
    return isolated_home / ".config" / "model-forge" / "config.json"


@pytest.fixture
def credentials_file(isolated_home: Path) -> Path:
    return isolated_home / ".config" / "model-forge" / "credentials.json"


@pytest.fixture
def write_config(config_file: Path) -> Callable[[dict[str, Any]], Path]:
    def write(data: dict[str, Any]) -> Path:
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(data, indent=4), encoding="utf-8")
        return config_file

    return write


@pytest.fixture
def read_config(config_file: Path) -> Callable[[], dict[str, Any]]:
    def read() -> dict[str, Any]:
        return dict(json.loads(config_file.read_text(encoding="utf-8")))

    return read


@pytest.fixture(scope="module")
def module_server() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture
def server(module_server: ProviderServer) -> ProviderServer:
    module_server.reset()
    return module_server


def server_config(base_url: str, *, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A config whose current model is served by ``base_url`` (OpenAI protocol, no auth, no retries)."""
    return {
        "providers": {
            "testsrv": {
                "llm_type": "openai_compatible",
                "base_url": base_url,
                "retry": {"max_attempts": 1},
                "models": {"mini": {"api_model_name": "gpt-4o-mini"}},
            }
        },
        "current_model": {"provider": "testsrv", "model": "mini"},
        "settings": settings or {},
    }


def assert_clean_failure(result: Result, *fragments: str) -> None:
    """A non-zero exit with one readable message on stderr naming ``fragments``, and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert "Error" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(autouse=True)
def _forget_cli_logging() -> Iterator[None]:
    """`modelforge test --verbose` adds a log handler (an application may); later tests must not see it."""
    import logging

    logger = logging.getLogger("modelforge")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
