"""The credential store: file permissions, atomic writes, corrupt files, keyring, legacy auth_data."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from keyring.backend import KeyringBackend

from modelforge._files import set_aside
from modelforge.auth import (
    ApiKeyAuth,
    clear_auth_data,
    credentials_path,
    get_auth_data,
    get_credentials,
    get_store,
    resolve_credentials,
    save_auth_data,
)
from modelforge.auth.auth_data import legacy_auth_data
from modelforge.auth.store import FileCredentialStore, KeyringCredentialStore, store_kind
from modelforge.config import save_config
from modelforge.exceptions import ConfigurationError

KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"


def write_config(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))


def legacy_config(**auth: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {
                "llm_type": "openai_compatible",
                "base_url": "https://api.openai.com/v1",
                "auth_strategy": "api_key",
                "auth_data": dict(auth),
                "models": {"gpt-4o-mini": {}},
            }
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_file_is_owner_only(config_dir: Path) -> None:
    save_auth_data("openai", {"api_key": KEY})
    path = credentials_path()
    assert path == config_dir / "credentials.json"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert json.loads(path.read_text())["providers"]["openai"] == {"api_key": KEY}
    assert get_auth_data("openai") == {"api_key": KEY}
    # nothing but the credentials file and its lock
    assert {p.name for p in path.parent.iterdir()} <= {"credentials.json", "credentials.json.lock"}


def test_path_follows_home_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("HOME", str(other))
    save_auth_data("openai", {"api_key": KEY})
    assert (other / ".config" / "model-forge" / "credentials.json").exists()


def test_loose_directory_is_tightened(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    os.chmod(config_dir, 0o755)
    save_auth_data("openai", {"api_key": KEY})
    assert mode(config_dir) == 0o700


def test_loose_file_permissions_are_fixed_with_a_warning(
    config_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_auth_data("openai", {"api_key": KEY})
    path = credentials_path()
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="modelforge.auth"):
        assert get_auth_data("openai") == {"api_key": KEY}
    assert mode(path) == 0o600
    assert any("0600" in r.getMessage() for r in caplog.records)


def write_corrupt(config_dir: Path) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "credentials.json"
    path.write_text('{"providers": {"openai": {"api_key": "half')
    os.chmod(path, 0o600)
    return path


def test_corrupt_file_is_an_error_that_names_it_and_the_fix(config_dir: Path) -> None:
    path = write_corrupt(config_dir)
    before = path.read_text()
    reads = [
        lambda: get_auth_data("openai"),
        lambda: resolve_credentials("openai", {"auth_strategy": "api_key"}),
        lambda: ApiKeyAuth("openai").get_credentials(),  # not "No API key for provider"
        lambda: get_credentials("openai", "gpt-4o-mini", {"auth_strategy": "api_key"}),
        lambda: clear_auth_data("openai"),  # a logout cannot tell whether the key is in there
    ]
    for read in reads:
        with pytest.raises(ConfigurationError) as info:
            read()
        assert str(path) in info.value.message and "line 1" in info.value.message
        assert info.value.error_code == "CREDENTIALS_FILE_CORRUPT"
        suggestion = info.value.suggestion or ""
        assert "Fix the JSON" in suggestion and "move the file aside" in suggestion
        assert "modelforge auth login" in suggestion
    assert path.read_text() == before  # nothing was rewritten
    assert not list(config_dir.glob("credentials.json.corrupt-*"))


def test_writing_over_a_corrupt_file_keeps_a_copy_first(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_corrupt(config_dir)
    save_auth_data("anthropic", {"api_key": "sk-ant-api03-abcdefghijklmnop"})
    backups = list(config_dir.glob("credentials.json.corrupt-*"))
    assert len(backups) == 1
    assert backups[0].read_text().startswith('{"providers": {"openai"')
    assert mode(backups[0]) == 0o600
    assert get_auth_data("anthropic") == {"api_key": "sk-ant-api03-abcdefghijklmnop"}
    assert mode(path) == 0o600
    err = capsys.readouterr().err
    assert f"{path} could not be read (invalid JSON at line 1" in err and str(backups[0]) in err


def test_config_and_credentials_files_are_set_aside_the_same_way(
    config_dir: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    credentials = write_corrupt(config_dir)
    config = config_dir / "config.json"
    config.write_text('{"providers": {"openai": ')
    os.chmod(config, 0o644)
    with caplog.at_level(logging.WARNING, logger="modelforge"):
        save_auth_data("anthropic", {"api_key": "sk-ant-api03-abcdefghijklmnop"})
        save_config({"providers": {}})
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Warning:")]
    assert len(lines) == 2
    for path, line in zip((credentials, config), lines, strict=True):
        copies = list(config_dir.glob(f"{path.name}.corrupt-*"))
        assert len(copies) == 1 and mode(copies[0]) == 0o600
        assert re.fullmatch(re.escape(path.name) + r"\.corrupt-\d{8}-\d{6}", copies[0].name)
        assert line.startswith(f"Warning: {path} could not be read (")
        assert line.endswith(f"); a copy was kept at {copies[0]}")
    logged = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(logged) == 2 and all("kept a copy at" in message for message in logged)


def test_set_aside_never_replaces_an_earlier_copy(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    copies = []
    for text in ("first {", "second {"):
        path.write_text(text)
        copies.append(set_aside(path, reason="test"))
    assert copies[0] != copies[1]
    assert [c.read_text() for c in copies] == ["first {", "second {"]
    assert path.read_text() == "second {"  # a copy: the original is the caller's to replace


def test_writes_are_atomic_and_keep_other_providers(config_dir: Path) -> None:
    save_auth_data("openai", {"api_key": KEY})
    save_auth_data("google", {"api_key": "AIzaSyA-abcdefghijklmnopqrstuvwxyz012"})
    clear_auth_data("openai")
    assert get_auth_data("openai") == {}
    assert get_auth_data("google")["api_key"].startswith("AIza")
    assert not list(config_dir.glob(".credentials.json.*.tmp"))


def test_save_never_writes_secrets_into_config(config_dir: Path) -> None:
    write_config(config_dir / "config.json", legacy_config())
    save_auth_data("openai", {"api_key": KEY})
    assert KEY not in (config_dir / "config.json").read_text()


def test_legacy_auth_data_is_read(config_dir: Path) -> None:
    write_config(config_dir / "config.json", legacy_config(api_key=KEY))
    assert legacy_auth_data("openai") == {"api_key": KEY}
    assert get_auth_data("openai") == {"api_key": KEY}


def test_local_legacy_config_wins(config_dir: Path) -> None:
    write_config(config_dir / "config.json", legacy_config(api_key="sk-global-0000000000000000000"))
    write_config(Path.cwd() / ".model-forge" / "config.json", legacy_config(api_key=KEY))
    assert get_auth_data("openai") == {"api_key": KEY}


def test_save_moves_legacy_secret_out_of_config(config_dir: Path) -> None:
    config = config_dir / "config.json"
    write_config(config, legacy_config(api_key="sk-old-000000000000000000000000"))
    save_auth_data("openai", {"api_key": KEY})
    text = config.read_text()
    assert "sk-old" not in text and "auth_data" not in text
    data = json.loads(text)
    assert data["providers"]["openai"]["llm_type"] == "openai_compatible"  # the rest is kept
    assert get_auth_data("openai") == {"api_key": KEY}


def test_clear_removes_store_and_legacy(config_dir: Path) -> None:
    write_config(config_dir / "config.json", legacy_config(api_key="sk-old-000000000000000000000000"))
    FileCredentialStore().save("openai", {"api_key": KEY})
    clear_auth_data("openai")
    assert get_auth_data("openai") == {}
    assert "auth_data" not in (config_dir / "config.json").read_text()


def test_clear_of_unknown_provider_creates_nothing(config_dir: Path) -> None:
    clear_auth_data("nobody")
    assert not (config_dir / "credentials.json").exists()
    assert not (config_dir / "config.json").exists()


# --- store choice and the keyring ---------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    import keyring

    backend = MemoryKeyring()
    keyring.set_keyring(backend)  # the autouse no_real_keyring fixture restores the previous one
    return backend


def test_store_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "auto")
    assert store_kind() == "file"  # only keyring's "fail" backend is active here
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "bogus")
    with pytest.raises(ConfigurationError, match="not a credential store"):
        store_kind()
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "keyring")
    with pytest.raises(ConfigurationError, match="keyring"):
        save_auth_data("openai", {"api_key": KEY})


def test_keyring_store(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, config_dir: Path
) -> None:
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "auto")
    assert store_kind() == "keyring"
    assert isinstance(get_store(), KeyringCredentialStore)
    FileCredentialStore().save("openai", {"api_key": "sk-file-00000000000000000000000"})
    save_auth_data("openai", {"api_key": KEY})
    assert json.loads(memory_keyring.items[("model-forge", "openai")]) == {"api_key": KEY}
    assert get_auth_data("openai") == {"api_key": KEY}
    assert FileCredentialStore().load("openai") is None  # moved out of the file
    assert KeyringCredentialStore().providers() == ["openai"]
    clear_auth_data("openai")
    assert get_auth_data("openai") == {}
    assert KeyringCredentialStore().providers() == []


def test_keyring_mode_still_reads_the_file(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    FileCredentialStore().save("openai", {"api_key": KEY})
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "keyring")
    assert get_auth_data("openai") == {"api_key": KEY}


class UndeletableKeyring(MemoryKeyring):
    """A keyring that keeps secrets but refuses to delete them (a locked collection, say)."""

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        raise PasswordDeleteError("the collection is locked")


def test_a_keyring_that_cannot_delete_is_an_error_not_a_logout(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from click.testing import CliRunner

    from modelforge.cli import cli

    backend = UndeletableKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "keyring")
    save_auth_data("openai", {"api_key": KEY})

    with pytest.raises(ConfigurationError, match="failed to delete a credential") as info:
        clear_auth_data("openai")
    assert "PasswordDeleteError" in info.value.message and KEY not in info.value.message
    assert get_auth_data("openai") == {"api_key": KEY}  # still stored, still resolved
    assert resolve_credentials("openai", {"auth_strategy": "api_key"}).api_key == KEY
    assert KeyringCredentialStore().providers() == ["openai"]  # and still listed

    write_config(
        Path.home() / ".config" / "model-forge" / "config.json",
        {"providers": {"openai": {"llm_type": "openai_compatible", "auth_strategy": "api_key"}}},
    )
    result = CliRunner().invoke(cli, ["auth", "logout", "--provider", "openai"])
    assert result.exit_code != 0
    assert "Logged out" not in result.output and "failed to delete a credential" in result.output


def test_keyring_keeps_project_and_global_credentials_apart(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, config_dir: Path
) -> None:
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "keyring")
    global_key = "sk-proj-keyringglobal00000000000000"
    write_config(config_dir / "config.json", legacy_config(api_key=global_key))
    write_config(Path.cwd() / ".model-forge" / "config.json", legacy_config(api_key=KEY))
    save_auth_data("openai", {"api_key": KEY})  # from the project config: the project's entry
    save_auth_data("openai", {"api_key": global_key})  # from the global config: the global entry
    entries = {user for service, user in memory_keyring.items if user.startswith("openai")}
    assert len(entries) == 2
    assert KeyringCredentialStore().providers() == ["openai"]
    assert get_auth_data("openai") == {"api_key": KEY}
    clear_auth_data("openai")
    assert [user for _, user in memory_keyring.items] == ["__providers__"]
    assert KeyringCredentialStore().providers() == []
    assert get_auth_data("openai") == {}
