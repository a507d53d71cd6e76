"""The OS keyring as a credential store: one entry per provider under the service ``model-forge``.

Only a backend that can really keep secrets counts (not keyring's ``fail`` or ``null`` backends, nor a
chainer with nothing to chain); ``real_keyring`` finds one. Each entry's value is the provider's
credentials as JSON; an index entry lists the providers, since keyrings cannot be enumerated.
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
    "real_keyring",
    "register_credential_secrets",
]

logger = logging.getLogger(__name__)

STORE_ENV = "MODELFORGE_CREDENTIAL_STORE"
KEYRING_SERVICE = "model-forge"
_INDEX_KEY = "__providers__"
SECRET_FIELDS = ("api_key", "access_token", "refresh_token", "token")


def register_credential_secrets(data: Mapping[str, Any] | None) -> None:
    """Register every secret-bearing field of a credentials dict for masking."""
    if not data:
        return
    for name in SECRET_FIELDS:
        value = data.get(name)
        if isinstance(value, str):
            register_secret(value)


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

    def load(self, provider: str) -> dict[str, Any] | None:
        raw = self._call("read a credential", self.backend.get_password, provider)
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

    def save(self, provider: str, data: Mapping[str, Any]) -> None:
        register_credential_secrets(data)
        self._call("store a credential", self.backend.set_password, provider, json.dumps(dict(data)))
        names = set(self.providers()) | {provider}
        self._call("store a credential", self.backend.set_password, _INDEX_KEY, json.dumps(sorted(names)))

    def delete(self, provider: str) -> bool:
        existed = self.load(provider) is not None
        if existed:
            try:
                self.backend.delete_password(self.service, provider)
            except Exception as err:
                logger.debug("Keyring delete for %s failed: %s", provider, type(err).__name__)
        names = set(self.providers()) - {provider}
        self._call("store a credential", self.backend.set_password, _INDEX_KEY, json.dumps(sorted(names)))
        return existed

    def providers(self) -> list[str]:
        raw = self._call("read a credential", self.backend.get_password, _INDEX_KEY)
        try:
            names = json.loads(raw) if raw else []
        except ValueError:
            names = []
        return sorted(str(n) for n in names) if isinstance(names, list) else []
