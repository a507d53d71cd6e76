"""Only complete answers are stored: a truncated (``length``) or filtered (``content_filter``) answer reaches
the caller, invoked or streamed, on every provider family, but the next identical call asks again."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from modelforge.cache import CachedChatModel, CacheStats
from modelforge.testing import ProviderServer, Reply
from tests.cache.conftest import ask, marker, requests_to, stream_chunks

FAMILIES = ("openai", "anthropic", "ollama", "google")


@pytest.mark.parametrize("reason", ["length", "content_filter"])
@pytest.mark.parametrize("provider", FAMILIES)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_incomplete_invoke_is_returned_not_stored(
    mode: str,
    provider: str,
    reason: str,
    server: ProviderServer,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    server.script(Reply(text="The answer is cut", finish_reason=reason), Reply(text="The whole answer."))
    llm = make_cached({"namespace": f"incomplete-{provider}"}, provider=provider)
    first = await ask(llm, "Tell me everything", mode)
    second = await ask(llm, "Tell me everything", mode)
    third = await ask(llm, "Tell me everything", mode)
    assert first.content == "The answer is cut"
    assert (second.content, marker(second)) == ("The whole answer.", None)
    assert (third.content, marker(third)) == ("The whole answer.", "hit")
    assert requests_to(server, provider) == 2
    assert llm.cache_stats == CacheStats(hits=1, misses=2, stores=1)


@pytest.mark.parametrize("reason", ["length", "content_filter"])
@pytest.mark.parametrize("provider", FAMILIES)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_incomplete_stream_is_returned_not_stored(
    mode: str,
    provider: str,
    reason: str,
    server: ProviderServer,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    server.script(Reply(text="The answer is cut", finish_reason=reason), Reply(text="The whole answer."))
    llm = make_cached({"namespace": f"incomplete-stream-{provider}"}, provider=provider)
    first = await stream_chunks(llm, "Tell me everything", mode)
    second = await stream_chunks(llm, "Tell me everything", mode)
    third = await stream_chunks(llm, "Tell me everything", mode)
    assert "".join(str(c.content) for c in first).strip() == "The answer is cut"
    assert "".join(str(c.content) for c in second).strip() == "The whole answer."
    assert marker(third[0]) == "hit"
    assert requests_to(server, provider) == 2
    assert llm.cache_stats == CacheStats(hits=1, misses=2, stores=1)
