"""Provider configs written in code: ``ModelConfig``, ``Provider`` and ``RetryConfig``.

::

    config = ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI,
                         retry_config=RetryConfig(max_attempts=3, backoff_factor=2.0))
    provider = create_provider(config)

A ``ModelConfig`` becomes the same provider section a config file would hold (``to_registry_config``), so
a provider built from code and one built from ``~/.config/model-forge/config.json`` go through the same
registry, retry, rate-limit, cache and pooling code. ``provider`` is a ``Provider`` (well-known defaults:
its ``llm_type`` and base URL) or any name with ``llm_type`` (and ``base_url``) given. ``api_key`` is used
before the environment and the credential store, and is never shown in a repr; without one the key is
found as for a config file (``MODELFORGE_<PROVIDER>_API_KEY``, then the stored credentials). Without
``base_url``, ``MODELFORGE_<PROVIDER>_BASE_URL`` (say, a proxy or a local server) is used when set, else the
provider's public endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from modelforge.auth.resolve import env_var_name
from modelforge.exceptions import InvalidInputError
from modelforge.policies.retry import ProviderRetryConfig
from modelforge.providers import FAMILIES, KNOWN_PROVIDERS, normalize_llm_type

__all__ = ["ModelConfig", "Provider", "RetryConfig"]


class Provider(StrEnum):
    """Well-known providers; each value is also the provider's name in config files."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OLLAMA = "ollama"
    GOOGLE = "google"
    OPENROUTER = "openrouter"
    GITHUB_COPILOT = "github_copilot"
    LOCAL = "local"


@dataclass(frozen=True)
class RetryConfig(ProviderRetryConfig):
    """Transport retries of one provider: attempts, exponential backoff with jitter, Retry-After.

    The same settings as a config file's ``retry`` section (``modelforge.policies.retry``).
    """

    def __post_init__(self) -> None:
        try:
            self._check("retry_config")
        except ValueError as err:
            raise InvalidInputError(
                str(err), suggestion="e.g. RetryConfig(max_attempts=3, backoff_factor=2.0)"
            ) from err

    def to_section(self) -> dict[str, Any]:
        """The ``retry`` section of a provider config."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class ModelConfig:
    """One model of one provider, configured in code (see the module docstring).

    ``name`` is the model id the provider knows (``gpt-4o-mini``); ``alias`` the name it is known by here
    (default: ``name``). ``llm_type`` is needed only for a provider that is not a ``Provider``.
    ``rate_limit``, ``cache``, ``optimizations``, ``connection_pool`` and ``batch`` are the config file's
    sections of the same names.
    """

    name: str
    provider: Provider | str
    alias: str | None = None
    llm_type: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    retry_config: RetryConfig | None = None
    rate_limit: Mapping[str, Any] | None = None
    cache: Mapping[str, Any] | bool | None = None
    optimizations: Mapping[str, Any] | None = None
    connection_pool: Mapping[str, Any] | None = None
    batch: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may carry a proxy's key
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(
                f"ModelConfig.name must be the provider's model id, got {self.name!r}",
                suggestion='e.g. ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI)',
            )
        if not isinstance(self.provider, str) or not self.provider.strip():
            raise InvalidInputError(
                f"ModelConfig.provider must be a Provider or a provider name, got {self.provider!r}",
                suggestion="Use one of: " + ", ".join(f"Provider.{p.name}" for p in Provider),
            )
        if self.retry_config is not None and not isinstance(self.retry_config, ProviderRetryConfig):
            raise InvalidInputError(
                f"retry_config must be a RetryConfig, got {type(self.retry_config).__name__}",
                suggestion="Pass retry_config=RetryConfig(max_attempts=3, backoff_factor=2.0).",
            )
        self.family()  # an unknown provider or llm_type fails here, not at the first call

    @property
    def provider_name(self) -> str:
        """The provider's name: credentials, circuit breakers and prices are looked up by it."""
        return str(self.provider.value if isinstance(self.provider, Provider) else self.provider)

    @property
    def model_alias(self) -> str:
        return self.alias or self.name

    def family(self) -> str:
        """The provider family (``llm_type``) this model is built by."""
        known = KNOWN_PROVIDERS.get(self.provider_name, {})
        llm_type = self.llm_type or known.get("llm_type")
        if llm_type is None:
            raise InvalidInputError(
                f"Provider '{self.provider_name}' is not a well-known provider, and no llm_type was given",
                suggestion="Pass llm_type (one of: " + ", ".join(sorted(FAMILIES)) + ") and base_url, or "
                "use one of: " + ", ".join(p.value for p in Provider),
            )
        family = normalize_llm_type(str(llm_type))
        if family not in FAMILIES:
            raise InvalidInputError(
                f"Unknown llm_type {llm_type!r} for provider '{self.provider_name}'",
                suggestion="Use one of: " + ", ".join(sorted(FAMILIES)),
            )
        return family

    def to_registry_config(self) -> dict[str, Any]:
        """This model as a whole config (one provider, one model, selected as the current model)."""
        known = KNOWN_PROVIDERS.get(self.provider_name, {})
        section: dict[str, Any] = {
            key: value for key, value in known.items() if key not in ("auth_details", "auth_strategy")
        }
        section["llm_type"] = self.family()
        if "auth_details" in known:
            section["auth_details"] = known["auth_details"]
        if "auth_strategy" in known:
            section["auth_strategy"] = known["auth_strategy"]
        base_url = self.base_url or os.environ.get(env_var_name(self.provider_name, "BASE_URL"), "").strip()
        if base_url:
            section["base_url"] = base_url
        if self.timeout is not None:
            section["timeout"] = self.timeout
        if self.headers:
            section["headers"] = dict(self.headers)
        if self.retry_config is not None:
            section["retry"] = RetryConfig.to_section(self.retry_config)
        for name in ("rate_limit", "optimizations", "connection_pool", "batch"):
            value = getattr(self, name)
            if value is not None:
                section[name] = dict(value)
        if self.cache is not None:
            section["cache"] = self.cache if isinstance(self.cache, bool) else dict(self.cache)
        model: dict[str, Any] = {"api_model_name": self.name}
        for name in ("temperature", "top_p", "max_tokens", "timeout"):
            value = getattr(self, name)
            if value is not None:
                model[name] = value
        if self.model_kwargs:
            model["model_kwargs"] = dict(self.model_kwargs)
        section["models"] = {self.model_alias: model}
        return {
            "providers": {self.provider_name: section},
            "current_model": {"provider": self.provider_name, "model": self.model_alias},
        }
