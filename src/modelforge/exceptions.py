"""The whole ModelForge error tree, compatible with ``model-forge-llm`` 2.3.0.

Every error carries fields a program can act on, besides the 2.3.0 ``message``, ``context``,
``suggestion``, ``error_code`` and ``details``: ``provider``, ``status_code``, ``retry_after`` (seconds),
``retryable`` and ``request_id``. Messages never contain secrets; ``mask_secrets`` is applied to every
message, context and suggestion so a key pasted into an error by a caller is still hidden.

::

    ModelForgeError
    ├── ConfigurationError
    │   ├── ConfigurationNotFoundError(provider, model=None)          CONFIG_NOT_FOUND
    │   └── ConfigurationValidationError                              CONFIG_VALIDATION_ERROR
    ├── AuthenticationError                                           AUTHENTICATION_ERROR
    │   ├── InvalidApiKeyError(provider)                              INVALID_API_KEY
    │   ├── TokenExpiredError(provider)                               TOKEN_EXPIRED
    │   └── DeviceFlowError(provider, reason)                         DEVICE_FLOW_ERROR
    ├── NetworkError                                                  NETWORK_ERROR   (retryable)
    │   ├── NetworkTimeoutError(operation, timeout=None, url=None)    NETWORK_TIMEOUT
    │   ├── NetworkConnectionError(operation, url=None)               NETWORK_CONNECTION_ERROR
    │   ├── RateLimitError(provider, retry_after=None)                RATE_LIMIT_EXCEEDED
    │   └── StreamInterruptedError(provider, partial_text)            STREAM_INTERRUPTED
    ├── ProviderError                                                 PROVIDER_ERROR
    │   ├── ModelNotFoundError(provider, model, available_models)     MODEL_NOT_FOUND
    │   ├── ProviderNotAvailableError(provider, reason=None)          PROVIDER_NOT_AVAILABLE
    │   │   └── CircuitOpenError(provider, retry_after=None)          CIRCUIT_OPEN          (retryable)
    │   ├── ProviderServerError(provider, status_code)                PROVIDER_SERVER_ERROR (retryable)
    │   │   └── ProviderOverloadedError(provider)                     PROVIDER_OVERLOADED (retryable, 503/529)
    │   ├── MalformedResponseError(provider, reason)                  MALFORMED_RESPONSE    (retryable)
    │   ├── BadRequestError(provider, reason)                         BAD_REQUEST
    │   │   └── ContextLengthExceededError(provider)                  CONTEXT_LENGTH_EXCEEDED
    │   └── AllProvidersFailedError(errors, providers=None)           ALL_PROVIDERS_FAILED
    │                       (also an ExceptionGroup: ``errors`` / ``exceptions`` hold every failure)
    ├── ValidationError                                               VALIDATION_ERROR
    │   ├── InvalidInputError                                         INVALID_INPUT
    │   └── FileValidationError(file_path, reason, suggestion=None)   FILE_VALIDATION_ERROR
    ├── JsonError
    │   └── JsonDecodeError(source, line=None, column=None, reason=None)  JSON_DECODE_ERROR
    └── InternalError(operation, reason=None)                         INTERNAL_ERROR
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelforge._secrets import mask_secrets

# How many available models an error message lists (2.3.0's name; the rest are counted).
MAX_DISPLAY_MODELS = 5

__all__ = [
    "AllProvidersFailedError",
    "AuthenticationError",
    "BadRequestError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConfigurationNotFoundError",
    "ConfigurationValidationError",
    "ContextLengthExceededError",
    "DeviceFlowError",
    "FileValidationError",
    "InternalError",
    "InvalidApiKeyError",
    "InvalidInputError",
    "JsonDecodeError",
    "JsonError",
    "MalformedResponseError",
    "ModelForgeError",
    "ModelNotFoundError",
    "NetworkConnectionError",
    "NetworkError",
    "NetworkTimeoutError",
    "ProviderError",
    "ProviderNotAvailableError",
    "ProviderOverloadedError",
    "ProviderServerError",
    "RateLimitError",
    "StreamInterruptedError",
    "TokenExpiredError",
    "ValidationError",
]


class ModelForgeError(Exception):
    """Base of every ModelForge error; ``str(err) == err.message``."""

    default_code: str | None = None  # 2.3.0: a ModelForgeError raised without a code has error_code None
    default_retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        context: str | None = None,
        suggestion: str | None = None,
        error_code: str | None = None,
        details: dict[str, Any] | None = None,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = mask_secrets(message)
        self.context = mask_secrets(context) if context else context
        self.suggestion = mask_secrets(suggestion) if suggestion else suggestion
        self.error_code = error_code or self.default_code
        self.details: dict[str, Any] = _masked(dict(details or {}))
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        self.retryable = self.default_retryable if retryable is None else retryable
        self.request_id = request_id
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other positional arguments; rebuild through the base and restore the state.
        return (_rebuild_error, (type(self), self.__dict__.copy()))

    def to_dict(self) -> dict[str, Any]:
        """The 2.3.0 dictionary form, plus the fields a program can act on."""
        return {
            "error_type": type(self).__name__,
            "message": self.message,
            "context": self.context,
            "suggestion": self.suggestion,
            "error_code": self.error_code,
            "details": self.details,
            "provider": self.provider,
            "status_code": self.status_code,
            "retry_after": self.retry_after,
            "retryable": self.retryable,
            "request_id": self.request_id,
        }


def _masked(value: Any) -> Any:
    """``value`` with every string inside it (dicts and lists included) passed through ``mask_secrets``."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(item) for item in value)
    return value


