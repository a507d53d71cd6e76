"""``modelforge config export-legacy``: the way back to model-forge-llm 2.3.0, which reads keys only from
``auth_data`` in the config file. A real 2.3.0 reads the result in tests/compat/test_compat_against_2_3_0.py.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke, assert_clean_failure

OPENAI_KEY = "sk-" + "e" * 48


def test_export_legacy_copies_stored_keys_into_the_config_file(
    invoke: Invoke, config_file: Path, read_config: Callable[[], dict[str, Any]]
) -> None:
    invoke("config", "add", "--provider", "openai", "--model", "mini", "--api-key", OPENAI_KEY)
    invoke("config", "add", "--provider", "ollama", "--model", "llama")
    assert "auth_data" not in config_file.read_text()

    result = invoke("config", "export-legacy")

    assert result.exit_code == 0, result.output
    data = read_config()
    assert data["providers"]["openai"]["auth_data"] == {"api_key": OPENAI_KEY}  # where 2.3.0 reads it
    assert "auth_data" not in data["providers"]["ollama"]
    assert "'openai'" in result.stdout and "No stored credentials for 'ollama'" in result.stdout
    assert "config migrate" in result.stderr  # the way back
    assert OPENAI_KEY not in result.output
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600  # it holds a secret now
    assert invoke("config", "export-legacy").stdout.count("already in") == 1  # a second run changes nothing

    # ModelForge still answers from the store, and `config migrate` takes the copy out again.
    assert invoke("config", "migrate").exit_code == 0
    assert "auth_data" not in config_file.read_text()
    assert invoke("auth", "status", "--provider", "openai").stdout.count("ok") == 1


def test_export_legacy_of_one_provider_and_of_the_project_file(
    invoke: Invoke, read_config: Callable[[], dict[str, Any]]
) -> None:
    invoke("config", "add", "--provider", "openai", "--model", "mini", "--api-key", OPENAI_KEY)
    invoke("config", "add", "--provider", "openai", "--model", "mini", "--local")
    project_file = Path.cwd() / ".model-forge" / "config.json"

    result = invoke("config", "export-legacy", "--local", "--provider", "openai")

    assert result.exit_code == 0, result.output
    # The project file gets the credentials this project used: the global ones, it has none of its own.
    local = json.loads(project_file.read_text(encoding="utf-8"))
    assert local["providers"]["openai"]["auth_data"] == {"api_key": OPENAI_KEY}
    assert "auth_data" not in read_config()["providers"]["openai"]


def test_export_legacy_failures_name_the_problem(invoke: Invoke) -> None:
    assert_clean_failure(invoke("config", "export-legacy"), "no global config file", "config add")
    invoke("config", "add", "--provider", "ollama", "--model", "llama")
    assert_clean_failure(
        invoke("config", "export-legacy", "--provider", "anthropic"), "anthropic", "CONFIG_NOT_FOUND"
    )
