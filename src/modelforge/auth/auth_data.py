"""The 2.3.0 functions ``get_auth_data``, ``save_auth_data`` and ``clear_auth_data``; the legacy
``auth_data`` that 2.3.0 kept in config files; and ``credentials_version``, which tells caches when a
provider's credentials changed. (The way back, stored credentials written into a config file for 2.3.0,
is ``legacy_export``.)

2.3.0 saved credentials into the active config file (``providers.<name>.auth_data``). Those are still
read, and each is moved into the matching scope of the credential store (see ``store``) when it is
saved: data from the project-local config goes to that project's scope, data from the global config to
the global scope, so ``config migrate`` keeps both when both files hold a key for the same provider. A
config file is written only when the credential saved came from its ``auth_data`` or replaces it; a
token refresh of credentials that already live in the store goes through ``store_credentials`` and
touches no config file at all.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from modelforge.auth.keyring_store import STORE_ENV, register_credential_secrets
from modelforge.auth.store import (
    Scope,
    delete_stored,
    find_stored,
    lookup,
    project_scope,
    store_credentials,
)
from modelforge.config import get_config_from_path, get_config_path, update_config
from modelforge.exceptions import ModelForgeError, env_name

__all__ = [
    "clear_auth_data",
    "credentials_version",
    "get_auth_data",
    "legacy_auth_data",
    "save_auth_data",
]

logger = logging.getLogger(__name__)


# --- legacy auth_data in config files ---------------------------------------------------------------------


def _config_file(*, local: bool) -> Path | None:
    """The config file of one scope, if it exists."""
    try:
        path = get_config_path(local=local)
    except ModelForgeError as err:
        logger.warning("Skipping a config scope while looking for credentials: %s", err)
        return None
    return path if path.exists() else None


def _legacy_in(path: Path | None, provider: str) -> dict[str, Any] | None:
    """``providers.<provider>.auth_data`` of one config file; the file is parsed and validated only when
    it mentions ``auth_data`` at all."""
    if path is None:
        return None
    try:
        if "auth_data" not in path.read_text(encoding="utf-8", errors="replace"):
            return None
        data, _ = get_config_from_path(path)
    except (OSError, ModelForgeError) as err:
        logger.warning("Could not read %s while looking for credentials: %s", path, err)
        return None
    entry = data.get("providers", {}).get(provider)
    auth_data = entry.get("auth_data") if isinstance(entry, dict) else None
    if not isinstance(auth_data, dict) or not auth_data:
        return None
    register_credential_secrets(auth_data)
    return dict(auth_data)


def legacy_auth_data(provider: str) -> dict[str, Any] | None:
    """``providers.<provider>.auth_data`` of the active config file (the local one when it exists)."""
    return _legacy_in(_config_file(local=True) or _config_file(local=False), provider)


def _remove_legacy(path: Path, provider: str, *, local: bool, strict: bool) -> None:
    """Take ``auth_data`` of ``provider`` out of one config file; if that fails, raise when ``strict``,
    else warn (a save has already stored the credential by then)."""

    def drop(data: dict[str, Any]) -> None:
        entry = data.get("providers", {}).get(provider)
        if isinstance(entry, dict):
            entry.pop("auth_data", None)

    try:
        update_config(drop, local=local)
    except ModelForgeError as err:
        if strict:
            raise
        logger.warning("Could not remove the old %s credentials from %s: %s", provider, path, err)
    else:
        logger.info("Removed the %s credentials from %s", provider, path)


# --- change tracking --------------------------------------------------------------------------------------

_changes_lock = threading.Lock()
_change_counter = itertools.count(1)
_generations: dict[str, int] = {}


def _changed(provider: str) -> None:
    with _changes_lock:
        _generations[provider] = next(_change_counter)


def _env_digest(provider: str) -> str:
    """A digest of the env vars that decide ``provider``'s credentials (never their values)."""
    names = (f"MODELFORGE_{env_name(provider)}_API_KEY", f"MODELFORGE_{env_name(provider)}_ACCESS_TOKEN")
    digest = hashlib.sha256()
    for name in (*names, STORE_ENV):
        value = os.environ.get(name)
        digest.update(b"\x00" if value is None else b"\x01" + value.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]


def credentials_version(provider_name: str) -> tuple[Hashable, ...]:
    """A cheap value that changes whenever ``provider_name``'s credentials may have changed: a save,
    clear, login or logout through this process (``save_auth_data`` / ``clear_auth_data``), a change of
    ``MODELFORGE_<PROVIDER>_API_KEY`` / ``_ACCESS_TOKEN`` or ``MODELFORGE_CREDENTIAL_STORE`` (compared by
    a hash, never holding the value), or a move into or out of a project with its own config.

    Meant as part of a cache key for objects built from the credentials (e.g. a Copilot token source):
    rebuild when it differs. A token source refreshing its own token does not change it (the source
    already holds the new token), and changes made by another process are not seen.
    """
    with _changes_lock:
        generation = _generations.get(provider_name, 0)
    return (generation, _env_digest(provider_name), project_scope())


# --- the 2.3.0 functions ----------------------------------------------------------------------------------


def get_auth_data(provider_name: str) -> dict[str, Any]:
    """The stored credentials of ``provider_name`` in the lookup order of ``store.lookup`` (the legacy part
    from the active config file); ``{}`` if none. Parameter names are 2.3.0's."""
    provider = provider_name
    found = lookup(provider, lambda: legacy_auth_data(provider))
    return dict(found.data) if found is not None else {}


def save_auth_data(provider_name: str, auth_data: Mapping[str, Any]) -> None:
    """Store ``auth_data`` for ``provider_name`` in the credential store (never in a config file); the
    parameter names are 2.3.0's.

    The scope is the one the credential belongs to: where its legacy ``auth_data`` came from, else the
    scope whose credential it replaces (the active project's when the project holds credentials of its
    own, else the global one). That scope's legacy ``auth_data`` is then removed from its config file;
    other config files are left alone.
    """
    provider, data = provider_name, dict(auth_data)
    register_credential_secrets(data)
    project = project_scope()
    local_file = _config_file(local=True) if project else None
    global_file = _config_file(local=False)
    local_legacy = _legacy_in(local_file, provider)
    global_legacy = _legacy_in(global_file, provider)

    scope: Scope
    if local_legacy is not None and local_legacy == data:
        scope, replaced = project, local_file
    elif global_legacy is not None and global_legacy == data:
        scope, replaced = None, global_file
    elif project is not None and (local_legacy is not None or _has_project_entry(provider, project)):
        scope, replaced = project, local_file if local_legacy is not None else None
    else:
        scope, replaced = None, global_file if global_legacy is not None else None

    store_credentials(provider, data, scope=scope)
    if replaced is not None:
        _remove_legacy(replaced, provider, local=replaced == local_file, strict=False)
    _changed(provider)


def _has_project_entry(provider: str, project: str) -> bool:
    found = find_stored(provider)
    return found is not None and found.scope == project


def clear_auth_data(provider_name: str) -> None:
    """Forget the credentials of ``provider_name`` everywhere: every scope of the keyring and the
    credentials file, and the legacy ``auth_data`` of both config files. A store that cannot delete raises."""
    provider = provider_name
    try:
        delete_stored(provider)
        for local in (True, False):
            path = _config_file(local=local)
            if path is not None and _legacy_in(path, provider) is not None:
                _remove_legacy(path, provider, local=local, strict=True)
    finally:
        _changed(provider)
    logger.info("Cleared stored credentials for %s", provider)
