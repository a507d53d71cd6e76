"""``ModelForgeRegistry``: from config to a ready LangChain chat model (the 2.3.0 entry point).

``get_llm()`` picks the provider and model (the arguments, else the config's ``current_model``, else the
bundled local model when nothing at all is configured), finds the provider family by ``llm_type``, lets it
build the provider's LangChain model (a subclass of the SDK's own class, ``ManagedChatOpenAI`` and the like)
and attaches the pipeline of policies its calls go through (``modelforge.pipeline``); with ``enhanced=True``
an ``EnhancedLLM`` wraps it and also carries the model's catalogue metadata.
The errors are those of 2.3.0: ``ConfigurationError`` (``NO_MODEL_SELECTED``, ``MISSING_LLM_TYPE``,
``OLLAMA_URL_MISSING``), ``ProviderNotAvailableError``, ``ModelNotFoundError``, ``ProviderError``
(``UNSUPPORTED_LLM_TYPE``) and ``InvalidApiKeyError``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import Callbacks
from langchain_core.language_models import BaseChatModel

from modelforge._secrets import register_secret
from modelforge.config import LoadedConfig, load_config
from modelforge.config_schema import ModelConfig, ModelForgeConfig, ProviderConfig, validate_config
from modelforge.delegating import PipelineChatModel
from modelforge.exceptions import (
    ConfigurationError,
    ModelNotFoundError,
    ProviderNotAvailableError,
)
from modelforge.local_model import LOCAL_MODEL_ALIAS
from modelforge.pipeline import build_pipeline, response_cache_for
from modelforge.providers import ModelRequest, get_family
from modelforge.providers._managed import ForgeState, ManagedChatModel
from modelforge.validation import split_model_spec

if TYPE_CHECKING:
    from modelforge.batch import BatchProgress, BatchResult
    from modelforge.streaming import StreamEvent

__all__ = ["GITHUB_COPILOT_AVAILABLE", "ModelForgeRegistry"]

# 2.3.0 told whether langchain-github-copilot was installed. GitHub Copilot now goes through the
# OpenAI-compatible endpoint with langchain-openai, a required dependency: always available.
GITHUB_COPILOT_AVAILABLE = True

logger = logging.getLogger(__name__)

LOCAL_PROVIDER = "local"
_BUILTIN_LOCAL = ProviderConfig(llm_type="local", models={LOCAL_MODEL_ALIAS: ModelConfig()})


class ModelForgeRegistry:
    """Reads the config once and builds chat models from it."""

    def __init__(
        self,
        verbose: bool = False,
        *,
        config_path: str | Path | None = None,
        enable_optimizations: bool | None = None,
    ) -> None:
        self.verbose = verbose
        # Where a pickled model of this registry is rebuilt from (None: the config files as found then).
        self._source: dict[str, Any] = {"config_path": str(config_path)} if config_path is not None else {}
        self._loaded: LoadedConfig = load_config(config_path)
        self.config_path: Path | None = self._loaded.path
        if enable_optimizations is None:
            enable_optimizations = bool(self._loaded.config.settings.get("enable_optimizations", False))
        # Provider optimizers (modelforge.optimizers) shape every request of the models handed out.
        self.enable_optimizations = enable_optimizations
        # Keys given in code (``from_config(api_keys=...)``), ahead of the env and the credential store.
        self._api_keys: dict[str, str] = {}
        if verbose:
            logger.info("ModelForge config: %s", self.config_path or "(none: using the local model)")

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | ModelForgeConfig,
        *,
        api_keys: Mapping[str, str] | None = None,
        verbose: bool = False,
        enable_optimizations: bool | None = None,
    ) -> ModelForgeRegistry:
        """A registry over a config built in code (the same shape as a config file; no file is read).

        ``api_keys`` maps provider names to keys used before the environment and the credential store.
        """
        validated = config if isinstance(config, ModelForgeConfig) else validate_config(dict(config))
        registry = cls.__new__(cls)
        registry.verbose = verbose
        registry._loaded = LoadedConfig(
            config=validated, raw=validated.model_dump(exclude_none=True), path=None
        )
        registry.config_path = None
        if enable_optimizations is None:
            enable_optimizations = bool(validated.settings.get("enable_optimizations", False))
        registry.enable_optimizations = enable_optimizations
        registry._api_keys = {}
        # A pickled model is rebuilt from this config, without what may hold a secret (legacy auth_data,
        # headers); keys come from the other side's environment or credential store.
        registry._source = {"config": _without_secrets(validated)}
        for name, key in (api_keys or {}).items():
            if key:
                register_secret(key)
                registry._api_keys[name] = key
        return registry

    # --- building models ---------------------------------------------------------------------------------

    def get_llm(
        self,
        provider_name: str | None = None,
        model_alias: str | None = None,
        callbacks: Callbacks = None,
        enhanced: bool | None = None,
        *,
        enable_cache: bool | None = None,
        cache_ttl: float | None = None,
        enable_optimizations: bool | None = None,
    ) -> BaseChatModel:
        """A LangChain chat model for ``provider_name``/``model_alias`` (default: the current model).

        ``enable_cache`` / ``cache_ttl`` turn on the response cache (``modelforge.cache``) over the
        provider's ``cache`` section (``None``: as the section says; a ``cache_ttl`` alone turns it on);
        ``enable_optimizations`` overrides the registry's choice for this model.
        """
        provider_name, model_alias = self._select(provider_name, model_alias)
        provider = self._provider_config(provider_name)
        if not provider.llm_type:
            raise ConfigurationError(
                f"Provider '{provider_name}' has no llm_type",
                error_code="MISSING_LLM_TYPE",
                provider=provider_name,
                suggestion="Set llm_type to one of: openai_compatible, anthropic, ollama, google_genai, "
                "github_copilot, local.",
            )
        family = get_family(provider.llm_type, provider=provider_name)
        model = provider.models.get(model_alias)
        if model is None:
            raise ModelNotFoundError(provider_name, model_alias, sorted(provider.models))
        request = ModelRequest(
            provider_name=provider_name,
            model_alias=model_alias,
            provider=provider,
            model=model,
            api_key=self._api_keys.get(provider_name),
        )
        if self.verbose:
            logger.info("Building %s/%s (%s)", provider_name, model_alias, family.llm_type)
        if model.responses_api() is not None and not family.speaks_openai:
            raise ConfigurationError(
                f"Model '{provider_name}/{model_alias}' sets api / use_responses_api, which only "
                f"OpenAI-compatible providers have (this provider is {family.llm_type})",
                error_code="RESPONSES_API_UNSUPPORTED",
                suggestion=f"Remove api / use_responses_api from the model's entry under '{provider_name}'",
            )
        try:
            built = family.build(request)
        except ImportError as err:
            raise ProviderNotAvailableError(
                provider_name,
                f"its package is not installed ({err.name})",
                suggestion=f"Install it with: pip install {family.pip_package}",
            ) from err
        if enable_optimizations is None:
            enable_optimizations = self.enable_optimizations
        cache = response_cache_for(request, enable_cache=enable_cache, cache_ttl=cache_ttl)
        retry = {**family.retry_defaults, **(provider.retry or {})}
        pipeline = build_pipeline(request, family, retry=retry, cache=cache, optimize=enable_optimizations)
        llm: BaseChatModel
        if isinstance(built, ManagedChatModel):
            built.attach(
                ForgeState(
                    provider_name=provider_name,
                    model_alias=model_alias,
                    llm_type=family.llm_type,
                    pipeline=pipeline,
                    retry=retry,
                    rebuild=_rebuild_model,
                    options=dict(self._source),
                )
            )
            if callbacks is not None:
                built.callbacks = callbacks
            if cache is not None:  # not LangChain's global cache as well: it would answer past our ttl
                built.cache = False
            llm = built
        else:  # a family whose model is not one of ours: the same steps, around it
            llm = PipelineChatModel(wrapped_llm=built, pipeline=pipeline, callbacks=callbacks)
        if enhanced is None:
            enhanced = os.environ.get("MODELFORGE_ENHANCED", "").strip().lower() == "true"
        if enhanced:
            from modelforge.enhanced_llm import enhance

            llm = enhance(llm, provider_name, model_alias)
        if provider.fallbacks:
            from modelforge.policies.fallback_config import build_fallback_chain

            llm = build_fallback_chain(
                self,
                provider_name,
                model_alias,
                primary=llm,
                build=lambda name, alias: self.get_llm(
                    name,
                    alias,
                    callbacks=callbacks,
                    enhanced=enhanced,
                    enable_cache=enable_cache,
                    cache_ttl=cache_ttl,
                    enable_optimizations=enable_optimizations,
                ),
            )
        return llm

    def _select(self, provider_name: str | None, model_alias: str | None) -> tuple[str, str]:
        config = self._loaded.config
        if (
            provider_name
            and not model_alias
            and (":" in provider_name or "/" in provider_name)
            and provider_name not in config.providers  # a configured name is a name, whatever it holds
        ):
            provider_name, model_alias = split_model_spec(provider_name)  # "openai:gpt-4o-mini"
        if provider_name and model_alias:
            return provider_name, model_alias
        current = config.current_model
        if provider_name:
            if current and current.provider == provider_name:
                return provider_name, current.model
            models = sorted(self._provider_config(provider_name).models)
            if len(models) == 1:
                return provider_name, models[0]
            raise ConfigurationError(
                f"Provider '{provider_name}' has {len(models)} models; say which one",
                error_code="NO_MODEL_SELECTED",
                provider=provider_name,
                suggestion="Pass model_alias, one of: " + (", ".join(models) or "(none configured)"),
            )
        if current:
            return current.provider, model_alias or current.model
        if not config.providers:
            return LOCAL_PROVIDER, model_alias or LOCAL_MODEL_ALIAS
        raise ConfigurationError(
            "No model selected",
            error_code="NO_MODEL_SELECTED",
            suggestion="Choose one with: modelforge config use --provider <provider> --model <model>",
        )

    def _provider_config(self, provider_name: str) -> ProviderConfig:
        providers = self._loaded.config.providers
        if provider_name in providers:
            return providers[provider_name]
        if provider_name == LOCAL_PROVIDER:
            return _BUILTIN_LOCAL
        known = ", ".join(sorted(providers)) or "(none)"
        raise ProviderNotAvailableError(
            provider_name,
            "it is not configured",
            suggestion=f"Configured providers: {known}. Add one with: modelforge config add --provider "
            f"{provider_name} --model <model>",
        )

    # --- streaming -------------------------------------------------------------------------------------

    def stream(
        self, prompt: Any, *, provider_name: str | None = None, model_alias: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[str, None]:
        """``modelforge.stream`` on ``get_llm(provider_name, model_alias)``; ``kwargs`` as for ``stream``."""
        from modelforge.streaming import stream

        return stream(self.get_llm(provider_name, model_alias), prompt, **kwargs)

    def stream_events(
        self, prompt: Any, *, provider_name: str | None = None, model_alias: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[StreamEvent, None]:
        """``modelforge.stream_events`` on ``get_llm(provider_name, model_alias)``."""
        from modelforge.streaming import stream_events

        return stream_events(self.get_llm(provider_name, model_alias), prompt, **kwargs)

    # --- batches ---------------------------------------------------------------------------------------

    async def batch_invoke(
        self,
        prompts: Sequence[Any],
        *,
        provider_name: str | None = None,
        model_alias: str | None = None,
        max_concurrent: int | None = None,
        use_batch_api: bool | Literal["auto"] | None = None,
        on_progress: Callable[[BatchProgress], Any] | None = None,
        **kwargs: Any,
    ) -> list[BatchResult]:
        """Answer every prompt, in input order: one ``BatchResult`` (answer or error) per prompt.

        Live calls run ``max_concurrent`` at a time within the provider's rate limits; with
        ``use_batch_api`` the provider's batch API is used (OpenAI, Anthropic). See ``modelforge.batch``.
        """
        from modelforge.batch import batch_invoke

        return await batch_invoke(
            self,
            prompts,
            provider_name=provider_name,
            model_alias=model_alias,
            max_concurrent=max_concurrent,
            use_batch_api=use_batch_api,
            on_progress=on_progress,
            **kwargs,
        )

    async def resume_batch(
        self, job_id: str, *, on_progress: Callable[[BatchProgress], Any] | None = None, **kwargs: Any
    ) -> list[BatchResult]:
        """Wait for (or collect) a provider batch job started earlier, possibly by a process that died."""
        from modelforge.batch import resume_batch

        return await resume_batch(self, job_id, on_progress=on_progress, **kwargs)

    # --- connections ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled HTTP connections, cache connections and Gemini cached contents (also done at exit).

        These are shared by every registry in the process, so this closes them for all of them; models
        keep working and open new connections when they are used again.
        """
        from modelforge.cache import close_caches
        from modelforge.optimizers import close_context_caches
        from modelforge.pooling import close_pools

        close_context_caches()
        close_caches()
        close_pools()

    async def aclose(self) -> None:
        """As ``close``, and the running event loop's async connections too."""
        from modelforge.cache import aclose_caches
        from modelforge.optimizers import aclose_context_caches
        from modelforge.pooling import aclose_pools

        await aclose_context_caches()
        await aclose_caches()
        await aclose_pools()

    # --- discovery (2.3.0) -------------------------------------------------------------------------------

    def get_available_providers(self, force_refresh: bool = False) -> list[dict[str, Any]]:
        """Providers known to models.dev (bundled catalogue when offline)."""
        from modelforge.catalog.modelsdev import ModelsDevClient

        return ModelsDevClient().get_providers(force_refresh=force_refresh)

    def get_available_models(
        self, provider: str | None = None, force_refresh: bool = False
    ) -> list[dict[str, Any]]:
        """Models known to models.dev, optionally for one provider."""
        from modelforge.catalog.modelsdev import ModelsDevClient

        return ModelsDevClient().get_models(provider=provider, force_refresh=force_refresh)

    def get_configured_providers(self) -> dict[str, dict[str, Any]]:
        """The configured providers as dicts, secrets left out."""
        return {
            name: provider.model_dump(exclude={"auth_data"}, exclude_none=True)
            for name, provider in self._loaded.config.providers.items()
        }

    def get_configured_models(self, provider: str | None = None) -> dict[str, dict[str, Any]]:
        """Configured models of ``provider`` by alias; with no provider, all as ``"provider/alias"``."""
        providers = self._loaded.config.providers
        if provider is not None:
            if provider not in providers:
                return {}
            return {
                alias: model.model_dump(exclude_none=True, exclude_defaults=True)
                for alias, model in providers[provider].models.items()
            }
        return {
            f"{name}/{alias}": model.model_dump(exclude_none=True, exclude_defaults=True)
            for name, config in providers.items()
            for alias, model in config.models.items()
        }

    def is_provider_configured(self, provider: str) -> bool:
        """Whether the config has a provider named ``provider`` (exactly as written there)."""
        return provider in self._loaded.config.providers

    def is_model_configured(self, provider: str, model_alias: str) -> bool:
        """Whether ``provider`` is configured and lists the model alias ``model_alias``."""
        config = self._loaded.config.providers.get(provider)
        return config is not None and model_alias in config.models


