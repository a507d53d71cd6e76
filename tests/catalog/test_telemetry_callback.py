"""TelemetryCallback with a fake chat model (no HTTP under test here), calculate_cost, format_metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from modelforge.catalog import Catalog
from modelforge.telemetry import (
    ModelMetrics,
    TelemetryCallback,
    TokenUsage,
    calculate_cost,
    format_metrics,
)

from .conftest import model_entry

USAGE: UsageMetadata = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}
GPT_4O_MINI_COST = (1000 * 0.15 + 500 * 0.6) / 1_000_000


class FakeChat(BaseChatModel):
    """Answers ``text``, reporting ``usage`` on the message (and in the last streamed chunk)."""

    text: str = "Hello there, world"
    usage: dict[str, Any] | None = None
    llm_output: dict[str, Any] | None = None
    reported_model: str = "gpt-4o-mini-2024-07-18"
    finish_reason: str | None = None
    fail: bool = False

    def _metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"model_name": self.reported_model}
        if self.finish_reason is not None:
            metadata["finish_reason"] = self.finish_reason
        return metadata

    @property
    def _llm_type(self) -> str:
        return "fake-usage"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.fail:
            raise RuntimeError("upstream exploded")
        message = AIMessage(
            content=self.text,
            usage_metadata=self.usage,  # type: ignore[arg-type]
            response_metadata=self._metadata(),
        )
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output=self.llm_output)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in self.text.split(" "):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=self.usage,  # type: ignore[arg-type]
                response_metadata=self._metadata(),
            )
        )


def run_with(callback: TelemetryCallback, **fake: Any) -> None:
    FakeChat(**fake).invoke("Say hello", config={"callbacks": [callback]})


# --- the callback ----------------------------------------------------------------------------------------


def test_invoke_reads_usage_metadata_and_prices_exactly() -> None:
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    run_with(callback, usage=dict(USAGE))
    metrics = callback.metrics
    assert metrics.token_usage == TokenUsage(1000, 500, 1500)
    assert metrics.estimated_cost == pytest.approx(GPT_4O_MINI_COST)
    assert metrics.metadata["pricing"] == "models.dev"
    assert metrics.metadata["pricing_model"] == "openai/gpt-4o-mini"
    assert metrics.metadata["pricing_snapshot_date"] == "2026-07-02"
    assert metrics.metadata["actual_model"] == "gpt-4o-mini-2024-07-18"
    assert metrics.metadata["context_length"] == 128_000
    assert metrics.end_time is not None and metrics.end_time >= metrics.start_time
    assert metrics.duration_ms >= 0 and metrics.error is None
    assert "token_estimation" not in metrics.metadata


def test_llm_output_token_usage_is_the_fallback() -> None:
    callback = TelemetryCallback("openai", "gpt-4o")
    token_usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 100,
        "total_tokens": 2100,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }
    run_with(callback, llm_output={"token_usage": token_usage, "model_name": "gpt-4o"})
    usage = callback.metrics.token_usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens) == (2000, 100, 1000)
    # gpt-4o: 1000 plain prompt tokens at 2.5, 1000 cached at 1.25, 100 out at 10.
    assert callback.metrics.estimated_cost == pytest.approx((1000 * 2.5 + 1000 * 1.25 + 100 * 10) / 1e6)


def test_anthropic_style_usage_counts_cache_reads_and_writes() -> None:
    callback = TelemetryCallback("anthropic", "claude-sonnet-4-6")
    usage = {
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200,
    }
    run_with(callback, llm_output={"usage": usage})
    got = callback.metrics.token_usage
    assert (got.prompt_tokens, got.cache_read_tokens, got.cache_write_tokens) == (1300, 1000, 200)
    expected = (100 * 3.0 + 1000 * 0.3 + 200 * 3.75 + 10 * 15.0) / 1e6
    assert callback.metrics.estimated_cost == pytest.approx(expected)


def test_stream_reads_usage_from_the_last_chunk() -> None:
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    text = "".join(
        str(c.content) for c in FakeChat(usage=dict(USAGE)).stream("hi", config={"callbacks": [callback]})
    )
    assert text.strip() == "Hello there, world"
    assert callback.metrics.token_usage.total_tokens == 1500
    assert callback.metrics.estimated_cost == pytest.approx(GPT_4O_MINI_COST)
    assert callback.metrics.metadata["time_to_first_token_ms"] >= 0


async def test_async_invoke_and_stream() -> None:
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    model = FakeChat(usage=dict(USAGE))
    await model.ainvoke("hi", config={"callbacks": [callback]})
    assert callback.metrics.estimated_cost == pytest.approx(GPT_4O_MINI_COST)
    chunks = [c async for c in model.astream("hi", config={"callbacks": [callback]})]
    assert chunks and callback.metrics.token_usage.prompt_tokens == 1000
    assert len(callback.history) == 2


@pytest.mark.parametrize("how", ["invoke", "stream"])
async def test_an_answer_from_the_response_cache_costs_nothing(how: str) -> None:
    from modelforge.cache import cache_of, with_cache

    model = FakeChat(usage=dict(USAGE), finish_reason="stop")
    llm = with_cache(model, "openai", {"namespace": f"telemetry-{how}"}, enable=True, now=lambda: 1000.0)
    assert cache_of(llm) is not None
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    try:
        for _ in range(2):
            if how == "invoke":
                llm.invoke("Say hello", config={"callbacks": [callback]})
            else:
                list(llm.stream("Say hello", config={"callbacks": [callback]}))
    finally:
        llm.response_cache.close()
    first, second = callback.history
    assert first.estimated_cost == pytest.approx(GPT_4O_MINI_COST) and "cache_hit" not in first.metadata
    assert second.estimated_cost == 0.0
    assert second.metadata["cache_hit"] is True and second.metadata["cache"] == "hit"
    assert second.token_usage.total_tokens == 1500  # the stored usage is still reported
    assert "response cache" in format_metrics(second)


def test_unknown_model_costs_zero_and_says_so() -> None:
    callback = TelemetryCallback("openai", "gpt-unreleased")
    run_with(callback, usage=dict(USAGE), reported_model="gpt-unreleased")
    assert callback.metrics.estimated_cost == 0.0
    assert callback.metrics.metadata["pricing"] == "unknown"
    assert "unknown" in format_metrics(callback.metrics)


def test_configured_alias_falls_back_to_the_reported_model() -> None:
    callback = TelemetryCallback("openai", "my-fast-model")  # a config alias, not an API id
    run_with(callback, usage=dict(USAGE))  # the provider reports gpt-4o-mini-2024-07-18
    assert callback.metrics.estimated_cost == pytest.approx(GPT_4O_MINI_COST)


def test_local_models_are_free_not_unknown() -> None:
    callback = TelemetryCallback("ollama", "qwen3:1.7b")
    run_with(callback, usage=dict(USAGE))
    assert callback.metrics.estimated_cost == 0.0 and callback.metrics.metadata["pricing"] == "local"
    assert "local model" in format_metrics(callback.metrics)


def test_missing_usage_is_zero_as_in_2_3_with_the_estimate_beside_it() -> None:
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    run_with(callback, text="x" * 400)
    usage = callback.metrics.token_usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (0, 0, 0)
    assert callback.metrics.estimated_cost == 0.0
    meta = callback.metrics.metadata
    assert meta["token_estimation"] is True
    assert meta["token_estimate"]["completion_tokens"] == 100 and meta["token_estimate"]["prompt_tokens"] >= 1
    assert meta["token_estimate"]["cost"] > 0
    assert "(estimated)" in format_metrics(callback.metrics)


def test_errors_are_recorded() -> None:
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    with pytest.raises(RuntimeError):
        run_with(callback, fail=True)
    assert callback.metrics.error == "upstream exploded"
    assert callback.metrics.metadata["error_type"] == "RuntimeError"
    assert "upstream exploded" in format_metrics(callback.metrics)


def test_metrics_exist_before_any_run() -> None:
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    assert isinstance(callback.metrics, ModelMetrics)
    assert callback.metrics.provider == "openai" and callback.metrics.token_usage.total_tokens == 0


# --- calculate_cost and format_metrics -------------------------------------------------------------------


def test_calculate_cost_exact_values() -> None:
    usage = TokenUsage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)
    assert calculate_cost("openai", "gpt-4o-mini", usage) == pytest.approx(0.75)
    assert calculate_cost("openai", "gpt-4o", usage) == pytest.approx(12.5)
    assert calculate_cost("anthropic", "claude-sonnet-4-6", usage) == pytest.approx(18.0)
    assert calculate_cost("gemini", "gemini-2.5-flash", usage) == pytest.approx(2.8)
    assert calculate_cost("github_copilot", "gpt-4.1", usage) == pytest.approx(10.0)
    assert calculate_cost("openrouter", "openai/gpt-4o-mini", usage) == pytest.approx(0.75)
    assert calculate_cost("openai", "gpt-4o-mini-2024-07-18", usage) == pytest.approx(0.75)


def test_calculate_cost_never_guesses() -> None:
    usage = TokenUsage(1000, 1000, 2000)
    assert calculate_cost("openai", "gpt-4o-mini-turbo-max", usage) == 0.0
    assert calculate_cost("openai", "gpt-4", usage) != calculate_cost("openai", "gpt-4o", usage)
    assert calculate_cost("ollama", "gpt-4o", usage) == 0.0
    assert calculate_cost("nowhere", "no-such-model", usage) == 0.0
    only_gpt4o = Catalog({"openai": {"models": {"gpt-4o": model_entry("gpt-4o", cost=(2.5, 10.0))}}})
    assert calculate_cost("openai", "gpt-4o-mini", usage, catalog=only_gpt4o) == 0.0


def test_format_metrics_shows_the_snapshot_date_next_to_the_price() -> None:
    callback = TelemetryCallback("openai", "gpt-4o-mini")
    run_with(callback, usage=dict(USAGE))
    text = format_metrics(callback.metrics)
    assert "Provider: openai" in text and "Model: gpt-4o-mini" in text
    assert "Total tokens: 1,500" in text and "Model limit: 128,000 tokens" in text
    cost_line = next(line for line in text.splitlines() if line.startswith("Estimated Cost"))
    assert "$0.000450" in cost_line and "2026-07-02" in cost_line


def test_copilot_prices_are_marked_as_reference() -> None:
    callback = TelemetryCallback("github_copilot", "gpt-4.1")
    run_with(callback, usage=dict(USAGE), reported_model="gpt-4.1")
    assert "subscription" in format_metrics(callback.metrics)


def test_no_logging_handlers_are_installed() -> None:
    import modelforge.catalog
    import modelforge.enhanced_llm
    import modelforge.modelsdev
    import modelforge.telemetry  # noqa: F401

    for name in ("modelforge", "modelforge.catalog", "modelforge.modelsdev", "modelforge.telemetry"):
        assert logging.getLogger(name).handlers == []
