"""Prices: what a call's tokens cost at the catalogue's price, computed in one place.

Every price is the catalogue's entry for exactly the model (``Catalog.lookup``: no substring guessing) and
``ModelInfo.cost`` (input, output, cache reads and cache writes at their own prices). Local providers
(``ollama``, ``local``) cost 0.0; a model the catalogue does not price is ``None`` (unknown), or 0.0 where
2.3.0's ``calculate_cost`` promised a number.

* ``calculate_cost(provider, model, usage)``: 2.3.0's function (also importable from
  ``modelforge.telemetry``);
* ``price_with_source(...)``: the cost and where the price came from, for ``TelemetryCallback`` and the
  metrics; ``price_counts(...)``: the same cost alone (``None`` when unknown), for the observability events;
* ``price_usage(provider, model, Usage(...))``: ``CostTracker``'s price, with Anthropic's one-hour cache
  writes at twice the input price;
* ``BATCH_API_DISCOUNT``: what OpenAI's and Anthropic's batch APIs take off the live price;
* ``usage_from_metadata`` / ``reported_model_id``: a LangChain message's usage and the model id the
  provider reported, read the same way for every price.

All of them compute with ``_price`` (one formula: cache reads and writes at their own prices, one-hour
writes at twice the input price) and look the model up with ``Catalog.lookup`` (the configured id first,
then the id the response reported, so ``-latest`` aliases are priced as the dated model that answered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelforge.catalog import LOCAL_PROVIDERS, Catalog, ModelInfo

__all__ = [
    "BATCH_API_DISCOUNT",
    "ONE_HOUR_WRITE_MULTIPLIER",
    "TokenCounts",
    "Usage",
    "calculate_cost",
    "price_counts",
    "price_usage",
    "price_with_source",
    "reported_model_id",
    "usage_from_metadata",
]

# What OpenAI's and Anthropic's batch APIs take off the live price.
BATCH_API_DISCOUNT = 0.5


class TokenCounts(Protocol):
    """The token counts a price needs (``modelforge.telemetry.TokenUsage`` has them)."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def cache_read_tokens(self) -> int: ...

    @property
    def cache_write_tokens(self) -> int: ...


# Anthropic bills a write to its one-hour prompt cache at twice the base input price.
ONE_HOUR_WRITE_MULTIPLIER = 2.0


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call used (``input_tokens`` includes the cached and cache-write ones)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


def price_with_source(
    provider: str, model: str, usage: TokenCounts, actual_model: str | None, catalog: Catalog | None
) -> tuple[float, dict[str, Any]]:
    """The cost of ``usage`` and the metadata that says where the price came from."""
    if provider.strip().lower() in LOCAL_PROVIDERS:
        return 0.0, {"pricing": "local"}
    catalog = catalog or Catalog.bundled()
    info = catalog.lookup(provider, [model, actual_model])
    meta: dict[str, Any] = {"pricing_snapshot_date": catalog.snapshot_date}
    if info is not None:
        meta.update(
            context_length=info.context_length,
            max_output_tokens=info.max_output_tokens,
            supports_function_calling=info.supports_function_calling,
            supports_vision=info.supports_vision,
        )
    cost = _price(info, usage)
    if info is None or cost is None:
        return 0.0, {**meta, "pricing": "unknown"}
    meta.update(pricing="models.dev", pricing_model=f"{info.provider}/{info.model}")
    if info.provider == "github-copilot":
        meta["pricing_note"] = "GitHub Copilot is subscription-based; the cost is for reference only"
    return cost, meta


def price_counts(
    provider: str, model: str, usage: TokenCounts, actual_model: str | None, catalog: Catalog | None
) -> float | None:
    """``price_with_source``'s cost without its metadata: ``None`` when the catalogue has no price."""
    if provider.strip().lower() in LOCAL_PROVIDERS:
        return 0.0
    return _price((catalog or Catalog.bundled()).lookup(provider, [model, actual_model]), usage)


def calculate_cost(provider: str, model: str, usage: TokenCounts, *, catalog: Catalog | None = None) -> float:
    """USD for ``usage`` at the catalogue's price for exactly ``provider``/``model``; 0.0 when unknown."""
    if provider.strip().lower() in LOCAL_PROVIDERS:
        return 0.0
    cost = _price((catalog or Catalog.bundled()).lookup(provider, [model]), usage)
    return cost if cost is not None else 0.0


def price_usage(
    provider: str,
    model: str,
    usage: Usage,
    *,
    other_names: Sequence[str | None] = (),
    catalog: Catalog | None = None,
) -> float | None:
    """US dollars for ``usage`` at the catalogue's price for exactly ``provider``/``model``.

    0.0 for a local provider; ``None`` when the catalogue has no price. ``other_names`` are further ids the
    model goes by (the one the provider reported), tried after ``model``.
    """
    if provider.strip().lower() in LOCAL_PROVIDERS:
        return 0.0
    return _price((catalog or Catalog.bundled()).lookup(provider, [model, *other_names]), usage)


def _as_usage(counts: Usage | TokenCounts) -> Usage:
    if isinstance(counts, Usage):
        return counts
    return Usage(
        input_tokens=counts.prompt_tokens,
        output_tokens=counts.completion_tokens,
        cache_read_tokens=counts.cache_read_tokens,
        cache_write_tokens=counts.cache_write_tokens,
        cache_write_1h_tokens=int(getattr(counts, "cache_write_1h_tokens", 0) or 0),
    )


def _price(info: ModelInfo | None, counts: Usage | TokenCounts) -> float | None:
    """The one price computation: ``info``'s input, output, cache-read and cache-write prices, with
    Anthropic's one-hour cache writes at ``ONE_HOUR_WRITE_MULTIPLIER`` times the input price. Reasoning
    tokens are part of the output tokens (as every provider reports them) and cost the output price."""
    if info is None:
        return None
    usage = _as_usage(counts)
    one_hour = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    # One-hour writes are left as plain input here (base price) and topped up to their multiple below.
    cost = info.cost(
        usage.input_tokens,
        usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens - one_hour,
    )
    if cost is None:
        return None
    input_price = info._prices_for(usage.input_tokens).get("input")  # the long-context tier's, if any
    if one_hour and input_price is not None:
        cost += one_hour * input_price * (ONE_HOUR_WRITE_MULTIPLIER - 1) / 1_000_000
    return cost


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_metadata(meta: Mapping[str, Any] | None) -> Usage | None:
    """A message's LangChain ``usage_metadata`` as a ``Usage`` (None when there is none): cache reads, and
    cache writes with their one-hour part (langchain-anthropic gives per-TTL counts and zeroes the generic
    ``cache_creation`` then)."""
    if not isinstance(meta, Mapping):
        return None
    details = meta.get("input_token_details") or {}
    five_min = _count(details.get("ephemeral_5m_input_tokens"))
    one_hour = _count(details.get("ephemeral_1h_input_tokens"))
    writes = _count(details.get("cache_creation")) or five_min + one_hour
    return Usage(
        input_tokens=_count(meta.get("input_tokens")),
        output_tokens=_count(meta.get("output_tokens")),
        cache_read_tokens=_count(details.get("cache_read")),
        cache_write_tokens=max(writes, one_hour),
        cache_write_1h_tokens=one_hour,
    )


def reported_model_id(metadata: Mapping[str, Any] | None) -> str | None:
    """The model id an answer's ``response_metadata`` says answered (``model_name`` or ``model``), if any."""
    if not isinstance(metadata, Mapping):
        return None
    found = metadata.get("model_name") or metadata.get("model")
    return found if isinstance(found, str) and found else None
