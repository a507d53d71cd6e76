"""Response cache: repeated questions answered from a cache, streams replayed chunk for chunk.

::

    llm = ModelForgeRegistry().get_llm(enable_cache=True, cache_ttl=300)
    llm.invoke("What is 2 + 2?")            # asks the provider, stores the answer
    llm.invoke("What is 2 + 2?")            # from the cache: response_metadata["modelforge_cache"] == "hit"
    llm.cache_stats                         # CacheStats(hits=1, misses=1, stores=1, stale_hits=0, errors=0)

or per provider in the config (``cache: true`` or a mapping, see ``CacheConfig``)::

    providers:
      openai:
        cache: {backend: sqlite, ttl: 600, serve_stale: true, stale_ttl: 86400}

Backends: ``memory`` (LRU, this process; the default), ``sqlite`` (a 0600 file under
``~/.cache/model-forge/``, survives restarts) and ``redis`` (shared by every process using it). Only
complete successful answers are stored; a cached stream replays with its original chunks and tool-call
events; with ``serve_stale`` an expired answer stands in while the provider is down. A failing backend
never fails a call: it logs a warning and the call goes on uncached.

Layout: ``_config`` (the section), ``_keys`` (what a key covers), ``_entry`` (answers as bytes),
``_backend`` (the backend interface), ``_memory`` / ``_sqlite`` / ``_redis`` (backends), ``_cache``
(``ResponseCache``: decisions, counters, sharing), ``_step`` (``CacheStep``, the pipeline step) and
``_model`` (``CachedChatModel``, the step around a model ModelForge did not build).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel

from modelforge.cache._backend import CacheBackend
from modelforge.cache._cache import (
    CacheStats,
    ResponseCache,
    aclose_caches,
    cache_for,
    close_caches,
    is_outage,
)
from modelforge.cache._entry import MARKER as CACHE_MARKER
from modelforge.cache._memory import MemoryBackend
from modelforge.cache._model import CachedChatModel
from modelforge.cache._step import CacheStep
from modelforge.providers._managed import ManagedChatModel, with_step
from modelforge.sections.cache import BACKENDS, CacheConfig, default_sqlite_path, validate_section

if TYPE_CHECKING:
    from modelforge.cache._redis import RedisBackend
    from modelforge.cache._sqlite import SQLiteBackend

__all__ = [
    "BACKENDS",
    "CACHE_MARKER",
    "CacheBackend",
    "CacheConfig",
    "CacheStats",
    "CacheStep",
    "CachedChatModel",
    "MemoryBackend",
    "RedisBackend",
    "ResponseCache",
    "SQLiteBackend",
    "aclose_caches",
    "add_cache_step",
    "cache_for",
    "cache_of",
    "close_caches",
    "default_sqlite_path",
    "is_outage",
    "validate_section",
    "with_cache",
]


def __getattr__(name: str) -> Any:
    # The SQLite and Redis backends import their libraries only when asked for.
    if name == "SQLiteBackend":
        from modelforge.cache._sqlite import SQLiteBackend

        return SQLiteBackend
    if name == "RedisBackend":
        from modelforge.cache._redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def with_cache(
    llm: BaseChatModel,
    provider_name: str,
    section: Mapping[str, Any] | bool | None,
    *,
    enable: bool | None = None,
    ttl: float | None = None,
    now: Callable[[], float] | None = None,
) -> BaseChatModel:
    """``llm`` with its answers cached as the provider's ``cache`` ``section`` says.

    ``enable`` (``get_llm``'s ``enable_cache``) and ``ttl`` (``cache_ttl``) win over the section;
    when the result is "disabled", ``llm`` comes back unchanged. Models built with the same settings share
    one cache (``cache_for``); ``now`` gives this model a cache of its own on that clock (tests).
    Raises ``ValueError`` for a bad section and ``InvalidInputError`` for a bad ``ttl``.
    """
    config = CacheConfig.from_config(section, enable=enable, ttl=ttl)
    if not config.enabled:
        return llm
    if now is None:
        cache = cache_for(config, provider=provider_name)
    else:
        cache = ResponseCache(config, provider=provider_name, now=now)
    if isinstance(llm, ManagedChatModel) and llm.forge_or_none() is not None:
        return add_cache_step(llm, CacheStep(provider_name, cache))
    return CachedChatModel(
        wrapped_llm=llm,
        provider_name=provider_name,
        response_cache=cache,
        callbacks=getattr(llm, "callbacks", None),
    )


def add_cache_step(llm: BaseChatModel, step: CacheStep) -> BaseChatModel:
    """A copy of a ``get_llm`` model with ``step`` first in its pipeline (in place of a cache it had): an
    answer from the cache costs no optimizer work, no rate-limit budget and no retry."""
    cached = with_step(
        llm,
        step,
        position=lambda steps: 0,
        wrap=lambda model, step: model,
        replaces=CacheStep,
    )
    # Not LangChain's cache as well (``set_llm_cache``): it would answer past our ttl and counters.
    cached.cache = False
    return cached


def cache_of(llm: Any) -> ResponseCache | None:
    """The response cache of a model ``with_cache`` or ``get_llm`` gave (through wrappers), or None."""
    current: Any = llm
    for _ in range(32):
        if isinstance(current, CachedChatModel):
            return current.response_cache
        forge = getattr(current, "forge", None) if isinstance(current, ManagedChatModel) else None
        if forge is not None:
            step = forge.pipeline.find(CacheStep)
            return step.response_cache if step is not None else None
        current = getattr(current, "wrapped_llm", None)
        if current is None:
            return None
    return None
