"""Per-call metrics: duration, token usage and cost, collected by a LangChain callback handler.

``TelemetryCallback(provider, model)`` records every chat-model run it sees (``invoke``, ``stream`` and
their async twins) and leaves the latest in ``.metrics`` (all of them in ``.history``). Token usage is
read from ``AIMessage.usage_metadata`` first, then from ``llm_output["token_usage"]`` (or ``["usage"]``);
when the provider reports none the counts are 0, as in 2.3.0, and an estimate from the text length (with
its cost) is in ``metadata["token_estimate"]``, flagged ``token_estimation``.

Costs come from the models.dev catalogue by exact model id (``modelforge.catalog``), never by substring
(2.3.0 priced ``gpt-4o-mini`` as ``gpt-4o``): ``calculate_cost`` returns 0.0 for a model without a known
price, and the callback then says ``metadata["pricing"] == "unknown"`` so 0.0 is not mistaken for free.
``format_metrics`` prints the prices' snapshot date next to the cost. An answer served by the response cache
(``response_metadata["modelforge_cache"]`` is ``"hit"`` or ``"stale"``) cost nothing: its stored usage is
reported, its ``estimated_cost`` is 0.0 and ``metadata["cache_hit"]`` says so (``metadata["cache"]`` is
``"hit"`` or ``"stale"``). No logging handlers are installed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from modelforge._chunks import CACHE_MARKER
from modelforge._token_estimate import tokens_for_chars
from modelforge.catalog import LOCAL_PROVIDERS, Catalog, ModelInfo  # noqa: F401  (2.3.0 read them here)
from modelforge.catalog.prices import Usage as PriceUsage
from modelforge.catalog.prices import calculate_cost, price_with_source, usage_from_metadata

__all__ = [
    "ModelMetrics",
    "TelemetryCallback",
    "TokenUsage",
    "cache_served",
    "calculate_cost",
    "format_metrics",
    "price_with_source",
    "usage_from_result",
]


@dataclass
class TokenUsage:
    """Tokens used by one call; ``prompt_tokens`` includes cached ones."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written to Anthropic's one-hour cache


@dataclass
class ModelMetrics:
    """What one model call took and cost."""

    provider: str
    model: str
    start_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    end_time: datetime | None = None
    duration_ms: float = 0.0
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    estimated_cost: float = 0.0
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    metrics: ModelMetrics
    started: float
    prompt_chars: int
    first_token: float | None = None


class TelemetryCallback(BaseCallbackHandler):
    """Collects ``ModelMetrics`` for each chat-model run; the latest is ``.metrics``."""

    run_inline = True  # cheap, non-blocking handlers: run them in the caller's thread / event loop

    def __init__(self, provider: str, model: str, *, catalog: Catalog | None = None) -> None:
        super().__init__()
        self.provider = provider
        self.model = model
        self._catalog = catalog
        self.metrics = ModelMetrics(provider=provider, model=model)
        self.history: list[ModelMetrics] = []
        self._runs: dict[UUID | None, _Run] = {}

    # --- LangChain hooks ---------------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        chars = sum(len(str(m.content)) for batch in messages for m in batch)
        self._start(run_id, chars)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._start(run_id, sum(len(p) for p in prompts))

    def on_llm_new_token(self, token: Any, *, run_id: UUID | None = None, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.first_token is None:
            run.first_token = time.perf_counter()
            run.metrics.metadata["time_to_first_token_ms"] = (run.first_token - run.started) * 1000

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID | None = None, **kwargs: Any) -> None:
        """Counts the retries ModelForge made in the run (its ``modelforge.retry`` events)."""
        run = self._runs.get(run_id)
        if run is not None and name == "modelforge.retry":
            run.metrics.metadata["retries"] = run.metrics.metadata.get("retries", 0) + 1

    def on_llm_end(self, response: LLMResult, *, run_id: UUID | None = None, **kwargs: Any) -> None:
        run = self._finish(run_id)
        metrics = run.metrics
        usage, actual_model = usage_from_result(response)
        if actual_model:
            metrics.metadata["actual_model"] = actual_model
        if usage is None:
            # As 2.3.0: the provider reported no tokens, so the counts (and the cost) are 0; the estimate
            # (about four characters a token) goes beside them, in the metadata.
            completion_chars = sum(len(g.text) for gens in response.generations for g in gens)
            estimate = _estimate(run.prompt_chars, completion_chars)
            estimated_cost, _ = price_with_source(
                self.provider, self.model, estimate, actual_model, self._catalog
            )
            metrics.metadata["token_estimation"] = True
            metrics.metadata["token_estimate"] = {
                "prompt_tokens": estimate.prompt_tokens,
                "completion_tokens": estimate.completion_tokens,
                "total_tokens": estimate.total_tokens,
                "cost": estimated_cost,
            }
            usage = TokenUsage()
        metrics.token_usage = usage
        served = cache_served(response)
        if served is not None:  # answered from the response cache: no provider spending
            metrics.estimated_cost = 0.0
            metrics.metadata.update(cache_hit=True, cache=served, pricing="cache")
            return
        cost, pricing = price_with_source(self.provider, self.model, usage, actual_model, self._catalog)
        metrics.estimated_cost = cost
        metrics.metadata.update(pricing)

    def on_llm_error(self, error: BaseException, *, run_id: UUID | None = None, **kwargs: Any) -> None:
        run = self._finish(run_id)
        run.metrics.error = str(error) or type(error).__name__
        run.metrics.metadata["error_type"] = type(error).__name__

    # --- run bookkeeping ---------------------------------------------------------------------------------

    def _start(self, run_id: UUID | None, prompt_chars: int) -> None:
        metrics = ModelMetrics(provider=self.provider, model=self.model)
        self._runs[run_id] = _Run(metrics=metrics, started=time.perf_counter(), prompt_chars=prompt_chars)
        self.metrics = metrics

    def _finish(self, run_id: UUID | None) -> _Run:
        run = self._runs.pop(run_id, None)
        if run is None:  # an end without a start (a handler attached mid-run): time it as zero
            run = _Run(ModelMetrics(provider=self.provider, model=self.model), time.perf_counter(), 0)
        run.metrics.end_time = datetime.now(UTC)
        run.metrics.duration_ms = (time.perf_counter() - run.started) * 1000
        self.metrics = run.metrics
        self.history.append(run.metrics)
        return run


