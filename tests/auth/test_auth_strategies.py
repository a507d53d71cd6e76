"""The 2.3.0 faces of modelforge.auth: strategies, get_credentials, and a 2.3.0 config file on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import modelforge.auth as auth
from modelforge.auth import (
    ApiKeyAuth,
    AuthStrategy,
    DeviceFlowAuth,
    NoAuth,
    get_auth_data,
    get_auth_strategy,
    get_credentials,
)
from modelforge.auth.resolve import provider_auth_details
from modelforge.auth.tokens import format_expires_at
from modelforge.config import get_config
from modelforge.config_schema import ProviderConfig
from modelforge.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidApiKeyError,
    TokenExpiredError,
)

KEY = "sk-proj-strategykey0000000000000000000"
COPILOT = {
    "llm_type": "github_copilot",
    "base_url": "https://api.githubcopilot.com",
    "auth_strategy": "device_flow",
    "auth_details": {
        "client_id": "01ab8ac9400c4e429b23",
        "device_code_url": "https://github.com/login/device/code",
        "token_url": "https://github.com/login/oauth/access_token",
        "scope": "read:user",
    },
    "models": {"claude-sonnet": {"api_model_name": "claude-3.7-sonnet"}},
}
OPENAI = {
    "llm_type": "openai_compatible",
    "base_url": "https://api.openai.com/v1",
    "auth_strategy": "api_key",
    "models": {"gpt-4o-mini": {"api_model_name": "gpt-4o-mini"}},
}


def test_2_3_names_are_importable() -> None:
    for name in (
        "AuthStrategy",
        "ApiKeyAuth",
        "DeviceFlowAuth",
        "NoAuth",
        "get_auth_strategy",
        "get_credentials",
        "get_auth_data",
        "save_auth_data",
        "clear_auth_data",
    ):
        assert name in auth.__all__ and hasattr(auth, name)
    flow = DeviceFlowAuth("p", "cid", "https://d", "https://t", "read:user")
    assert (flow.client_id, flow.device_code_url, flow.token_url, flow.scope) == (
        "cid",
        "https://d",
        "https://t",
        "read:user",
    )


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (OPENAI, ApiKeyAuth),
        (COPILOT, DeviceFlowAuth),
        ({"llm_type": "ollama", "base_url": "http://localhost:11434"}, NoAuth),
        ({"llm_type": "ollama", "auth_strategy": ""}, NoAuth),
        ({}, NoAuth),
    ],
)
def test_get_auth_strategy(data: dict[str, Any], kind: type[AuthStrategy]) -> None:
    assert type(get_auth_strategy("p", data)) is kind
    assert type(get_auth_strategy("p", ProviderConfig.model_validate(data), "alias")) is kind


def test_get_auth_strategy_errors() -> None:
    with pytest.raises(ConfigurationError) as missing:
        get_auth_strategy("nope", None)
    assert missing.value.error_code == "PROVIDER_NOT_CONFIGURED"
    with pytest.raises(ConfigurationError) as unknown:
        get_auth_strategy("p", {"auth_strategy": "kerberos"})
    assert unknown.value.error_code == "UNKNOWN_AUTH_STRATEGY"
    with pytest.raises(ConfigurationError) as bad:
        get_auth_strategy("custom", {"auth_strategy": "device_flow", "auth_details": {"client_id": "x"}})
    assert bad.value.error_code == "DEVICE_FLOW_MISCONFIGURED"
    # github_copilot without auth_details falls back to GitHub's defaults
    flow = get_auth_strategy("github_copilot", {"llm_type": "github_copilot", "auth_strategy": "device_flow"})
    assert isinstance(flow, DeviceFlowAuth) and flow.client_id == "01ab8ac9400c4e429b23"


def test_api_key_store_and_get(monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = ApiKeyAuth("openai")
    assert strategy.get_credentials() is None
    strategy.store_api_key(f"  {KEY} ")
    assert strategy.get_credentials() == {"api_key": KEY}
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", "sk-proj-fromenv00000000000000000000")
    assert strategy.get_credentials() == {"api_key": "sk-proj-fromenv00000000000000000000"}
    strategy.clear_credentials()
    monkeypatch.delenv("MODELFORGE_OPENAI_API_KEY")
    assert strategy.get_credentials() is None
    with pytest.raises(InvalidApiKeyError):
        strategy.store_api_key("   ")


def test_api_key_authenticate_without_tty_says_how_to_pass_the_key() -> None:
    with pytest.raises(InvalidApiKeyError) as info:
        ApiKeyAuth("openai").authenticate()
    suggestion = info.value.suggestion or ""
    assert "--api-key" in suggestion and "MODELFORGE_OPENAI_API_KEY" in suggestion


def test_api_key_authenticate_prompts_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelforge.auth.strategies.is_interactive", lambda: True)
    monkeypatch.setattr("modelforge.auth.strategies.getpass.getpass", lambda prompt: KEY)
    assert ApiKeyAuth("openai").authenticate() == {"api_key": KEY}
    assert get_auth_data("openai") == {"api_key": KEY}
    monkeypatch.setattr("modelforge.auth.strategies.getpass.getpass", lambda prompt: "")
    assert ApiKeyAuth("openai").authenticate() is None


def test_get_credentials_never_prompts_without_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any) -> str:
        raise AssertionError("prompted")

    monkeypatch.setattr("modelforge.auth.strategies.getpass.getpass", boom)
    with pytest.raises(InvalidApiKeyError) as info:
        get_credentials("openai", "gpt-4o-mini", OPENAI)
    assert "modelforge auth login --provider openai" in (info.value.suggestion or "")
    with pytest.raises(AuthenticationError) as flow:
        get_credentials("github_copilot", "claude-sonnet", COPILOT)
    assert "modelforge auth login --provider github_copilot" in (flow.value.suggestion or "")


def test_get_credentials_expired_token_without_tty() -> None:
    auth.save_auth_data(
        "github_copilot", {"access_token": "gho_expired0000000000000", "expires_at": format_expires_at(1000)}
    )
    with pytest.raises(TokenExpiredError):
        get_credentials("github_copilot", "claude-sonnet", COPILOT)
    info = DeviceFlowAuth("github_copilot", "c", "d", "t", "s").get_token_info()
    assert info is not None and info["time_remaining"] == "expired" and info["expiry_time"].endswith("UTC")


def test_get_credentials_interactive_runs_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelforge.auth.strategies.is_interactive", lambda: True)
    monkeypatch.setattr("modelforge.auth.strategies.getpass.getpass", lambda prompt: KEY)
    assert get_credentials("openai", "gpt-4o-mini", OPENAI) == {"api_key": KEY}


def test_no_auth_credentials() -> None:
    assert get_credentials("ollama", "qwen3:1.7b", {"llm_type": "ollama"}) == {}
    assert NoAuth("ollama").authenticate() == {}


def test_a_2_3_config_file_keeps_working(isolated_home: Path) -> None:
    """A 2.3.0 user's config with auth_data inside: read as is, then moved out on the next save."""
    config_path = isolated_home / ".config" / "model-forge" / "config.json"
    config_path.parent.mkdir(parents=True)
    copilot = dict(
        COPILOT,
        auth_data={
            "access_token": "gho_legacytoken0000000000000000",
            "token_type": "bearer",
            "scope": "read:user",
            "expires_at": "2999-01-01T00:00:00+00:00",
        },
    )
    legacy = {
        "providers": {"openai": dict(OPENAI, auth_data={"api_key": KEY}), "github_copilot": copilot},
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
        "settings": {"show_telemetry": False},
    }
    config_path.write_text(json.dumps(legacy, indent=4))
    config, _ = get_config()
    openai_data = config["providers"]["openai"]
    assert get_credentials("openai", "gpt-4o-mini", openai_data) == {"api_key": KEY}
    copilot_creds = get_credentials("github_copilot", "claude-sonnet", config["providers"]["github_copilot"])
    assert copilot_creds is not None and copilot_creds["access_token"] == "gho_legacytoken0000000000000000"
    token_info = DeviceFlowAuth("github_copilot", "c", "d", "t", "s").get_token_info()
    assert token_info is not None and token_info["time_remaining"] != "expired"
    resolved = auth.resolve_credentials("openai", ProviderConfig.model_validate(openai_data))
    assert (resolved.api_key, resolved.source) == (KEY, "config")

    ApiKeyAuth("openai").store_api_key("sk-proj-rotatedkey000000000000000000")
    text = config_path.read_text()
    assert KEY not in text and "sk-proj-rotated" not in text
    assert "gho_legacytoken" in text  # other providers' legacy data is left alone until they save
    assert get_credentials("openai", "gpt-4o-mini", OPENAI) == {
        "api_key": "sk-proj-rotatedkey000000000000000000"
    }


