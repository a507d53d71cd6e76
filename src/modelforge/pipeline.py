"""The order of the policies a ``get_llm`` model's calls go through: one place, read top to bottom.

::

    caller: invoke / ainvoke / stream / astream / batch (LangChain's own methods of the SDK class)
      1. response cache        modelforge.cache._step.CacheStep            (when caching is on)
      2. optimizer             modelforge.optimizers._step.OptimizeStep    (when optimizations are on)
      3. stream integrity,     modelforge.policies.stream_integrity.StreamIntegrityStep
         metrics
      4. rate limit, retry,    modelforge.policies.retry.RetryStep
         error translation
    SDK: ChatOpenAI / ChatAnthropic / ChatOllama / ChatGoogleGenerativeAI ._generate / ._stream ...

Why this order: a cached answer costs nothing below it (no optimizer work, budget or retry), and the cache
keys the request as the caller wrote it; the optimizer shapes the request once, and retries resend that
shape; metrics count one call with all its attempts, and a stream's integrity is judged on what reached
the caller; each attempt takes its place in the rate limit, and an SDK error becomes a ModelForge error
once, at the edge, before the retry decision reads it. Observability (callbacks, logger, OpenTelemetry
spans: ``modelforge.telemetry.observability``) is a LangChain callback handler, so it sees the call as
LangChain runs it, around all of this.
"""

from __future__ import annotations

from typing import Any

from modelforge._pipeline import Pipeline, Step
from modelforge.cache import CacheConfig, CacheStep, ResponseCache, cache_for
from modelforge.optimizers import OptimizationConfig, OptimizeStep, optimizer_for
from modelforge.policies.retry import RetryStep
from modelforge.policies.stream_integrity import StreamIntegrityStep
from modelforge.providers import ModelRequest, ProviderFamily

__all__ = ["build_pipeline", "response_cache_for"]


def response_cache_for(
    request: ModelRequest, *, enable_cache: bool | None, cache_ttl: float | None
) -> ResponseCache | None:
    """The response cache ``get_llm``'s options and the provider's ``cache`` section ask for, or None."""
    section = request.provider.cache
    if not (
        enable_cache or (enable_cache is None and (section not in (None, False) or cache_ttl is not None))
    ):
        return None
    # A cache_ttl given in code asks for caching whatever the section says (enable_cache=False wins).
    enable = enable_cache if enable_cache is not None else (True if cache_ttl is not None else None)
    config = CacheConfig.from_config(section, enable=enable, ttl=cache_ttl)
    return cache_for(config, provider=request.provider_name) if config.enabled else None


def build_pipeline(
    request: ModelRequest,
    family: ProviderFamily,
    *,
    retry: dict[str, Any],
    cache: ResponseCache | None = None,
    optimize: bool = False,
) -> Pipeline:
    """The steps of one model, in the order above; ``retry`` is the provider's section with the family's
    defaults."""
    steps: list[Step] = []
    if cache is not None:
        steps.append(CacheStep(request.provider_name, cache))
    if optimize:
        config = OptimizationConfig.from_config(request.provider.optimizations)
        optimizer = optimizer_for(
            family.llm_type, config, provider_name=request.provider_name, model_name=request.model_name
        )
        if optimizer is not None:
            steps.append(OptimizeStep(optimizer))
    steps.append(StreamIntegrityStep(request.provider_name, request.model_alias))
    steps.append(
        RetryStep(
            provider=request.provider_name,
            family=family,
            alias=request.model_alias,
            retry=retry,
            rate_limit=request.provider.rate_limit,
            pooled=request.pool_limits().enabled,
        )
    )
    return Pipeline(steps)
