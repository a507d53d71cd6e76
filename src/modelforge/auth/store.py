"""Where credentials live: an owner-only credentials file or the OS keyring, and the one lookup order.

New secrets go to ``~/.config/model-forge/credentials.json`` (mode 0600 in a 0700 directory, written
atomically under an inter-process lock), or to the OS keyring when a real keyring backend is present.
``MODELFORGE_CREDENTIAL_STORE=file|keyring|auto`` chooses (``auto``, the default, takes the keyring only
when one that can really keep secrets exists). Secrets are never written into ``config.json``.

Credentials are kept per scope, mirroring the two 2.3.0 config files: the global scope (``None``), and
one scope per project (its ``.model-forge`` directory) for what a project-local config held. The project
scope counts only while that project's local config is the active one (``project_scope``).

``lookup`` is the one lookup order every reader uses (``resolve_credentials``, the strategies,
``get_auth_data``): the active project's stored credentials, then the legacy 2.3.0 ``auth_data`` of the
active config's provider entry, then the global stored credentials. Without a project the legacy data
comes last, after the global store. (Environment variables, which win over all of these, are added by
``resolve_credentials``.)

A credentials file that cannot be parsed stops every read with a ``ConfigurationError`` naming the file
and the fix; a write first keeps a copy of it (``<name>.corrupt-<timestamp>``, see
``modelforge._files.set_aside``), so it is never overwritten silently. One found with loose permissions
is tightened to 0600.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from modelforge._files import atomic_write_text, ensure_private_dir, locked, set_aside
from modelforge.auth.keyring_store import (
    STORE_ENV,
    KeyringCredentialStore,
    real_keyring,
    register_credential_secrets,
)
from modelforge.config import config_dir_is_assigned, credentials_file, get_config_path
from modelforge.exceptions import ConfigurationError, ModelForgeError

__all__ = [
    "STORE_ENV",
    "CredentialStore",
    "FileCredentialStore",
    "KeyringCredentialStore",
    "Scope",
    "Stored",
    "credentials_path",
    "delete_stored",
    "find_stored",
    "get_store",
    "load_scope",
    "load_stored",
    "lookup",
    "project_scope",
    "register_credential_secrets",
    "store_credentials",
    "store_kind",
]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1

Scope = str | None  # None: the global scope; else a project's .model-forge directory
_Entries = dict[Scope, dict[str, dict[str, Any]]]


def credentials_path() -> Path:
    """``~/.config/model-forge/credentials.json``, computed at call time so a changed HOME is honoured
    (beside an assigned ``GLOBAL_CONFIG_FILE``: ``modelforge.config.credentials_file``)."""
    return credentials_file()


class CredentialStore(Protocol):
    """A place that keeps one credentials dict per provider and scope."""

    name: str

    def load(self, provider: str, *, scope: Scope = None) -> dict[str, Any] | None: ...

    def save(self, provider: str, data: Mapping[str, Any], *, scope: Scope = None) -> None: ...

    def delete(self, provider: str, *, scope: Scope = None, every_scope: bool = False) -> bool: ...

    def scopes(self, provider: str) -> list[Scope]: ...

    def providers(self) -> list[str]: ...


# --- the credentials file ---------------------------------------------------------------------------------


class FileCredentialStore:
    """``credentials.json``: ``{"version": 1, "providers": {name: {...}}, "projects": {dir: {name: {...}}}}``,
    owner-only, atomic writes."""

    name = "file"

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else credentials_path()

    def load(self, provider: str, *, scope: Scope = None) -> dict[str, Any] | None:
        entry = self._read().get(scope, {}).get(provider)
        if not entry:
            return None
        register_credential_secrets(entry)
        return dict(entry)

    def scopes(self, provider: str) -> list[Scope]:
        return [scope for scope, entries in self._read().items() if provider in entries]

    def providers(self) -> list[str]:
        return sorted({name for entries in self._read().values() for name in entries})

    def save(self, provider: str, data: Mapping[str, Any], *, scope: Scope = None) -> None:
        register_credential_secrets(data)

        def put(entries: _Entries) -> bool:
            entries.setdefault(scope, {})[provider] = dict(data)
            return True

        self._update(put, corrupt="set aside")

    def delete(self, provider: str, *, scope: Scope = None, every_scope: bool = False) -> bool:
        if not self.path.exists():
            return False

        def drop(entries: _Entries) -> bool:
            targets = list(entries) if every_scope else [scope]
            return bool([s for s in targets if entries.get(s, {}).pop(provider, None) is not None])

        # A corrupt file is not rewritten to delete from it: whether the key is in there is unknown.
        return self._update(drop, corrupt="raise")

    # -- internals --

    def _read(self) -> _Entries:
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
        return _parse(path, text)

    def _update(self, mutate: Callable[[_Entries], bool], *, corrupt: Literal["set aside", "raise"]) -> bool:
        """Read, change and write the file as one locked step; ``mutate`` returns whether it changed."""
        path = self.path
        ensure_private_dir(path.parent)
        if not config_dir_is_assigned():  # a folder a user's code chose (maybe /tmp) is never chmod-ed
            _tighten_dir(path.parent)
        with locked(path):
            entries: _Entries = {}
            if path.exists():
                _tighten(path)
                try:
                    entries = _parse(path, path.read_text(encoding="utf-8"))
                except _CorruptFileError as err:
                    if corrupt == "raise":
                        raise
                    set_aside(path, reason=err.why)
            if not mutate(entries):
                return False
            atomic_write_text(path, _dump(entries), mode=0o600)
        return True


class _CorruptFileError(ConfigurationError):
    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"Credentials file {path} cannot be read: {why}",
            suggestion=(
                f"Fix the JSON, or move the file aside (mv {path} {path}.bak); "
                "`modelforge auth login --provider <name>` then writes a new one."
            ),
            error_code="CREDENTIALS_FILE_CORRUPT",
            details={"path": str(path)},
        )
        self.why = why


def _parse(path: Path, text: str) -> _Entries:
    """The entries of a credentials file by scope; raises ``_CorruptFileError`` (never quoting the text)."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise _CorruptFileError(path, f"invalid JSON at line {err.lineno}, column {err.colno}") from None
    except ValueError:
        raise _CorruptFileError(path, "invalid JSON") from None
    if not isinstance(data, dict):
        raise _CorruptFileError(path, "the top level is not an object")
    entries: _Entries = {}
    sections: list[tuple[Scope, Any]] = [(None, data.get("providers", {}))]
    projects = data.get("projects", {})
    if not isinstance(projects, dict):
        raise _CorruptFileError(path, "'projects' is not an object")
    sections += [(str(directory), section) for directory, section in projects.items()]
    for scope, section in sections:
        if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
            raise _CorruptFileError(path, "a provider entry is not an object")
        if section:
            entries[scope] = {str(k): dict(v) for k, v in section.items()}
    return entries