def cache_served(response: LLMResult) -> str | None:
    """``"hit"`` or ``"stale"`` when the response cache answered this run, else None."""
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                served = (generation.message.response_metadata or {}).get(CACHE_MARKER)
                if served in ("hit", "stale"):
                    return str(served)
    return None


def usage_from_result(response: LLMResult) -> tuple[TokenUsage | None, str | None]:
    """Token usage and the model id the provider reported, from a finished run."""
    usage: TokenUsage | None = None
    actual: str | None = None
    for generations in response.generations:
        for generation in generations:
            if not isinstance(generation, ChatGeneration):
                continue
            message = generation.message
            meta = message.response_metadata or {}
            actual = actual or meta.get("model_name") or meta.get("model")
            if isinstance(message, AIMessage) and message.usage_metadata:
                usage = _add(usage, _from_usage_metadata(message.usage_metadata))
    llm_output = response.llm_output or {}
    actual = actual or llm_output.get("model_name") or llm_output.get("model")
    if usage is None:
        raw = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(raw, Mapping) and raw:
            usage = _from_token_usage(raw)
    return usage, actual if isinstance(actual, str) else None


def _from_usage_metadata(meta: Mapping[str, Any]) -> TokenUsage:
    # Read as every price reads it (modelforge.catalog.prices.usage_from_metadata): cache writes with
    # their one-hour part, also when langchain-anthropic gives only per-TTL counts.
    usage = usage_from_metadata(meta) or PriceUsage()
    prompt, completion = usage.input_tokens, usage.output_tokens
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(meta.get("total_tokens") or prompt + completion),
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
    )


def _from_token_usage(raw: Mapping[str, Any]) -> TokenUsage:
    """OpenAI-style ``token_usage`` or Anthropic-style ``usage`` dicts."""
    prompt = int(raw.get("prompt_tokens") or raw.get("input_tokens") or 0)
    completion = int(raw.get("completion_tokens") or raw.get("output_tokens") or 0)
    details = raw.get("prompt_tokens_details") or {}
    cache_read = int(details.get("cached_tokens") or 0)
    cache_write = int(raw.get("cache_creation_input_tokens") or 0)
    if "input_tokens" in raw and "prompt_tokens" not in raw:  # Anthropic counts cached tokens apart
        cache_read = int(raw.get("cache_read_input_tokens") or 0)
        prompt += cache_read + cache_write
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(raw.get("total_tokens") or prompt + completion),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _add(a: TokenUsage | None, b: TokenUsage) -> TokenUsage:
    if a is None:
        return b
    return TokenUsage(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.total_tokens + b.total_tokens,
        a.cache_read_tokens + b.cache_read_tokens,
        a.cache_write_tokens + b.cache_write_tokens,
        a.cache_write_1h_tokens + b.cache_write_1h_tokens,
    )


def _estimate(prompt_chars: int, completion_chars: int) -> TokenUsage:
    """A rough count (about four characters a token) for providers that report no usage."""
    prompt, completion = max(tokens_for_chars(prompt_chars), 1), max(tokens_for_chars(completion_chars), 1)
    return TokenUsage(prompt, completion, prompt + completion)


