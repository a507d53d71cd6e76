"""CostTracker against the real SDKs over HTTP on loopback, each cost checked by hand from catalogue prices.

The done-when cases: a streamed call, an aborted stream (caller stopped, and a broken connection), a retried
call and a cached-prompt call (Anthropic prompt caching, a cache write then a cache read). Also: the response
cache (free), batch-API results (half price), one-hour cache writes, the budget, and the shared price path
with ``telemetry.calculate_cost``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from modelforge import config
from modelforge.assistant import BudgetExceededError, CallCost, CostTracker
from modelforge.assistant._cost_usage import Usage, price_usage
from modelforge.batch import BatchResult
from modelforge.catalog import Catalog
from modelforge.exceptions import InvalidInputError, ModelForgeError, StreamInterruptedError
from modelforge.registry import ModelForgeRegistry
from modelforge.telemetry import TokenUsage, calculate_cost
from modelforge.testing import Fault, ProviderServer, Reply
from modelforge.testing import Usage as ServerUsage
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.providers.conftest import provider_config

M = 1_000_000


def prices(provider: str, model: str) -> Any:
    info = Catalog.bundled().model(provider, model)
    assert info is not None and info.priced
    return info


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    with ProviderServer() as running:
        data = provider_config(running)
        for provider in data["providers"].values():  # retried at once: waits of a millisecond
            provider["retry"] = {"max_attempts": 3, "initial_wait": 0.001, "max_wait": 0.001}
        config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
        yield running


def openai_tracker(**kwargs: Any) -> CostTracker:
    return CostTracker(ModelForgeRegistry().get_llm("openai", "gpt-4o-mini"), **kwargs)


async def test_streamed_call_is_priced_from_the_final_usage(server: ProviderServer) -> None:
    server.script(Reply(text="one two three", chunks=["one ", "two ", "three"], usage=ServerUsage(1200, 300)))
    tracker = openai_tracker()
    text = "".join([str(chunk.content) async for chunk in tracker.stream("hi")])
    assert text == "one two three"
    info = prices("openai", "gpt-4o-mini")
    expected = (1200 * info.input_per_1m + 300 * info.output_per_1m) / M
    (call,) = tracker.calls
    assert (call.kind, call.input_tokens, call.output_tokens, call.estimated) == ("stream", 1200, 300, False)
    assert call.cost == pytest.approx(expected) and tracker.total_cost == pytest.approx(expected)
    assert call.provider == "openai" and call.model == "gpt-4o-mini" and call.attempts == 1


async def test_stream_the_caller_stopped_counts_the_text_received(server: ProviderServer) -> None:
    prompt = "p" * 400  # estimated at 400 // 4 = 100 prompt tokens
    server.script(Reply(text="abcdefgh" * 4, chunks=["abcdefgh"] * 4, usage=ServerUsage(9999, 9999)))
    tracker = openai_tracker()
    received = []
    async with contextlib.aclosing(tracker.stream(prompt)) as chunks:
        async for chunk in chunks:
            if chunk.content:
                received.append(chunk.content)
            if len(received) == 2:
                break
    info = prices("openai", "gpt-4o-mini")
    expected = (100 * info.input_per_1m + 4 * info.output_per_1m) / M  # 16 characters received: 4 tokens
    (call,) = tracker.calls
    assert (call.kind, call.input_tokens, call.output_tokens, call.estimated) == ("aborted", 100, 4, True)
    assert call.cost == pytest.approx(expected)


async def test_stream_that_broke_counts_the_text_received(server: ProviderServer) -> None:
    server.script(Reply(text="abcdefgh" * 4, chunks=["abcdefgh"] * 4, disconnect_after=3))
    tracker = openai_tracker()
    with pytest.raises(StreamInterruptedError):
        async for _ in tracker.stream([HumanMessage("q" * 80)]):  # 20 prompt tokens
            pass
    info = prices("openai", "gpt-4o-mini")
    (call,) = tracker.calls
    assert (call.kind, call.input_tokens, call.output_tokens) == ("aborted", 20, 6)  # 24 characters
    assert call.cost == pytest.approx((20 * info.input_per_1m + 6 * info.output_per_1m) / M)


async def test_retried_call_counts_attempts_and_bills_the_answer_once(server: ProviderServer) -> None:
    server.script(Fault(status=500), Fault(status=503), Reply(text="ok", usage=ServerUsage(50, 10)))
    tracker = openai_tracker()
    assert (await tracker.chat("hi")).text == "ok"
    assert len(server.requests_for("openai")) == 3
    info = prices("openai", "gpt-4o-mini")
    (call,) = tracker.calls
    assert (call.kind, call.attempts) == ("invoke", 3)
    assert call.cost == pytest.approx((50 * info.input_per_1m + 10 * info.output_per_1m) / M)


async def test_cached_prompt_call_prices_cache_writes_and_reads(server: ProviderServer) -> None:
    llm = ModelForgeRegistry().get_llm("anthropic", "claude-sonnet-4-6")
    tracker = CostTracker(llm)
    words = " ".join(f"rule{i}" for i in range(1200))  # one token a word; at least 1024 are cached
    system = SystemMessage(content=[{"type": "text", "text": words, "cache_control": {"type": "ephemeral"}}])
    messages = [system, HumanMessage("What is rule 7?")]
    server.script(Reply(text="a", usage=ServerUsage(1500, 40)), Reply(text="b", usage=ServerUsage(1500, 40)))
    await tracker.chat(messages)
    assert [chunk async for chunk in tracker.stream(messages)]  # the read, streamed
    info = prices("anthropic", "claude-sonnet-4-6")
    assert info.cache_read_per_1m is not None and info.cache_write_per_1m is not None
    write, read = tracker.calls
    assert (write.input_tokens, write.cache_write_tokens, write.cache_read_tokens) == (1500, 1200, 0)
    assert (read.input_tokens, read.cache_write_tokens, read.cache_read_tokens) == (1500, 0, 1200)
    assert read.kind == "stream"
    plain = 300 * info.input_per_1m + 40 * info.output_per_1m
    assert write.cost == pytest.approx((plain + 1200 * info.cache_write_per_1m) / M)
    assert read.cost == pytest.approx((plain + 1200 * info.cache_read_per_1m) / M)
    assert tracker.total_cost == pytest.approx(write.cost + read.cost)


def test_invoke_is_the_sync_twin_and_a_provider_object_is_accepted(server: ProviderServer) -> None:
    class ProviderLike:
        llm = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")

    server.script(Reply(text="ok", usage=ServerUsage(10, 5)))
    tracker = CostTracker(ProviderLike())
    assert tracker.invoke("hi").text == "ok"
    info = prices("openai", "gpt-4o-mini")
    assert tracker.total_cost == pytest.approx((10 * info.input_per_1m + 5 * info.output_per_1m) / M)


async def test_budget_stops_the_next_call_before_it_is_sent(server: ProviderServer) -> None:
    server.script(Reply(text="ok", usage=ServerUsage(1000, 1000)))
    tracker = openai_tracker(budget=0.0001)
    await tracker.chat("hi")
    sent = len(server.requests_for("openai"))
    with pytest.raises(BudgetExceededError) as caught:
        await tracker.chat("again")
    with pytest.raises(BudgetExceededError):
        tracker.stream("again")
    assert len(server.requests_for("openai")) == sent
    err = caught.value
    assert isinstance(err, ModelForgeError) and err.budget == 0.0001 and err.spent == tracker.total_cost
    assert "budget" in str(err) and err.suggestion


async def test_failed_call_costs_nothing_but_counts_its_attempts(server: ProviderServer) -> None:
    server.script(Fault(status=500), Fault(status=500), Fault(status=500))
    tracker = openai_tracker()
    with pytest.raises(ModelForgeError):
        await tracker.chat("hi")
    (call,) = tracker.calls
    assert (call.cost, call.attempts, call.error) == (0.0, 3, "ProviderServerError")


def test_response_cache_answers_cost_nothing(server: ProviderServer) -> None:
    server.script(Reply(text="ok", usage=ServerUsage(100, 100)))
    llm = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini", enable_cache=True)
    tracker = CostTracker(llm)
    tracker.invoke("same question")
    tracker.invoke("same question")
    first, second = tracker.calls
    assert first.cost > 0 and first.cache is None
    assert (second.cost, second.cache) == (0.0, "hit")


def answer(input_tokens: int, output_tokens: int, **details: int) -> AIMessage:
    return AIMessage(
        "x",
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_token_details": details,  # type: ignore[typeddict-item]
        },
    )


def test_batch_api_results_are_half_price() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    llm = GenericFakeChatModel(messages=iter([]))
    tracker = CostTracker(llm, provider="openai", model="gpt-4o-mini")
    results = [
        BatchResult(index=0, input="a", message=answer(1000, 100)),
        BatchResult(index=1, input="b", error=RuntimeError("failed")),
    ]
    (call,) = tracker.add_batch(results, via_batch_api=True)
    info = prices("openai", "gpt-4o-mini")
    assert call.kind == "batch" and call.discount == 0.5
    assert call.cost == pytest.approx((1000 * info.input_per_1m + 100 * info.output_per_1m) / M / 2)
    (live,) = tracker.add_batch([answer(1000, 100)], via_batch_api=False)
    assert live.cost == pytest.approx(call.cost * 2)


def test_one_hour_cache_writes_cost_twice_the_input_price() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    tracker = CostTracker(
        GenericFakeChatModel(messages=iter([])), provider="anthropic", model="claude-sonnet-4-6"
    )
    message = answer(
        1000, 10, cache_read=0, cache_creation=0, ephemeral_5m_input_tokens=100, ephemeral_1h_input_tokens=200
    )
    call = tracker.record(message)
    info = prices("anthropic", "claude-sonnet-4-6")
    assert (call.cache_write_tokens, call.cache_write_1h_tokens) == (300, 200)
    expected = 700 * info.input_per_1m + 100 * info.cache_write_per_1m + 200 * 2 * info.input_per_1m
    assert call.cost == pytest.approx((expected + 10 * info.output_per_1m) / M)


def test_calculate_cost_and_the_tracker_share_one_price() -> None:
    usage = Usage(input_tokens=5000, output_tokens=700, cache_read_tokens=3000, cache_write_tokens=1000)
    telemetry_usage = TokenUsage(5000, 700, 5700, cache_read_tokens=3000, cache_write_tokens=1000)
    for provider, model in [("anthropic", "claude-sonnet-4-6"), ("openai", "gpt-4o-mini")]:
        assert price_usage(provider, model, usage) == pytest.approx(
            calculate_cost(provider, model, telemetry_usage)
        )
    assert price_usage("openai", "gpt-4o-mini-no-such", usage) is None  # exact ids only
    assert price_usage("ollama", "qwen3:1.7b", usage) == 0.0


def test_summary_and_bad_arguments() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    tracker = CostTracker(
        GenericFakeChatModel(messages=iter([])), budget=1, provider="openai", model="gpt-4o-mini"
    )
    tracker.record(answer(100, 10))
    tracker.record(AIMessage("abcd"), prompt="x" * 40)  # no usage: estimated (10 in, 1 out)
    summary = tracker.summary()
    assert (summary.calls, summary.input_tokens, summary.output_tokens) == (2, 110, 11)
    assert summary.remaining == pytest.approx(1 - tracker.total_cost)
    assert "2 call(s)" in str(summary) and "Budget" in str(summary)
    assert isinstance(tracker.calls[1], CallCost) and tracker.calls[1].estimated
    with pytest.raises(InvalidInputError):
        CostTracker("not a model")
    with pytest.raises(InvalidInputError):
        CostTracker(GenericFakeChatModel(messages=iter([])), budget=-1)


async def test_a_stream_refused_before_any_chunk_costs_nothing(server: ProviderServer) -> None:
    server.script(Fault(status=400, message="bad request"))
    tracker = openai_tracker()
    with pytest.raises(ModelForgeError):
        async for _ in tracker.stream([HumanMessage("Hi")]):
            pass
    [call] = tracker.calls
    assert call.kind == "stream" and call.cost == 0.0 and call.error is not None
    assert call.input_tokens == 0 and tracker.total_cost == 0.0
