"""GitHub Copilot: exchanging the GitHub OAuth token for the short-lived Copilot API token.

``GET https://api.github.com/copilot_internal/v2/token`` with ``Authorization: token <oauth token>`` and
editor headers answers ``{token, expires_at (unix s), refresh_in, endpoints: {api}}``. A
``CopilotTokenSource`` caches that token and exchanges again before it expires (at ``refresh_in``, or
``skew`` seconds before ``expires_at``, whichever is first), once for all concurrent callers (threads and
asyncio tasks). 401/403 become ``AuthenticationError`` telling the user to log in again.

The source is usable directly as ``langchain_openai.ChatOpenAI(api_key=...)``: calling it returns the
token (sync); ``acall`` / ``async_callable()`` are the async forms. ``api_base`` is the API endpoint the
last exchange named. ``COPILOT_HEADERS`` are the headers the chat endpoint expects as well.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelforge._secrets import mask, register_secret
from modelforge.auth._http import DEFAULT_TIMEOUT, HttpRequest, HttpResponse, TimeoutSpec, asend, send
from modelforge.auth._singleflight import SingleFlight
from modelforge.auth.tokens import DEFAULT_SKEW_SECONDS, TokenSource
from modelforge.config_schema import AuthDetails
from modelforge.exceptions import AuthenticationError, NetworkError, RateLimitError

__all__ = [
    "COPILOT_HEADERS",
    "DEFAULT_EXCHANGE_URL",
    "GITHUB_COPILOT_AUTH_DETAILS",
    "CopilotToken",
    "CopilotTokenSource",
    "default_auth_details",
    "exchange_request",
    "interpret_exchange",
]

logger = logging.getLogger(__name__)

DEFAULT_EXCHANGE_URL = "https://api.github.com/copilot_internal/v2/token"

# What the Copilot endpoints expect from an editor integration (the exchange and the chat API both).
COPILOT_HEADERS: Mapping[str, str] = {
    "Editor-Version": "vscode/1.99.3",
    "Editor-Plugin-Version": "copilot-chat/0.26.7",
    "Copilot-Integration-Id": "vscode-chat",
    "User-Agent": "GitHubCopilotChat/0.26.7",
}

# The 2.3.0 defaults for the github_copilot provider's device flow.
GITHUB_COPILOT_AUTH_DETAILS: Mapping[str, str] = {
    "client_id": "01ab8ac9400c4e429b23",
    "device_code_url": "https://github.com/login/device/code",
    "token_url": "https://github.com/login/oauth/access_token",
    "scope": "read:user",
}


def default_auth_details(provider_name: str, llm_type: str | None) -> AuthDetails | None:
    """The device-flow settings a provider gets when its config has no ``auth_details``: GitHub's
    (``GITHUB_COPILOT_AUTH_DETAILS``) for ``llm_type`` ``github_copilot`` or a provider named so, else
    ``None``."""
    if llm_type == "github_copilot" or provider_name == "github_copilot":
        return AuthDetails.model_validate(dict(GITHUB_COPILOT_AUTH_DETAILS))
    return None


OAuthProvider = TokenSource | Callable[[], str] | Callable[[], Awaitable[str]] | str


@dataclass(frozen=True)
class CopilotToken:
    """One exchanged Copilot token and when to exchange again (unix seconds)."""

    token: str = field(repr=False)
    expires_at: float
    refresh_at: float
    api_base: str | None = None

    def __repr__(self) -> str:
        return f"CopilotToken({mask(self.token)!r}, expires_at={self.expires_at}, api_base={self.api_base!r})"


def exchange_request(exchange_url: str, oauth_token: str, headers: Mapping[str, str]) -> HttpRequest:
    return HttpRequest(
        "GET",
        exchange_url,
        "exchange the GitHub token for a Copilot token",
        headers={**headers, "Accept": "application/json", "Authorization": f"token {oauth_token}"},
    )


def interpret_exchange(
    provider: str, response: HttpResponse, *, now: float, skew: float = DEFAULT_SKEW_SECONDS
) -> CopilotToken:
    """The Copilot token in an exchange response, or the error it means (pure: no I/O)."""
    login = f"Log in again with: modelforge auth login --provider {provider}"
    status = response.status
    if status in (401, 403):
        what = "rejected the GitHub token" if status == 401 else "refused Copilot access for this account"
        raise AuthenticationError(
            f"GitHub {what} (HTTP {status})", provider=provider, status_code=status, suggestion=login
        )
    if status == 429:
        raise RateLimitError(provider, retry_after=_float(response.headers.get("retry-after")))
    if status >= 500:
        raise NetworkError(
            f"The Copilot token exchange failed (HTTP {status})", provider=provider, status_code=status
        )
    body = response.body
    token = body.get("token")
    if status >= 400 or not isinstance(token, str) or not token:
        raise AuthenticationError(
            f"The Copilot token exchange gave no token (HTTP {status})",
            provider=provider,
            status_code=status,
            suggestion="Check that this GitHub account has Copilot access; " + login,
        )
    register_secret(token)
    expires_at = _float(body.get("expires_at")) or now + 25 * 60
    refresh_at = expires_at - skew
    refresh_in = _float(body.get("refresh_in"))
    if refresh_in is not None:
        refresh_at = min(refresh_at, now + refresh_in)
    endpoints = body.get("endpoints")
    api = endpoints.get("api") if isinstance(endpoints, dict) else None
    return CopilotToken(token=token, expires_at=expires_at, refresh_at=refresh_at, api_base=api or None)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


class CopilotTokenSource:
    """A Copilot API token, exchanged from the GitHub OAuth token and renewed before it expires."""

    def __init__(
        self,
        oauth: OAuthProvider,
        exchange_url: str | None = None,
        *,
        provider_name: str = "github_copilot",
        http_timeout: TimeoutSpec = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        skew: float = DEFAULT_SKEW_SECONDS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(oauth, str):
            register_secret(oauth)
        self._oauth = oauth
        self.exchange_url = exchange_url or DEFAULT_EXCHANGE_URL
        self.provider_name = provider_name
        self.http_timeout = http_timeout
        self.clock = clock
        self.skew = skew
        self.headers: Mapping[str, str] = dict(COPILOT_HEADERS if headers is None else headers)
        self._token: CopilotToken | None = None
        self._flight: SingleFlight[CopilotToken] = SingleFlight()

    def __repr__(self) -> str:
        return f"CopilotTokenSource({self.exchange_url!r}, token={self._token!r})"

    @property
    def api_base(self) -> str | None:
        """The ``endpoints.api`` of the last exchange (e.g. ``https://api.individual.githubcopilot.com``)."""
        return self._token.api_base if self._token else None

    def invalidate(self) -> None:
        """Drop the cached Copilot token; the next caller exchanges again (e.g. after a 401)."""
        self._token = None

    # -- the token, sync and async --

    def get_token(self) -> str:
        """A valid Copilot token, exchanging first when needed (blocking)."""
        return self._flight.run(self._current, self._exchange).token

    async def aget_token(self) -> str:
        """A valid Copilot token, exchanging first when needed (non-blocking)."""
        return (await self._flight.arun(self._current, self._aexchange)).token

    def __call__(self) -> str:
        """``ChatOpenAI(api_key=source)`` calls this before each request."""
        return self.get_token()

    async def acall(self) -> str:
        return await self.aget_token()

    def async_callable(self) -> Callable[[], Awaitable[str]]:
        """A coroutine function giving the token, for clients that take an async ``api_key``."""
        return self.acall

    # -- decisions and I/O --

    def _current(self) -> CopilotToken | None:
        token = self._token
        return token if token is not None and self.clock() < token.refresh_at else None

    def _oauth_token_sync(self) -> str:
        oauth = self._oauth
        if isinstance(oauth, str):
            return oauth
        if isinstance(oauth, TokenSource):
            return oauth.get_token()
        value = oauth()
        if inspect.isawaitable(value):
            raise TypeError("The OAuth token provider is async; use aget_token()/acall()")
        return value

    async def _oauth_token_async(self) -> str:
        oauth = self._oauth
        if isinstance(oauth, str):
            return oauth
        if isinstance(oauth, TokenSource):
            return await oauth.aget_token()
        value = oauth()
        return await value if inspect.isawaitable(value) else value

    def _adopt(self, response: HttpResponse) -> CopilotToken:
        token = interpret_exchange(self.provider_name, response, now=self.clock(), skew=self.skew)
        self._token = token
        logger.debug("Exchanged a Copilot token for %s", self.provider_name)
        return token

    def _exchange(self) -> CopilotToken:
        request = exchange_request(self.exchange_url, self._oauth_token_sync(), self.headers)
        return self._adopt(send(request, http_timeout=self.http_timeout))

    async def _aexchange(self) -> CopilotToken:
        request = exchange_request(self.exchange_url, await self._oauth_token_async(), self.headers)
        return self._adopt(await asend(request, http_timeout=self.http_timeout))
