"""Hits, misses and expiry on every backend, sync and async: a repeated question is answered once by the
provider; a different question, temperature, tool list or stop sequence asks again; an answer older than
its ttl asks again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from modelforge.cache import CachedChatModel, CacheStats
from modelforge.testing import ProviderServer, Reply
from tests.cache.conftest import FakeClock, ask, marker, requests_to

MODES = ("sync", "async")


@pytest.mark.parametrize("mode", MODES)
async def test_repeated_question_is_answered_once(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    server.script(Reply(text="Four."), Reply(text="A different answer the cache must hide."))
    llm = make_cached(section)
    first = await ask(llm, "What is 2 + 2?", mode)
    second = await ask(llm, "What is 2 + 2?", mode)
    assert (first.content, second.content) == ("Four.", "Four.")
    assert requests_to(server) == 1
    assert marker(first) is None and marker(second) == "hit"
    assert second.id != first.id  # each answer keeps an id of its own run (LangGraph merges by id)
    assert llm.cache_stats == CacheStats(hits=1, misses=1, stores=1)
    assert llm.response_cache.stats == llm.cache_stats


@pytest.mark.parametrize("mode", MODES)
async def test_a_hit_keeps_usage_and_metadata(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    llm = make_cached(section)
    first = await ask(llm, "hello", mode)
    second = await ask(llm, "hello", mode)
    assert second.usage_metadata == first.usage_metadata
    assert {k: v for k, v in second.response_metadata.items() if k != "modelforge_cache"} == (
        first.response_metadata
    )


@pytest.mark.parametrize("mode", MODES)
async def test_message_ids_and_prompt_forms_do_not_matter(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    llm = make_cached(section)
    await ask(llm, "Same question", mode)
    await ask(llm, [HumanMessage("Same question", id="message-1")], mode)
    await ask(llm, [HumanMessage("Same question", id="message-2", additional_kwargs={})], mode)
    assert requests_to(server) == 1
    assert llm.cache_stats.hits == 2


class Weather(BaseModel):
    """Get the weather of a city."""

    city: str


class Time(BaseModel):
    """Get the time in a city."""

    city: str


@pytest.mark.parametrize("mode", MODES)
async def test_different_requests_miss(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    llm = make_cached(section)
    await ask(llm, "Question", mode)
    await ask(llm, "Another question", mode)
    await ask(llm, [SystemMessage("Be brief."), HumanMessage("Question")], mode)
    await ask(llm, "Question", mode, temperature=0.9)
    await ask(llm, "Question", mode, temperature=0.1)
    await ask(llm, "Question", mode, stop=["."])
    await ask(llm.bind_tools([Weather]), "Question", mode)
    await ask(llm.bind_tools([Time]), "Question", mode)
    await ask(llm.bind_tools([Time], tool_choice="Time"), "Question", mode)
    assert requests_to(server) == 9
    assert llm.cache_stats == CacheStats(hits=0, misses=9, stores=9)
    # ... and every one of them is now cached on its own.
    await ask(llm, "Question", mode, temperature=0.9)
    await ask(llm.bind_tools([Time]), "Question", mode)
    assert requests_to(server) == 9
    assert llm.cache_stats.hits == 2


async def test_model_settings_are_part_of_the_key(
    server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    llm = make_cached(section)
    warmer = llm.model_copy(update={"temperature": 1.5})
    await ask(llm, "Question", "async")
    await ask(warmer, "Question", "async")
    await ask(warmer, "Question", "async")
    assert requests_to(server) == 2
    llm.temperature = 1.5  # type: ignore[attr-defined]  # assigned: now the same settings as ``warmer``
    assert marker(await ask(llm, "Question", "async")) == "hit"
    llm.model_kwargs["seed"] = 7  # type: ignore[attr-defined]  # changed in place: another key again
    assert marker(await ask(llm, "Question", "async")) is None
    assert requests_to(server) == 3
    other = make_cached(section, provider="anthropic")  # same question, same cache, other provider
    await ask(other, "Question", "async")
    assert requests_to(server, "anthropic") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_answers_expire_after_their_ttl(
    mode: str,
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    server.script(Reply(text="old"), Reply(text="new"))
    llm = make_cached({**section, "ttl": 60}, now=clock)
    assert (await ask(llm, "news?", mode)).content == "old"
    clock.advance(59)
    assert (await ask(llm, "news?", mode)).content == "old"
    clock.advance(2)
    answer = await ask(llm, "news?", mode)
    assert (answer.content, marker(answer)) == ("new", None)
    assert (await ask(llm, "news?", mode)).content == "new"
    assert requests_to(server) == 2
    assert llm.cache_stats == CacheStats(hits=2, misses=2, stores=2)


async def test_cache_ttl_argument_wins_over_the_section(
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    llm = make_cached({**section, "ttl": 3600}, now=clock, ttl=10)
    assert llm.response_cache.config.ttl == 10
    await ask(llm, "q", "async")
    clock.advance(11)
    await ask(llm, "q", "async")
    assert requests_to(server) == 2


async def test_a_shorter_ttl_reader_does_not_take_older_answers(
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    patient = make_cached({**section, "ttl": 3600}, now=clock)
    hurried = make_cached({**section, "ttl": 30}, now=clock)
    await ask(patient, "q", "async")
    clock.advance(60)
    await ask(patient, "q", "async")  # an hour's ttl: still fresh
    await ask(hurried, "q", "async")  # 30 s: too old for this reader
    assert requests_to(server) == 2


async def test_clear_forgets_the_namespace_only(
    server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    llm = make_cached(section)
    neighbour = make_cached({**section, "namespace": section["namespace"] + "-neighbour"})
    await ask(llm, "q", "async")
    await ask(neighbour, "q", "async")
    llm.clear_cache()
    await ask(llm, "q", "async")
    await ask(neighbour, "q", "async")
    assert requests_to(server) == 3
    await neighbour.aclear_cache()
    await ask(neighbour, "q", "async")
    assert requests_to(server) == 4


async def test_changing_an_answer_does_not_change_the_cache(
    server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    llm = make_cached(section)
    first = await ask(llm, "q", "async")
    hit = await ask(llm, "q", "async")
    hit.content = "changed by the caller"
    hit.response_metadata["token_usage"] = {"changed": True}
    assert hit.usage_metadata is not None
    hit.usage_metadata["output_tokens"] = 999
    again = await ask(llm, "q", "async")
    assert again.content == first.content
    assert again.usage_metadata == first.usage_metadata
    assert again.response_metadata.get("token_usage") == first.response_metadata.get("token_usage")


async def test_a_global_langchain_cache_does_not_bypass_the_ttl(
    server: ProviderServer, clock: FakeClock, make_cached: Callable[..., CachedChatModel]
) -> None:
    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import get_llm_cache, set_llm_cache

    previous = get_llm_cache()
    set_llm_cache(InMemoryCache())
    try:
        llm = make_cached({"ttl": 60}, now=clock)
        await ask(llm, "q", "async")
        await ask(llm, "q", "async")
        clock.advance(61)
        await ask(llm, "q", "async")
    finally:
        set_llm_cache(previous)
    assert requests_to(server) == 2
    assert llm.cache_stats == CacheStats(hits=1, misses=2, stores=2)


@pytest.mark.parametrize("mode", MODES)
async def test_each_hit_is_an_answer_of_its_own(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    # Entries are decoded once and served as copies: what a caller does to one answer never shows in the next.
    llm = make_cached(section)
    await ask(llm, "Question", mode)
    first = await ask(llm, "Question", mode)
    first.response_metadata["mine"] = True
    first.additional_kwargs["mine"] = True
    first.response_metadata["token_usage"]["completion_tokens"] = 999  # nested, too
    first.content = "changed by the caller"
    second = await ask(llm, "Question", mode)
    assert marker(second) == "hit" and "mine" not in second.response_metadata
    assert second.response_metadata["token_usage"]["completion_tokens"] != 999
    assert "mine" not in second.additional_kwargs and second.content != "changed by the caller"
    assert first.id != second.id  # each run's own message id, as LangChain gives a fresh answer
    assert requests_to(server) == 1


async def test_a_miss_reads_the_backend_once(
    server: ProviderServer, make_cached: Callable[..., CachedChatModel]
) -> None:
    llm: Any = make_cached({"namespace": "reads-once"})
    backend = llm.response_cache.backend
    reads: list[str] = []
    original = backend.get

    def counted(key: str) -> Any:  # the real backend, its reads counted
        reads.append(key)
        return original(key)

    backend.get = counted
    try:
        await ask(llm, "Once", "sync")
        assert len(reads) == 1, "the fast path's lookup is handed to the cache step"
        await ask(llm, "Once", "sync")
        assert len(reads) == 2 and requests_to(server) == 1
    finally:
        del backend.get


def test_lookups_from_many_threads_never_fail(server: ProviderServer) -> None:
    # The decoded-entry memo is shared: many threads filling and evicting it at once (a thread-pooled batch).
    import sys
    import threading

    from modelforge.cache import ResponseCache
    from modelforge.cache._cache import _DECODED_KEPT
    from modelforge.sections.cache import CacheConfig

    cache = ResponseCache(CacheConfig.from_config({"namespace": "threads"}, enable=True))
    answer = AIMessage(content="x", response_metadata={"finish_reason": "stop"})
    from langchain_core.outputs import ChatGeneration, ChatResult

    keys = [f"threads:{index}" for index in range(_DECODED_KEPT * 2)]
    for key in keys:
        cache.store_result(key, ChatResult(generations=[ChatGeneration(message=answer)]))
    failures: list[BaseException] = []

    def look() -> None:
        try:
            for key in keys:
                assert cache.lookup(key) is not None
        except BaseException as err:
            failures.append(err)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=look) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
