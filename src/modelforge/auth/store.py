"""Where credentials live: an owner-only credentials file or the OS keyring, plus legacy 2.3.0 data.

New secrets go to ``~/.config/model-forge/credentials.json`` (mode 0600 in a 0700 directory, written
atomically under an inter-process lock), or to the OS keyring when a real keyring backend is present.
``MODELFORGE_CREDENTIAL_STORE=file|keyring|auto`` chooses (``auto``, the default, takes the keyring only
when one that can really keep secrets exists). Secrets are never written into ``config.json``.

2.3.0 kept credentials in the config file under ``providers.<name>.auth_data``; those are still read
(``legacy_auth_data``), and the first save for that provider moves the secret out of the config file.
A credentials file that cannot be parsed is moved aside to ``credentials.json.corrupt-<timestamp>``
before a write, never overwritten silently; one found with loose permissions is tightened to 0600.

The 2.3.0 functions ``get_auth_data``, ``save_auth_data`` and ``clear_auth_data`` are defined here.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from modelforge._files import atomic_write_text, ensure_private_dir, locked
from modelforge.auth.keyring_store import (
    STORE_ENV,
    KeyringCredentialStore,
    real_keyring,
    register_credential_secrets,
)
from modelforge.config import get_config_from_path, get_config_path, global_config_dir, update_config
from modelforge.exceptions import ConfigurationError, ModelForgeError

__all__ = [
    "STORE_ENV",
    "CredentialStore",
    "FileCredentialStore",
    "KeyringCredentialStore",
    "clear_auth_data",
    "credentials_path",
    "get_auth_data",
    "get_store",
    "legacy_auth_data",
    "load_stored",
    "register_credential_secrets",
    "save_auth_data",
]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1


def credentials_path() -> Path:
    """``~/.config/model-forge/credentials.json``, computed at call time so a changed HOME is honoured."""
    return global_config_dir() / "credentials.json"


class CredentialStore(Protocol):
    """A place that keeps one credentials dict per provider."""

    name: str

    def load(self, provider: str) -> dict[str, Any] | None: ...

    def save(self, provider: str, data: Mapping[str, Any]) -> None: ...

    def delete(self, provider: str) -> bool: ...

    def providers(self) -> list[str]: ...


# --- the credentials file ---------------------------------------------------------------------------------


class FileCredentialStore:
    """``credentials.json``: ``{"version": 1, "providers": {name: {...}}}``, owner-only, atomic writes."""

    name = "file"

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else credentials_path()

    def load(self, provider: str) -> dict[str, Any] | None:
        entry = self._read().get(provider)
        if not entry:
            return None
        register_credential_secrets(entry)
        return dict(entry)

    def providers(self) -> list[str]:
        return sorted(self._read())

    def save(self, provider: str, data: Mapping[str, Any]) -> None:
        register_credential_secrets(data)

        def put(entries: dict[str, dict[str, Any]]) -> bool:
            entries[provider] = dict(data)
            return True

        self._update(put)

    def delete(self, provider: str) -> bool:
        path = self.path
        if not path.exists():
            return False
        return self._update(lambda entries: entries.pop(provider, None) is not None)

    # -- internals --

    def _read(self) -> dict[str, dict[str, Any]]:
        path = self.path
        try:
            _tighten(path)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise ConfigurationError(
                f"Cannot read credentials file {path}: {os.strerror(err.errno or 0) or err}",
                suggestion=f"Check the owner and permissions of {path}.",
            ) from err
        entries = _parse(text)
        if entries is None:
            logger.warning("Credentials file %s is not valid; ignoring it until the next login", path)
            return {}
        return entries

    def _update(self, mutate: Callable[[dict[str, dict[str, Any]]], bool]) -> bool:
        """Read, change and write the file as one locked step; ``mutate`` returns whether it changed."""
        path = self.path
        ensure_private_dir(path.parent)
        _tighten_dir(path.parent)
        with locked(path):
            entries: dict[str, dict[str, Any]] = {}
            if path.exists():
                _tighten(path)
                parsed = _parse(path.read_text(encoding="utf-8"))
                if parsed is None:
                    _set_aside(path)
                else:
                    entries = parsed
            if not mutate(entries):
                return False
            text = json.dumps({"version": _FORMAT_VERSION, "providers": entries}, indent=4) + "\n"
            atomic_write_text(path, text, mode=0o600)
        return True


def _parse(text: str) -> dict[str, dict[str, Any]] | None:
    """The provider entries of a credentials file, or ``None`` when the file is corrupt."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    providers = data.get("providers", {})
    if not isinstance(providers, dict) or not all(isinstance(v, dict) for v in providers.values()):
        return None
    return {str(k): dict(v) for k, v in providers.items()}


