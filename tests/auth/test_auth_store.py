"""The credential store: file permissions, atomic writes, corrupt files, keyring, legacy auth_data."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from keyring.backend import KeyringBackend

from modelforge.auth import clear_auth_data, credentials_path, get_auth_data, get_store, save_auth_data
from modelforge.auth.store import FileCredentialStore, KeyringCredentialStore, legacy_auth_data, store_kind
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


def test_corrupt_file_is_moved_aside_not_overwritten(
    config_dir: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "credentials.json"
    path.write_text('{"providers": {"openai": {"api_key": "half')
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING, logger="modelforge.auth"):
        assert get_auth_data("anthropic") == {}  # reading a corrupt file: warn, treat as empty
        save_auth_data("anthropic", {"api_key": "sk-ant-api03-abcdefghijklmnop"})
    backups = list(config_dir.glob("credentials.json.corrupt-*"))
    assert len(backups) == 1
    assert backups[0].read_text().startswith('{"providers": {"openai"')
    assert mode(backups[0]) == 0o600
    assert get_auth_data("anthropic") == {"api_key": "sk-ant-api03-abcdefghijklmnop"}
    assert "could not be read" in capsys.readouterr().err


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