def _without_secrets(config: ModelForgeConfig) -> dict[str, Any]:
    data = config.model_dump(exclude_none=True)
    for provider in data.get("providers", {}).values():
        provider.pop("auth_data", None)
        provider.pop("headers", None)
    return data


def _rebuild_model(
    provider_name: str, model_alias: str, options: dict[str, Any], settings: dict[str, Any]
) -> BaseChatModel:
    """A pickled ``get_llm`` model built again in this process (``ManagedChatModel.__reduce__``): from the
    registry's config file (or the config given in code, secrets left out), the model alone (a fallback
    chain pickles its members one by one), with the steps its pipeline had (``options["steps"]``: its
    response cache and optimizer, however they were added) and the settings changed on it."""
    from modelforge.policies.fallback_config import no_fallbacks

    if "config" in options:
        registry = ModelForgeRegistry.from_config(options["config"])
    else:
        registry = ModelForgeRegistry(config_path=options.get("config_path"))
    with no_fallbacks():
        llm = registry.get_llm(
            provider_name, model_alias, enhanced=False, enable_cache=False, enable_optimizations=False
        )
    for kind, recipe in options.get("steps", ()):
        llm = _with_recipe(llm, provider_name, kind, recipe)
    for name, value in settings.items():
        setattr(llm, name, value)
    return llm


def _with_recipe(llm: BaseChatModel, provider_name: str, kind: str, recipe: Any) -> BaseChatModel:
    from modelforge.cache import CacheStep, add_cache_step
    from modelforge.optimizers import add_optimizer_step, optimizer_for

    if kind == "cache":
        return add_cache_step(llm, CacheStep(provider_name, recipe))
    if kind == "optimizer":
        config, llm_type, model_name = recipe
        optimizer = optimizer_for(llm_type, config, provider_name=provider_name, model_name=model_name)
        return llm if optimizer is None else add_optimizer_step(llm, optimizer)
    return llm
