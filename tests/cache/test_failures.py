"""Failures: a failed answer (an HTTP error, a stream cut short) is never stored; with ``serve_stale`` an
expired answer stands in while the provider is down (5xx, 429, server gone), marked "stale" and logged,
and never for errors that are the caller's (400) or past ``stale_ttl``; a cache backend that fails (Redis
unreachable, SQLite locked) is logged and the call goes on uncached."""

from __future__ import annotations

import logging
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelforge.cache import CachedChatModel, CacheStats
from modelforge.exceptions import (
    BadRequestError,
    NetworkConnectionError,
    ProviderServerError,
    RateLimitError,
    StreamInterruptedError,
)
from modelforge.testing import Fault, ProviderServer, Reply
from tests.cache.conftest import FakeClock, ask, marker, requests_to, stream_chunks

MODES = ("sync", "async")
CACHE_LOGGER = "modelforge.cache._cache"
PASSWORD = "cache-pw-never-logged-5b1e"


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CACHE_LOGGER and r.levelno == logging.WARNING]


@pytest.mark.parametrize("mode", MODES)
async def test_a_failed_answer_is_not_cached(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    server.script(Fault(500, "boom"), Reply(text="recovered"))
    llm = make_cached(section)
    with pytest.raises(ProviderServerError):
        await ask(llm, "q", mode)
    assert llm.cache_stats == CacheStats(misses=1)
    assert (await ask(llm, "q", mode)).content == "recovered"
    assert (await ask(llm, "q", mode)).content == "recovered"
    assert requests_to(server) == 2
    assert llm.cache_stats == CacheStats(hits=1, misses=2, stores=1)


@pytest.mark.parametrize("mode", MODES)
async def test_a_cut_stream_is_not_cached(
    mode: str, server: ProviderServer, section: dict[str, Any], make_cached: Callable[..., CachedChatModel]
) -> None:
    server.script(Reply(text="one two three four", cut_after=2), Reply(text="one two three four"))
    llm = make_cached(section)
    with pytest.raises(StreamInterruptedError):
        await stream_chunks(llm, "count", mode)
    assert llm.cache_stats.stores == 0
    chunks = await stream_chunks(llm, "count", mode)
    assert "".join(str(c.content) for c in chunks) == "one two three four"
    assert marker(chunks[0]) is None
    assert requests_to(server) == 2
    again = await stream_chunks(llm, "count", mode)
    assert marker(again[0]) == "hit"
    assert requests_to(server) == 2


def stale_section(section: dict[str, Any]) -> dict[str, Any]:
    return {**section, "ttl": 60, "serve_stale": True, "stale_ttl": 600}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "fault", [Fault(503, "unavailable"), Fault(500), Fault(429, retry_after="30")], ids=str
)
async def test_stale_answer_while_the_provider_fails(
    mode: str,
    fault: Fault,
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    server.script(Reply(text="yesterday's answer"), fault, fault, Reply(text="fresh answer"))
    llm = make_cached(stale_section(section), now=clock)
    await ask(llm, "q", mode)
    clock.advance(61)
    stale = await ask(llm, "q", mode)
    assert (stale.content, marker(stale)) == ("yesterday's answer", "stale")
    chunks = await stream_chunks(llm, "q", mode)
    assert "".join(str(c.content) for c in chunks) == "yesterday's answer"
    assert marker(chunks[0]) == "stale"
    warnings = cache_warnings(caplog)
    assert len(warnings) == 2
    assert "openai is unavailable" in warnings[0] and "stale cached answer" in warnings[0]
    assert str(fault.status) in warnings[0]
    # The provider is back: a fresh answer replaces the stale one.
    fresh = await ask(llm, "q", mode)
    assert (fresh.content, marker(fresh)) == ("fresh answer", None)
    assert (await ask(llm, "q", mode)).content == "fresh answer"
    assert llm.cache_stats == CacheStats(hits=1, misses=4, stores=2, stale_hits=2)


@pytest.mark.parametrize("mode", MODES)
async def test_stale_answer_while_the_server_is_gone(
    mode: str,
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = make_cached(stale_section(section), now=clock)
    first = await ask(llm, "q", mode)
    server.stop()
    clock.advance(120)
    stale = await ask(llm, "q", mode)
    assert (stale.content, marker(stale)) == (first.content, "stale")
    assert "NetworkConnectionError" in cache_warnings(caplog)[0]
    with pytest.raises(NetworkConnectionError):
        await ask(llm, "a question never answered", mode)


async def test_no_stale_answer_unless_asked_for(
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    server.script(Reply(text="old"), Fault(503))
    llm = make_cached({**section, "ttl": 60}, now=clock)
    await ask(llm, "q", "async")
    clock.advance(61)
    with pytest.raises(ProviderServerError):
        await ask(llm, "q", "async")


async def test_no_stale_answer_past_stale_ttl(
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    server.script(Reply(text="old"), Fault(503), Fault(429))
    llm = make_cached(stale_section(section), now=clock)
    await ask(llm, "q", "async")
    clock.advance(60 + 600 + 1)
    with pytest.raises(ProviderServerError):
        await ask(llm, "q", "async")
    with pytest.raises(RateLimitError):
        await stream_chunks(llm, "q", "async")
    assert llm.cache_stats.stale_hits == 0


async def test_no_stale_answer_for_the_callers_own_errors(
    server: ProviderServer,
    section: dict[str, Any],
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
) -> None:
    server.script(Reply(text="old"), Fault(400, "bad request"))
    llm = make_cached(stale_section(section), now=clock)
    await ask(llm, "q", "async")
    clock.advance(61)
    with pytest.raises(BadRequestError):
        await ask(llm, "q", "async")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", MODES)
async def test_redis_down_answers_uncached_and_warns_without_the_password(
    mode: str,
    server: ProviderServer,
    make_cached: Callable[..., CachedChatModel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0"
    llm = make_cached({"backend": "redis", "url": url})
    assert (await ask(llm, "q", mode)).content
    assert (await ask(llm, "q", mode)).content
    chunks = await stream_chunks(llm, "q", mode)
    assert chunks
    assert requests_to(server) == 3
    stats = llm.cache_stats
    assert stats.hits == 0 and stats.stores == 0 and stats.errors >= 1
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1
    assert "redis://:***@127.0.0.1" in warnings[0] and "without the cache" in warnings[0]
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(llm) and PASSWORD not in repr(llm.response_cache.config)


async def test_sqlite_locked_answers_uncached_and_warns(
    server: ProviderServer,
    tmp_path: Path,
    clock: FakeClock,
    make_cached: Callable[..., CachedChatModel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "locked.sqlite3"
    llm = make_cached({"backend": "sqlite", "path": str(path), "timeout": 0.05}, now=clock)
    await ask(llm, "warm up", "async")  # creates the file
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert (await ask(llm, "q", "async")).content
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert llm.cache_stats.errors == 1
    assert "failed to store" in cache_warnings(caplog)[0]
    clock.advance(llm.response_cache.retry_backend_after)  # the cache is tried again, and works
    await ask(llm, "q", "async")
    await ask(llm, "q", "async")
    assert llm.cache_stats.hits == 1
    assert requests_to(server) == 3
