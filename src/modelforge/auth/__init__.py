"""Credentials for ModelForge providers: strategies, the credential store, device flow, token refresh.

The 2.3.0 names (``AuthStrategy``, ``ApiKeyAuth``, ``DeviceFlowAuth``, ``NoAuth``, ``get_auth_strategy``,
``get_credentials``, ``get_auth_data``, ``save_auth_data``, ``clear_auth_data``) keep their signatures.
The registry uses ``resolve_credentials`` (env, then the store and legacy config ``auth_data`` in the
order of ``store.lookup``; never interactive), ``access_token_source`` (a device-flow token refreshed
before expiry) and ``copilot_token_source`` (the GitHub Copilot token exchange, usable as
``ChatOpenAI(api_key=...)``); the 2.3.0 strategies resolve through the same function.

``credentials_version(provider_name)`` is a cheap hashable value that changes when the provider's
credentials change in this process (save, clear, login, logout) or when its ``MODELFORGE_*`` variables
change; key caches of objects built from credentials (such as a Copilot token source) on it.

Modules: ``store`` (credentials file / OS keyring, scopes, the lookup order), ``auth_data`` (the 2.3.0
functions, legacy ``auth_data`` in config files, ``credentials_version``), ``device_flow`` (RFC 8628,
async with a sync twin), ``tokens`` (token records and refreshing sources), ``copilot`` (token exchange),
``resolve`` (credential resolution), ``strategies`` (the 2.3.0 classes), ``legacy_export`` (stored
credentials written back into config.json for 2.3.0).
"""

from __future__ import annotations

from modelforge.auth.auth_data import (
    clear_auth_data,
    credentials_version,
    get_auth_data,
    save_auth_data,
)
from modelforge.auth.copilot import (
    COPILOT_HEADERS,
    DEFAULT_EXCHANGE_URL,
    GITHUB_COPILOT_AUTH_DETAILS,
    CopilotTokenSource,
    default_auth_details,
)
from modelforge.auth.device_flow import (
    DeviceCodeExpiredError,
    DeviceFlowSettings,
    arun_device_flow,
    run_device_flow,
)
from modelforge.auth.resolve import (
    ResolvedCredentials,
    access_token_source,
    copilot_token_source,
    env_var_name,
    resolve_credentials,
)
from modelforge.auth.store import credentials_path, get_store
from modelforge.auth.strategies import (
    ApiKeyAuth,
    AuthStrategy,
    DeviceFlowAuth,
    NoAuth,
    get_auth_strategy,
    get_credentials,
    is_interactive,
)
from modelforge.auth.tokens import OAuthTokenSource, StaticTokenSource, TokenRecord, TokenSource

__all__ = [
    "COPILOT_HEADERS",
    "DEFAULT_EXCHANGE_URL",
    "GITHUB_COPILOT_AUTH_DETAILS",
    "ApiKeyAuth",
    "AuthStrategy",
    "CopilotTokenSource",
    "DeviceCodeExpiredError",
    "DeviceFlowAuth",
    "DeviceFlowSettings",
    "NoAuth",
    "OAuthTokenSource",
    "ResolvedCredentials",
    "StaticTokenSource",
    "TokenRecord",
    "TokenSource",
    "access_token_source",
    "arun_device_flow",
    "clear_auth_data",
    "copilot_token_source",
    "credentials_path",
    "credentials_version",
    "default_auth_details",
    "env_var_name",
    "get_auth_data",
    "get_auth_strategy",
    "get_credentials",
    "get_store",
    "is_interactive",
    "resolve_credentials",
    "run_device_flow",
    "save_auth_data",
]