def _rebuild_error(cls: type[ModelForgeError], state: dict[str, Any]) -> ModelForgeError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


# --- configuration ---------------------------------------------------------------------------------------


class ConfigurationError(ModelForgeError):
    """The configuration is missing, unreadable or inconsistent."""

    default_code = "CONFIGURATION_ERROR"


class ConfigurationNotFoundError(ConfigurationError):
    """A provider or model the caller named is not in the configuration."""

    default_code = "CONFIG_NOT_FOUND"

    def __init__(self, provider: str, model: str | None = None, **kwargs: Any) -> None:
        what = f"model '{model}' for provider '{provider}'" if model else f"provider '{provider}'"
        kwargs.setdefault(
            "suggestion",
            "Add it with: modelforge config add --provider "
            + provider
            + (f" --model {model}" if model else " --model <model>"),
        )
        super().__init__(f"No configuration found for {what}", provider=provider, **kwargs)
        self.model = model


class ConfigurationValidationError(ConfigurationError):
    """A config file has the wrong shape: the message names the file, line, key and what is allowed."""

    default_code = "CONFIG_VALIDATION_ERROR"


# --- authentication --------------------------------------------------------------------------------------


class AuthenticationError(ModelForgeError):
    """Credentials are missing, rejected or expired."""

    default_code = "AUTHENTICATION_ERROR"


