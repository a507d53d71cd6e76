"""``CachedChatModel``: the response cache around a chat model ModelForge did not build.

``with_cache(llm, ...)`` on a ``get_llm`` model adds the cache as the first step of that model's own
pipeline (it stays the SDK's class); on any other LangChain chat model it returns this wrapper, which runs
the same ``CacheStep`` (``modelforge.cache._step``) around it. ``llm.cache_stats`` reads the counters and
``llm.clear_cache()`` empties the namespace. It pickles as the wrapped model and the cache (its
configuration, the Redis URL without its password: see ``modelforge.cache._cache``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.language_models import BaseChatModel

from modelforge._pipeline import Pipeline
from modelforge.cache._cache import CacheStats, ResponseCache, cache_for
from modelforge.cache._step import CacheStep
from modelforge.delegating import PipelineChatModel
from modelforge.sections.cache import CacheConfig

__all__ = ["CachedChatModel"]


class CachedChatModel(PipelineChatModel):
    """``wrapped_llm`` with its answers cached in ``response_cache`` (see ``modelforge.cache._step``)."""

    provider_name: str
    response_cache: ResponseCache
    # Not LangChain's cache as well (``set_llm_cache``): it would answer past our ttl and around our counters.
    cache: BaseCache | bool | None = False

    def current_pipeline(self) -> Pipeline:
        return Pipeline([CacheStep(self.provider_name, self.response_cache)])

    @property
    def cache_stats(self) -> CacheStats:
        """Hits, misses, stores, stale hits and backend errors of this model's cache."""
        return self.response_cache.stats

    def clear_cache(self) -> None:
        """Forget every answer of this cache's namespace."""
        self.response_cache.clear()

    async def aclear_cache(self) -> None:
        await self.response_cache.aclear()

    def __repr__(self) -> str:
        return f"CachedChatModel(provider={self.provider_name!r}, cache={self.response_cache!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_cached, (self.wrapped_llm, self.provider_name, self.response_cache))


def _rebuild_cached(
    wrapped: BaseChatModel, provider_name: str, cache: ResponseCache | CacheConfig
) -> CachedChatModel:
    if isinstance(cache, CacheConfig):  # pickled by an earlier version
        cache = cache_for(cache, provider=provider_name)
    return CachedChatModel(wrapped_llm=wrapped, provider_name=provider_name, response_cache=cache)
