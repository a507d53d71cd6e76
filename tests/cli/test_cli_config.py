"""``modelforge config``: add / use / remove / show / migrate, the wizard, and clean config errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelforge.auth import get_auth_data
from modelforge.providers import KNOWN_PROVIDERS
from tests.cli.conftest import Invoke, assert_clean_failure
from tests.conftest import ANTHROPIC_KEY, GITHUB_TOKEN, GOOGLE_KEY, OPENAI_KEY

OPENROUTER_KEY = "sk-or-v1-MFTESTSECRETopenrouter000000000000000000005"
KEYS = {"openai": OPENAI_KEY, "openrouter": OPENROUTER_KEY, "anthropic": ANTHROPIC_KEY, "google": GOOGLE_KEY}

COMPAT_CONFIG: dict[str, Any] = {
    "providers": {
        "openai": {
            "llm_type": "openai_compatible",
            "base_url": "https://api.openai.com/v1",
            "auth_strategy": "api_key",
            "auth_data": {"api_key": OPENAI_KEY},
            "models": {"gpt-4o-mini": {"api_model_name": "gpt-4o-mini"}},
        },
        "ollama": {"llm_type": "ollama", "base_url": "http://localhost:11434", "models": {"qwen3:1.7b": {}}},
        "github_copilot": {
            **KNOWN_PROVIDERS["github_copilot"],
            "auth_data": {
                "access_token": GITHUB_TOKEN,
                "token_type": "bearer",
                "expires_at": "2099-01-01T00:00:00+00:00",
            },
            "models": {"claude-sonnet": {"api_model_name": "claude-3.7-sonnet"}},
        },
    },
    "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    "settings": {"show_telemetry": False},
}


@pytest.mark.parametrize("provider", sorted(KNOWN_PROVIDERS))
def test_add_known_provider_writes_defaults_and_keeps_the_key_out_of_config(
    provider: str, invoke: Invoke, read_config: Callable[[], dict[str, Any]], config_file: Path
) -> None:
    key = KEYS.get(provider)
    args = ["config", "add", "--provider", provider, "--model", "my-model", "--api-model-name", "real-id"]
    result = invoke(*args, *(["--api-key", key] if key else []))

    assert result.exit_code == 0, result.output
    data = read_config()
    assert data["providers"][provider] == {
        **KNOWN_PROVIDERS[provider],
        "models": {"my-model": {"api_model_name": "real-id"}},
    }
    assert "current_model" not in data  # as 2.3.0: `config add` selects nothing; a hint names `config use`
    assert f"config use --provider {provider} --model my-model" in result.stdout
    text = config_file.read_text()
    for secret in KEYS.values():
        assert secret not in text
    assert "auth_data" not in text
    if key:
        assert get_auth_data(provider) == {"api_key": key}
        assert key not in result.output


def test_openrouter_is_usable_openai_compatible(
    invoke: Invoke, read_config: Callable[[], dict[str, Any]]
) -> None:
    invoke("config", "add", "--provider", "openrouter", "--model", "auto")
    assert read_config()["providers"]["openrouter"]["llm_type"] == "openai_compatible"


def test_second_add_keeps_the_current_model_and_normalises_the_name(
    invoke: Invoke, read_config: Callable[[], dict[str, Any]]
) -> None:
    invoke("config", "add", "--provider", "ollama", "--model", "qwen3:1.7b")
    invoke("config", "use", "--provider", "ollama", "--model", "qwen3:1.7b")
    result = invoke("config", "add", "--provider", "GitHub-Copilot", "--model", "claude")
    assert result.exit_code == 0, result.output
    assert "config use" not in result.stdout  # a model is selected: no hint
    data = read_config()
    assert "github_copilot" in data["providers"]
    assert data["current_model"] == {"provider": "ollama", "model": "qwen3:1.7b"}
    assert "auth login --provider github_copilot" in result.stderr  # no token yet: says how to get one


def test_add_unknown_provider_is_accepted_with_a_warning(
    invoke: Invoke, read_config: Callable[[], dict[str, Any]]
) -> None:
    """As 2.3.0: the entry is written; a warning says it needs an llm_type and a base URL to be used, and
    it is not made the current model."""
    result = invoke("config", "add", "--provider", "acme", "--model", "m")
    assert result.exit_code == 0, result.output
    for fragment in ("acme", "llm_type", "--base-url", "Known providers"):
        assert fragment in result.stderr
    data = read_config()
    assert data["providers"]["acme"] == {"models": {"m": {}}}
    assert not data.get("current_model")


def test_add_custom_server(invoke: Invoke, read_config: Callable[[], dict[str, Any]]) -> None:
    result = invoke(
        "config", "add", "--provider", "vllm", "--model", "m", "--base-url", "http://127.0.0.1:8000/v1/"
    )
    assert result.exit_code == 0, result.output
    assert read_config()["providers"]["vllm"] == {
        "llm_type": "openai_compatible",
        "base_url": "http://127.0.0.1:8000/v1",
        "models": {"m": {}},
    }

    key = "custom-key-MFTEST-0000000006"
    result = invoke(
        "config",
        "add",
        "--provider",
        "secured",
        "--model",
        "m",
        "--llm-type",
        "anthropic",
        "--base-url",
        "https://llm.example.com",
        "--api-key",
        key,
    )
    assert result.exit_code == 0, result.output
    entry = read_config()["providers"]["secured"]
    assert entry["llm_type"] == "anthropic" and entry["auth_strategy"] == "api_key"
    assert get_auth_data("secured") == {"api_key": key}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--provider", "acme", "--model", "m", "--llm-type", "nonsense"], "llm_type"),
        (["--provider", "openai", "--model", "m", "--api-key", "not-an-openai-key-000"], "API key"),
        (["--provider", "acme", "--model", "m", "--base-url", "ftp://x"], "ftp"),
        (["--provider", "openai", "--model", "m", "--dev-auth"], "does not use the device flow"),
        (["--provider", "github_copilot", "--model", "m", "--api-key", OPENAI_KEY], "--dev-auth"),
    ],
)
def test_add_rejects_bad_options_cleanly(
    args: list[str], fragment: str, invoke: Invoke, config_file: Path
) -> None:
    assert_clean_failure(invoke("config", "add", *args), fragment)
    assert not config_file.exists()  # refused before anything was written


def test_add_api_key_and_dev_auth_together_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke(
        "config", "add", "--provider", "openai", "--model", "m", "--api-key", OPENAI_KEY, "--dev-auth"
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_use_selects_a_configured_model(invoke: Invoke, read_config: Callable[[], dict[str, Any]]) -> None:
    invoke("config", "add", "--provider", "ollama", "--model", "a")
    invoke("config", "add", "--provider", "ollama", "--model", "b")
    result = invoke("config", "use", "--provider", "ollama", "--model", "b")
    assert result.exit_code == 0, result.output
    assert read_config()["current_model"] == {"provider": "ollama", "model": "b"}


def test_use_unknown_provider_and_model_fail_cleanly(invoke: Invoke) -> None:
    invoke("config", "add", "--provider", "ollama", "--model", "a")
    assert_clean_failure(
        invoke("config", "use", "--provider", "nope", "--model", "a"), "nope", "CONFIG_NOT_FOUND"
    )
    result = invoke("config", "use", "--provider", "ollama", "--model", "zzz")
    assert_clean_failure(result, "zzz", "MODEL_NOT_FOUND", "Available models: a")


def test_remove_model_then_provider_and_its_credentials(
    invoke: Invoke, read_config: Callable[[], dict[str, Any]]
) -> None:
    invoke("config", "add", "--provider", "openai", "--model", "a", "--api-key", OPENAI_KEY)
    invoke("config", "add", "--provider", "openai", "--model", "b")
    invoke("config", "use", "--provider", "openai", "--model", "a")

    result = invoke("config", "remove", "--provider", "openai", "--model", "a")
    assert result.exit_code == 0, result.output
    data = read_config()
    assert list(data["providers"]["openai"]["models"]) == ["b"]
    assert data["current_model"] == {}  # "a" was selected; 2.3.0 leaves an empty selection
    assert "was the current one" in result.stdout
    assert get_auth_data("openai") == {"api_key": OPENAI_KEY}  # "b" still needs it

    result = invoke("config", "remove", "--provider", "openai", "--model", "b")
    assert result.exit_code == 0, result.output
    assert read_config()["providers"] == {}
    assert get_auth_data("openai") == {}
    assert "Removed the stored credentials of 'openai'" in result.output


def test_removing_a_provider_without_credentials_claims_no_removal(invoke: Invoke) -> None:
    invoke("config", "add", "--provider", "ollama", "--model", "qwen3:1.7b")
    result = invoke("config", "remove", "--provider", "ollama", "--model", "qwen3:1.7b")
    assert result.exit_code == 0, result.output
    assert "Removed provider 'ollama'" in result.output
    assert "credentials" not in result.output


def test_remove_keep_credentials(invoke: Invoke) -> None:
    invoke("config", "add", "--provider", "anthropic", "--model", "a", "--api-key", ANTHROPIC_KEY)
    result = invoke("config", "remove", "--provider", "anthropic", "--model", "a", "--keep-credentials")
    assert result.exit_code == 0, result.output
    assert get_auth_data("anthropic") == {"api_key": ANTHROPIC_KEY}


def test_remove_unknown_fails_cleanly(invoke: Invoke) -> None:
    invoke("config", "add", "--provider", "ollama", "--model", "a")
    assert_clean_failure(
        invoke("config", "remove", "--provider", "ollama", "--model", "x"), "MODEL_NOT_FOUND"
    )
    assert_clean_failure(invoke("config", "remove", "--provider", "zz", "--model", "a"), "CONFIG_NOT_FOUND")


def test_show_masks_every_secret(invoke: Invoke, write_config: Callable[[dict[str, Any]], Path]) -> None:
    config = json.loads(json.dumps(COMPAT_CONFIG))
    config["providers"]["ollama"]["headers"] = {"Authorization": "Bearer MFTESTSECRETheader0000007"}
    path = write_config(config)

    result = invoke("config", "show")

    assert result.exit_code == 0, result.output
    assert str(path) in result.stdout and "(global)" in result.stdout
    for secret in (OPENAI_KEY, GITHUB_TOKEN, "MFTESTSECRETheader0000007"):
        assert secret not in result.output
    shown = json.loads(result.stdout[result.stdout.index("{") :])
    assert shown["providers"]["openai"]["auth_data"]["api_key"] == "****" + OPENAI_KEY[-4:]
    assert shown["providers"]["github_copilot"]["auth_data"]["expires_at"] == "2099-01-01T00:00:00+00:00"
    assert shown["providers"]["github_copilot"]["auth_details"]["token_url"].startswith("https://github.com")
    assert "config migrate" in result.stderr


def test_show_masks_passwords_in_urls_and_secret_headers(
    invoke: Invoke, write_config: Callable[[dict[str, Any]], Path]
) -> None:
    """Issue 17: Redis passwords in cache.url / rate_limit.url, a password in base_url, a cookie header."""
    config = json.loads(json.dumps(COMPAT_CONFIG))
    ollama = config["providers"]["ollama"]
    ollama["base_url"] = "http://user:MFTESTpwINbaseurl@localhost:11434"
    ollama["headers"] = {"Cookie": "session=MFTESTcookie0000", "X-Goog-Api-Key": "MFTESTgoogkey0000"}
    ollama["cache"] = {"backend": "redis", "url": "redis://:MFTESTredispass@127.0.0.1:6379/0"}
    ollama["rate_limit"] = {
        "backend": "redis",
        "url": "redis://:MFTESTrlpass@127.0.0.1:6379/1",
        "requests_per_minute": 10,
    }
    write_config(config)

    result = invoke("config", "show")

    assert result.exit_code == 0, result.output
    for secret in (
        "MFTESTpwINbaseurl",
        "MFTESTcookie0000",
        "MFTESTgoogkey0000",
        "MFTESTredispass",
        "MFTESTrlpass",
    ):
        assert secret not in result.output
    shown = json.loads(result.stdout[result.stdout.index("{") :])["providers"]["ollama"]
    assert shown["base_url"] == "http://user:***@localhost:11434"
    assert shown["cache"]["url"] == "redis://:***@127.0.0.1:6379/0"


def test_show_without_config_and_with_a_local_one(invoke: Invoke, isolated_home: Path) -> None:
    result = invoke("config", "show")
    assert result.exit_code == 0
    assert "not created yet" in result.stdout and "empty" in result.stdout

    result = invoke("config", "add", "--provider", "ollama", "--model", "a", "--local")
    assert result.exit_code == 0, result.output
    assert "instead of the global config" in result.stderr
    result = invoke("config", "show")
    assert "(local)" in result.stdout and str(Path.cwd() / ".model-forge" / "config.json") in result.stdout


def test_migrate_moves_models_json_and_legacy_credentials(
    invoke: Invoke, config_file: Path, read_config: Callable[[], dict[str, Any]]
) -> None:
    config_file.parent.mkdir(parents=True)
    (config_file.parent / "models.json").write_text(json.dumps(COMPAT_CONFIG))

    result = invoke("config", "migrate")

    assert result.exit_code == 0, result.output
    assert not (config_file.parent / "models.json").exists()
    data = read_config()
    assert all("auth_data" not in p for p in data["providers"].values())
    assert get_auth_data("openai") == {"api_key": OPENAI_KEY}
    assert get_auth_data("github_copilot")["access_token"] == GITHUB_TOKEN


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('{\n    "providers": {,}\n}\n', ["config.json", "line 2", "JSON_DECODE_ERROR"]),
        ('{"providers": {}, "colour": "blue"}', ["config.json", "colour", "CONFIG_VALIDATION_ERROR"]),
    ],
)
@pytest.mark.parametrize("command", [["config", "show"], ["test", "-p", "hi"], ["auth", "status"]])
def test_broken_config_is_one_clean_message(
    text: str, fragments: list[str], command: list[str], invoke: Invoke, config_file: Path
) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(text)
    assert_clean_failure(invoke(*command), *fragments)


def test_wizard_without_a_terminal_names_the_commands_to_use(invoke: Invoke) -> None:
    for args in (["config"], ["config", "--wizard"]):
        assert_clean_failure(invoke(*args), "interactive terminal", "config add", "auth login")


def test_wizard_on_a_terminal(
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    read_config: Callable[[], dict[str, Any]],
    config_file: Path,
) -> None:
    _pretend_terminal(monkeypatch)
    answers = "openai\ngpt-4o-mini\nmini\nn\n" + OPENAI_KEY + "\n"

    result = invoke("config", input=answers)

    assert result.exit_code == 0, result.output
    data = read_config()
    assert data["providers"]["openai"]["models"] == {"mini": {"api_model_name": "gpt-4o-mini"}}
    assert data["current_model"] == {"provider": "openai", "model": "mini"}
    assert OPENAI_KEY not in config_file.read_text()
    assert get_auth_data("openai") == {"api_key": OPENAI_KEY}
    assert "API key for 'openai' saved in the credential store." in result.stdout  # as `config add` says


def _pretend_terminal(monkeypatch: pytest.MonkeyPatch, *, stdout: bool = True) -> None:
    # The CLI asks the library's own test whether stdin is a terminal (auth.strategies.is_interactive).
    monkeypatch.setattr("modelforge.auth.strategies.is_interactive", lambda: True)
    monkeypatch.setattr("modelforge.cli._output.stdout_is_tty", lambda: stdout)


def test_wizard_needs_stdout_on_a_terminal_too(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_terminal(monkeypatch, stdout=False)
    assert_clean_failure(invoke("config", input="openai\n"), "interactive terminal", "NOT_A_TERMINAL")


def test_wizard_without_a_key_says_how_to_add_one_like_config_add(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelforge.auth import env_var_name

    _pretend_terminal(monkeypatch)

    result = invoke("config", input="anthropic\nclaude-sonnet-4-5\nclaude\nn\n\n")

    assert result.exit_code == 0, result.output
    assert get_auth_data("anthropic") == {}
    variable = env_var_name("anthropic", "API_KEY")
    login = "run `modelforge auth login --provider anthropic`"
    hint = f"No credentials for 'anthropic' yet: {login} or set {variable}."
    assert hint in result.stderr
    added = invoke("config", "add", "--provider", "anthropic", "--model", "other")
    assert hint in added.stderr  # the same step after `config add`


def test_migrate_with_both_files_warns_and_exits_zero(
    invoke: Invoke, write_config: Callable[[dict[str, Any]], Path], config_file: Path
) -> None:
    """As 2.3.0: models.json beside an existing config.json stays, with a warning and exit code 0."""
    write_config({"providers": {}})
    old = config_file.parent / "models.json"
    old.write_text('{"providers": {"openai": {}}}', encoding="utf-8")
    result = invoke("config", "migrate")
    assert result.exit_code == 0
    assert "already exists" in result.stderr and str(old) in result.stderr
    assert old.exists() and json.loads(config_file.read_text()) == {"providers": {}}
