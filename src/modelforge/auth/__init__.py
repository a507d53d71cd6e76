"""Credentials for ModelForge providers: strategies, the credential store, device flow, token refresh.

The 2.3.0 names (``AuthStrategy``, ``ApiKeyAuth``, ``DeviceFlowAuth``, ``NoAuth``, ``get_auth_strategy``,
``get_credentials``, ``get_auth_data``, ``save_auth_data``, ``clear_auth_data``) keep their signatures.
The registry uses ``resolve_credentials`` (env > store > legacy config, never interactive),
``access_token_source`` (a device-flow token refreshed before expiry) and ``copilot_token_source`` (the
GitHub Copilot token exchange, usable as ``ChatOpenAI(api_key=...)``).

Modules: ``store`` (credentials file / OS keyring / legacy ``auth_data``), ``device_flow`` (RFC 8628,
async with a sync twin), ``tokens`` (token records and refreshing sources), ``copilot`` (token exchange),
``resolve`` (lookup order for the registry), ``strategies`` (the 2.3.0 classes).
"""

from __future__ import annotations

from modelforge.auth.copilot import (
    COPILOT_HEADERS,
    DEFAULT_EXCHANGE_URL,
    GITHUB_COPILOT_AUTH_DETAILS,
    CopilotTokenSource,
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
from modelforge.auth.store import (
    clear_auth_data,
    credentials_path,
    get_auth_data,
    get_store,
    save_auth_data,
)
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