class InvalidApiKeyError(AuthenticationError):
    """The provider has no usable API key, or rejected the one it was given."""

    default_code = "INVALID_API_KEY"

    def __init__(self, provider: str, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault(
            "suggestion",
            f"Set {env_var_name(provider, 'API_KEY')} or run: modelforge auth login --provider {provider}",
        )
        super().__init__(
            message or f"Invalid or missing API key for provider '{provider}'", provider=provider, **kwargs
        )


class TokenExpiredError(AuthenticationError):
    """An OAuth token expired and could not be refreshed."""

    default_code = "TOKEN_EXPIRED"

    def __init__(self, provider: str, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("suggestion", f"Log in again with: modelforge auth login --provider {provider}")
        super().__init__(
            message or f"The access token for provider '{provider}' has expired", provider=provider, **kwargs
        )


class DeviceFlowError(AuthenticationError):
    """The OAuth device flow ended without a token: denied, expired or misconfigured."""

    default_code = "DEVICE_FLOW_ERROR"

    def __init__(self, provider: str, reason: str, **kwargs: Any) -> None:
        kwargs.setdefault("suggestion", f"Start again with: modelforge auth login --provider {provider}")
        super().__init__(f"Device login for '{provider}' failed: {reason}", provider=provider, **kwargs)
        self.reason = reason


# --- network ---------------------------------------------------------------------------------------------


class NetworkError(ModelForgeError):
    """The request did not complete: a transport failure, a timeout, a rate limit or a cut stream."""

    default_code = "NETWORK_ERROR"
    default_retryable = True


class NetworkTimeoutError(NetworkError):
    """An operation did not finish in time. ``partial_text`` holds what a stream delivered before."""

    default_code = "NETWORK_TIMEOUT"

    def __init__(
        self,
        operation: str,
        timeout: float | None = None,
        url: str | None = None,
        *,
        partial_text: str = "",
        **kwargs: Any,
    ) -> None:
        limit = f" after {timeout:g}s" if timeout is not None else ""
        kwargs.setdefault("suggestion", "Check the network, or raise the timeout for this operation.")
        details = {"timeout": timeout, "url": url, **kwargs.pop("details", {})}
        super().__init__(f"Timed out{limit}: {operation}", details=details, **kwargs)
        self.operation = operation
        self.timeout = timeout
        self.url = url
        self.partial_text = partial_text


class NetworkConnectionError(NetworkError):
    """The server could not be reached or dropped the connection."""

    default_code = "NETWORK_CONNECTION_ERROR"

    def __init__(self, operation: str, url: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("suggestion", "Check that the server is running and the base_url is right.")
        details = {"url": url, **kwargs.pop("details", {})}
        super().__init__(f"Connection failed: {operation}", details=details, **kwargs)
        self.operation = operation
        self.url = url


class RateLimitError(NetworkError):
    """The provider answered 429 (or an equivalent)."""

    default_code = "RATE_LIMIT_EXCEEDED"

    def __init__(
        self, provider: str, retry_after: float | None = None, message: str | None = None, **kwargs: Any
    ) -> None:
        wait = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        kwargs.setdefault("suggestion", "Wait and retry, or lower the request rate for this provider.")
        details = {"retry_after": retry_after, **kwargs.pop("details", {})}
        super().__init__(
            message or f"Rate limit exceeded for provider '{provider}'{wait}",
            provider=provider,
            retry_after=retry_after,
            details=details,
            **kwargs,
        )


class StreamInterruptedError(NetworkError):
    """A stream ended without its terminator or finish reason; ``partial_text`` holds what arrived."""

    default_code = "STREAM_INTERRUPTED"

    def __init__(
        self, provider: str | None, partial_text: str = "", reason: str | None = None, **kwargs: Any
    ) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(
            f"The stream from '{provider or 'the provider'}' ended early{why}", provider=provider, **kwargs
        )
        self.partial_text = partial_text


# --- provider --------------------------------------------------------------------------------------------


class ProviderError(ModelForgeError):
    """The provider refused or failed the request."""

    default_code = "PROVIDER_ERROR"


class ModelNotFoundError(ProviderError):
    """The model is not configured here, or the provider does not know it."""

    default_code = "MODEL_NOT_FOUND"

    def __init__(
        self, provider: str, model: str, available_models: list[str] | None = None, **kwargs: Any
    ) -> None:
        available = list(available_models or [])
        if available:
            shown = ", ".join(available[:MAX_DISPLAY_MODELS])
            more = len(available) - MAX_DISPLAY_MODELS
            kwargs.setdefault(
                "suggestion", f"Available models: {shown}" + (f" (and {more} more)" if more > 0 else "")
            )
        else:
            kwargs.setdefault(
                "suggestion", f"Add it with: modelforge config add --provider {provider} --model {model}"
            )
        details = {
            "provider": provider,
            "model": model,
            "available_models": available,
            **kwargs.pop("details", {}),
        }
        super().__init__(
            f"Model '{model}' not found for provider '{provider}'",
            provider=provider,
            details=details,
            **kwargs,
        )
        self.model = model
        self.available_models = available


class ProviderNotAvailableError(ProviderError):
    """The provider is not configured, or cannot be used here."""

    default_code = "PROVIDER_NOT_AVAILABLE"

    def __init__(self, provider: str, reason: str | None = None, **kwargs: Any) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"Provider '{provider}' is not available{why}", provider=provider, **kwargs)
        self.reason = reason


class ProviderServerError(ProviderError):
    """The provider failed on its side (5xx)."""

    default_code = "PROVIDER_SERVER_ERROR"
    default_retryable = True


class ProviderOverloadedError(ProviderServerError):
    """The provider said it is overloaded (Anthropic 529, 503)."""

    default_code = "PROVIDER_OVERLOADED"


class MalformedResponseError(ProviderError):
    """The provider's answer could not be read (broken JSON, an unknown shape)."""

    default_code = "MALFORMED_RESPONSE"
    default_retryable = True

    def __init__(self, provider: str, reason: str, **kwargs: Any) -> None:
        kwargs.setdefault(
            "suggestion", "Retry; if it persists, the server or a proxy in between is at fault."
        )
        super().__init__(
            f"Provider '{provider}' sent a malformed response: {reason}", provider=provider, **kwargs
        )


class BadRequestError(ProviderError):
    """The provider rejected the request itself (400 / 422)."""

    default_code = "BAD_REQUEST"


class ContextLengthExceededError(BadRequestError):
    """The prompt plus the requested output do not fit the model's context window."""

    default_code = "CONTEXT_LENGTH_EXCEEDED"


class CircuitOpenError(ProviderNotAvailableError):
    """The provider's circuit breaker is open: it failed repeatedly and is resting.

    ``retry_after`` is the rest of the cooldown (None while a probe call is in flight).
    """

    default_code = "CIRCUIT_OPEN"
    default_retryable = True

    def __init__(
        self, provider: str, retry_after: float | None = None, reason: str | None = None, **kwargs: Any
    ) -> None:
        why = reason or "it failed repeatedly and is resting"
        if retry_after is not None:
            why += f"; next try in {retry_after:.3g}s"
        kwargs.setdefault("suggestion", "Wait for the cooldown, or configure a fallback provider.")
        details = {"retry_after": retry_after, **kwargs.pop("details", {})}
        super().__init__(provider, why, retry_after=retry_after, details=details, **kwargs)


class AllProvidersFailedError(ProviderError, ExceptionGroup):
    """Every model of a fallback chain failed; ``errors`` holds each failure, in the order tried.

    ``providers`` names who failed with each error (same order). It is also a real ``ExceptionGroup``
    (``exceptions``, ``except*``, tracebacks that show every failure). ``retryable`` is true when any
    failure was; ``retry_after`` is the soonest any failed provider said it could be tried again.
    """

    default_code = "ALL_PROVIDERS_FAILED"

    def __new__(
        cls, errors: Sequence[Exception], providers: Sequence[str | None] | None = None, **kwargs: Any
    ) -> AllProvidersFailedError:
        if not errors:
            raise ValueError("AllProvidersFailedError needs at least one error")
        return super().__new__(cls, _all_failed_message(errors, providers), list(errors))

    def __init__(
        self, errors: Sequence[Exception], providers: Sequence[str | None] | None = None, **kwargs: Any
    ) -> None:
        self.errors: list[Exception] = list(errors)
        names = list(providers) if providers is not None else [getattr(e, "provider", None) for e in errors]
        self.providers: list[str | None] = names
        waits = [w for e in errors if isinstance(w := getattr(e, "retry_after", None), int | float)]
        kwargs.setdefault("retry_after", min(waits) if waits else None)
        kwargs.setdefault("retryable", any(getattr(e, "retryable", False) for e in errors))
        kwargs.setdefault("suggestion", "Each failure is listed above; fix one provider or add another.")
        failures = [
            {
                "provider": name,
                "error_type": type(err).__name__,
                "error_code": getattr(err, "error_code", None),
                "status_code": getattr(err, "status_code", None),
                "message": str(err),
            }
            for name, err in zip(names, self.errors, strict=False)
        ]
        details = {"providers": names, "failures": failures, **kwargs.pop("details", {})}
        super().__init__(_all_failed_message(errors, providers), details=details, **kwargs)

    # ``BaseExceptionGroup.message`` is read-only; ModelForge errors set theirs (masked) in ``__init__``.
    @property
    def message(self) -> str:
        return str(self.__dict__.get("_message", ""))

    @message.setter
    def message(self, value: str) -> None:
        self.__dict__["_message"] = value

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors, self.providers), self.__dict__.copy())