# --- one lookup order for the strategies and resolve_credentials -------------------------------------------

GLOBAL_KEY = "sk-proj-strategyglobal000000000000000"
STORE_KEY = "sk-proj-strategystore0000000000000000"
ENV_KEY = "sk-proj-strategyenv000000000000000000"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))


def situation(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], str | None]:
    """Set up files and env for one situation; the provider entry the caller passes, the expected key."""
    with_key = dict(OPENAI, auth_data={"api_key": KEY})
    if name == "legacy key passed in, no config files":
        return with_key, KEY
    if name == "project config without a key, global config with one":
        write_json(Path.home() / ".config/model-forge/config.json", {"providers": {"openai": with_key}})
        write_json(Path.cwd() / ".model-forge/config.json", {"providers": {"openai": OPENAI}})
        entry, _ = get_config()
        return entry["providers"]["openai"], None
    if name == "stored key beats the legacy one":
        auth.save_auth_data("openai", {"api_key": STORE_KEY})
        return with_key, STORE_KEY
    if name == "env beats everything":
        auth.save_auth_data("openai", {"api_key": STORE_KEY})
        monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", ENV_KEY)
        return with_key, ENV_KEY
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name",
    [
        "legacy key passed in, no config files",
        "project config without a key, global config with one",
        "stored key beats the legacy one",
        "env beats everything",
    ],
)
def test_strategies_and_resolve_credentials_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entry, expected = situation(name, monkeypatch)
    assert auth.resolve_credentials("openai", entry).api_key == expected
    assert get_auth_strategy("openai", entry).get_credentials() == (
        {"api_key": expected} if expected else None
    )
    if expected is None:
        with pytest.raises(InvalidApiKeyError):
            get_credentials("openai", "gpt-4o-mini", entry)
    else:
        assert get_credentials("openai", "gpt-4o-mini", entry) == {"api_key": expected}


