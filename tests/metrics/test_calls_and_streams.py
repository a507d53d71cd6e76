"""Calls, retries and streams of ``get_llm`` models are counted per provider and model: the retry success
rate of calls that were retried, and each stream's chunks, tokens, throughput and time to first chunk."""

from __future__ import annotations

import asyncio
import threading

import pytest

from modelforge import performance_metrics
from modelforge.exceptions import ProviderError, StreamInterruptedError
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply, Usage
from tests.metrics.conftest import WriteConfig


def test_a_retried_call_that_succeeds_and_one_whose_attempts_run_out(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config()
    llm = ModelForgeRegistry().get_llm()
    server.script(Fault(503), Reply(text="fine"))  # retried once, then answered
    assert llm.invoke("hello").content == "fine"
    server.script(Fault(503), Fault(503), Fault(503))  # three attempts, all refused
    with pytest.raises(ProviderError):
        llm.invoke("hello")
    assert llm.invoke("once more").content  # a call that needed no retry

    stats = performance_metrics().provider("openai")
    assert (stats.calls, stats.ok, stats.failed) == (3, 2, 1)
    assert (stats.retried, stats.retried_ok, stats.retries) == (2, 1, 3)
    assert stats.retry_success_rate == 0.5
    assert performance_metrics().models[("openai", "gpt-4o-mini")].calls == 3


def test_nothing_retried_has_no_retry_success_rate(server: ProviderServer, write_config: WriteConfig) -> None:
    write_config()
    asyncio.run(ModelForgeRegistry().get_llm().ainvoke("hello"))
    stats = performance_metrics().total
    assert (stats.calls, stats.ok, stats.retried) == (1, 1, 0)
    assert stats.retry_success_rate is None  # not 0%: nothing was retried


def test_a_stream_counts_chunks_tokens_throughput_and_time_to_first_chunk(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config()
    server.script(
        Reply(chunks=["One ", "two ", "three ", "four"], usage=Usage(5, 12), chunk_delay=0.01),
        Fault(503),
        Reply(chunks=["again"], usage=Usage(5, 3)),
    )
    llm = ModelForgeRegistry().get_llm()
    assert "".join(str(chunk.content) for chunk in llm.stream("count")) == "One two three four"

    async def second() -> str:
        return "".join([str(chunk.content) async for chunk in llm.astream("count")])

    assert asyncio.run(second()) == "again"  # after one retry before its first chunk

    stats = performance_metrics().provider("openai")
    assert (stats.calls, stats.ok, stats.retried, stats.retried_ok) == (2, 2, 1, 1)
    assert stats.streams == 2
    assert stats.stream_chunks >= 5
    assert stats.stream_output_tokens == 15  # as the provider reported them
    assert stats.stream_tokens_per_second is not None and stats.stream_tokens_per_second > 0
    assert stats.mean_ttft_seconds is not None and stats.mean_ttft_seconds > 0


def test_a_broken_stream_fails_and_an_abandoned_one_does_not(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config()
    server.script(
        Reply(chunks=["x" * 40, "y" * 40]),
        Reply(chunks=["a", "b", "c"], disconnect_after=1),
        Reply(chunks=["a", "b", "c"]),
    )
    llm = ModelForgeRegistry().get_llm()
    list(llm.stream("long"))
    with pytest.raises(StreamInterruptedError):
        list(llm.stream("broken"))
    for _ in llm.stream("abandoned"):
        break  # the caller stopped: not a failure

    stats = performance_metrics().provider("openai")
    assert (stats.calls, stats.ok, stats.failed) == (3, 2, 1)
    assert stats.streams == 3
    assert stats.stream_output_tokens > 0


def test_counters_from_many_threads_add_up(server: ProviderServer, write_config: WriteConfig) -> None:
    write_config()
    llm = ModelForgeRegistry().get_llm()

    def calls() -> None:
        for _ in range(5):
            llm.invoke("hi")

    threads = [threading.Thread(target=calls) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert performance_metrics().total.calls == 30
    assert performance_metrics().total.ok == 30
