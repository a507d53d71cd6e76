"""Credential resolution for the registry: env > store > legacy config, masked, never interactive."""

from __future__ import annotations

import pytest

from modelforge.auth import (
    OAuthTokenSource,
    ResolvedCredentials,
    StaticTokenSource,
    access_token_source,
    copilot_token_source,
    resolve_credentials,
    save_auth_data,
)
from modelforge.config_schema import ProviderConfig
from modelforge.exceptions import AuthenticationError, ConfigurationValidationError, InvalidApiKeyError

ENV_KEY = "sk-proj-ENVENVENVENVENVENVENVENVENVENV"
STORE_KEY = "sk-proj-STORESTORESTORESTORESTORE00"
CONFIG_KEY = "sk-proj-CONFIGCONFIGCONFIGCONFIG00"


def api_provider(**extra: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"llm_type": "openai_compatible", "auth_strategy": "api_key", "models": {"m": {}}, **extra}
    )


def copilot_provider(**extra: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {
            "llm_type": "github_copilot",
            "auth_strategy": "device_flow",
            "auth_details": {
                "client_id": "01ab8ac9400c4e429b23",
                "device_code_url": "https://github.invalid/login/device/code",
                "token_url": "https://github.invalid/login/oauth/access_token",
                "scope": "read:user",
            },
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("env", "store", "config", "expected", "source"),
    [
        (True, True, True, ENV_KEY, "env"),
        (False, True, True, STORE_KEY, "store"),
        (False, False, True, CONFIG_KEY, "config"),
        (False, False, False, None, "none"),
    ],
)
def test_lookup_order(
    monkeypatch: pytest.MonkeyPatch, env: bool, store: bool, config: bool, expected: str | None, source: str
) -> None:
    if env:
        monkeypatch.setenv("MODELFORGE_MY_OPENAI_API_KEY", ENV_KEY)
    if store:
        save_auth_data("my-openai", {"api_key": STORE_KEY})
    provider = api_provider(auth_data={"api_key": CONFIG_KEY}) if config else api_provider()
    creds = resolve_credentials("my-openai", provider)
    assert creds.api_key == expected
    assert creds.source == source
    assert bool(creds) is (expected is not None)


def test_accepts_the_2_3_provider_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"llm_type": "openai_compatible", "auth_strategy": "api_key", "auth_data": {"api_key": CONFIG_KEY}}
    assert resolve_credentials("openai", data) == ResolvedCredentials(api_key=CONFIG_KEY, source="config")


def test_extra_keys_in_a_provider_dict_are_ignored_and_bad_values_explained() -> None:
    data = {"auth_strategy": "api_key", "auth_data": {"api_key": CONFIG_KEY}, "something_new": 1}
    assert resolve_credentials("openai", data).api_key == CONFIG_KEY
    with pytest.raises(ConfigurationValidationError, match="auth_strategy"):
        resolve_credentials("openai", {"auth_strategy": "kerberos"})


def test_access_token_for_device_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    save_auth_data("github_copilot", {"access_token": "gho_STORESTORESTORESTORE0000", "token_type": "bearer"})
    creds = resolve_credentials("github_copilot", copilot_provider())
    assert creds.access_token == "gho_STORESTORESTORESTORE0000"
    assert creds.api_key is None and creds.source == "store"
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", "gho_ENVENVENVENVENVENV000000")
    assert resolve_credentials("github_copilot", copilot_provider()).source == "env"


def test_no_auth_provider_passes_an_optional_key(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = ProviderConfig.model_validate({"llm_type": "openai_compatible", "base_url": "http://x"})
    assert resolve_credentials("local", provider) == ResolvedCredentials()
    monkeypatch.setenv("MODELFORGE_LOCAL_API_KEY", ENV_KEY)
    assert resolve_credentials("local", provider).api_key == ENV_KEY


def test_repr_and_str_mask_secrets() -> None:
    creds = ResolvedCredentials(api_key=ENV_KEY, access_token="gho_abcdefghijklmnopqrstuvwxyz", source="env")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert ENV_KEY not in text
        assert "gho_abcdefghijklmnopqrstuvwxyz" not in text
        assert "****" in text and "source='env'" in text


def test_access_token_source_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidApiKeyError) as info:
        access_token_source("github_copilot", copilot_provider())
    assert isinstance(info.value, AuthenticationError)
    assert "modelforge auth login --provider github_copilot" in (info.value.suggestion or "")

    save_auth_data("github_copilot", {"access_token": "gho_STORESTORESTORESTORE0000"})
    source = access_token_source("github_copilot", copilot_provider())
    assert isinstance(source, OAuthTokenSource)
    assert source.get_token() == "gho_STORESTORESTORESTORE0000"
    assert source.token_url == "https://github.invalid/login/oauth/access_token"

    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", "gho_ENVENVENVENVENVENV000000")
    env_source = access_token_source("github_copilot", copilot_provider())
    assert isinstance(env_source, StaticTokenSource)
    assert env_source.get_token() == "gho_ENVENVENVENVENVENV000000"
    assert "gho_ENVENV" not in repr(env_source)


def test_copilot_source_uses_the_configured_exchange_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", "gho_ENVENVENVENVENVENV000000")
    provider = copilot_provider()
    assert copilot_token_source("github_copilot", provider).exchange_url == (
        "https://api.github.com/copilot_internal/v2/token"
    )
    assert provider.auth_details is not None
    details = provider.auth_details.model_copy(update={"token_exchange_url": "http://127.0.0.1:9/x"})
    custom = provider.model_copy(update={"auth_details": details})
    assert copilot_token_source("github_copilot", custom).exchange_url == "http://127.0.0.1:9/x"
    # a github_copilot provider written without auth_details gets GitHub's defaults
    bare = ProviderConfig.model_validate({"llm_type": "github_copilot", "auth_strategy": "device_flow"})
    assert copilot_token_source("github_copilot", bare).api_base is None
