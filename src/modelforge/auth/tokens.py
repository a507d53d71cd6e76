"""OAuth tokens: the stored record, its expiry, and a token source that refreshes before expiry.

``TokenRecord`` reads the 2.3.0 stored form (the OAuth token response plus ``expires_at`` in ISO 8601)
and ours (the same). ``token_auth_data`` turns a token response into that stored form. A ``TokenSource``
hands out a valid access token, sync (``get_token``) or async (``aget_token``).
``OAuthTokenSource`` refreshes through the OAuth ``refresh_token`` grant when the token is within
``skew`` seconds (60 by default) of ``expires_at``; concurrent callers (threads, asyncio tasks or both)
share one refresh, whose result is saved to the credential store: in the scope the token was stored in,
without touching any config file (a token still in a 2.3.0 config file's ``auth_data`` moves into the
store with its first refresh, through ``save_auth_data``). Without a refresh token an expiring
token raises ``TokenExpiredError`` telling the user to log in again. The clock is injectable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from modelforge._secrets import mask, register_secret
from modelforge.auth._http import DEFAULT_TIMEOUT, HttpRequest, HttpResponse, TimeoutSpec, asend, send
from modelforge.auth._singleflight import SingleFlight
from modelforge.auth.auth_data import save_auth_data
from modelforge.auth.keyring_store import register_credential_secrets
from modelforge.auth.store import Stored, find_stored, load_scope, store_credentials
from modelforge.exceptions import AuthenticationError, NetworkError, TokenExpiredError

__all__ = [
    "DEFAULT_SKEW_SECONDS",
    "OAuthTokenSource",
    "StaticTokenSource",
    "TokenRecord",
    "TokenSource",
    "format_expires_at",
    "parse_expires_at",
    "token_auth_data",
]

logger = logging.getLogger(__name__)

DEFAULT_SKEW_SECONDS = 60.0
Clock = Callable[[], float]


@runtime_checkable
class TokenSource(Protocol):
    """Something that hands out a currently valid access token."""

    def get_token(self) -> str: ...

    async def aget_token(self) -> str: ...


def parse_expires_at(value: Any) -> float | None:
    """Unix seconds from an ISO 8601 string (naive means UTC; ``Z`` accepted) or a number."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        text = str(value).strip()
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        logger.warning("Ignoring an unreadable token expiry time")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_expires_at(timestamp: float) -> str:
    """ISO 8601 in UTC, as 2.3.0 wrote it (``2025-01-01T12:00:00+00:00``)."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def token_auth_data(
    body: Mapping[str, Any], *, now: float, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The stored form of a token response: the response plus ``expires_at`` (and the old refresh token
    when the server did not rotate it)."""
    data = {k: v for k, v in body.items() if k not in ("error", "error_description", "error_uri")}
    expires_in = _seconds(data.get("expires_in"))
    if expires_in is not None:
        data["expires_at"] = format_expires_at(now + expires_in)
    else:
        data.pop("expires_at", None)
    refresh_in = _seconds(data.get("refresh_token_expires_in"))
    if refresh_in is not None:
        data["refresh_token_expires_at"] = format_expires_at(now + refresh_in)
    if previous and not data.get("refresh_token") and previous.get("refresh_token"):
        data["refresh_token"] = previous["refresh_token"]
        if previous.get("refresh_token_expires_at"):
            data["refresh_token_expires_at"] = previous["refresh_token_expires_at"]
    register_credential_secrets(data)
    return data


