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
(``ResponseCache``: decisions, counters, sharing) and ``_model`` (``CachedChatModel``).
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
from modelforge.cache._config import BACKENDS, CacheConfig, default_sqlite_path, validate_section
from modelforge.cache._entry import MARKER as CACHE_MARKER
from modelforge.cache._memory import MemoryBackend
from modelforge.cache._model import CachedChatModel

if TYPE_CHECKING:
    from modelforge.cache._redis import RedisBackend
    from modelforge.cache._sqlite import SQLiteBackend

__all__ = [
    "BACKENDS",
    "CACHE_MARKER",
    "CacheBackend",
    "CacheConfig",
    "CacheStats",
    "CachedChatModel",
    "MemoryBackend",
    "RedisBackend",
    "ResponseCache",
    "SQLiteBackend",
    "aclose_caches",
    "cache_for",
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
    return CachedChatModel(
        wrapped_llm=llm,
        provider_name=provider_name,
        response_cache=cache,
        callbacks=getattr(llm, "callbacks", None),
    )