def _all_failed_message(errors: Sequence[Exception], providers: Sequence[str | None] | None) -> str:
    names = list(providers) if providers is not None else [getattr(e, "provider", None) for e in errors]
    parts = []
    for position, err in enumerate(errors):
        name = names[position] if position < len(names) else None
        code = getattr(err, "error_code", None) or type(err).__name__
        status = getattr(err, "status_code", None)
        label = f"{code} {status}" if isinstance(status, int) else code
        parts.append(f"{position + 1}) {name or 'model'}: [{label}] {err}")
    count = len(errors)
    return mask_secrets(f"All {count} fallback option{'s' if count != 1 else ''} failed: " + "; ".join(parts))


# --- validation ------------------------------------------------------------------------------------------


class ValidationError(ModelForgeError):
    """An argument given to ModelForge is not valid."""

    default_code = "VALIDATION_ERROR"


class InvalidInputError(ValidationError, ValueError):
    """An input value is malformed or out of range."""

    default_code = "INVALID_INPUT"


class FileValidationError(ValidationError):
    """A file path cannot be used as asked."""

    default_code = "FILE_VALIDATION_ERROR"

    def __init__(self, file_path: str, reason: str, suggestion: str | None = None, **kwargs: Any) -> None:
        details = {"file_path": str(file_path), "reason": reason, **kwargs.pop("details", {})}
        super().__init__(f"{file_path}: {reason}", suggestion=suggestion, details=details, **kwargs)
        self.file_path = str(file_path)
        self.reason = reason


