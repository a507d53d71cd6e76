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
    assert ".gitignore" in result.stderr  # a project file may be committed
    local = json.loads(project_file.read_text(encoding="utf-8"))
    assert local["providers"]["openai"]["auth_data"] == {"api_key": OPENAI_KEY}
    assert "auth_data" not in read_config()["providers"]["openai"]


def test_export_legacy_failures_name_the_problem(invoke: Invoke) -> None:
    assert_clean_failure(invoke("config", "export-legacy"), "no global config file", "config add")
    invoke("config", "add", "--provider", "ollama", "--model", "llama")
    assert_clean_failure(
        invoke("config", "export-legacy", "--provider", "anthropic"), "anthropic", "CONFIG_NOT_FOUND"
    )


def test_export_legacy_writes_token_expiry_as_2_3_0_parses_it(
    invoke: Invoke, read_config: Callable[[], dict[str, Any]]
) -> None:
    """2.3.0 compares `expires_at` with an aware datetime: a number or a naive time would crash it."""
    from datetime import datetime

    from modelforge.auth import save_auth_data

    invoke("config", "add", "--provider", "github_copilot", "--model", "claude")
    save_auth_data("github_copilot", {"access_token": "gho_" + "t" * 36, "expires_at": 1999999999})

    result = invoke("config", "export-legacy", "--provider", "GitHub-Copilot")  # the name as typed elsewhere

    assert result.exit_code == 0, result.output
    token = read_config()["providers"]["github_copilot"]["auth_data"]
    assert datetime.fromisoformat(token["expires_at"]).utcoffset() is not None
    assert datetime.fromisoformat(token["expires_at"]).timestamp() == 1999999999


def test_export_legacy_refuses_a_yaml_config(invoke: Invoke, config_file: Path) -> None:
    yaml_file = config_file.with_suffix(".yaml")
    yaml_file.parent.mkdir(parents=True, exist_ok=True)
    yaml_file.write_text(
        "providers:\n  ollama:\n    llm_type: ollama\n    models: {a: {}}\n", encoding="utf-8"
    )
    assert_clean_failure(invoke("config", "export-legacy"), "YAML", "config.json")
