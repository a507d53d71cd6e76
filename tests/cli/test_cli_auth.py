"""``modelforge auth login / logout / status`` and the deprecated ``modelforge status``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelforge.auth import get_auth_data
from modelforge.providers import KNOWN_PROVIDERS
from modelforge.testing import DeviceFlowScript, ProviderServer
from tests.cli.conftest import Invoke, assert_clean_failure
from tests.cli.test_cli_config import COMPAT_CONFIG
from tests.conftest import ANTHROPIC_KEY, GITHUB_TOKEN, OPENAI_KEY

WriteConfig = Callable[[dict[str, Any]], Path]


def _row(output: str, provider: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(provider + " "))
    return line.split()


def test_status_reads_a_2_3_0_config_with_auth_data(invoke: Invoke, write_config: WriteConfig) -> None:
    write_config(COMPAT_CONFIG)

    result = invoke("auth", "status")

    assert result.exit_code == 0, result.output
    assert OPENAI_KEY not in result.output and GITHUB_TOKEN not in result.output
    assert _row(result.stdout, "openai") == [
        "openai",
        "api_key",
        "ok",
        "config",
        "****" + OPENAI_KEY[-4:],
        "-",
    ]
    copilot = _row(result.stdout, "github_copilot")
    assert copilot[:5] == ["github_copilot", "device_flow", "ok", "config", "****" + GITHUB_TOKEN[-4:]]
    assert copilot[5] == "in"  # "in 26000d 0h": expiry shown
    assert _row(result.stdout, "ollama")[:3] == ["ollama", "none", "not"]


def test_status_sources_env_and_store_and_missing(
    invoke: Invoke, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        {
            "providers": {
                "openai": {**KNOWN_PROVIDERS["openai"], "models": {"m": {}}},
                "anthropic": {**KNOWN_PROVIDERS["anthropic"], "models": {"m": {}}},
                "google": {**KNOWN_PROVIDERS["google"], "models": {"m": {}}},
            }
        }
    )
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    assert invoke("auth", "login", "--provider", "anthropic", "--api-key", ANTHROPIC_KEY).exit_code == 0

    result = invoke("auth", "status", "--verbose")

    assert result.exit_code == 0, result.output
    assert _row(result.stdout, "openai")[2:4] == ["ok", "env"]
    assert _row(result.stdout, "anthropic")[2:5] == ["ok", "store", "****" + ANTHROPIC_KEY[-4:]]
    assert _row(result.stdout, "google")[2] == "missing"
    assert "credentials.json" in result.stdout  # --verbose names the store
    assert ANTHROPIC_KEY not in result.output and OPENAI_KEY not in result.output


def test_status_of_one_provider_and_unknown(invoke: Invoke, write_config: WriteConfig) -> None:
    write_config(COMPAT_CONFIG)
    result = invoke("auth", "status", "--provider", "openai")
    assert result.exit_code == 0
    assert "github_copilot" not in result.stdout
    assert_clean_failure(invoke("auth", "status", "--provider", "nope"), "nope", "config add")


def test_deprecated_status_alias(invoke: Invoke, write_config: WriteConfig) -> None:
    write_config(COMPAT_CONFIG)
    result = invoke("status")
    assert result.exit_code == 0
    assert "deprecated" in result.stderr and "auth status" in result.stderr
    assert _row(result.stdout, "openai")[2:4] == ["ok", "config"]


def test_login_with_key_then_already_logged_in(
    invoke: Invoke, write_config: WriteConfig, config_file: Path
) -> None:
    write_config({"providers": {"openai": {**KNOWN_PROVIDERS["openai"], "models": {"m": {}}}}})

    result = invoke("auth", "login", "--provider", "openai", "--api-key", OPENAI_KEY)
    assert result.exit_code == 0, result.output
    assert get_auth_data("openai") == {"api_key": OPENAI_KEY}
    assert OPENAI_KEY not in config_file.read_text() and OPENAI_KEY not in result.output

    result = invoke("auth", "login", "--provider", "openai")
    assert result.exit_code == 0 and "Already logged in" in result.stdout and "--force" in result.stdout


def test_login_reads_a_piped_key_and_fails_cleanly_without_one(
    invoke: Invoke, write_config: WriteConfig
) -> None:
    write_config({"providers": {"anthropic": {**KNOWN_PROVIDERS["anthropic"], "models": {"m": {}}}}})

    assert_clean_failure(invoke("auth", "login", "--provider", "anthropic"), "No API key", "--api-key")

    result = invoke("auth", "login", "--provider", "anthropic", "--force", input=ANTHROPIC_KEY + "\n")
    assert result.exit_code == 0, result.output
    assert get_auth_data("anthropic") == {"api_key": ANTHROPIC_KEY}


def test_login_asks_on_a_terminal_as_the_library_decides(
    invoke: Invoke, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One test of "is stdin a terminal" for the CLI and the library: auth.strategies.is_interactive.
    monkeypatch.setattr("modelforge.auth.strategies.is_interactive", lambda: True)
    write_config({"providers": {"anthropic": {**KNOWN_PROVIDERS["anthropic"], "models": {"m": {}}}}})

    result = invoke("auth", "login", "--provider", "anthropic", input=ANTHROPIC_KEY + "\n")

    assert result.exit_code == 0, result.output
    assert "API key for anthropic" in result.output  # the hidden prompt, not a silent read of stdin
    assert ANTHROPIC_KEY not in result.output
    assert get_auth_data("anthropic") == {"api_key": ANTHROPIC_KEY}


def test_environment_variable_names_are_the_libraries(
    invoke: Invoke, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelforge import exceptions
    from modelforge.auth import env_var_name

    for name in ("openai", "github_copilot", "my-proxy", "Acme.AI"):
        for kind in ("API_KEY", "ACCESS_TOKEN"):
            assert exceptions.env_var_name(name, kind) == env_var_name(name, kind)
    api_key, token = env_var_name("my-proxy", "API_KEY"), env_var_name("my-proxy", "ACCESS_TOKEN")
    assert (api_key, token) == ("MODELFORGE_MY_PROXY_API_KEY", "MODELFORGE_MY_PROXY_ACCESS_TOKEN")
    assert api_key in str(exceptions.InvalidApiKeyError("my-proxy").suggestion)
    proxy = {"llm_type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "auth_strategy": "api_key"}
    write_config({"providers": {"my-proxy": {**proxy, "models": {"m": {}}}}})

    status = invoke("auth", "status", "--verbose")
    assert status.exit_code == 0, status.output
    assert f"my-proxy: environment variables {api_key}, {token}" in status.stdout

    failed = invoke("auth", "login", "--provider", "my-proxy")  # no key, no terminal
    assert_clean_failure(failed, api_key)

    monkeypatch.setenv(api_key, OPENAI_KEY)
    login = invoke("auth", "login", "--provider", "my-proxy", "--api-key", ANTHROPIC_KEY, "--force")
    assert login.exit_code == 0, login.output
    assert f"{api_key} is set and takes precedence" in login.stderr


def test_login_errors(invoke: Invoke, write_config: WriteConfig) -> None:
    write_config(COMPAT_CONFIG)
    assert_clean_failure(invoke("auth", "login", "--provider", "acme", "--api-key", OPENAI_KEY), "acme")
    result = invoke("auth", "login", "--provider", "github_copilot", "--api-key", OPENAI_KEY)
    assert_clean_failure(result, "device flow")
    assert_clean_failure(invoke("auth", "login", "--provider", "openai", "--api-key", "short"), "API key")
    result = invoke("auth", "login", "--provider", "ollama")
    assert result.exit_code == 0 and "needs no authentication" in result.stdout


def test_device_login_through_the_test_server(invoke: Invoke, write_config: WriteConfig) -> None:
    with ProviderServer() as server:
        server.device_flow = DeviceFlowScript(pending_polls=1, interval=0.05)
        base = server.github_base_url
        write_config(
            {
                "providers": {
                    "github_copilot": {
                        **KNOWN_PROVIDERS["github_copilot"],
                        "auth_details": {
                            "client_id": "test-client",
                            "device_code_url": f"{base}/login/device/code",
                            "token_url": f"{base}/login/oauth/access_token",
                            "scope": "read:user",
                        },
                        "models": {"claude": {}},
                    }
                }
            }
        )

        result = invoke("auth", "login", "--provider", "github_copilot")

        assert result.exit_code == 0, result.output
        assert "WDJB-MJHT" in result.stderr  # the user code is shown on stderr
        token = DeviceFlowScript().access_token
        assert get_auth_data("github_copilot")["access_token"] == token
        assert token not in result.output

        # --dev-auth on config add runs the same login.
        server.device_flow = DeviceFlowScript(pending_polls=0, interval=0.05)
        result = invoke("config", "add", "--provider", "github_copilot", "--model", "gpt", "--dev-auth")
        assert result.exit_code == 0, result.output
        assert "Logged in" in result.stdout


def test_logout(invoke: Invoke, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(COMPAT_CONFIG)
    invoke("auth", "login", "--provider", "openai", "--api-key", OPENAI_KEY, "--force")
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)

    result = invoke("auth", "logout", "--provider", "openai")
    assert result.exit_code == 0, result.output
    assert get_auth_data("openai") == {}
    assert "MODELFORGE_OPENAI_API_KEY is still set" in result.stderr

    result = invoke("auth", "logout", "--all-providers")
    assert result.exit_code == 0, result.output
    assert "github_copilot" in result.stdout  # its legacy auth_data in config.json
    assert get_auth_data("github_copilot") == {}


@pytest.mark.parametrize("args", [[], ["--provider", "openai", "--all-providers"]])
def test_logout_needs_exactly_one_target(args: list[str], invoke: Invoke) -> None:
    result = invoke("auth", "logout", *args)
    assert result.exit_code == 2
    assert "--all-providers" in result.stderr and "Traceback" not in result.output


def test_logout_of_an_unknown_provider_exits_non_zero(invoke: Invoke, write_config: WriteConfig) -> None:
    """As 2.3.0: neither configured nor logged in is an error (2.3.0 showed a traceback; we a clean one)."""
    write_config({"providers": {"ollama": {"llm_type": "ollama", "base_url": "http://localhost:11434"}}})
    result = invoke("auth", "logout", "--provider", "nosuch")
    assert result.exit_code == 1
    assert "nosuch" in result.stderr and "ollama" in result.stderr and "Traceback" not in result.output
