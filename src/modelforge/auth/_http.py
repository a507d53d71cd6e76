"""The thin HTTP edge of the auth package: one request type, a sync and an async sender, error mapping.

Every OAuth and token-exchange call in ``modelforge.auth`` is described as an ``HttpRequest`` by pure code
and sent by ``send`` or ``asend``; both return an ``HttpResponse`` whose body is already parsed (JSON, or
the form encoding GitHub falls back to), so the decisions about a response live in one place for both
twins. Transport failures of httpx are translated here, once, into ``NetworkTimeoutError`` and
``NetworkConnectionError``; nothing from a request or response body is put into those messages.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from modelforge.exceptions import NetworkConnectionError, NetworkError, NetworkTimeoutError

__all__ = ["DEFAULT_TIMEOUT", "HttpRequest", "HttpResponse", "TimeoutSpec", "asend", "send"]

logger = logging.getLogger(__name__)

TimeoutSpec = float | httpx.Timeout
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


@dataclass(frozen=True)
class HttpRequest:
    """One request to an auth endpoint. ``form`` is sent url-encoded; headers may hold secrets (no repr)."""

    method: str
    url: str
    operation: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    form: Mapping[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class HttpResponse:
    """A response with its body parsed into a dict (empty when the body is neither JSON nor a form)."""

    status: int
    body: dict[str, Any] = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def error(self) -> str | None:
        """The OAuth ``error`` code in the body, if any."""
        value = self.body.get("error")
        return str(value) if value else None

    @property
    def error_description(self) -> str:
        """The OAuth ``error_description`` (or GitHub's ``message``), or an empty string."""
        value = self.body.get("error_description") or self.body.get("message") or ""
        return str(value)


def parse_body(content: bytes, content_type: str) -> dict[str, Any]:
    """Parse a response body: JSON when it is JSON, else ``application/x-www-form-urlencoded``."""
    text = content.decode("utf-8", errors="replace").strip()
    if not text:
        return {}
    if "json" in content_type or text[:1] in "{[":
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    if "=" in text and "<" not in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return {}


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every auth request (building one costs ~0.1 s)."""
    return httpx.create_ssl_context()


def _response(resp: httpx.Response) -> HttpResponse:
    return HttpResponse(
        status=resp.status_code,
        body=parse_body(resp.content, resp.headers.get("content-type", "")),
        headers=dict(resp.headers),
    )


def _timeout_seconds(http_timeout: TimeoutSpec) -> float | None:
    if isinstance(http_timeout, httpx.Timeout):
        return http_timeout.read
    return float(http_timeout)


def _translate(err: httpx.HTTPError, request: HttpRequest, http_timeout: TimeoutSpec) -> NetworkError:
    if isinstance(err, httpx.TimeoutException):
        return NetworkTimeoutError(request.operation, timeout=_timeout_seconds(http_timeout), url=request.url)
    if isinstance(err, httpx.TransportError):
        return NetworkConnectionError(
            request.operation, url=request.url, details={"reason": type(err).__name__}
        )
    return NetworkError(f"HTTP request failed: {request.operation}", details={"url": request.url})


def send(request: HttpRequest, *, http_timeout: TimeoutSpec = DEFAULT_TIMEOUT) -> HttpResponse:
    """Send ``request`` with a short-lived ``httpx.Client``; transport errors become ``NetworkError``s."""
    logger.debug("%s %s (%s)", request.method, request.url, request.operation)
    try:
        with httpx.Client(timeout=http_timeout, verify=_ssl_context()) as client:
            resp = client.request(
                request.method, request.url, headers=dict(request.headers), data=_form(request)
            )
    except httpx.HTTPError as err:
        raise _translate(err, request, http_timeout) from err
    return _response(resp)


async def asend(request: HttpRequest, *, http_timeout: TimeoutSpec = DEFAULT_TIMEOUT) -> HttpResponse:
    """The async twin of ``send``, on ``httpx.AsyncClient`` (never blocks the event loop)."""
    logger.debug("%s %s (%s)", request.method, request.url, request.operation)
    try:
        async with httpx.AsyncClient(timeout=http_timeout, verify=_ssl_context()) as client:
            resp = await client.request(
                request.method, request.url, headers=dict(request.headers), data=_form(request)
            )
    except httpx.HTTPError as err:
        raise _translate(err, request, http_timeout) from err
    return _response(resp)


def _form(request: HttpRequest) -> dict[str, str] | None:
    return dict(request.form) if request.form is not None else None