def test_a_strategy_without_provider_data_reads_the_active_config_entry() -> None:
    write_json(
        Path.home() / ".config/model-forge/config.json",
        {"providers": {"openai": dict(OPENAI, auth_data={"api_key": GLOBAL_KEY})}},
    )
    assert ApiKeyAuth("openai").get_credentials() == {"api_key": GLOBAL_KEY}
    write_json(Path.cwd() / ".model-forge/config.json", {"providers": {"openai": OPENAI}})
    assert ApiKeyAuth("openai").get_credentials() is None  # the project config is active and has no key
    assert get_auth_data("openai") == {}


def test_device_flow_token_passed_in_is_used() -> None:
    token = "gho_passedinlegacytoken0000000000000"
    entry = dict(COPILOT, auth_data={"access_token": token, "token_type": "bearer"})
    creds = get_credentials("github_copilot", "claude-sonnet", entry)
    assert creds is not None and creds["access_token"] == token
    assert auth.resolve_credentials("github_copilot", entry).access_token == token


def test_default_auth_details_are_defined_once() -> None:
    details = auth.default_auth_details("github_copilot", None)
    assert details is not None
    assert (details.client_id, details.token_url) == (
        "01ab8ac9400c4e429b23",
        "https://github.com/login/oauth/access_token",
    )
    assert auth.default_auth_details("work-copilot", "github_copilot") == details
    assert auth.default_auth_details("openai", "openai_compatible") is None
    # the strategy and the token source take the same defaults for a provider written without them
    bare = {"llm_type": "github_copilot", "auth_strategy": "device_flow"}
    flow = get_auth_strategy("work-copilot", bare)
    assert isinstance(flow, DeviceFlowAuth)
    assert (flow.client_id, flow.device_code_url, flow.token_url, flow.scope) == (
        details.client_id,
        details.device_code_url,
        details.token_url,
        details.scope,
    )
    assert provider_auth_details("work-copilot", ProviderConfig.model_validate(bare)) == details
