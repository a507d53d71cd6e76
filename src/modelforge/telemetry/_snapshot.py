"""What ``modelforge.performance_metrics()`` hands back: frozen counters and the rates derived from them.

``PerformanceStats`` holds the counters of one model, one provider or everything (``provider`` / ``model``
None for the wider ones) with the rates as properties (None when nothing was measured, never a misleading
0); ``MetricsSnapshot`` holds them per provider and per model, the totals and the time of the first record.
Both turn into plain dicts (``to_dict()``) for JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

__all__ = ["COUNTERS", "MAX_COUNTERS", "MetricsSnapshot", "PerformanceStats", "stats_from"]


@dataclass(frozen=True, slots=True)
class PerformanceStats:
    """Counters of one model (or a provider, or all of them) and the rates derived from them."""

    provider: str | None = None
    model: str | None = None
    # Calls to the provider (invoke, batch items and streams; answers from the response cache excluded).
    calls: int = 0
    ok: int = 0
    failed: int = 0
    retried: int = 0  # calls that needed at least one retry
    retried_ok: int = 0  # ... and then succeeded
    retries: int = 0  # extra attempts, all calls together
    # Streams that delivered at least one chunk.
    streams: int = 0
    stream_chunks: int = 0
    stream_output_tokens: int = 0  # reported by the provider, else estimated from the text (4 chars a token)
    stream_seconds: float = 0.0  # first chunk to end, all streams together
    stream_ttft_seconds: float = 0.0  # call start to first chunk, all streams together
    # Admissions under a ``rate_limit`` that had to wait.
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    rate_limit_max_wait_seconds: float = 0.0
    # The response cache.
    cache_hits: int = 0  # fresh and stale answers together
    cache_stale_hits: int = 0
    cache_misses: int = 0
    cache_tokens: int = 0  # tokens of the answers served from the cache
    cache_saved_usd: float = 0.0  # what those answers cost when they were first asked
    cache_unpriced_hits: int = 0  # hits of models without a catalogue price (not in cache_saved_usd)
    # Provider batch APIs.
    batch_jobs: int = 0
    batch_items: int = 0
    batch_answered: int = 0
    batch_cost_usd: float = 0.0  # at the batch price
    batch_live_cost_usd: float = 0.0  # the same answers at the live price
    batch_unpriced_items: int = 0

    @property
    def success_rate(self) -> float | None:
        """Share of calls that succeeded (None: no call)."""
        return self.ok / self.calls if self.calls else None

    @property
    def retry_success_rate(self) -> float | None:
        """Share of retried calls that succeeded in the end (None: nothing was retried)."""
        return self.retried_ok / self.retried if self.retried else None

    @property
    def stream_tokens_per_second(self) -> float | None:
        """Output tokens a second while streams were delivering (None: no stream lasted measurably)."""
        return self.stream_output_tokens / self.stream_seconds if self.stream_seconds > 0 else None

    @property
    def mean_ttft_seconds(self) -> float | None:
        """Mean time from a stream's start (its first attempt) to its first chunk."""
        return self.stream_ttft_seconds / self.streams if self.streams else None

    @property
    def mean_rate_limit_wait_seconds(self) -> float | None:
        return self.rate_limit_wait_seconds / self.rate_limit_waits if self.rate_limit_waits else None

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of cacheable calls the response cache answered (None: no lookup)."""
        looked_up = self.cache_hits + self.cache_misses
        return self.cache_hits / looked_up if looked_up else None

    @property
    def batch_saved_usd(self) -> float:
        """What the batch API saved against the same answers asked live."""
        return max(self.batch_live_cost_usd - self.batch_cost_usd, 0.0)

    @property
    def saved_usd(self) -> float:
        """Money saved by the response cache and the batch APIs together."""
        return self.cache_saved_usd + self.batch_saved_usd

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in COUNTERS)

    def counters(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in COUNTERS}

    def to_dict(self) -> dict[str, Any]:
        """Counters and derived rates, JSON-ready."""
        return {
            "provider": self.provider,
            "model": self.model,
            **self.counters(),
            "success_rate": self.success_rate,
            "retry_success_rate": self.retry_success_rate,
            "stream_tokens_per_second": self.stream_tokens_per_second,
            "mean_ttft_seconds": self.mean_ttft_seconds,
            "mean_rate_limit_wait_seconds": self.mean_rate_limit_wait_seconds,
            "cache_hit_rate": self.cache_hit_rate,
            "batch_saved_usd": self.batch_saved_usd,
            "saved_usd": self.saved_usd,
        }


COUNTERS: tuple[str, ...] = tuple(
    f.name for f in fields(PerformanceStats) if f.name not in ("provider", "model")
)
# Counters merged by taking the larger value rather than adding.
MAX_COUNTERS = frozenset({"rate_limit_max_wait_seconds"})
_INTEGER = frozenset(f.name for f in fields(PerformanceStats) if f.type == "int")


def stats_from(
    rows: Iterable[Mapping[str, float]], *, provider: str | None = None, model: str | None = None
) -> PerformanceStats:
    """The counters of ``rows`` added up (the max ones maxed) into one ``PerformanceStats``."""
    total: dict[str, float] = dict.fromkeys(COUNTERS, 0)
    for row in rows:
        for name, value in row.items():
            if name not in total:
                continue  # written by a newer version
            total[name] = max(total[name], value) if name in MAX_COUNTERS else total[name] + value
    values: dict[str, Any] = {
        name: round(value) if name in _INTEGER else float(value) for name, value in total.items()
    }
    return PerformanceStats(provider=provider, model=model, **values)


@dataclass(frozen=True)
class MetricsSnapshot:
    """Performance counters per provider and per model, their totals, and since when they run."""

    providers: Mapping[str, PerformanceStats] = field(default_factory=dict)
    models: Mapping[tuple[str, str], PerformanceStats] = field(default_factory=dict)
    total: PerformanceStats = field(default_factory=PerformanceStats)
    since: datetime | None = None  # the first record (None: nothing recorded)
    updated: datetime | None = None  # the latest record or flush
    source: str = "process"  # "process", or the stats file read (with this process's unsaved counters)
    pricing_snapshot_date: str | None = None  # the models.dev snapshot the money figures use

    @property
    def empty(self) -> bool:
        return self.total.empty

    def provider(self, name: str) -> PerformanceStats:
        """The counters of provider ``name`` (all zero when it recorded nothing)."""
        return self.providers.get(name) or replace(PerformanceStats(), provider=name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "updated": self.updated.isoformat() if self.updated else None,
            "source": self.source,
            "pricing": "models.dev",
            "pricing_snapshot_date": self.pricing_snapshot_date,
            "total": self.total.to_dict(),
            "providers": {name: stats.to_dict() for name, stats in sorted(self.providers.items())},
            "models": [stats.to_dict() for _, stats in sorted(self.models.items())],
        }


def snapshot_of(
    rows: Mapping[tuple[str, str], Mapping[str, float]],
    *,
    since: datetime | None,
    updated: datetime | None,
    source: str,
    pricing_snapshot_date: str | None,
    provider: str | None = None,
) -> MetricsSnapshot:
    """A snapshot from counters keyed by (provider, model); model "" holds what is not a model's own."""
    keys = sorted(key for key in rows if provider is None or key[0] == provider)
    models = {key: stats_from([rows[key]], provider=key[0], model=key[1]) for key in keys if key[1]}
    providers = {
        name: stats_from([rows[k] for k in keys if k[0] == name], provider=name)
        for name in dict.fromkeys(k[0] for k in keys)
    }
    return MetricsSnapshot(
        providers=providers,
        models=models,
        total=stats_from([rows[key] for key in keys]),
        since=since,
        updated=updated,
        source=source,
        pricing_snapshot_date=pricing_snapshot_date,
    )
