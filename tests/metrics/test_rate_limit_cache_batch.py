"""Rate-limit waits, response-cache hits and the money they saved, and provider batch-API jobs and their
savings, as ``performance_metrics()`` reports them."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from modelforge import performance_metrics
from modelforge.assistant.costs import BATCH_API_DISCOUNT
from modelforge.registry import ModelForgeRegistry
from modelforge.telemetry import TokenUsage, calculate_cost
from modelforge.testing import Fault, ProviderServer, Reply, Usage
from tests.metrics.conftest import WriteConfig

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_key() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except Exception as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {REDIS_URL}: {err}")
    key = f"mf-metrics-test-{uuid.uuid4().hex}"
    yield key
    for name in client.scan_iter(f"*{key}*"):
        client.delete(name)


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_a_rate_limited_burst_records_its_waits(
    server: ProviderServer, write_config: WriteConfig, backend: str, request: pytest.FixtureRequest
) -> None:
    section: dict[str, object] = {"requests_per_minute": 2, "window_seconds": 0.3}
    if backend == "redis":
        section.update(backend="redis", url=REDIS_URL, key=request.getfixturevalue("redis_key"))
    write_config(rate_limit=section)
    llm = ModelForgeRegistry().get_llm()
    for _ in range(5):  # two a window: the last three wait their turn
        llm.invoke("hi")
    stats = performance_metrics().provider("openai")
    assert stats.calls == 5
    assert stats.rate_limit_waits >= 2
    assert stats.rate_limit_wait_seconds >= stats.rate_limit_max_wait_seconds > 0


def test_calls_within_the_limit_record_no_wait(server: ProviderServer, write_config: WriteConfig) -> None:
    write_config(rate_limit={"requests_per_minute": 1000})
    llm = ModelForgeRegistry().get_llm()
    for _ in range(3):
        llm.invoke("hi")
    stats = performance_metrics().provider("openai")
    assert stats.calls == 3 and stats.rate_limit_waits == 0


def test_cache_hits_record_the_money_they_saved(server: ProviderServer, write_config: WriteConfig) -> None:
    write_config(cache=True)
    server.script(Reply(text="cached answer", usage=Usage(1000, 500)))
    llm = ModelForgeRegistry().get_llm()
    assert llm.invoke("same question").content == "cached answer"  # a miss: asked
    assert llm.invoke("same question").content == "cached answer"  # a hit
    assert "".join(str(c.content) for c in llm.stream("same question")) == "cached answer"  # a hit too
    assert len(server.requests_for("openai")) == 1

    stats = performance_metrics().provider("openai")
    assert (stats.cache_hits, stats.cache_misses, stats.cache_stale_hits) == (2, 1, 0)
    assert stats.cache_hit_rate == pytest.approx(2 / 3)
    assert stats.cache_tokens == 3000
    one_answer = calculate_cost("openai", "gpt-4o-mini", TokenUsage(1000, 500, 1500))
    assert one_answer > 0
    assert stats.cache_saved_usd == pytest.approx(2 * one_answer)
    assert stats.calls == 1  # answers from the cache are not provider calls


def test_a_stale_answer_served_in_an_outage_is_a_stale_hit(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config(cache={"ttl": 0.05, "serve_stale": True}, retry={"max_attempts": 1})
    server.script(Reply(text="old answer", usage=Usage(100, 50)), Fault(503))
    llm = ModelForgeRegistry().get_llm()
    llm.invoke("question")
    time.sleep(0.1)  # the entry expires
    assert llm.invoke("question").content == "old answer"
    stats = performance_metrics().provider("openai")
    assert (stats.cache_hits, stats.cache_stale_hits, stats.cache_misses) == (1, 1, 1)
    assert stats.cache_saved_usd > 0


def test_a_batch_api_job_records_its_savings(server: ProviderServer, write_config: WriteConfig) -> None:
    write_config(batch={"poll_interval": 0})
    server.default_reply = Reply(text="batched", usage=Usage(200, 100))
    results = asyncio.run(
        ModelForgeRegistry().batch_invoke([f"prompt {i}" for i in range(4)], use_batch_api=True)
    )
    assert all(result.ok for result in results)
    assert server.batches.jobs  # it went through the batch API

    stats = performance_metrics().provider("openai")
    live = 4 * calculate_cost("openai", "gpt-4o-mini", TokenUsage(200, 100, 300))
    assert (stats.batch_jobs, stats.batch_items, stats.batch_answered) == (1, 4, 4)
    assert stats.batch_live_cost_usd == pytest.approx(live)
    assert stats.batch_cost_usd == pytest.approx(live * (1 - BATCH_API_DISCOUNT))
    assert stats.batch_saved_usd == pytest.approx(live * BATCH_API_DISCOUNT)
    assert stats.calls == 0  # no live call was made