class JsonError(ModelForgeError):
    """JSON could not be read or written."""

    default_code = "JSON_ERROR"


class JsonDecodeError(JsonError):
    """A JSON document is malformed; ``line`` and ``column`` point at the fault."""

    default_code = "JSON_DECODE_ERROR"

    def __init__(
        self,
        source: str,
        line: int | None = None,
        column: int | None = None,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        where = f" at line {line}" + (f", column {column}" if column is not None else "") if line else ""
        why = f": {reason}" if reason else ""
        details = {"source": source, "line": line, "column": column, **kwargs.pop("details", {})}
        super().__init__(f"Invalid JSON in {source}{where}{why}", details=details, **kwargs)
        self.source = source
        self.line = line
        self.column = column


class InternalError(ModelForgeError):
    """A bug in ModelForge: please report it."""

    default_code = "INTERNAL_ERROR"

    def __init__(self, operation: str, reason: str | None = None, **kwargs: Any) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"Internal error during {operation}{why}", **kwargs)


def env_name(provider: str) -> str:
    """The ``<PROVIDER>`` part of ``MODELFORGE_<PROVIDER>_API_KEY``."""
    return provider.upper().replace("-", "_")


def env_var_name(provider: str, kind: str) -> str:
    """``MODELFORGE_<PROVIDER>_API_KEY`` (kind ``API_KEY``) or ``..._ACCESS_TOKEN``."""
    return f"MODELFORGE_{env_name(provider)}_{kind}"
