"""The OAuth 2.0 device authorization grant (RFC 8628) as GitHub speaks it, async-first with a sync twin.

1. POST ``device_code_url`` (``client_id``, ``scope``) → ``device_code``, ``user_code``,
   ``verification_uri``, ``expires_in``, ``interval``.
2. Show the user code through ``on_prompt(user_code, verification_uri)`` (default: print to stderr).
3. Poll ``token_url`` with grant type ``urn:ietf:params:oauth:grant-type:device_code``, waiting
   ``interval`` seconds between polls. GitHub answers in HTTP 200 bodies: ``authorization_pending`` (poll
   again), ``slow_down`` (use the new ``interval`` it sends, else add 5 s), ``expired_token``
   (``DeviceCodeExpiredError``), ``access_denied`` (``DeviceFlowError``); other OAuth errors end the flow
   with ``DeviceFlowError``, 5xx and transport failures with ``NetworkError`` types. Polling stops at
   ``expires_in`` even when the server keeps saying "pending".
4. Save the token response plus ``expires_at`` (ISO 8601, UTC) in the credential store.

All decisions are in ``parse_device_code`` and ``PollState`` (pure, clock passed in); ``run_device_flow``
and ``arun_device_flow`` only do I/O. ``sleep`` and ``clock`` are injectable, so tests never wait.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelforge._secrets import register_secret
from modelforge.auth._http import DEFAULT_TIMEOUT, HttpRequest, HttpResponse, TimeoutSpec, asend, send
from modelforge.auth.auth_data import save_auth_data
from modelforge.auth.tokens import token_auth_data
from modelforge.config_schema import AuthDetails
from modelforge.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DeviceFlowError,
    NetworkError,
    TokenExpiredError,
)

__all__ = [
    "DEVICE_CODE_GRANT",
    "DeviceCode",
    "DeviceCodeExpiredError",
    "DeviceFlowSettings",
    "PollState",
    "arun_device_flow",
    "default_prompt",
    "parse_device_code",
    "run_device_flow",
]

logger = logging.getLogger(__name__)

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5.0
DEFAULT_EXPIRES_IN = 900.0
SLOW_DOWN_STEP = 5.0

PromptCallback = Callable[[str, str], Any]


class DeviceCodeExpiredError(DeviceFlowError, TokenExpiredError):
    """The user code expired before it was entered: both a ``DeviceFlowError`` and a ``TokenExpiredError``."""

    default_code = "DEVICE_CODE_EXPIRED"

    def __init__(self, provider: str, reason: str = "the code expired before it was entered", **kwargs: Any):
        kwargs.setdefault("suggestion", f"Start again with: modelforge auth login --provider {provider}")
        AuthenticationError.__init__(
            self, f"Device login for '{provider}' failed: {reason}", provider=provider, **kwargs
        )
        self.reason = reason


@dataclass(frozen=True)
class DeviceFlowSettings:
    """Where and as whom to run the device flow."""

    provider_name: str
    client_id: str
    device_code_url: str
    token_url: str
    scope: str = ""

    @classmethod
    def from_details(
        cls, provider_name: str, details: AuthDetails | Mapping[str, Any] | None
    ) -> DeviceFlowSettings:
        """Settings from a provider's ``auth_details`` (typed or as the 2.3.0 dict)."""
        if isinstance(details, AuthDetails):
            details = details.model_dump()
        missing = [k for k in ("client_id", "device_code_url", "token_url") if not (details or {}).get(k)]
        if details is None or missing:
            raise ConfigurationError(
                f"Device flow settings missing for '{provider_name}': "
                + (", ".join(missing) if details is not None else "no auth_details"),
                suggestion="Add auth_details with client_id, device_code_url, token_url and scope.",
                error_code="DEVICE_FLOW_MISCONFIGURED",
            )
        return cls(
            provider_name=provider_name,
            client_id=str(details["client_id"]),
            device_code_url=str(details["device_code_url"]),
            token_url=str(details["token_url"]),
            scope=str(details.get("scope") or ""),
        )


@dataclass(frozen=True)
class DeviceCode:
    """The device authorization response."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float
    verification_uri_complete: str | None = None


def device_code_request(settings: DeviceFlowSettings) -> HttpRequest:
    return HttpRequest(
        "POST",
        settings.device_code_url,
        "request a device code",
        headers={"Accept": "application/json"},
        form={"client_id": settings.client_id, "scope": settings.scope},
    )


def token_request(settings: DeviceFlowSettings, code: DeviceCode) -> HttpRequest:
    return HttpRequest(
        "POST",
        settings.token_url,
        "poll for the device-flow token",
        headers={"Accept": "application/json"},
        form={
            "client_id": settings.client_id,
            "device_code": code.device_code,
            "grant_type": DEVICE_CODE_GRANT,
        },
    )


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def parse_device_code(provider: str, response: HttpResponse) -> DeviceCode:
    """The device code from the server's answer, or the error it means."""
    body = response.body
    if response.status >= 500:
        raise NetworkError(
            f"The device-code endpoint failed for '{provider}' (HTTP {response.status})",
            provider=provider,
            status_code=response.status,
        )
    if (
        response.status >= 400
        or response.error
        or not all(body.get(k) for k in ("device_code", "user_code", "verification_uri"))
    ):
        reason = response.error or f"unexpected answer from the device-code endpoint (HTTP {response.status})"
        if response.error_description:
            reason += f": {response.error_description}"
        raise DeviceFlowError(
            provider, reason, status_code=response.status, details={"oauth_error": response.error}
        )
    register_secret(str(body["device_code"]))
    return DeviceCode(
        device_code=str(body["device_code"]),
        user_code=str(body["user_code"]),
        verification_uri=str(body["verification_uri"]),
        expires_in=_number(body.get("expires_in"), DEFAULT_EXPIRES_IN),
        interval=_number(body.get("interval"), DEFAULT_INTERVAL),
        verification_uri_complete=body.get("verification_uri_complete"),
    )


