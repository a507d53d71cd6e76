"""One price for one answer, wherever it is computed: ``StreamEnd.cost``, ``CostTracker``, the telemetry
callback, the metrics and the batch-API report all read the usage the same way (cache reads, cache writes
with Anthropic's one-hour part, the reported model id) and price it with one formula.

The answers are LangChain messages as langchain-anthropic and langchain-openai build them (their
``usage_metadata`` shapes); the expected dollars are computed here from the catalogue's prices.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from modelforge.assistant.costs import CostTracker
from modelforge.catalog import Catalog
from modelforge.registry import ModelForgeRegistry
from modelforge.streaming import StreamEnd, stream_events
from modelforge.telemetry import TelemetryCallback, metrics
from modelforge.testing import ProviderServer, Reply, Usage
from tests.conftest import ANTHROPIC_KEY

# claude-sonnet-4-5 (models.dev): input $3, output $15, cache read $0.30, cache write $3.75 per million.
SONNET = "claude-sonnet-4-5-20250929"


def anthropic_answer(**details: int) -> AIMessage:
    """An answer with Anthropic's usage as langchain-anthropic reports it: 1,000 uncached input tokens,
    ``details`` (cache reads, per-TTL cache writes), 500 output tokens, and the dated model id."""
    cached = sum(details.values())
    return AIMessage(
        content="ok",
        usage_metadata={
            "input_tokens": 1_000 + cached,
            "output_tokens": 500,
            "total_tokens": 1_500 + cached,
            "input_token_details": {"cache_creation": 0, **details},  # type: ignore[typeddict-item]
        },
        response_metadata={"model_name": SONNET},
    )


def expected_dollars(*, read: int = 0, write_5m: int = 0, write_1h: int = 0) -> float:
    prices = Catalog.bundled().model("anthropic", SONNET)
    assert prices is not None and prices.input_per_1m is not None
    input_price = prices.input_per_1m
    return (
        1_000 * input_price
        + read * (input_price * 0.1)
        + write_5m * (input_price * 1.25)
        + write_1h * (input_price * 2.0)
        + 500 * (input_price * 5)
    ) / 1_000_000


CASES = {
    "cache read": ({"cache_read": 20_000}, {"read": 20_000}),
    "5-minute write": ({"ephemeral_5m_input_tokens": 8_000}, {"write_5m": 8_000}),
    "1-hour write": ({"ephemeral_1h_input_tokens": 8_000}, {"write_1h": 8_000}),
}


def telemetry_cost(provider: str, model: str, answer: AIMessage) -> float:
    callback = TelemetryCallback(provider=provider, model=model)
    callback.on_llm_start({}, ["prompt"], run_id=None)  # type: ignore[arg-type]
    callback.on_llm_end(LLMResult(generations=[[ChatGeneration(message=answer)]]), run_id=None)  # type: ignore[arg-type]
    return float(callback.metrics.estimated_cost)


@pytest.mark.parametrize("case", list(CASES), ids=str)
def test_cost_tracker_telemetry_and_metrics_give_one_price(case: str, registry_llm: Any) -> None:
    details, dollars = CASES[case]
    answer = anthropic_answer(**details)
    want = expected_dollars(**dollars)
    tracked = CostTracker(registry_llm, provider="anthropic", model="claude-sonnet-4-5-latest").record(answer)
    assert tracked.cost == pytest.approx(want, abs=1e-8)
    assert telemetry_cost("anthropic", "claude-sonnet-4-5-latest", answer) == pytest.approx(want, abs=1e-8)
    _, metrics_cost, _ = metrics.price_answer("anthropic", "claude-sonnet-4-5-latest", [answer])
    assert metrics_cost == pytest.approx(want, abs=1e-8)


def test_a_batch_api_answer_is_half_price_in_the_tracker_and_the_metrics(registry_llm: Any) -> None:
    answers = [anthropic_answer(cache_read=20_000), anthropic_answer(ephemeral_1h_input_tokens=8_000)]
    want = (expected_dollars(read=20_000) + expected_dollars(write_1h=8_000)) / 2
    tracker = CostTracker(registry_llm, provider="anthropic", model=SONNET)
    assert sum(call.cost for call in tracker.add_batch(answers)) == pytest.approx(want, abs=1e-8)
    before = metrics.performance_metrics(provider="anthropic")
    metrics.record_batch_api("anthropic", SONNET, 2, answers)
    after = metrics.performance_metrics(provider="anthropic")
    assert after.total.batch_cost_usd - before.total.batch_cost_usd == pytest.approx(want, abs=1e-8)


def test_stream_end_and_cost_tracker_agree_on_a_cached_prompt_and_a_latest_alias(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``-latest`` alias the catalogue does not list is priced as the dated model the answer names."""
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    provider = {
        "llm_type": "anthropic",
        "base_url": server.anthropic_base_url,
        "models": {"claude-3-7-sonnet-latest": {}},
    }
    llm = ModelForgeRegistry.from_config({"providers": {"anthropic": provider}}).get_llm(
        "anthropic", "claude-3-7-sonnet-latest"
    )
    server.script(Reply(text="Paris.", usage=Usage(1_200, 30), model="claude-3-7-sonnet-20250219"))

    async def run() -> list[Any]:
        return [event async for event in stream_events(llm, "capital of France?")]

    (end,) = [event for event in asyncio.run(run()) if isinstance(event, StreamEnd)]
    server.script(Reply(text="Paris.", usage=Usage(1_200, 30), model="claude-3-7-sonnet-20250219"))
    answer = llm.invoke("capital of France?")
    tracked = CostTracker(llm).record(answer)
    assert end.cost is not None and tracked.priced
    assert end.cost == pytest.approx(tracked.cost, abs=1e-8)


@pytest.fixture
def registry_llm(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    provider = {"llm_type": "anthropic", "base_url": server.anthropic_base_url, "models": {SONNET: {}}}
    return ModelForgeRegistry.from_config({"providers": {"anthropic": provider}}).get_llm("anthropic", SONNET)


@pytest.fixture
def server() -> Any:
    with ProviderServer() as running:
        yield running