def format_metrics(metrics: ModelMetrics) -> str:
    """A readable block of text for the terminal."""
    meta, usage = metrics.metadata, metrics.token_usage
    rule = "=" * 50
    # 2.3.0's labels (scripts grep them), without its emoji.
    lines = [rule, "Telemetry Information", rule, f"Provider: {metrics.provider}", f"Model: {metrics.model}"]
    if meta.get("actual_model") and meta["actual_model"] != metrics.model:
        lines.append(f"Actual Model: {meta['actual_model']}")
    lines.append(f"Duration: {metrics.duration_ms:.0f}ms")
    if meta.get("time_to_first_token_ms") is not None:
        lines.append(f"First token after: {meta['time_to_first_token_ms']:.0f} ms")
    lines += [
        "",
        "Token Usage:",
        f"  Prompt tokens: {usage.prompt_tokens:,}"
        + (f" ({usage.cache_read_tokens:,} from cache)" if usage.cache_read_tokens else ""),
        f"  Completion tokens: {usage.completion_tokens:,}",
        f"  Total tokens: {usage.total_tokens:,}",
    ]
    estimate = meta.get("token_estimate")
    if isinstance(estimate, Mapping):  # the provider reported no tokens
        lines.append(
            f"  Not reported by the provider; estimated: {estimate.get('prompt_tokens', 0):,} prompt + "
            f"{estimate.get('completion_tokens', 0):,} completion (estimated)"
        )
    context = meta.get("context_length")
    if isinstance(context, int) and context > 0:
        used = usage.prompt_tokens
        lines += [
            "",
            "Context Window:",
            f"  Model limit: {context:,} tokens",
            f"  Used: {used:,} tokens ({used / context * 100:.1f}%)",
            f"  Remaining: {max(context - used, 0):,} tokens",
        ]
        if meta.get("max_output_tokens"):
            lines.append(f"  Max output: {meta['max_output_tokens']:,} tokens")
        capabilities = [
            label
            for key, label in (("supports_function_calling", "functions"), ("supports_vision", "vision"))
            if meta.get(key)
        ]
        if capabilities:
            lines.append(f"  Capabilities: {', '.join(capabilities)}")
    lines += ["", _cost_line(metrics)]
    if meta.get("pricing_note"):
        lines.append(f"  Note: {meta['pricing_note']}")
    if metrics.error:
        lines += ["", f"Error: {metrics.error}"]
    lines.append(rule)
    return "\n".join(lines)


def _cost_line(metrics: ModelMetrics) -> str:
    meta = metrics.metadata
    snapshot = meta.get("pricing_snapshot_date") or Catalog.bundled().snapshot_date or "unknown date"
    if meta.get("cache_hit"):
        return "Estimated Cost: $0 (answered from the response cache)"
    if meta.get("pricing") == "local":
        return "Estimated Cost: $0 (local model)"
    if meta.get("pricing") == "unknown":
        return f"Estimated Cost: unknown (no price in the models.dev catalogue of {snapshot})"
    estimate = meta.get("token_estimate")
    if isinstance(estimate, Mapping) and isinstance(estimate.get("cost"), int | float):
        return (
            f"Estimated Cost: $0 (the provider reported no usage); about ${estimate['cost']:.6f} from "
            f"estimated tokens (models.dev prices as of {snapshot})"
        )
    return f"Estimated Cost: ${metrics.estimated_cost:.6f} (models.dev prices as of {snapshot})"


# 2.3.0's PRICING table: provider -> model -> USD per 1,000 input / output tokens. Built on first use from the
# bundled models.dev catalogue (2.3.0 hard-coded 2024 prices), under 2.3.0's provider names.
_PRICING_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "github_copilot": "github-copilot",
}
_pricing: dict[str, dict[str, dict[str, float]]] | None = None


def _pricing_table() -> dict[str, dict[str, dict[str, float]]]:
    global _pricing
    if _pricing is None:
        catalog = Catalog.bundled()
        table: dict[str, dict[str, dict[str, float]]] = {}
        for name, catalog_id in _PRICING_PROVIDERS.items():
            models: dict[str, dict[str, float]] = {}
            for info in catalog.models(catalog_id):
                if info.input_per_1m is not None and info.output_per_1m is not None:
                    models[info.model.lower()] = {
                        "input": info.input_per_1m / 1000,
                        "output": info.output_per_1m / 1000,
                    }
            table[name] = models
        _pricing = table
    return _pricing


def __getattr__(name: str) -> Any:
    if name == "PRICING":
        return _pricing_table()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
