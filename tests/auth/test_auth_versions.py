"""credentials_version: changes with every save, clear, login and logout in this process and with the
provider's env vars (by hash), so a cache keyed on it never keeps using old credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelforge.auth import (
    ApiKeyAuth,
    CopilotTokenSource,
    DeviceFlowSettings,
    access_token_source,
    clear_auth_data,
    copilot_token_source,
    credentials_version,
    run_device_flow,
    save_auth_data,
)

KEY = "sk-proj-versionkey00000000000000000000"
OTHER_KEY = "sk-proj-versionother000000000000000000"
ENV_TOKEN = "gho_versionenvtoken0000000000000000000"
ENV_TOKEN_2 = "gho_versionenvtokentwo00000000000000000"
ACCESS = "gho_versionaccesstoken000000000000000"


def test_saves_clears_logins_and_logouts_change_it() -> None:
    seen = [credentials_version("openai")]
    assert credentials_version("openai") == seen[0]  # nothing changed: the same value

    def changed() -> None:
        now = credentials_version("openai")
        assert now not in seen
        seen.append(now)

    save_auth_data("openai", {"api_key": KEY})
    changed()
    save_auth_data("anthropic", {"api_key": "sk-ant-api03-versionother000000"})
    assert credentials_version("openai") == seen[-1]  # another provider's change is not ours
    ApiKeyAuth("openai").store_api_key(OTHER_KEY)  # a login
    changed()
    ApiKeyAuth("openai").clear_credentials()  # a logout
    changed()
    clear_auth_data("openai")  # even a logout with nothing left to clear
    changed()


def test_env_changes_change_it_without_the_value_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    unset = credentials_version("github_copilot")
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", ENV_TOKEN)
    first = credentials_version("github_copilot")
    assert first != unset
    assert ENV_TOKEN not in repr(first) and ENV_TOKEN not in str(first)
    assert credentials_version("github_copilot") == first
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN", ENV_TOKEN_2)
    assert credentials_version("github_copilot") not in (unset, first)
    monkeypatch.setenv("MODELFORGE_GITHUB_COPILOT_API_KEY", ENV_TOKEN)
    second = credentials_version("github_copilot")
    monkeypatch.delenv("MODELFORGE_GITHUB_COPILOT_API_KEY")
    monkeypatch.delenv("MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN")
    assert credentials_version("github_copilot") == unset != second
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "keyring")  # another store, other credentials
    assert credentials_version("github_copilot") != unset


def test_entering_a_project_with_its_own_config_changes_it() -> None:
    outside = credentials_version("openai")
    local = Path.cwd() / ".model-forge" / "config.json"
    local.parent.mkdir()
    local.write_text(json.dumps({"providers": {}}))
    assert credentials_version("openai") != outside


def copilot(server: Any) -> dict[str, Any]:
    base = server.github_base_url
    return {
        "llm_type": "github_copilot",
        "auth_strategy": "device_flow",
        "auth_details": {
            "client_id": "01ab8ac9400c4e429b23",
            "device_code_url": base + "/login/device/code",
            "token_url": base + "/login/oauth/access_token",
            "scope": "read:user",
            "token_exchange_url": base + "/copilot_internal/v2/token",
        },
    }


def device_login(server: Any, clock: Any, access_token: str) -> None:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(
        pending_polls=0,
        access_token=access_token,
        refresh_token="ghr_" + access_token[4:],
        token_expires_in=3600,
    )
    settings = DeviceFlowSettings.from_details("github_copilot", copilot(server)["auth_details"])
    run_device_flow(settings, on_prompt=lambda c, u: None, sleep=clock.sleep, clock=clock)


def test_a_cache_keyed_on_it_uses_the_new_login(server: Any, clock: Any) -> None:
    """How the provider's source cache is meant to use it: logout + login gives a new source."""
    cache: dict[tuple[Any, ...], CopilotTokenSource] = {}

    def source() -> CopilotTokenSource:
        key = ("github_copilot", credentials_version("github_copilot"))
        if key not in cache:
            cache[key] = copilot_token_source("github_copilot", copilot(server), clock=clock)
        return cache[key]

    def exchanged_with() -> str:
        return [r for r in server.requests if r.path == "/copilot_internal/v2/token"][-1].headers[
            "authorization"
        ]

    device_login(server, clock, ACCESS)
    source().get_token()
    assert exchanged_with() == f"token {ACCESS}"
    clear_auth_data("github_copilot")
    device_login(server, clock, ACCESS + "second")
    source().get_token()
    assert exchanged_with() == f"token {ACCESS}second"
    assert len(cache) == 2


def test_a_source_refreshing_its_own_token_leaves_it_alone(server: Any, clock: Any) -> None:
    device_login(server, clock, ACCESS)
    before = credentials_version("github_copilot")
    oauth = access_token_source("github_copilot", copilot(server), clock=clock)
    clock.advance(4000)
    assert oauth.get_token() == ACCESS + "_r1"  # refreshed and saved to the store
    assert credentials_version("github_copilot") == before
