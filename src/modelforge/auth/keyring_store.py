"""The OS keyring as a credential store: one entry per provider under the service ``model-forge``.

Only a backend that can really keep secrets counts (not keyring's ``fail`` or ``null`` backends, nor a
chainer with nothing to chain); ``real_keyring`` finds one. Each entry's value is the provider's
credentials as JSON; an index entry lists the entries, since keyrings cannot be enumerated.

Credentials belong to a scope: the global one (``scope=None``, entry name = the provider name) or one
project (``scope`` = the project's ``.model-forge`` directory, entry ``<provider>@project:<directory>``),
which holds what that project's local config kept in 2.3.0. A keyring that fails to read, store or delete
raises ``ConfigurationError``; nothing is reported as done that was not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from modelforge._secrets import register_secret
from modelforge.exceptions import ConfigurationError

__all__ = [
    "KEYRING_SERVICE",
    "STORE_ENV",
    "KeyringCredentialStore",
    "entry_name",
    "real_keyring",
    "register_credential_secrets",
    "split_entry_name",
]

logger = logging.getLogger(__name__)

STORE_ENV = "MODELFORGE_CREDENTIAL_STORE"
KEYRING_SERVICE = "model-forge"
_INDEX_KEY = "__providers__"
_PROJECT = "@project:"
SECRET_FIELDS = ("api_key", "access_token", "refresh_token", "token")


def register_credential_secrets(data: Mapping[str, Any] | None) -> None:
    """Register every secret-bearing field of a credentials dict for masking."""
    if not data:
        return
    for name in SECRET_FIELDS:
        value = data.get(name)
        if isinstance(value, str):
            register_secret(value)


def entry_name(provider: str, scope: str | None) -> str:
    """The keyring user name of ``provider``'s credentials in ``scope`` (``None``: global)."""
    return provider if scope is None else f"{provider}{_PROJECT}{scope}"


def split_entry_name(name: str) -> tuple[str, str | None]:
    """``(provider, scope)`` of a keyring user name made by ``entry_name``."""
    provider, marker, scope = name.partition(_PROJECT)
    return (provider, scope) if marker else (name, None)


def real_keyring() -> Any | None:
    """The active keyring backend if it can really keep secrets, else ``None``."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception as err:  # a broken keyring configuration must not break credential lookups
        logger.debug("No usable keyring: %s", err)
        return None
    if isinstance(backend, fail.Keyring | null.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    return backend


class KeyringCredentialStore:
    """One keyring entry per provider (service ``model-forge``), its value the credentials as JSON."""

    name = "keyring"

    def __init__(self, backend: Any | None = None, service: str = KEYRING_SERVICE) -> None:
        self._backend = backend
        self.service = service

    @property
    def backend(self) -> Any:
        backend = self._backend or real_keyring()
        if backend is None:
            raise ConfigurationError(
                "No usable OS keyring was found",
                suggestion=f"Install a keyring backend, or set {STORE_ENV}=file to use the credentials file.",
            )
        return backend

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(self.service, *args)
        except Exception as err:
            raise ConfigurationError(
                f"The OS keyring failed to {what}: {type(err).__name__}",
                suggestion=f"Unlock the keyring, or set {STORE_ENV}=file to use the credentials file.",
            ) from err

    def load(self, provider: str, *, scope: str | None = None) -> dict[str, Any] | None:
        raw = self._call("read a credential", self.backend.get_password, entry_name(provider, scope))
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            logger.warning("Keyring entry for %s is not valid JSON; ignoring it", provider)
            return None
        if not isinstance(data, dict):
            return None
        register_credential_secrets(data)
        return data

    def save(self, provider: str, data: Mapping[str, Any], *, scope: str | None = None) -> None:
        register_credential_secrets(data)
        name = entry_name(provider, scope)
        self._call("store a credential", self.backend.set_password, name, json.dumps(dict(data)))
        self._write_index(self._index() | {name})

    def delete(self, provider: str, *, scope: str | None = None, every_scope: bool = False) -> bool:
        """Delete the entry in ``scope`` (or in every scope); ``True`` if one existed. A keyring that
        refuses the delete raises ``ConfigurationError`` and the entry stays listed."""
        index = self._index()
        if every_scope:
            names = {n for n in index if split_entry_name(n)[0] == provider} | {provider}
        else:
            names = {entry_name(provider, scope)}
        existed = False
        for name in sorted(names):
            if self._call("read a credential", self.backend.get_password, name) is None:
                continue
            self._call("delete a credential", self.backend.delete_password, name)
            existed = True
        if index & names:
            self._write_index(index - names)
        return existed

    def scopes(self, provider: str) -> list[str | None]:
        """The scopes holding credentials of ``provider`` (as the index lists them)."""
        found = [scope for name, scope in map(split_entry_name, self._index()) if name == provider]
        return sorted(found, key=lambda s: (s is not None, s or ""))

    def providers(self) -> list[str]:
        """The providers with credentials in any scope."""
        return sorted({split_entry_name(n)[0] for n in self._index()})

    def _index(self) -> set[str]:
        raw = self._call("read a credential", self.backend.get_password, _INDEX_KEY)
        try:
            names = json.loads(raw) if raw else []
        except ValueError:
            names = []
        return {str(n) for n in names} if isinstance(names, list) else set()

    def _write_index(self, names: set[str]) -> None:
        self._call("store a credential", self.backend.set_password, _INDEX_KEY, json.dumps(sorted(names)))
