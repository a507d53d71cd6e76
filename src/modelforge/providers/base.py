"""The one interface every provider family implements.

A family (``openai_compatible``, ``anthropic``, ``ollama``, ``google_genai``, ``github_copilot``,
``local``) says three things: how to build its LangChain chat model from a ``ModelRequest``, how to read
its SDK's exceptions into an ``HttpFailure`` (the shared mapping in ``errors`` does the rest), and its
defaults. Nothing here performs I/O; credentials are resolved by ``modelforge.auth``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.language_models import BaseChatModel

from modelforge.config_schema import ModelConfig, ProviderConfig
from modelforge.exceptions import InvalidApiKeyError, ModelForgeError
from modelforge.providers.errors import HttpFailure, error_from_http, header_dict, transport_error

if TYPE_CHECKING:
    from modelforge.pooling import PooledClients, PoolLimits

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "SDK_MAX_RETRIES", "ModelRequest", "ProviderFamily", "header_dict"]

DEFAULT_TIMEOUT_SECONDS = 120.0
# The SDKs never retry: ModelForge's retry policy (modelforge.policies.retry) is the one budget.
SDK_MAX_RETRIES = 0


@dataclass(frozen=True)
class ModelRequest:
    """Everything a family needs to build one chat model."""

    provider_name: str
    model_alias: str
    provider: ProviderConfig
    model: ModelConfig
    # A key given in code (``ModelForgeRegistry.from_config(api_keys=...)``); wins over every other source.
    api_key: str | None = field(default=None, repr=False)

    @property
    def model_name(self) -> str:
        """The model id sent to the provider: ``api_model_name`` when set, else the alias."""
        return self.model.api_model_name or self.model_alias

    @property
    def timeout(self) -> float:
        return self.model.timeout or self.provider.timeout or DEFAULT_TIMEOUT_SECONDS

    @property
    def max_retries(self) -> int:
        """Retries inside the SDK: none, so attempts never multiply across layers."""
        return SDK_MAX_RETRIES

    def optional_api_key(self) -> str | None:
        """The provider's key given in code, else from the env, the credential store, then legacy
        ``auth_data``; or None."""
        if self.api_key:
            return self.api_key
        from modelforge.auth import resolve_credentials

        credentials = resolve_credentials(self.provider_name, self.provider)
        return credentials.api_key or credentials.access_token

    def require_api_key(self) -> str:
        """The provider's key, or ``InvalidApiKeyError`` saying how to provide one."""
        key = self.optional_api_key()
        if not key:
            raise InvalidApiKeyError(self.provider_name, f"No API key for provider '{self.provider_name}'")
        return key

    def pool_limits(self) -> PoolLimits:
        """The provider's ``connection_pool`` section as limits (``enabled=False``: no pooling)."""
        from modelforge.pooling import PoolLimits

        return PoolLimits.from_config(self.provider.connection_pool)

    def http_clients(
        self,
        base_url: str,
        credential: object | None = None,
        *,
        flavor: str = "httpx",
        proxy: str | None = None,
    ) -> PooledClients | None:
        """HTTP clients of this model's own over the pool shared by every model of this provider,
        ``base_url`` and credential.

        None when the provider's ``connection_pool`` section turns pooling off (the SDK's own clients are
        used then). ``flavor`` is the httpx package the SDK is built on, ``proxy`` the SDK's own proxy
        setting if it has one (see ``modelforge.pooling.shared_http_clients``).
        """
        from modelforge.pooling import shared_http_clients

        limits = self.pool_limits()
        if not limits.enabled:
            return None
        return shared_http_clients(
            self.provider_name, base_url, credential, limits, flavor=flavor, proxy=proxy
        )

    def sampling(self, *, max_tokens_field: str = "max_tokens") -> dict[str, Any]:
        """Temperature, top_p and the output limit set on the model, under the SDK's field names."""
        chosen: dict[str, Any] = {}
        if self.model.temperature is not None:
            chosen["temperature"] = self.model.temperature
        if self.model.top_p is not None:
            chosen["top_p"] = self.model.top_p
        if self.model.max_tokens is not None:
            chosen[max_tokens_field] = self.model.max_tokens
        return chosen


class ProviderFamily(ABC):
    """How one family of providers is built, read and defaulted."""

    llm_type: ClassVar[str]
    pip_package: ClassVar[str]
    default_base_url: ClassVar[str | None] = None
    # The family's retry settings when the provider's ``retry`` section does not set them.
    retry_defaults: ClassVar[dict[str, Any]] = {}
    # Built on langchain-openai's ChatOpenAI (so a model may choose the Responses API).
    speaks_openai: ClassVar[bool] = False

    @abstractmethod
    def build(self, request: ModelRequest) -> BaseChatModel:
        """A ready LangChain chat model for ``request`` (raises ModelForge errors for bad settings)."""

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        """The HTTP answer inside one of this SDK's exceptions, or None if ``err`` is not one."""
        return None

    def translate_error(self, err: Exception, *, provider: str, model: str | None) -> Exception:
        """The ModelForge error for an SDK exception (unchanged when there is nothing to translate)."""
        if isinstance(err, ModelForgeError):
            return err
        current: BaseException | None = err
        seen: set[int] = set()
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            failure = self.read_failure(current)
            if failure is not None:
                return error_from_http(failure, provider=provider, model=model)
            current = current.__cause__ or current.__context__
        return transport_error(err, provider=provider) or err

    def recover(self, err: Exception, *, provider: str) -> bool:
        """Repair what caused ``err`` (already translated) if possible; ``True`` means "try once more".

        Called only before any output reached the caller, so a retry can never replay text.
        """
        return False
