"""``CacheStep``: the pipeline step whose complete answers are kept and served again, streams included.

The outermost step of a ``get_llm`` model with caching on (``modelforge.pipeline``), so an answer it
serves costs no rate-limit budget, no retry and no provider call:

* invoke: a fresh entry answers at once, marked ``response_metadata["modelforge_cache"] = "hit"``;
  otherwise the call goes on and an answer that ended normally is stored (a truncated ``length``
  or a filtered ``content_filter`` / ``SAFETY`` answer is returned but not stored);
* stream: a fresh entry replays chunk for chunk, with its original boundaries, tool-call chunks, usage and
  finish reason; otherwise chunks pass through as they arrive and are stored only when the stream reached
  its end with a normal finish reason (a stream cut short raises ``StreamInterruptedError`` below
  us, and one the consumer abandoned is not stored either). An entry stored by an invoke answers a stream
  as one chunk; one stored by a stream answers an invoke with its chunks merged;
* with ``serve_stale``, when the provider is down (network error, 5xx, overloaded, rate limited, circuit
  open) and an expired entry is still kept, that entry answers, marked ``"stale"``, with a WARNING log
  (a stream only while nothing has reached the caller).

The key (``modelforge.cache._keys``) covers the model, its settings, the steps that shape its requests
(the optimizer's ``cache_identity()``), the messages and the call's options; a request holding something
that cannot be keyed reliably goes to the provider uncached. Hits (with the tokens and catalogue price of
the answer served: the money saved) and misses are also counted in ``modelforge.telemetry.metrics``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from modelforge._pipeline import Call, Step
from modelforge.cache._cache import ResponseCache
from modelforge.cache._entry import CachedAnswer, chunk_record
from modelforge.cache._keys import UncacheableRequest, cache_key, identity_digest
from modelforge.delegating import innermost
from modelforge.telemetry import metrics

__all__ = ["CacheStep"]

logger = logging.getLogger("modelforge.cache._model")

# The lookup a model's fast path made for a call that missed, handed to this step's ``generate`` of the same
# call (matched by its messages list), so a miss reads the backend once.
_handed: contextvars.ContextVar[tuple[list[BaseMessage], str | None, CachedAnswer | None] | None] = (
    contextvars.ContextVar("modelforge_cache_handed", default=None)
)


class CacheStep(Step):
    """Answers from ``response_cache`` when it can, stores what the provider answered (module docstring)."""

    name = "response cache"

    def __init__(self, provider_name: str, response_cache: ResponseCache) -> None:
        self.provider_name = provider_name
        self.response_cache = response_cache

    def __repr__(self) -> str:
        return f"CacheStep(provider={self.provider_name!r}, cache={self.response_cache!r})"

    def recipe(self) -> tuple[str, Any]:
        # The cache pickles as its configuration (a Redis URL without its password) and comes back shared.
        return ("cache", self.response_cache)

    def _key(self, call: Call) -> str | None:
        """The request's cache key, or None when it holds something that cannot be keyed reliably (a live
        object, a callable without code): such a call goes to the provider and is not stored."""
        try:
            identity = identity_digest(call.model, self.provider_name)
            return cache_key(
                self.response_cache.config.namespace, identity, call.messages, call.stop, call.kwargs
            )
        except UncacheableRequest as err:
            logger.debug("Call not cached (%s): its request holds %s", self.provider_name, err)
            return None

    @staticmethod
    def _metrics_model(call: Call) -> str:
        """The model the metrics count this cache's lookups under (as the calls are counted)."""
        leaf = innermost(call.model)
        value = getattr(leaf, "model_name", None) or getattr(leaf, "model", None)
        if isinstance(value, str):
            return value
        forge = getattr(leaf, "forge", None)
        return forge.model_alias if forge is not None else ""

    def _hit(
        self, call: Call, answer: CachedAnswer, messages: list[BaseMessage], *, stale: bool = False
    ) -> None:
        """Count an answer served from the cache (a stale one is counted by ``stale_answer`` itself), at the
        price of its tokens (worked out once per entry)."""
        if not stale:
            self.response_cache.count("hits")
        model = self._metrics_model(call)
        priced = answer.priced(
            (self.provider_name, model), lambda: metrics.price_answer(self.provider_name, model, messages)
        )
        metrics.record_cache_hit(self.provider_name, model, messages, stale=stale, priced=priced)

    def _miss(self, call: Call) -> None:
        self.response_cache.count("misses")
        metrics.record_cache_miss(self.provider_name, self._metrics_model(call))

    def _fresh_result(self, call: Call, found: CachedAnswer | None) -> ChatResult | None:
        """The answer of a fresh entry (counted as a hit), or None: the call goes to the provider (a miss)."""
        hit = self.hit(call, found)
        if hit is None:
            self._miss(call)
        return hit

    def _stale_result(self, call: Call, found: CachedAnswer | None, err: Exception) -> ChatResult | None:
        """The stale answer served because the provider failed with ``err``, or None (then ``err`` stands)."""
        stale = self.response_cache.stale_answer(found, err, self.provider_name)
        if stale is None:
            return None
        served = stale.result("stale")
        self._hit(call, stale, [generation.message for generation in served.generations], stale=True)
        return served

    # --- invoke ------------------------------------------------------------------------------------------

    def peek(self, call: Call) -> tuple[str | None, CachedAnswer | None]:
        """The call's key and the entry found under it (counting nothing): the model's fast path, before
        LangChain prepares a call to the provider (``ManagedChatModel._generate_with_cache``)."""
        key = self._key(call)
        return key, (None if key is None else self.response_cache.lookup(key))

    async def apeek(self, call: Call) -> tuple[str | None, CachedAnswer | None]:
        key = self._key(call)
        return key, (None if key is None else await self.response_cache.alookup(key))

    def hit(self, call: Call, found: CachedAnswer | None) -> ChatResult | None:
        """The answer of ``found`` when it is fresh (counted as a hit), else None (nothing counted)."""
        if found is None or not self.response_cache.fresh(found):
            return None
        answer = found.result("hit")
        self._hit(call, found, [generation.message for generation in answer.generations])
        return answer

    @contextlib.contextmanager
    def handing_over(self, call: Call, key: str | None, found: CachedAnswer | None) -> Iterator[None]:
        """Inside: this call's ``generate`` takes ``key`` and ``found`` instead of reading the backend again
        (the fast path missed; LangChain goes on to ``_generate`` with the same messages)."""
        token = _handed.set((call.messages, key, found))
        try:
            yield
        finally:
            _handed.reset(token)

    def _looked_up(self, call: Call) -> tuple[str | None, CachedAnswer | None, bool]:
        """The key and entry the fast path handed over for this call, and whether it did."""
        handed = _handed.get()
        if handed is not None and handed[0] is call.messages:
            return handed[1], handed[2], True
        return None, None, False

    def generate(self, call: Call, send: Callable[[Call], ChatResult]) -> ChatResult:
        cache = self.response_cache
        key, found, handed = self._looked_up(call)
        if not handed:
            key = self._key(call)
            found = None if key is None else cache.lookup(key)
        if key is None:
            return send(call)
        hit = self._fresh_result(call, found)
        if hit is not None:
            return hit
        try:
            result = send(call)
        except Exception as err:
            served = self._stale_result(call, found, err)
            if served is None:
                raise
            return served
        cache.store_result(key, result)
        return result

    async def agenerate(self, call: Call, send: Callable[[Call], Awaitable[ChatResult]]) -> ChatResult:
        cache = self.response_cache
        key, found, handed = self._looked_up(call)
        if not handed:
            key = self._key(call)
            found = None if key is None else await cache.alookup(key)
        if key is None:
            return await send(call)
        hit = self._fresh_result(call, found)
        if hit is not None:
            return hit
        try:
            result = await send(call)
        except Exception as err:
            served = self._stale_result(call, found, err)
            if served is None:
                raise
            return served
        await cache.astore_result(key, result)
        return result

    # --- stream ------------------------------------------------------------------------------------------

    def _replay(self, call: Call, found: CachedAnswer | None) -> list[ChatGenerationChunk] | None:
        """The chunks of a fresh entry (counted as a hit), or None: the call goes to the provider (a miss)."""
        if found is not None and self.response_cache.fresh(found):
            chunks = found.chunks("hit")
            if chunks is not None:
                self._hit(call, found, [chunk.message for chunk in chunks])
                return chunks
        self._miss(call)
        return None

    def _stale_chunks(
        self, call: Call, found: CachedAnswer | None, err: Exception
    ) -> list[ChatGenerationChunk] | None:
        stale = self.response_cache.stale_answer(found, err, self.provider_name)
        chunks = None if stale is None else stale.chunks("stale")
        if chunks is not None and stale is not None:
            self._hit(call, stale, [chunk.message for chunk in chunks], stale=True)
        return chunks

    def stream(
        self, call: Call, send: Callable[[Call], Iterator[ChatGenerationChunk]]
    ) -> Iterator[ChatGenerationChunk]:
        cache = self.response_cache
        key = self._key(call)
        if key is None:
            yield from send(call)
            return
        found = cache.lookup(key)
        replay = self._replay(call, found)
        if replay is not None:
            yield from replay
            return
        records: list[dict[str, Any]] = []
        stale: list[ChatGenerationChunk] | None = None
        source = cast(Generator[ChatGenerationChunk, None, None], send(call))
        with contextlib.closing(source):  # an early exit closes the provider's stream too
            try:
                for chunk in source:
                    records.append(chunk_record(chunk))  # now: LangChain changes the chunk once yielded
                    yield chunk
            except Exception as err:
                stale = None if records else self._stale_chunks(call, found, err)
                if stale is None:
                    raise
        if stale is not None:
            yield from stale
            return
        cache.store_chunks(key, records)

    async def astream(
        self, call: Call, send: Callable[[Call], AsyncIterator[ChatGenerationChunk]]
    ) -> AsyncIterator[ChatGenerationChunk]:
        cache = self.response_cache
        key = self._key(call)
        if key is None:
            async for passed in send(call):
                yield passed
            return
        found = await cache.alookup(key)
        replay = self._replay(call, found)
        if replay is not None:
            for chunk in replay:
                yield chunk
            return
        records: list[dict[str, Any]] = []
        stale: list[ChatGenerationChunk] | None = None
        source = cast(AsyncGenerator[ChatGenerationChunk, None], send(call))
        async with contextlib.aclosing(source):
            try:
                async for chunk in source:
                    records.append(chunk_record(chunk))
                    yield chunk
            except Exception as err:
                stale = None if records else self._stale_chunks(call, found, err)
                if stale is None:
                    raise
        if stale is not None:
            for chunk in stale:
                yield chunk
            return
        await cache.astore_chunks(key, records)