def _seconds(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class TokenRecord:
    """An access token with its optional refresh token and expiry (unix seconds)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        register_secret(self.access_token)
        register_secret(self.refresh_token)

    def __repr__(self) -> str:
        refresh = "yes" if self.refresh_token else "no"
        token = mask(self.access_token)
        return f"TokenRecord(access_token={token!r}, refresh={refresh}, expires_at={self.expires_at})"

    @classmethod
    def from_auth_data(cls, data: Mapping[str, Any] | None) -> TokenRecord | None:
        """The record in stored auth data, or ``None`` when it holds no access token."""
        if not data or not data.get("access_token"):
            return None
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
            expires_at=parse_expires_at(data.get("expires_at")),
            data=dict(data),
        )

    def is_fresh(self, now: float, skew: float = DEFAULT_SKEW_SECONDS) -> bool:
        """True unless the token expires within ``skew`` seconds of ``now``."""
        return self.expires_at is None or now + skew < self.expires_at


class StaticTokenSource:
    """A token that never needs refreshing (from ``MODELFORGE_<PROVIDER>_ACCESS_TOKEN``, say)."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._token = token

    def __repr__(self) -> str:
        return f"StaticTokenSource({mask(self._token)!r})"

    def get_token(self) -> str:
        return self._token

    async def aget_token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        """Nothing to refresh: a static token stays what it is."""


def refresh_request(token_url: str, client_id: str, refresh_token: str) -> HttpRequest:
    """The OAuth ``refresh_token`` grant request."""
    return HttpRequest(
        "POST",
        token_url,
        "refresh the OAuth access token",
        headers={"Accept": "application/json"},
        form={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
    )


def interpret_refresh(
    provider: str, response: HttpResponse, *, now: float, previous: TokenRecord
) -> TokenRecord:
    """The new record from a refresh response, or the error it means (pure: no I/O)."""
    if response.status >= 500:
        raise NetworkError(
            f"The token server failed while refreshing the token for '{provider}' (HTTP {response.status})",
            provider=provider,
            status_code=response.status,
        )
    if response.body.get("access_token") and not response.error:
        data = token_auth_data(response.body, now=now, previous=previous.data)
        return TokenRecord(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
            expires_at=parse_expires_at(data.get("expires_at")),
            data=data,
        )
    reason = response.error or f"HTTP {response.status}"
    if response.error in (None, "bad_refresh_token", "invalid_grant", "expired_token", "unauthorized_client"):
        raise TokenExpiredError(
            provider,
            f"The access token for '{provider}' expired and the refresh was refused ({reason})",
            status_code=response.status,
        )
    raise AuthenticationError(
        f"Refreshing the access token for '{provider}' failed ({reason})",
        provider=provider,
        status_code=response.status,
        suggestion=f"Log in again with: modelforge auth login --provider {provider}",
    )


def _has_access_token(data: Mapping[str, Any]) -> bool:
    return bool(data.get("access_token"))


class OAuthTokenSource:
    """An OAuth access token that is refreshed (once, for all concurrent callers) before it expires.

    ``origin`` is what ``store.lookup`` found the token as: a refresh looks for a newer token in that
    same scope and saves the new one there. Without it, the stored token in effect is used.
    """

    def __init__(
        self,
        provider_name: str,
        *,
        initial: TokenRecord | Mapping[str, Any] | None = None,
        token_url: str | None = None,
        client_id: str | None = None,
        skew: float = DEFAULT_SKEW_SECONDS,
        clock: Clock = time.time,
        http_timeout: TimeoutSpec = DEFAULT_TIMEOUT,
        persist: bool = True,
        origin: Stored | None = None,
    ) -> None:
        self.provider_name = provider_name
        self.token_url = token_url
        self.client_id = client_id
        self.skew = skew
        self.clock = clock
        self.http_timeout = http_timeout
        self.persist = persist
        self.origin = origin
        if initial is None and origin is not None:
            initial = origin.data
        self._record = initial if isinstance(initial, TokenRecord) else TokenRecord.from_auth_data(initial)
        self._stale = False
        self._flight: SingleFlight[TokenRecord] = SingleFlight()

    def __repr__(self) -> str:
        return f"OAuthTokenSource({self.provider_name!r}, record={self._record!r})"

    @property
    def record(self) -> TokenRecord | None:
        """The token currently held (possibly stale)."""
        return self._record

    def invalidate(self) -> None:
        """Treat the current token as expired: the next caller refreshes it (e.g. after a 401)."""
        self._stale = True

    def get_token(self) -> str:
        """A valid access token, refreshing first when it is about to expire (blocking)."""
        return self._flight.run(self._current, self._refresh).access_token

    async def aget_token(self) -> str:
        """A valid access token, refreshing first when it is about to expire (non-blocking)."""
        return (await self._flight.arun(self._current, self._arefresh)).access_token

    # -- decisions --

    def _current(self) -> TokenRecord | None:
        record = self._record
        if record is not None and not self._stale and record.is_fresh(self.clock(), self.skew):
            return record
        return None

    def _stored(self) -> Stored | None:
        """The token in the credential store now (another process may have refreshed it)."""
        if not self.persist:
            return None
        if self.origin is not None:  # look where the token was found, as the lookup order would
            return load_scope(self.provider_name, self.origin.scope, _has_access_token)
        return find_stored(self.provider_name, accept=_has_access_token)

    def _newer(self, stored: Stored | None) -> TokenRecord | None:
        """The stored token when it is not the one held (fresh, or with a newer refresh token)."""
        record = TokenRecord.from_auth_data(stored.data) if stored is not None else None
        current = self._record
        if record is None or (current is not None and record.access_token == current.access_token):
            return None
        return record

    def _save(self, record: TokenRecord, stored: Stored | None) -> None:
        """Persist a refreshed token: back into its store scope (no config I/O), or, when it was not in
        the store (2.3.0 ``auth_data``), through ``save_auth_data``, which moves it out of the config."""
        home = stored or (self.origin if self.origin is not None and self.origin.source == "store" else None)
        if home is not None:
            store_credentials(self.provider_name, dict(record.data), scope=home.scope)
        else:
            save_auth_data(self.provider_name, dict(record.data))

    def _start(self, stored: TokenRecord | None) -> TokenRecord | HttpRequest:
        """Decide: adopt a fresh stored token, or the refresh request to send (raises if impossible)."""
        if stored is not None:
            if stored.is_fresh(self.clock(), self.skew):
                return self._adopt(stored)
            self._record = stored
        record = self._record
        if record is None:
            raise AuthenticationError(
                f"No access token for provider '{self.provider_name}'",
                provider=self.provider_name,
                suggestion=f"Log in with: modelforge auth login --provider {self.provider_name}",
            )
        if not record.refresh_token or not self.token_url or not self.client_id:
            raise TokenExpiredError(
                self.provider_name,
                f"The access token for '{self.provider_name}' has expired and cannot be refreshed",
            )
        logger.info("Refreshing the access token for %s", self.provider_name)
        return refresh_request(self.token_url, self.client_id, record.refresh_token)

    def _finish(self, response: HttpResponse) -> TokenRecord:
        previous = self._record
        if previous is None:  # pragma: no cover - _start guarantees a record
            raise TokenExpiredError(self.provider_name)
        return interpret_refresh(self.provider_name, response, now=self.clock(), previous=previous)

    def _adopt(self, record: TokenRecord) -> TokenRecord:
        self._record = record
        self._stale = False
        return record

    # -- I/O: the sync and async refresh --

    def _refresh(self) -> TokenRecord:
        stored = self._stored()
        step = self._start(self._newer(stored))
        if isinstance(step, TokenRecord):
            return step
        record = self._finish(send(step, http_timeout=self.http_timeout))
        if self.persist:
            self._save(record, stored)
        return self._adopt(record)

    async def _arefresh(self) -> TokenRecord:
        stored = await asyncio.to_thread(self._stored)
        step = self._start(self._newer(stored))
        if isinstance(step, TokenRecord):
            return step
        record = self._finish(await asend(step, http_timeout=self.http_timeout))
        if self.persist:
            await asyncio.to_thread(self._save, record, stored)
        return self._adopt(record)
