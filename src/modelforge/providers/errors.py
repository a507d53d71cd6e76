"""Turning what a provider answered into ModelForge errors: one mapping shared by every provider family.

A provider module only has to say how to read its SDK's exception (``HttpFailure``: status, headers,
message, error type); the status-to-exception mapping, ``Retry-After`` parsing (``retry-after-ms``,
seconds, HTTP date; nonsense such as ``nan`` or a date in the past ignored, huge values capped) and the
rate-limit headers (``x-ratelimit-*``, ``anthropic-ratelimit-*``) live here once. Errors are classified by
status and structured error type, never by searching the message for words like "token".
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelforge.exceptions import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    InvalidApiKeyError,
    MalformedResponseError,
    ModelForgeError,
    ModelNotFoundError,
    NetworkConnectionError,
    NetworkTimeoutError,
    ProviderError,
    ProviderOverloadedError,
    ProviderServerError,
    RateLimitError,
)

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "HttpFailure",
    "error_from_http",
    "header_dict",
    "parse_retry_after",
    "rate_limit_headers",
    "read_stainless_failure",
    "status_of_stream_error",
    "transport_error",
]

# A Retry-After beyond this is treated as "a long time": callers cap their own waits below it anyway.
MAX_RETRY_AFTER_SECONDS = 3600.0

_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
_CONTEXT_PHRASES = ("maximum context length", "prompt is too long", "context window", "too many tokens")
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached"}


@dataclass(frozen=True)
class HttpFailure:
    """What a provider answered, read out of its SDK's exception."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    error_type: str | None = None  # the structured code/type in the body, e.g. "insufficient_quota"
    request_id: str | None = None


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date); None if absent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        seconds = _finite_non_negative(raw_ms)
        if seconds is not None:
            return min(seconds / 1000.0, MAX_RETRY_AFTER_SECONDS)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _finite_non_negative(raw)
    if seconds is None:
        try:
            parsed = email.utils.parsedate_to_datetime(raw.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if parsed is None:
            return None
        seconds = max(parsed.timestamp() - now(), 0.0)
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def _finite_non_negative(value: str) -> float | None:
    try:
        number = float(value.strip())
    except (ValueError, AttributeError):
        return None
    if math.isnan(number) or number < 0:
        return None
    return number if math.isfinite(number) else MAX_RETRY_AFTER_SECONDS


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's rate-limit bookkeeping headers, lower-cased, for ``details['rate_limit']``."""
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith(("x-ratelimit-", "anthropic-ratelimit-", "ratelimit-"))
    }


def error_from_http(failure: HttpFailure, *, provider: str, model: str | None = None) -> ModelForgeError:
    """The ModelForge error for an HTTP failure answered by ``provider``."""
    status = failure.status
    headers = failure.headers
    retry_after = parse_retry_after(headers)
    common: dict[str, Any] = {
        "status_code": status,
        "request_id": failure.request_id,
        "details": {"provider_message": failure.message, "rate_limit": rate_limit_headers(headers)},
        "context": f"{provider}/{model}" if model else provider,
    }
    should_retry = _should_retry_header(headers)
    if should_retry is not None:
        common["retryable"] = should_retry
    error_type = (failure.error_type or "").lower()
    reason = failure.message or f"HTTP {status}"

    if status == 429:
        if error_type in _QUOTA_CODES:
            return RateLimitError(
                provider,
                retry_after,
                message=f"Quota exhausted for provider '{provider}': {reason}",
                suggestion="Add credit or raise the quota in the provider's console; retrying will not help.",
                retryable=False,
                **{k: v for k, v in common.items() if k != "retryable"},
            )
        return RateLimitError(provider, retry_after, **common)
    if status == 401:
        return InvalidApiKeyError(
            provider, f"Provider '{provider}' rejected the credentials (HTTP 401): {reason}", **common
        )
    if status == 403:
        return AuthenticationError(
            f"Provider '{provider}' refused access (HTTP 403): {reason}",
            provider=provider,
            suggestion="Check that this key or account may use this model.",
            **common,
        )
    if status == 404:
        return ModelNotFoundError(provider, model or "(unknown)", retry_after=retry_after, **common)
    if status == 408:
        return NetworkTimeoutError(f"request to {provider}", provider=provider, **common)
    if status in (400, 413, 422):
        lowered = reason.lower()
        if error_type in _CONTEXT_CODES or any(phrase in lowered for phrase in _CONTEXT_PHRASES):
            return ContextLengthExceededError(
                f"The request is too long for {model or 'the model'}: {reason}",
                provider=provider,
                suggestion="Shorten the conversation or lower max_tokens.",
                **common,
            )
        return BadRequestError(
            f"Provider '{provider}' rejected the request: {reason}", provider=provider, **common
        )
    if status in (503, 529):
        return ProviderOverloadedError(
            f"Provider '{provider}' is overloaded (HTTP {status}): {reason}",
            provider=provider,
            retry_after=retry_after,
            suggestion="Retry later, or fall back to another provider.",
            **common,
        )
    if status >= 500:
        return ProviderServerError(
            f"Provider '{provider}' failed (HTTP {status}): {reason}",
            provider=provider,
            retry_after=retry_after,
            **common,
        )
    return ProviderError(
        f"Provider '{provider}' answered HTTP {status}: {reason}",
        provider=provider,
        retryable=status == 409,
        **{k: v for k, v in common.items() if k != "retryable"},
    )