def _dump(entries: _Entries) -> str:
    data: dict[str, Any] = {"version": _FORMAT_VERSION, "providers": entries.get(None, {})}
    projects = {
        scope: entries[scope] for scope in sorted(s for s in entries if s is not None) if entries[scope]
    }
    if projects:
        data["projects"] = projects
    return json.dumps(data, indent=4) + "\n"


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


def _read_stores() -> list[CredentialStore]:
    """The stores credentials are read from: the chosen one, then the file if the keyring is chosen."""
    store = get_store()
    return [store] if store.name == "file" else [store, FileCredentialStore()]


# --- scopes and the lookup order --------------------------------------------------------------------------


def project_scope() -> Scope:
    """The active project's scope (its ``.model-forge`` directory) while its local config exists, else
    ``None``. Only looks whether the file is there; nothing is read."""
    try:
        path = get_config_path(local=True)
    except ModelForgeError as err:  # two config files in one place: loading the config explains it
        logger.debug("No project scope: %s", err)
        return None
    return os.path.realpath(path.parent) if path.exists() else None


@dataclass(frozen=True)
class Stored:
    """Credentials found by ``lookup``: the data, where they came from, and the scope they belong to."""

    data: dict[str, Any] = field(repr=False)
    source: Literal["store", "config"]
    scope: Scope


def find_stored(provider: str, *, accept: Callable[[Mapping[str, Any]], bool] = bool) -> Stored | None:
    """The stored credentials in effect for ``provider``: the active project's, else the global ones."""
    project = project_scope()
    for scope in (project, None) if project else (None,):
        found = load_scope(provider, scope, accept)
        if found is not None:
            return found
    return None


def load_scope(
    provider: str, scope: Scope, accept: Callable[[Mapping[str, Any]], bool] = bool
) -> Stored | None:
    """The credentials of ``provider`` stored in exactly ``scope`` (chosen store, then the file)."""
    for store in _read_stores():
        data = store.load(provider, scope=scope)
        if data and accept(data):
            return Stored(data, "store", scope)
    return None


def load_stored(provider: str) -> dict[str, Any] | None:
    """The stored credentials of ``provider`` in effect here (see ``find_stored``), or ``None``."""
    found = find_stored(provider)
    return found.data if found is not None else None


LegacySource = Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None


def lookup(
    provider: str, legacy: LegacySource, *, accept: Callable[[Mapping[str, Any]], bool] = bool
) -> Stored | None:
    """The one lookup order (environment aside): the active project's store, the legacy ``auth_data``
    of the active config's provider entry, the global store; without a project, the global store first.

    ``legacy`` is that ``auth_data``, or a function reading it (called only when it is needed);
    ``accept`` tells whether a candidate holds what the caller needs (e.g. an ``access_token``).
    """
    project = project_scope()
    if project is not None:
        found = load_scope(provider, project, accept)
        if found is None:
            found = _legacy(legacy, project, accept) or load_scope(provider, None, accept)
        return found
    return load_scope(provider, None, accept) or _legacy(legacy, None, accept)


def _legacy(legacy: LegacySource, scope: Scope, accept: Callable[[Mapping[str, Any]], bool]) -> Stored | None:
    data = legacy() if callable(legacy) else legacy
    if not data or not accept(data):
        return None
    register_credential_secrets(data)
    return Stored(dict(data), "config", scope)


# --- writing ----------------------------------------------------------------------------------------------


def store_credentials(provider: str, data: Mapping[str, Any], *, scope: Scope) -> None:
    """Save ``data`` in ``scope`` of the chosen store (moving it out of the file when the keyring is
    chosen). Touches no config file: use it for credentials that already live in the store."""
    store = get_store()
    store.save(provider, data, scope=scope)
    logger.info("Saved credentials for %s in the %s store", provider, store.name)
    if store.name != "file":
        try:
            FileCredentialStore().delete(provider, scope=scope)
        except _CorruptFileError as err:  # the keyring copy is saved and is read first
            logger.warning("%s %s", err.message, err.suggestion)


def delete_stored(provider: str) -> bool:
    """Delete ``provider``'s credentials from every scope of every store; ``True`` if any existed."""
    deleted = False
    if store_kind() == "keyring":
        deleted = KeyringCredentialStore().delete(provider, every_scope=True)
    return FileCredentialStore().delete(provider, every_scope=True) or deleted
