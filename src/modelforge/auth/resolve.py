"""Credential resolution: which key or token a provider uses, and where it came from.

Lookup order, first hit wins: the environment (``MODELFORGE_<PROVIDER>_API_KEY`` /
``MODELFORGE_<PROVIDER>_ACCESS_TOKEN``), then ``store.lookup`` (the active project's stored credentials,
the legacy 2.3.0 ``auth_data`` of the provider passed in, the global stored credentials; the config
files are not read again). The registry, the CLI and the 2.3.0 strategies all resolve through
``resolve_credentials``, so they cannot disagree. Nothing here is interactive and nothing touches the
network. ``access_token_source`` wraps a device-flow provider's token in a source that refreshes it before
expiry; ``copilot_token_source`` adds the GitHub Copilot token exchange on top.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from modelforge._secrets import mask, register_secret
from modelforge.auth._http import DEFAULT_TIMEOUT, TimeoutSpec
from modelforge.auth.copilot import CopilotTokenSource, default_auth_details
from modelforge.auth.keyring_store import register_credential_secrets
from modelforge.auth.store import Stored, lookup
from modelforge.auth.tokens import (
    DEFAULT_SKEW_SECONDS,
    OAuthTokenSource,
    StaticTokenSource,
    TokenSource,
    parse_expires_at,
)
from modelforge.config_schema import AuthDetails, ProviderConfig
from modelforge.exceptions import ConfigurationValidationError, InvalidApiKeyError, env_name

__all__ = [
    "ResolvedCredentials",
    "access_token_source",
    "as_provider_config",
    "copilot_token_source",
    "env_credentials",
    "env_var_name",
    "provider_auth_details",
    "resolve_credentials",
    "stored_credentials",
]


_AUTH_KEYS = ("llm_type", "base_url", "auth_strategy", "auth_details", "auth_data")


@dataclass(frozen=True)
class ResolvedCredentials:
    """The credentials a provider will use; ``repr``/``str`` show only masked values."""

    api_key: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    source: str = "none"  # "env" | "store" | "config" | "none"
    expires_at: float | None = None  # unix seconds, for stored OAuth tokens that expire
    # What the lookup found (the whole stored dict, its scope); None for env credentials or none at all.
    stored: Stored | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        key = mask(self.api_key) if self.api_key else None
        token = mask(self.access_token) if self.access_token else None
        return f"ResolvedCredentials(api_key={key!r}, access_token={token!r}, source={self.source!r})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.api_key or self.access_token)


def env_var_name(provider_name: str, kind: str) -> str:
    """``MODELFORGE_<PROVIDER>_API_KEY`` (kind ``API_KEY``) or ``..._ACCESS_TOKEN``."""
    return f"MODELFORGE_{env_name(provider_name)}_{kind}"


def env_credentials(provider_name: str) -> dict[str, str]:
    """``{"api_key": ..., "access_token": ...}`` from the environment, only the ones that are set."""
    found: dict[str, str] = {}
    for field_name, kind in (("api_key", "API_KEY"), ("access_token", "ACCESS_TOKEN")):
        value = os.environ.get(env_var_name(provider_name, kind), "").strip()
        if value:
            register_secret(value)
            found[field_name] = value
    return found


def as_provider_config(provider: ProviderConfig | Mapping[str, Any] | None) -> ProviderConfig:
    """A ``ProviderConfig`` from the typed config or the 2.3.0 provider dict."""
    if isinstance(provider, ProviderConfig):
        return provider
    # Only the keys that matter here are validated, so a 2.3.0 dict with extra keys still works.
    data = {k: v for k, v in dict(provider or {}).items() if k in _AUTH_KEYS}
    try:
        return ProviderConfig.model_validate(data)
    except PydanticValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigurationValidationError(
            f"Invalid provider settings: {problems}",
            suggestion="Check auth_strategy, auth_details and auth_data of this provider.",
        ) from None


def _wanted(provider: ProviderConfig) -> tuple[str, ...]:
    if provider.auth_strategy == "api_key":
        return ("api_key",)
    if provider.auth_strategy == "device_flow":
        return ("access_token",)
    return ("api_key", "access_token")


def _from(
    data: Mapping[str, Any] | None, wanted: tuple[str, ...], source: str, stored: Stored | None = None
) -> ResolvedCredentials | None:
    if not data or not any(data.get(k) for k in wanted):
        return None
    register_credential_secrets(data)
    api_key = data.get("api_key") if "api_key" in wanted else None
    token = data.get("access_token") if "access_token" in wanted else None
    return ResolvedCredentials(
        api_key=str(api_key) if api_key else None,
        access_token=str(token) if token else None,
        source=source,
        expires_at=parse_expires_at(data.get("expires_at")) if token else None,
        stored=stored,
    )


def resolve_credentials(
    provider_name: str, provider: ProviderConfig | Mapping[str, Any] | None
) -> ResolvedCredentials:
    """The provider's credentials: env, then ``store.lookup`` (project store, the ``auth_data`` of
    ``provider``, global store). Never interactive, no network.

    Which fields count follows ``provider``'s ``auth_strategy`` (``api_key``, ``access_token`` for
    ``device_flow``, either without one). ``source`` says where they came from; ``ResolvedCredentials()``
    (falsy, source ``"none"``) when nothing is found. An expired stored token is returned as it is; use
    ``access_token_source`` to get one that refreshes.
    """
    config = as_provider_config(provider)
    wanted = _wanted(config)
    from_env = _from(env_credentials(provider_name), wanted, "env")
    if from_env is not None:
        return from_env
    found = stored_credentials(provider_name, config)
    if found is None:
        return ResolvedCredentials()
    return _from(found.data, wanted, found.source, found) or ResolvedCredentials()


def stored_credentials(
    provider_name: str, provider: ProviderConfig | Mapping[str, Any] | None
) -> Stored | None:
    """What ``resolve_credentials`` finds when the environment is left out: ``store.lookup`` with the
    provider's ``auth_data`` as the legacy credential, counting only the fields its strategy uses."""
    config = as_provider_config(provider)
    wanted = _wanted(config)
    return lookup(provider_name, config.auth_data, accept=lambda data: any(data.get(k) for k in wanted))


