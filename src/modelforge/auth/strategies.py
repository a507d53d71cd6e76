"""The 2.3.0 authentication faces: ``AuthStrategy`` and its subclasses, ``get_auth_strategy`` and
``get_credentials``, built on the credential store, the device flow and the refreshing token source.

Every strategy finds credentials through ``resolve_credentials`` (the same lookup order as the registry);
the legacy ``auth_data`` comes from the provider entry the strategy was made for (``get_auth_strategy``
passes it), else from the active config file's entry for the provider, as in 2.3.0.

Differences from 2.3.0, all fixes: credentials go to the credential store (not the config file); an
interactive prompt or device login starts only when stdin is a terminal (library code without a TTY
gets an ``AuthenticationError`` naming ``modelforge auth login --provider P``); stored tokens are
refreshed before they expire; the library never changes logger levels.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modelforge.auth.auth_data import clear_auth_data, get_auth_data, legacy_auth_data, save_auth_data
from modelforge.auth.copilot import default_auth_details
from modelforge.auth.device_flow import DeviceFlowSettings, PromptCallback, arun_device_flow, run_device_flow
from modelforge.auth.keyring_store import register_credential_secrets
from modelforge.auth.resolve import (
    ResolvedCredentials,
    as_provider_config,
    env_var_name,
    resolve_credentials,
    stored_credentials,
)
from modelforge.auth.store import Stored
from modelforge.auth.tokens import OAuthTokenSource, TokenRecord
from modelforge.config_schema import AuthStrategyName, ProviderConfig
from modelforge.exceptions import (
    ConfigurationError,
    InvalidApiKeyError,
    TokenExpiredError,
)

__all__ = [
    "ApiKeyAuth",
    "AuthStrategy",
    "DeviceFlowAuth",
    "NoAuth",
    "get_auth_strategy",
    "get_credentials",
    "is_interactive",
]

logger = logging.getLogger(__name__)


def is_interactive() -> bool:
    """True when stdin is a terminal, so prompting the user is possible."""
    try:
        return bool(sys.stdin is not None and sys.stdin.isatty())
    except (ValueError, OSError):
        return False


class AuthStrategy:
    """How one provider authenticates: get stored credentials, obtain new ones, forget them.

    ``provider_data`` is the provider's config entry (a 2.3.0 dict or a ``ProviderConfig``); its
    ``auth_data`` is the legacy credential. Without it, the active config file's entry is read.
    """

    #: The ``auth_strategy`` whose fields ``get_credentials`` looks for (``None``: either kind).
    auth_strategy: AuthStrategyName | None = None

    def __init__(
        self, provider_name: str, *, provider_data: ProviderConfig | Mapping[str, Any] | None = None
    ) -> None:
        self.provider_name = provider_name
        self.provider_data = provider_data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider_name!r})"

    def _provider(self) -> ProviderConfig:
        if self.provider_data is not None:
            config = as_provider_config(self.provider_data)
        else:
            config = ProviderConfig(auth_data=legacy_auth_data(self.provider_name))
        return config.model_copy(update={"auth_strategy": self.auth_strategy})

    def _resolve(self) -> ResolvedCredentials:
        """The credentials in effect (environment first), by the one lookup order."""
        return resolve_credentials(self.provider_name, self._provider())

    def _stored(self) -> Stored | None:
        """The stored credentials in effect (the environment left out), by the same lookup order."""
        return stored_credentials(self.provider_name, self._provider())

    def authenticate(self) -> dict[str, Any] | None:
        """Obtain new credentials (may prompt the user), store them and return them."""
        raise NotImplementedError

    async def aauthenticate(self) -> dict[str, Any] | None:
        """The async form of ``authenticate``; by default runs it in a worker thread."""
        return await asyncio.to_thread(self.authenticate)

    def get_credentials(self) -> dict[str, Any] | None:
        """The credentials to use now, or ``None`` when there are none."""
        raise NotImplementedError

    def clear_credentials(self) -> None:
        """Forget the stored credentials of this provider."""
        clear_auth_data(self.provider_name)

    # 2.3.0 helpers, kept for subclasses written against them.
    def _get_auth_data(self) -> dict[str, Any]:
        return get_auth_data(self.provider_name)

    def _save_auth_data(self, auth_data: dict[str, Any]) -> None:
        save_auth_data(self.provider_name, auth_data)

    def _clear_auth_data(self) -> None:
        clear_auth_data(self.provider_name)


class ApiKeyAuth(AuthStrategy):
    """An API key: from ``MODELFORGE_<PROVIDER>_API_KEY``, the credential store, or legacy config data."""

    auth_strategy = "api_key"

    def authenticate(self) -> dict[str, Any] | None:
        """Prompt for the key (hidden input) when stdin is a terminal, store it and return it."""
        if not is_interactive():
            raise InvalidApiKeyError(
                self.provider_name,
                f"No API key for provider '{self.provider_name}', and no terminal to ask for one",
                suggestion=(
                    f"Run: modelforge auth login --provider {self.provider_name} --api-key <KEY>, "
                    f"or set {env_var_name(self.provider_name, 'API_KEY')}"
                ),
            )
        api_key = getpass.getpass(f"Enter API key for {self.provider_name}: ").strip()
        if not api_key:
            logger.warning("No API key entered for %s", self.provider_name)
            return None
        self.store_api_key(api_key)
        return {"api_key": api_key}

    def store_api_key(self, api_key: str) -> None:
        """Store ``api_key`` without prompting."""
        api_key = (api_key or "").strip()
        if not api_key:
            raise InvalidApiKeyError(self.provider_name, "An empty API key cannot be stored")
        register_credential_secrets({"api_key": api_key})
        save_auth_data(self.provider_name, {"api_key": api_key})
        logger.info("API key stored for %s", self.provider_name)

    def get_credentials(self) -> dict[str, Any] | None:
        creds = self._resolve()
        if creds.api_key:
            return {"api_key": creds.api_key}
        logger.debug("No API key found for %s", self.provider_name)
        return None


class DeviceFlowAuth(AuthStrategy):
    """OAuth device flow (GitHub's for Copilot); stored tokens are refreshed before they expire."""

    auth_strategy = "device_flow"

    def __init__(
        self,
        provider_name: str,
        client_id: str,
        device_code_url: str,
        token_url: str,
        scope: str,
        *,
        on_prompt: PromptCallback | None = None,
        provider_data: ProviderConfig | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(provider_name, provider_data=provider_data)
        self.client_id = client_id
        self.device_code_url = device_code_url
        self.token_url = token_url
        self.scope = scope
        self.on_prompt = on_prompt

    @property
    def settings(self) -> DeviceFlowSettings:
        return DeviceFlowSettings(
            self.provider_name, self.client_id, self.device_code_url, self.token_url, self.scope or ""
        )

    def authenticate(self) -> dict[str, Any] | None:
        """Run the device flow (blocking), store the token and return the token data."""
        return run_device_flow(self.settings, on_prompt=self.on_prompt)

    async def aauthenticate(self) -> dict[str, Any] | None:
        """Run the device flow without blocking the event loop."""
        return await arun_device_flow(self.settings, on_prompt=self.on_prompt)

    def get_credentials(self) -> dict[str, Any] | None:
        """The env token, or the stored token (refreshed first when about to expire); ``None`` if none
        or expired beyond refresh."""
        creds = self._resolve()
        if not creds.access_token:
            return None
        if creds.stored is None:  # from the environment
            return {"access_token": creds.access_token}
        source = OAuthTokenSource(
            self.provider_name, origin=creds.stored, token_url=self.token_url, client_id=self.client_id
        )
        try:
            source.get_token()
        except TokenExpiredError:
            logger.info("The stored token for %s has expired", self.provider_name)
            return None
        current = source.record
        return dict(current.data) if current is not None else None

    def get_token_info(self) -> dict[str, Any] | None:
        """The stored token data plus ``time_remaining`` and ``expiry_time`` for display; ``None`` if none."""
        stored = self._stored()
        if stored is None:
            return None
        data = stored.data
        info = dict(data)
        record = TokenRecord.from_auth_data(data)
        if record is not None and record.expires_at is not None:
            remaining = record.expires_at - time.time()
            info["time_remaining"] = (
                str(datetime.fromtimestamp(record.expires_at, UTC) - datetime.now(UTC)).split(".")[0]
                if remaining > 0
                else "expired"
            )
            info["expiry_time"] = datetime.fromtimestamp(record.expires_at, UTC).strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            )
        return info


class NoAuth(AuthStrategy):
    """No authentication; an optional key from the environment or store is still passed on."""

    def authenticate(self) -> dict[str, Any] | None:
        return {}

    def get_credentials(self) -> dict[str, Any] | None:
        creds = self._resolve()
        return {"api_key": creds.api_key} if creds.api_key else {}

    def clear_credentials(self) -> None:
        """Nothing to clear for a provider without authentication."""


def _as_dict(provider_data: ProviderConfig | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if provider_data is None:
        return None
    if isinstance(provider_data, ProviderConfig):
        return provider_data.model_dump(exclude_none=True)
    return dict(provider_data)


def get_auth_strategy(
    provider_name: str,
    provider_data: ProviderConfig | Mapping[str, Any] | None,
    model_alias: str | None = None,
) -> AuthStrategy:
    """The strategy for a provider's ``auth_strategy`` (``api_key``, ``device_flow``, or none)."""
    data = _as_dict(provider_data)
    if data is None:
        raise ConfigurationError(
            f"Provider '{provider_name}' not found",
            suggestion=f"Add it with: modelforge config add --provider {provider_name} --model <model>",
            error_code="PROVIDER_NOT_CONFIGURED",
        )
    strategy = data.get("auth_strategy") or ""
    if strategy == "api_key":
        return ApiKeyAuth(provider_name, provider_data=data)
    if strategy == "device_flow":
        details = data.get("auth_details") or default_auth_details(provider_name, data.get("llm_type"))
        settings = DeviceFlowSettings.from_details(provider_name, details)
        return DeviceFlowAuth(
            provider_name,
            settings.client_id,
            settings.device_code_url,
            settings.token_url,
            settings.scope,
            provider_data=data,
        )
    if strategy in ("", "none"):
        return NoAuth(provider_name, provider_data=data)
    raise ConfigurationError(
        f"Unknown auth strategy '{strategy}' for provider '{provider_name}'",
        suggestion="Use 'api_key', 'device_flow', or leave auth_strategy out for no authentication.",
        error_code="UNKNOWN_AUTH_STRATEGY",
    )


def get_credentials(
    provider_name: str,
    model_alias: str,
    provider_data: ProviderConfig | Mapping[str, Any] | None,
    verbose: bool = False,
) -> dict[str, Any] | None:
    """The provider's credentials; logs in interactively only when stdin is a terminal.

    Returns ``{"api_key": ...}``, the token data with ``"access_token"``, or ``{}`` for providers without
    authentication. Without a terminal, missing credentials raise ``AuthenticationError``
    (``InvalidApiKeyError`` / ``TokenExpiredError``) naming ``modelforge auth login --provider P``.
    """
    strategy = get_auth_strategy(provider_name, provider_data, model_alias)
    creds = strategy.get_credentials()
    if creds or isinstance(strategy, NoAuth):
        (logger.info if verbose else logger.debug)("Using stored credentials for %s", provider_name)
        return creds if creds is not None else {}
    if is_interactive():
        logger.info("No valid credentials for %s; starting login", provider_name)
        return strategy.authenticate()
    login = f"Run: modelforge auth login --provider {provider_name}"
    if isinstance(strategy, DeviceFlowAuth):
        if strategy.get_token_info():
            raise TokenExpiredError(provider_name, suggestion=login)
        raise InvalidApiKeyError(
            provider_name,
            f"Provider '{provider_name}' needs a device login, and there is no terminal to run it",
            suggestion=f"{login} (or set {env_var_name(provider_name, 'ACCESS_TOKEN')})",
        )
    raise InvalidApiKeyError(
        provider_name,
        f"No API key for provider '{provider_name}'",
        suggestion=f"{login} --api-key <KEY> (or set {env_var_name(provider_name, 'API_KEY')})",
    )