@dataclass
class PollState:
    """What the poller knows: the current interval and the deadline. Pure; the clock is passed in."""

    provider: str
    interval: float
    deadline: float
    polls: int = 0

    @classmethod
    def start(cls, provider: str, code: DeviceCode, *, now: float) -> PollState:
        return cls(provider=provider, interval=code.interval, deadline=now + code.expires_in)

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next poll; raises once the code has expired."""
        remaining = self.deadline - now
        if remaining <= 0:
            raise DeviceCodeExpiredError(
                self.provider, f"the code expired after {self.polls} polls without being entered"
            )
        return min(self.interval, remaining)

    def on_response(self, response: HttpResponse, *, now: float) -> dict[str, Any] | None:
        """The auth data to store when granted, ``None`` to keep polling, or raise why the flow ended."""
        self.polls += 1
        body = response.body
        error = response.error
        if response.status >= 500:
            raise NetworkError(
                f"The token endpoint failed during device login for '{self.provider}' "
                f"(HTTP {response.status})",
                provider=self.provider,
                status_code=response.status,
            )
        if body.get("access_token") and not error:
            return token_auth_data(body, now=now)
        if error == "authorization_pending":
            return None
        if error == "slow_down" or response.status == 429:
            self.interval = _number(body.get("interval"), self.interval + SLOW_DOWN_STEP)
            logger.debug("Device login for %s: slowing down to %gs", self.provider, self.interval)
            return None
        details = {"oauth_error": error}
        if error == "expired_token":
            raise DeviceCodeExpiredError(self.provider, status_code=response.status, details=details)
        if error == "access_denied":
            raise DeviceFlowError(
                self.provider, "access was denied", status_code=response.status, details=details
            )
        reason = error or f"unexpected answer from the token endpoint (HTTP {response.status})"
        if response.error_description:
            reason += f": {response.error_description}"
        raise DeviceFlowError(self.provider, reason, status_code=response.status, details=details)


def default_prompt(user_code: str, verification_uri: str) -> None:
    """Tell the user where to go and what to type (on stderr, so piped output stays clean)."""
    print(
        f"\nTo sign in, open {verification_uri} in a browser and enter the code: {user_code}\n"
        "Waiting for you to finish...",
        file=sys.stderr,
        flush=True,
    )


def run_device_flow(
    settings: DeviceFlowSettings,
    *,
    on_prompt: PromptCallback | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.time,
    http_timeout: TimeoutSpec = DEFAULT_TIMEOUT,
    save: bool = True,
) -> dict[str, Any]:
    """Run the device flow (blocking) and return the stored auth data (token response + ``expires_at``)."""
    provider = settings.provider_name
    logger.info("Starting device login for %s", provider)
    code = parse_device_code(provider, send(device_code_request(settings), http_timeout=http_timeout))
    (on_prompt or default_prompt)(code.user_code, code.verification_uri)
    state = PollState.start(provider, code, now=clock())
    request = token_request(settings, code)
    while True:
        sleep(state.next_delay(clock()))
        data = state.on_response(send(request, http_timeout=http_timeout), now=clock())
        if data is not None:
            break
    if save:
        save_auth_data(provider, data)
    logger.info("Device login for %s succeeded after %d polls", provider, state.polls)
    return data


async def arun_device_flow(
    settings: DeviceFlowSettings,
    *,
    on_prompt: PromptCallback | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
    http_timeout: TimeoutSpec = DEFAULT_TIMEOUT,
    save: bool = True,
) -> dict[str, Any]:
    """The async twin of ``run_device_flow``: httpx.AsyncClient and ``asyncio.sleep``, never blocking."""
    provider = settings.provider_name
    logger.info("Starting device login for %s", provider)
    code = parse_device_code(provider, await asend(device_code_request(settings), http_timeout=http_timeout))
    shown = (on_prompt or default_prompt)(code.user_code, code.verification_uri)
    if inspect.isawaitable(shown):
        await shown
    state = PollState.start(provider, code, now=clock())
    request = token_request(settings, code)
    while True:
        await sleep(state.next_delay(clock()))
        data = state.on_response(await asend(request, http_timeout=http_timeout), now=clock())
        if data is not None:
            break
    if save:
        await asyncio.to_thread(save_auth_data, provider, data)
    logger.info("Device login for %s succeeded after %d polls", provider, state.polls)
    return data