def provider_auth_details(provider_name: str, provider: ProviderConfig) -> AuthDetails | None:
    """The provider's ``auth_details``, else the defaults of ``default_auth_details``."""
    return provider.auth_details or default_auth_details(provider_name, provider.llm_type)


def access_token_source(
    provider_name: str,
    provider: ProviderConfig | Mapping[str, Any] | None,
    *,
    skew: float = DEFAULT_SKEW_SECONDS,
    clock: Callable[[], float] = time.time,
    http_timeout: TimeoutSpec = DEFAULT_TIMEOUT,
) -> TokenSource:
    """A token source for a device-flow provider: static for an env token, refreshing for a stored one.

    Raises ``InvalidApiKeyError`` (an ``AuthenticationError``) naming ``modelforge auth login`` when the
    provider has no token at all; a token that expires and cannot be refreshed raises
    ``TokenExpiredError`` when it is asked for.
    """
    config = as_provider_config(provider)
    creds = resolve_credentials(provider_name, config.model_copy(update={"auth_strategy": "device_flow"}))
    if not creds.access_token:
        raise InvalidApiKeyError(
            provider_name,
            f"No access token for provider '{provider_name}'",
            suggestion=(
                f"Log in with: modelforge auth login --provider {provider_name} "
                f"(or set {env_var_name(provider_name, 'ACCESS_TOKEN')})"
            ),
        )
    if creds.stored is None:  # from the environment
        return StaticTokenSource(creds.access_token)
    details = provider_auth_details(provider_name, config)
    return OAuthTokenSource(
        provider_name,
        origin=creds.stored,
        token_url=details.token_url if details else None,
        client_id=details.client_id if details else None,
        skew=skew,
        clock=clock,
        http_timeout=http_timeout,
    )


def copilot_token_source(
    provider_name: str,
    provider: ProviderConfig | Mapping[str, Any] | None,
    *,
    skew: float = DEFAULT_SKEW_SECONDS,
    clock: Callable[[], float] = time.time,
    http_timeout: TimeoutSpec = DEFAULT_TIMEOUT,
) -> CopilotTokenSource:
    """The Copilot token source for a ``github_copilot`` provider (pass it as ``ChatOpenAI(api_key=...)``).

    The exchange URL is ``auth_details.token_exchange_url`` when set, else GitHub's.
    """
    config = as_provider_config(provider)
    oauth = access_token_source(provider_name, config, skew=skew, clock=clock, http_timeout=http_timeout)
    details = provider_auth_details(provider_name, config)
    return CopilotTokenSource(
        oauth,
        details.token_exchange_url if details else None,
        provider_name=provider_name,
        http_timeout=http_timeout,
        clock=clock,
        skew=skew,
    )
