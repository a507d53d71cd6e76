"""``CachedChatModel``: a chat model whose complete answers are kept and served again, streams included.

Around the wrapped model (normally the ``ManagedChatModel`` of ``get_llm``):

* invoke: a fresh entry answers at once, marked ``response_metadata["modelforge_cache"] = "hit"``;
  otherwise the call goes through and an answer that ended normally is stored (a truncated ``length``
  or a filtered ``content_filter`` / ``SAFETY`` answer is returned but not stored);
* stream: a fresh entry replays chunk for chunk, with its original boundaries, tool-call chunks, usage and
  finish reason; otherwise chunks pass through as they arrive and are stored only when the stream reached
  its end with a normal finish reason (a stream cut short raises ``StreamInterruptedError`` below
  us, and one the consumer abandoned is not stored either). An entry stored by an invoke answers a stream
  as one chunk; one stored by a stream answers an invoke with its chunks merged;
* with ``serve_stale``, when the provider is down (network error, 5xx, overloaded, rate limited, circuit
  open) and an expired entry is still kept, that entry answers, marked ``"stale"``, with a WARNING log
  (a stream only while nothing has reached the caller).

The key (``modelforge.cache._keys``) covers the model, its settings, the messages and the call's options;
a request holding something that cannot be keyed reliably goes to the provider uncached.
``llm.cache_stats`` reads the counters and ``llm.clear_cache()`` empties the namespace; hits (with the
tokens and catalogue price of the answer served: the money saved) and misses are also counted in
``modelforge.metrics``. It pickles as the
wrapped model (itself pickled without credentials) and the cache (its configuration, the Redis URL without
its password: see ``modelforge.cache._cache``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any, cast

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from modelforge import metrics
from modelforge.cache._cache import CacheStats, ResponseCache, cache_for
from modelforge.cache._config import CacheConfig
from modelforge.cache._entry import CachedAnswer, chunk_record
from modelforge.cache._keys import UncacheableRequest, cache_key, identity_digest
from modelforge.delegating import DelegatingChatModel, innermost

__all__ = ["CachedChatModel"]

logger = logging.getLogger(__name__)


class CachedChatModel(DelegatingChatModel):
    """``wrapped_llm`` with its answers cached in ``response_cache`` (see the module docstring)."""

    provider_name: str
    response_cache: ResponseCache
    # Not LangChain's cache as well (``set_llm_cache``): it would answer past our ttl and around our counters.
    cache: BaseCache | bool | None = False

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

    def _key(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> str | None:
        """The request's cache key, or None when it holds something that cannot be keyed reliably (a live
        object, a callable without code): such a call goes to the provider and is not stored."""
        try:
            identity = identity_digest(self.wrapped_llm, self.provider_name)
            return cache_key(self.response_cache.config.namespace, identity, messages, stop, kwargs)
        except UncacheableRequest as err:
            logger.debug("Call not cached (%s): its request holds %s", self.provider_name, err)
            return None

    def _metrics_model(self) -> str:
        """The model the metrics count this cache's lookups under (as ``ManagedChatModel`` counts calls)."""
        from modelforge.managed import managed_of

        managed = managed_of(self.wrapped_llm)
        if managed is not None:
            return managed.model_id or managed.model_alias
        leaf = innermost(self.wrapped_llm)
        return str(getattr(leaf, "model_name", None) or getattr(leaf, "model", None) or "")

    def _hit(self, messages: list[BaseMessage], *, stale: bool = False) -> None:
        """Count an answer served from the cache (a stale one is counted by ``stale_answer`` itself)."""
        if not stale:
            self.response_cache.count("hits")
        metrics.record_cache_hit(self.provider_name, self._metrics_model(), messages, stale=stale)

    def _miss(self) -> None:
        self.response_cache.count("misses")
        metrics.record_cache_miss(self.provider_name, self._metrics_model())

    def _fresh_result(self, found: CachedAnswer | None) -> ChatResult | None:
        """The answer of a fresh entry (counted as a hit), or None: the call goes to the provider (a miss)."""
        if found is not None and self.response_cache.fresh(found):
            hit = found.result("hit")
            self._hit([generation.message for generation in hit.generations])
            return hit
        self._miss()
        return None

    def _stale_result(self, found: CachedAnswer | None, err: Exception) -> ChatResult | None:
        """The stale answer served because the provider failed with ``err``, or None (then ``err`` stands)."""
        stale = self.response_cache.stale_answer(found, err, self.provider_name)
        if stale is None:
            return None
        served = stale.result("stale")
        self._hit([generation.message for generation in served.generations], stale=True)
        return served

    # --- invoke ------------------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        cache = self.response_cache
        key = self._key(messages, stop, kwargs)
        if key is None:
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        found = cache.lookup(key)
        hit = self._fresh_result(found)
        if hit is not None:
            return hit
        try:
            result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except Exception as err:
            served = self._stale_result(found, err)
            if served is None:
                raise
            return served
        cache.store_result(key, result)
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        cache = self.response_cache
        key = self._key(messages, stop, kwargs)
        if key is None:
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        found = await cache.alookup(key)
        hit = self._fresh_result(found)
        if hit is not None:
            return hit
        try:
            result = await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except Exception as err:
            served = self._stale_result(found, err)
            if served is None:
                raise
            return served
        await cache.astore_result(key, result)
        return result

    # --- stream ------------------------------------------------------------------------------------------

    def _replay(self, found: CachedAnswer | None) -> list[ChatGenerationChunk] | None:
        """The chunks of a fresh entry (counted as a hit), or None: the call goes to the provider (a miss)."""
        cache = self.response_cache
        if found is not None and cache.fresh(found):
            chunks = found.chunks("hit")
            if chunks is not None:
                self._hit([chunk.message for chunk in chunks])
                return chunks
        self._miss()
        return None

    def _stale_chunks(self, found: CachedAnswer | None, err: Exception) -> list[ChatGenerationChunk] | None:
        stale = self.response_cache.stale_answer(found, err, self.provider_name)
        chunks = None if stale is None else stale.chunks("stale")
        if chunks is not None:
            self._hit([chunk.message for chunk in chunks], stale=True)
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        cache = self.response_cache
        key = self._key(messages, stop, kwargs)
        if key is None:
            yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
            return
        found = cache.lookup(key)
        replay = self._replay(found)
        if replay is not None:
            yield from replay
            return
        records: list[dict[str, Any]] = []
        stale: list[ChatGenerationChunk] | None = None
        source = cast(
            Generator[ChatGenerationChunk, None, None],
            super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs),
        )
        with contextlib.closing(source):  # an early exit closes the provider's stream too
            try:
                for chunk in source:
                    records.append(chunk_record(chunk))  # now: LangChain changes the chunk once yielded
                    yield chunk
            except Exception as err:
                stale = None if records else self._stale_chunks(found, err)
                if stale is None:
                    raise
        if stale is not None:
            yield from stale
            return
        cache.store_chunks(key, records)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        cache = self.response_cache
        key = self._key(messages, stop, kwargs)
        if key is None:
            async for passed in super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs):
                yield passed
            return
        found = await cache.alookup(key)
        replay = self._replay(found)
        if replay is not None:
            for chunk in replay:
                yield chunk
            return
        records: list[dict[str, Any]] = []
        stale: list[ChatGenerationChunk] | None = None
        source = cast(
            AsyncGenerator[ChatGenerationChunk, None],
            super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs),
        )
        async with contextlib.aclosing(source):
            try:
                async for chunk in source:
                    records.append(chunk_record(chunk))
                    yield chunk
            except Exception as err:
                stale = None if records else self._stale_chunks(found, err)
                if stale is None:
                    raise
        if stale is not None:
            for chunk in stale:
                yield chunk
            return
        await cache.astore_chunks(key, records)


def _rebuild_cached(
    wrapped: BaseChatModel, provider_name: str, cache: ResponseCache | CacheConfig
) -> CachedChatModel:
    if isinstance(cache, CacheConfig):  # pickled by an earlier version
        cache = cache_for(cache, provider=provider_name)
    return CachedChatModel(wrapped_llm=wrapped, provider_name=provider_name, response_cache=cache)
