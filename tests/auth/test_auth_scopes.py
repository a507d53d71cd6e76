"""Global and project credentials: migrating both keeps both, a save touches only the config file whose
auth_data it came from or replaces, and a token refresh of a stored token touches no config file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelforge.auth import (
    ApiKeyAuth,
    DeviceFlowSettings,
    access_token_source,
    get_auth_data,
    resolve_credentials,
    run_device_flow,
    save_auth_data,
)
from modelforge.auth.store import credentials_path
from modelforge.cli import cli
from modelforge.config import load_config
from tests.auth.conftest import FileAccess

GLOBAL_KEY = "sk-proj-GLOBALGLOBALGLOBALGLOBAL000001"
LOCAL_KEY = "sk-proj-LOCALLOCALLOCALLOCAL00000002"
NEW_KEY = "sk-proj-NEWLOGINNEWLOGINNEWLOGIN0003"
ACCESS = "gho_scopesaccesstoken0000000000000000"
REFRESH = "ghr_scopesrefreshtoken00000000000000"


def openai_config(**auth: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "llm_type": "openai_compatible",
        "base_url": "https://api.openai.com/v1",
        "auth_strategy": "api_key",
        "models": {"gpt-4o-mini": {}},
    }
    if auth:
        entry["auth_data"] = dict(auth)
    return {"providers": {"openai": entry}, "current_model": {"provider": "openai", "model": "gpt-4o-mini"}}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))
    return path


@pytest.fixture
def global_file(config_dir: Path) -> Path:
    return config_dir / "config.json"


@pytest.fixture
def local_file() -> Path:
    return Path.cwd() / ".model-forge" / "config.json"


def active_openai_key() -> str | None:
    """The key the registry would use here (the active config's provider entry)."""
    return resolve_credentials("openai", load_config().config.providers["openai"]).api_key


def test_migrate_keeps_the_global_and_the_project_key(
    global_file: Path, local_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(global_file, openai_config(api_key=GLOBAL_KEY))
    write(local_file, openai_config(api_key=LOCAL_KEY))
    assert active_openai_key() == LOCAL_KEY

    result = CliRunner().invoke(cli, ["config", "migrate"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    for path in (global_file, local_file):
        text = path.read_text()
        assert "auth_data" not in text and "sk-proj" not in text
    assert active_openai_key() == LOCAL_KEY  # in the project: its own key, now from the store
    assert get_auth_data("openai") == {"api_key": LOCAL_KEY}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert active_openai_key() == GLOBAL_KEY  # everywhere else: the global key, not lost
    assert get_auth_data("openai") == {"api_key": GLOBAL_KEY}


def test_saving_the_project_key_leaves_the_global_file_alone(
    global_file: Path, local_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(global_file, openai_config(api_key=GLOBAL_KEY))
    write(local_file, openai_config(api_key=LOCAL_KEY))
    before = global_file.read_bytes(), global_file.stat().st_mtime_ns

    save_auth_data("openai", {"api_key": LOCAL_KEY})

    assert (global_file.read_bytes(), global_file.stat().st_mtime_ns) == before
    assert "auth_data" not in local_file.read_text()
    assert active_openai_key() == LOCAL_KEY
    monkeypatch.chdir(tmp_path)
    assert active_openai_key() == GLOBAL_KEY


def test_a_login_in_a_project_replaces_the_project_key_only(
    global_file: Path, local_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(global_file, openai_config(api_key=GLOBAL_KEY))
    write(local_file, openai_config(api_key=LOCAL_KEY))
    before = global_file.read_bytes()

    ApiKeyAuth("openai").store_api_key(NEW_KEY)

    assert global_file.read_bytes() == before
    assert "auth_data" not in local_file.read_text()
    assert active_openai_key() == NEW_KEY
    assert ApiKeyAuth("openai").get_credentials() == {"api_key": NEW_KEY}
    monkeypatch.chdir(tmp_path)
    assert active_openai_key() == GLOBAL_KEY


def test_a_login_without_project_credentials_is_global(
    global_file: Path, local_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(global_file, openai_config(api_key=GLOBAL_KEY))
    write(local_file, openai_config())  # the project config has no key of its own
    save_auth_data("openai", {"api_key": NEW_KEY})
    assert "auth_data" not in global_file.read_text()  # the global key it replaces is gone
    assert active_openai_key() == NEW_KEY
    monkeypatch.chdir(tmp_path)
    assert active_openai_key() == NEW_KEY


# --- token refresh and config files ---------------------------------------------------------------------


def copilot_entry(server: Any, **extra: Any) -> dict[str, Any]:
    base = server.github_base_url
    return {
        "llm_type": "github_copilot",
        "auth_strategy": "device_flow",
        "auth_details": {
            "client_id": "01ab8ac9400c4e429b23",
            "device_code_url": base + "/login/device/code",
            "token_url": base + "/login/oauth/access_token",
            "scope": "read:user",
        },
        "models": {"gpt-4o": {}},
        **extra,
    }


def device_login(server: Any, clock: Any, *, save: bool = True) -> dict[str, Any]:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(
        pending_polls=0, access_token=ACCESS, refresh_token=REFRESH, token_expires_in=3600
    )
    settings = DeviceFlowSettings.from_details("github_copilot", copilot_entry(server)["auth_details"])
    return run_device_flow(settings, on_prompt=lambda c, u: None, sleep=clock.sleep, clock=clock, save=save)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_refreshing_a_stored_token_touches_no_config_file(
    mode: str,
    server: Any,
    clock: Any,
    global_file: Path,
    local_file: Path,
    file_access: FileAccess,
) -> None:
    # Both config files exist and mention auth_data (another provider's), as a 2.3.0 user's would.
    config = openai_config(api_key=GLOBAL_KEY)
    config["providers"]["github_copilot"] = copilot_entry(server)
    write(global_file, config)
    write(local_file, config)
    device_login(server, clock)
    source = access_token_source("github_copilot", copilot_entry(server), clock=clock)
    clock.advance(4000)

    with file_access.recording():
        token = source.get_token() if mode == "sync" else asyncio.run(source.aget_token())

    assert token == ACCESS + "_r1"
    assert get_auth_data("github_copilot")["access_token"] == ACCESS + "_r1"
    assert file_access.touching(credentials_path())  # the refreshed token was written
    assert file_access.touching(global_file, local_file) == []


def test_a_legacy_token_moves_into_the_store_on_its_first_refresh(
    server: Any, clock: Any, global_file: Path
) -> None:
    legacy = device_login(server, clock, save=False)
    write(global_file, {"providers": {"github_copilot": copilot_entry(server, auth_data=legacy)}})
    entry = load_config().config.providers["github_copilot"]
    source = access_token_source("github_copilot", entry, clock=clock)
    clock.advance(4000)

    assert source.get_token() == ACCESS + "_r1"

    assert "auth_data" not in global_file.read_text()
    assert get_auth_data("github_copilot")["access_token"] == ACCESS + "_r1"
    assert resolve_credentials("github_copilot", entry).source == "store"
