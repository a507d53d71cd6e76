"""``modelforge settings`` and ``modelforge models`` (offline: the bundled models.dev catalogue)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Invoke, assert_clean_failure


def test_telemetry_on_off_status(invoke: Invoke, read_config: Callable[[], dict[str, Any]]) -> None:
    assert "Telemetry display is currently on (enabled)" in invoke("settings", "telemetry", "status").stdout

    result = invoke("settings", "telemetry", "off")
    assert result.exit_code == 0, result.output
    assert read_config()["settings"] == {"show_telemetry": False}
    assert "Telemetry display is currently off (disabled)" in invoke("settings", "telemetry", "status").stdout
    assert invoke("settings", "show").stdout.splitlines()[1:] == ["  show_telemetry: False"]  # as 2.3.0

    invoke("settings", "telemetry", "on")
    assert read_config()["settings"] == {"show_telemetry": True}


def test_telemetry_local(invoke: Invoke, config_file: Path) -> None:
    result = invoke("settings", "telemetry", "off", "--local")
    assert result.exit_code == 0, result.output
    local = Path.cwd() / ".model-forge" / "config.json"
    assert json.loads(local.read_text())["settings"] == {"show_telemetry": False}
    assert not config_file.exists()
    assert "instead of the global config" in result.stderr
    assert "off" in invoke("settings", "telemetry", "status", "--local").stdout


def test_telemetry_status_local_without_a_project_config_reports_what_is_in_effect(
    invoke: Invoke, config_file: Path
) -> None:
    assert invoke("settings", "telemetry", "off").exit_code == 0  # global config

    result = invoke("settings", "telemetry", "status", "--local")

    assert result.exit_code == 0, result.output
    # No project config: `modelforge test` uses the global setting, so that is the state to report.
    assert result.stdout.strip() == f"Telemetry display is currently off (disabled) in {config_file}"
    assert "No project config" in result.stderr
    assert not (Path.cwd() / ".model-forge").exists()


def test_settings_show_is_get_settings(
    invoke: Invoke, write_config: Callable[[dict[str, Any]], Path]
) -> None:
    from modelforge.config import get_settings

    write_config({"settings": {"show_telemetry": False, "theme": "dark", "limits": {"a": 1}}})

    result = invoke("settings", "show")

    assert result.exit_code == 0, result.output
    assert get_settings() == {"show_telemetry": False, "theme": "dark", "limits": {"a": 1}}
    # 2.3.0's lines, "  key: value", values as Python prints them
    assert result.stdout.splitlines()[1:] == [
        "  show_telemetry: False",
        "  theme: dark",
        "  limits: {'a': 1}",
    ]


def test_telemetry_bad_action_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("settings", "telemetry", "maybe")
    assert result.exit_code == 2 and "Traceback" not in result.output


def _json(stdout: str) -> Any:
    return json.loads(stdout)


def test_models_list_json_and_table(invoke: Invoke) -> None:
    result = invoke("models", "list", "--provider", "openai", "--format", "json")

    assert result.exit_code == 0, result.output
    models = {m["id"]: m for m in _json(result.stdout)}
    assert models["gpt-4o-mini"]["pricing"]["input_per_1m"] == pytest.approx(0.15)
    assert "bundled" in result.stderr and "USD per 1M" in result.stderr

    table = invoke("models", "list", "--provider", "anthropic")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["PROVIDER", "MODEL", "NAME"]
    assert any(line.startswith("anthropic ") for line in table.stdout.splitlines()[1:])


def test_models_list_unknown_provider_is_empty(invoke: Invoke) -> None:
    """As 2.3.0: a warning on stderr, nothing on stdout (in JSON too), exit code 0."""
    for fmt in ("table", "json"):
        result = invoke("models", "list", "--provider", "no-such-provider", "--format", fmt)
        assert result.exit_code == 0 and result.stdout == ""
        assert "No models known" in result.stderr


def test_models_search(invoke: Invoke) -> None:
    result = invoke(
        "models",
        "search",
        "gpt-4o",
        "--provider",
        "openai",
        "--capability",
        "vision",
        "--capability",
        "tools",
        "--max-price",
        "1",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    found = _json(result.stdout)
    assert "gpt-4o-mini" in [m["id"] for m in found]
    assert all(m["pricing"]["input_per_1m"] <= 1 for m in found)
    assert all({"vision", "function_calling"} <= set(m["capabilities"]) for m in found)

    assert "No models match" in invoke("models", "search", "zzzz-no-such-model").stderr
    assert_clean_failure(invoke("models", "search", "gpt", "--capability", "telepathy"), "telepathy")
    assert invoke("models", "search", "gpt", "--max-price", "-1").exit_code == 2


def test_models_info(invoke: Invoke) -> None:
    result = invoke("models", "info", "--provider", "openai", "--model", "gpt-4o-mini", "--format", "table")
    assert result.exit_code == 0, result.output
    assert "Context window" in result.stdout and "128000" in result.stdout

    # JSON by default, as 2.3.0: models.dev's own fields (which 2.3.0 printed) and ModelForge's beside them
    info = _json(invoke("models", "info", "--provider", "openai", "--model", "gpt-4o-mini").stdout)
    assert info["id"] == "gpt-4o-mini" and info["context_length"] == 128000
    assert info["limit"] == {"context": 128000, "output": 16384}
    assert info["cost"]["input"] == info["pricing"]["input_per_1m_tokens"] == 0.15
    assert info["last_updated"] and info["tool_call"] is True

    result = invoke("models", "info", "--provider", "openai", "--model", "gpt-99-ultra")
    assert_clean_failure(result, "gpt-99-ultra", "MODEL_NOT_FOUND")
    assert_clean_failure(invoke("models", "info", "--provider", "nowhere", "--model", "x"), "nowhere")
