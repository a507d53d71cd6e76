"""The typed shape of a ModelForge config file, and readable errors when a file does not fit it.

The format is the 2.3.0 JSON format (``providers``, ``current_model``, ``settings``), accepted as JSON or
YAML. Policy sections of a provider (``retry``, ``rate_limit``, ``optimizations``, ``cache``,
``fallbacks``, ``connection_pool``, ``batch``) are kept as written here; the modules that act on them
validate their contents when the file is loaded.
``validate_config`` turns a pydantic error into a ``ConfigurationValidationError`` that names the file, the
line where it can be found, the key, and what is allowed there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from modelforge.exceptions import ConfigurationValidationError
from modelforge.pooling import validate_section as validate_connection_pool
from modelforge.sections.batch import validate_section as validate_batch
from modelforge.sections.cache import validate_section as validate_cache
from modelforge.sections.optimizations import validate_section as validate_optimizations
from modelforge.sections.rate_limit import RateLimitConfig
from modelforge.sections.retry import ProviderRetryConfig

__all__ = [
    "AuthDetails",
    "CurrentModel",
    "ModelConfig",
    "ModelForgeConfig",
    "ProviderConfig",
    "validate_config",
]

AuthStrategyName = Literal["api_key", "device_flow", "none", ""]

MAX_TIMEOUT_SECONDS = 86_400.0
"""The longest ``timeout`` accepted: a day. More is a typo (or ``.inf``), and overflows at call time."""
MAX_URL_LENGTH = 2048
# RFC 9110 token characters, for header names.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Header values HTTP/1.1 and httpx carry: visible ASCII, spaces and tabs (no CR, LF or NUL).
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
# Headers the HTTP client computes itself; a config value would corrupt the request.
_CLIENT_HEADERS = frozenset({"content-length", "host", "transfer-encoding", "connection"})


def check_base_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host that HTTP can carry, else ``ValueError``."""
    if not value.strip():
        raise ValueError("base_url is empty; give the server's URL, e.g. http://localhost:8000/v1")
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"base_url is {len(value):,} characters long; at most {MAX_URL_LENGTH:,} allowed")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise ValueError("base_url contains a space or a control character (CR, LF, NUL...); remove it")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as err:
        raise ValueError(f"base_url {value!r} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url {value!r} must be an http:// or https:// URL with a host")
    return value


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` if HTTP can carry every name and value and none is one the client sets itself."""
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if name.lower() in _CLIENT_HEADERS:
            raise ValueError(f"header {name} is set by the HTTP client itself; remove it from headers")
        if not isinstance(value, str) or not _HEADER_VALUE.match(value):
            raise ValueError(
                f"the value of header {name} must be printable ASCII on one line (no CR, LF or non-ASCII)"
            )
    return headers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AuthDetails(_Strict):
    """OAuth device-flow settings (GitHub's by default for ``github_copilot``)."""

    client_id: str
    device_code_url: str
    token_url: str
    scope: str = ""
    # GitHub Copilot: where the OAuth token is exchanged for a short-lived Copilot token.
    token_exchange_url: str | None = None


class ModelConfig(_Strict):
    """One model under a provider; the key it is stored under is its alias."""

    api_model_name: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    # OpenAI-compatible providers: "responses" sends the model's calls to the Responses API (/v1/responses),
    # "chat" to Chat Completions; unset, langchain-openai chooses (the Responses API for the models and
    # features that need it). ``use_responses_api`` is langchain-openai's own name for the same switch.
    api: Literal["chat", "responses"] | None = None
    use_responses_api: bool | None = None

    @field_validator("use_responses_api")
    @classmethod
    def _one_api_switch(cls, value: bool | None, info: Any) -> bool | None:
        api = info.data.get("api")
        if value is not None and api is not None and value != (api == "responses"):
            raise ValueError(
                f"api: {api} and use_responses_api: {str(value).lower()} disagree; set only one of them"
            )
        return value

    def responses_api(self) -> bool | None:
        """True: the Responses API; False: Chat Completions; None: langchain-openai's own choice."""
        if self.api is not None:
            return self.api == "responses"
        return self.use_responses_api


class ProviderConfig(_Strict):
    """One provider: how to reach it, how to authenticate, its models and its policies."""

    llm_type: str | None = None
    base_url: str | None = None
    auth_strategy: AuthStrategyName | None = None
    auth_details: AuthDetails | None = None
    # Legacy (2.3.0) credentials stored inside the config file; read, never written by us.
    auth_data: dict[str, Any] | None = Field(default=None, repr=False)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False)
    # Policy sections, validated by their schemas (modelforge.sections).
    retry: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None
    optimizations: dict[str, Any] | None = None
    cache: dict[str, Any] | bool | None = None
    fallbacks: list[str | dict[str, Any]] | None = None
    connection_pool: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    @field_validator("headers")
    @classmethod
    def _headers_can_be_sent(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

    @field_validator("retry")
    @classmethod
    def _retry_section_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        ProviderRetryConfig.validate_section(value)
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_section_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        RateLimitConfig.validate_section(value)
        return value

    @field_validator("optimizations")
    @classmethod
    def _optimizations_section_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        validate_optimizations(value)
        return value

    @field_validator("connection_pool")
    @classmethod
    def _connection_pool_section_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        validate_connection_pool(value)
        return value

    @field_validator("batch")
    @classmethod
    def _batch_section_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        validate_batch(value)
        return value

    @field_validator("cache")
    @classmethod
    def _cache_section_is_valid(cls, value: dict[str, Any] | bool | None) -> dict[str, Any] | bool | None:
        validate_cache(value)
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _null_models_are_empty(cls, value: Any) -> Any:
        # 2.3.0 wrote ``"model": {}`` and sometimes ``"model": null`` for a model with no settings.
        if isinstance(value, dict):
            return {alias: ({} if spec is None else spec) for alias, spec in value.items()}
        return value


class CurrentModel(_Strict):
    """The selected provider and model alias."""

    provider: str
    model: str


class ModelForgeConfig(_Strict):
    """A whole config file."""

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    current_model: CurrentModel | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("current_model", mode="before")
    @classmethod
    def _empty_selection_is_none(cls, value: Any) -> Any:
        return None if value in ({}, "", None) else value


def validate_config(data: Any, *, source: Path | None = None, text: str | None = None) -> ModelForgeConfig:
    """Validate raw config data; on failure name the file, line, key and what is allowed there."""
    try:
        return ModelForgeConfig.model_validate(data)
    except PydanticValidationError as err:
        raise _readable_error(err, source, text) from None


def _readable_error(
    err: PydanticValidationError, source: Path | None, text: str | None
) -> ConfigurationValidationError:
    lines = _key_lines(text) if text else {}
    problems: list[str] = []
    first_key = ""
    for issue in err.errors():
        loc = tuple(str(part) for part in issue["loc"])
        key = ".".join(loc) or "(top level)"
        first_key = first_key or key
        line = _nearest_line(lines, loc)
        where = f"line {line}: " if line else ""
        problems.append(f"{where}{key}: {_explain(issue, loc)}")
    name = str(source) if source else "config"
    message = f"Invalid config in {name}: " + "; ".join(problems)
    return ConfigurationValidationError(
        message,
        context=name,
        suggestion="Fix the key named above, or run `modelforge config show` to see the file as loaded.",
        details={"file": name, "key": first_key, "problems": problems},
    )


def _explain(issue: Any, loc: tuple[str, ...]) -> str:
    kind = issue["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return "unknown key; allowed keys here: " + ", ".join(allowed)
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"{issue['msg']} (got {issue.get('input')!r})"
    if kind == "value_error":  # a policy section's own check: its message names the key and the fix
        cause = issue.get("ctx", {}).get("error")
        return str(cause) if cause is not None else str(issue["msg"]).removeprefix("Value error, ")
    got = type(issue.get("input")).__name__
    return f"{issue['msg']} (got {got})"


_CHILD_MODELS: dict[str, type[BaseModel]] = {
    "providers": ProviderConfig,
    "models": ModelConfig,
}


def _allowed_keys(parent: tuple[str, ...]) -> list[str]:
    """The keys allowed inside the mapping at ``parent`` (a path of keys from the top)."""
    model: type[BaseModel] = ModelForgeConfig
    i = 0
    while i < len(parent):
        part = parent[i]
        if part in _CHILD_MODELS and i + 1 < len(parent):
            model = _CHILD_MODELS[part]
            i += 2  # skip the user-chosen name (provider name or model alias)
            continue
        if part == "current_model":
            model = CurrentModel
        elif part == "auth_details":
            model = AuthDetails
        i += 1
    return sorted(model.model_fields)


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a JSON or YAML document to its 1-based line (JSON is read as YAML here)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    found: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                found[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found[(*path, str(index))] = item.start_mark.line + 1
                walk(item, (*path, str(index)))

    if root is not None:
        walk(root, ())
    return found


def _nearest_line(lines: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
