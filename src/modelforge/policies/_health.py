"""Whether a failure says anything about a provider's health, whichever library raised it.

``counts_against_health`` is what circuit breakers count: 5xx, 529 / overloaded, 429, timeouts, connection
resets and malformed answers (the ModelForge errors marked ``retryable``, or an SDK error with such a
status). 400, 401, 403, 404, context length and our own validation errors say nothing about the provider.
"""

from __future__ import annotations

from modelforge.exceptions import AllProvidersFailedError, CircuitOpenError, ModelForgeError

__all__ = ["counts_against_health", "is_transport_error", "status_of"]

# Class names of transport failures of the HTTP stacks under the SDKs (httpx, openai, anthropic).
_TRANSPORT_ERRORS = frozenset({"TransportError", "TimeoutException", "APIConnectionError", "APITimeoutError"})


def status_of(err: BaseException) -> int | None:
    """The HTTP status an error carries (ModelForge errors and the SDKs' status errors), if any."""
    for attribute in ("status_code", "code", "status"):
        value = getattr(err, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def is_transport_error(err: BaseException) -> bool:
    """A timeout or a broken connection, whichever library raised it."""
    if isinstance(err, TimeoutError | ConnectionError):
        return True
    return any(cls.__name__ in _TRANSPORT_ERRORS for cls in type(err).__mro__)


def counts_against_health(err: BaseException | None) -> bool:
    """Whether a failure says the provider is unwell (and so counts towards opening its circuit)."""
    if err is None:
        return True
    if isinstance(err, CircuitOpenError | AllProvidersFailedError):
        return False
    if isinstance(err, ModelForgeError):
        return err.retryable
    status = status_of(err)
    if status is not None:
        return status >= 500 or status in (408, 429)
    return is_transport_error(err)