def _tighten(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        logger.warning("Credentials file %s was readable by others (mode %o); changed it to 0600", path, mode)


def _tighten_dir(directory: Path) -> None:
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
        if mode & 0o077 and directory.stat().st_uid == os.getuid():
            os.chmod(directory, 0o700)
            logger.info("Made %s private (mode 0700) since it now holds credentials", directory)
    except OSError as err:
        logger.warning("Could not make %s private: %s", directory, err)


def _set_aside(path: Path) -> None:
    backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, backup)
    os.chmod(backup, 0o600)
    logger.warning("Credentials file %s could not be read; moved it to %s", path, backup)
    print(f"Warning: {path} could not be read; it was moved to {backup}", file=sys.stderr)


# --- choosing a store -------------------------------------------------------------------------------------


def store_kind() -> Literal["file", "keyring"]:
    """Which store new credentials go to, from ``MODELFORGE_CREDENTIAL_STORE`` (default ``auto``)."""
    choice = (os.environ.get(STORE_ENV) or "auto").strip().lower()
    if choice == "file":
        return "file"
    if choice == "keyring":
        return "keyring"
    if choice != "auto":
        raise ConfigurationError(
            f"{STORE_ENV}={choice!r} is not a credential store",
            suggestion=f"Set {STORE_ENV} to one of: file, keyring, auto.",
        )
    return "keyring" if real_keyring() is not None else "file"


def get_store() -> CredentialStore:
    """The store new credentials are written to."""
    return KeyringCredentialStore() if store_kind() == "keyring" else FileCredentialStore()


def load_stored(provider: str) -> dict[str, Any] | None:
    """The stored credentials of ``provider``: the chosen store, then the file if the keyring is chosen."""
    store = get_store()
    data = store.load(provider)
    if data is None and store.name != "file":
        data = FileCredentialStore().load(provider)
    return data


# --- legacy auth_data in config files ---------------------------------------------------------------------


def _config_paths() -> list[tuple[Path, bool]]:
    """The existing config files, the local one first: ``(path, is_local)``."""
    found: list[tuple[Path, bool]] = []
    for local in (True, False):
        try:
            path = get_config_path(local=local)
        except ModelForgeError as err:
            logger.warning("Skipping config scope while looking for credentials: %s", err)
            continue
        if path.exists() and all(path != p for p, _ in found):
            found.append((path, local))
    return found


def _legacy_in(path: Path, provider: str) -> dict[str, Any] | None:
    try:
        data, _ = get_config_from_path(path)
    except ModelForgeError as err:
        logger.warning("Could not read %s while looking for credentials: %s", path, err)
        return None
    auth_data = data.get("providers", {}).get(provider, {}).get("auth_data")
    return dict(auth_data) if isinstance(auth_data, dict) and auth_data else None


def legacy_auth_data(provider: str) -> dict[str, Any] | None:
    """``providers.<provider>.auth_data`` of a 2.3.0 config file (local first, then global), if any."""
    for path, _ in _config_paths():
        data = _legacy_in(path, provider)
        if data:
            register_credential_secrets(data)
            return data
    return None


def _remove_legacy(provider: str) -> None:
    """Take ``auth_data`` of ``provider`` out of every config file that still holds it."""
    for path, local in _config_paths():
        if _legacy_in(path, provider) is None:
            continue

        def drop(data: dict[str, Any]) -> None:
            data.get("providers", {}).get(provider, {}).pop("auth_data", None)

        try:
            update_config(drop, local=local)
            logger.info("Moved the %s credentials out of %s", provider, path)
        except ModelForgeError as err:
            logger.warning("Could not remove the old %s credentials from %s: %s", provider, path, err)


# --- the 2.3.0 functions ----------------------------------------------------------------------------------


def get_auth_data(provider: str) -> dict[str, Any]:
    """The stored credentials of ``provider`` (store first, then legacy config data); ``{}`` if none."""
    return dict(load_stored(provider) or legacy_auth_data(provider) or {})


def save_auth_data(provider: str, data: Mapping[str, Any]) -> None:
    """Store ``data`` for ``provider`` in the credential store (never in the config file)."""
    store = get_store()
    store.save(provider, data)
    logger.info("Saved credentials for %s in the %s store", provider, store.name)
    if store.name != "file":
        FileCredentialStore().delete(provider)
    _remove_legacy(provider)


def clear_auth_data(provider: str) -> None:
    """Forget the credentials of ``provider`` everywhere: keyring, credentials file, legacy config data."""
    if store_kind() == "keyring":
        KeyringCredentialStore().delete(provider)
    FileCredentialStore().delete(provider)
    _remove_legacy(provider)
    logger.info("Cleared stored credentials for %s", provider)