def _should_retry_header(headers: Mapping[str, str]) -> bool | None:
    value = {k.lower(): v for k, v in headers.items()}.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def transport_error(err: BaseException, *, provider: str, url: str | None = None) -> ModelForgeError | None:
    """A timeout, a connection failure or an unreadable answer under any SDK (found by walking the cause
    chain), else None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lineage = {cls.__name__ for cls in type(current).__mro__}
        if isinstance(current, TimeoutError) or lineage & _TIMEOUT_CLASSES:
            return NetworkTimeoutError(f"request to {provider}", url=url, provider=provider)
        if isinstance(current, ConnectionError) or lineage & _CONNECTION_CLASSES:
            return NetworkConnectionError(
                f"request to {provider} ({type(current).__name__})", url=url, provider=provider
            )
        if lineage & _MALFORMED_CLASSES:
            return MalformedResponseError(provider, f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return None


# Matched by class name so that every httpx flavour (the OpenAI SDK vendors its own) and every SDK's
# wrapper is recognised without importing them all.
_TIMEOUT_CLASSES = {"TimeoutException", "APITimeoutError"}
_CONNECTION_CLASSES = {"TransportError", "APIConnectionError", "RemoteProtocolError"}
_MALFORMED_CLASSES = {"JSONDecodeError", "UnknownApiResponseError", "APIResponseValidationError"}


def header_dict(headers: Any) -> dict[str, str]:
    """A plain dict from any SDK's headers object (httpx flavours, dicts, None)."""
    if not headers:
        return {}
    try:
        return {str(k): str(v) for k, v in headers.items()}
    except AttributeError:
        return {}


# The error types and codes providers send inside a stream that has already answered HTTP 200 (OpenAI's
# ``data: {"error": ...}``, the Responses API's ``error`` / ``response.failed`` events, Anthropic's
# ``event: error``, Gemini's error payloads), and the HTTP status each stands for, so a failure that comes
# mid-stream is typed and retried as the same failure answered up front would be.
_STREAM_ERROR_STATUS = {
    # Anthropic (https://docs.anthropic.com/en/api/errors)
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    # OpenAI Chat Completions and Responses
    "server_error": 500,
    "service_unavailable": 503,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    # Gemini (google.rpc.Code names)
    "unavailable": 503,
    "resource_exhausted": 429,
    "internal": 500,
    "deadline_exceeded": 504,
    "invalid_argument": 400,
}


# Code families of OpenAI's Responses API errors (``invalid_prompt``, ``invalid_image_url``,
# ``image_too_large``, ``image_content_policy_violation``...): the request's fault, not worth a retry.
_REQUEST_FAULT_PREFIXES = ("invalid_", "image_", "empty_image", "unsupported_")
_REQUEST_FAULT_PARTS = ("content_policy", "too_large", "not_supported")


def status_of_stream_error(error_type: str | int | None, *, default: int = 500) -> int:
    """The HTTP status an in-stream error of ``error_type`` stands for (``default`` when unknown).

    A numeric code of 400-599 (OpenRouter and LiteLLM send ``{"error": {"code": 429, ...}}``) is that
    status; known type names map as the table says; names that describe a fault of the request
    (``invalid_*``, ``*_content_policy_violation``...) are 400; ``*_timeout`` is 504.
    """
    if isinstance(error_type, bool) or error_type is None:
        return default
    if isinstance(error_type, int):
        return error_type if 400 <= error_type <= 599 else default
    name = str(error_type).strip().lower()
    if name.isdigit() and 400 <= int(name) <= 599:
        return int(name)
    if name in _STREAM_ERROR_STATUS:
        return _STREAM_ERROR_STATUS[name]
    if name.startswith(_REQUEST_FAULT_PREFIXES) or any(part in name for part in _REQUEST_FAULT_PARTS):
        return 400
    if name.endswith("_timeout"):
        return 504
    return default


def read_stainless_failure(err: BaseException, module_name: str) -> HttpFailure | None:
    """Read an ``APIStatusError`` of the OpenAI or Anthropic SDK (both share one generated design), or the
    ``APIError`` / status-200 error they raise for an error event inside a stream (typed by its error type).
    """
    if type(err).__module__.split(".")[0] != module_name:
        return None
    response = getattr(err, "response", None)
    body = getattr(err, "body", None)
    error_type = getattr(err, "code", None) or getattr(err, "type", None)
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict):
        error_type = inner.get("code") or inner.get("type") or error_type
    elif isinstance(body, dict) and ("message" in body or "type" in body):  # OpenAI's in-stream error body
        error_type = body.get("code") or body.get("type") or error_type
    status = getattr(err, "status_code", None)
    if status is None and not hasattr(err, "request"):  # not an API error at all
        return None
    if status is None or int(status) < 400:  # an error event inside a stream that answered 200
        if not error_type and body is None:
            return None
        status = status_of_stream_error(error_type)
    message = getattr(err, "api_message", None) or getattr(err, "message", "") or str(err)
    return HttpFailure(
        status=int(status),
        headers=header_dict(getattr(response, "headers", None)),
        message=str(message),
        error_type=str(error_type) if error_type else None,
        request_id=getattr(err, "request_id", None),
    )
