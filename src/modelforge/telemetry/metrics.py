"""Performance metrics read at run time: retries, streams, rate-limit waits, the response cache, batch APIs.

Every model ``get_llm`` builds counts, per provider and model, in one process-wide thread-safe collector
(a lock and a few additions per call: always on):

* calls: total, succeeded, failed; how many needed a retry, how many of those then succeeded, and the extra
  attempts (``retry_success_rate``);
* streams: chunks, output tokens (the provider's usage, else estimated from the text at four characters a
  token), time to the first chunk and time from the first chunk to the end (``stream_tokens_per_second``,
  ``mean_ttft_seconds``);
* rate limits: admissions under a ``rate_limit`` section that had to wait (at least ``MIN_WAIT_SECONDS``),
  their total and longest wait;
* the response cache: hits (stale ones apart), misses, the tokens of the answers it served and what those
  answers cost when first asked (the catalogue's price): the money it saved;
* provider batch APIs: jobs collected, items, their cost at the batch price and the same answers at the
  live price: the money the batch API saved.

Money figures use the bundled models.dev price snapshot (``modelforge.telemetry``); models without a
catalogue price are counted apart (``cache_unpriced_hits``, ``batch_unpriced_items``), never as free.

``performance_metrics()`` returns a ``MetricsSnapshot`` of this process (``stored=True``: of the stats file
plus this process's unsaved counters); ``reset_performance_metrics()`` zeroes this process's counters
(``stored=True``: the file's too). At interpreter exit, and on ``flush_performance_metrics()``, what this
process counted since its last flush is added to the stats file (``modelforge.telemetry._store``) that
``modelforge stats`` reads: only when something was counted, and never raising (a read-only disk logs a
DEBUG line). Saving is on by default; the config setting ``record_stats: false`` (``modelforge settings
stats off``) or ``MODELFORGE_STATS=0`` turns it off (this process's counters keep counting).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelforge.telemetry import _store as _metrics_store
from modelforge.telemetry._snapshot import (
    COUNTERS,
    MAX_COUNTERS,
    MetricsSnapshot,
    PerformanceStats,
    snapshot_of,
)

__all__ = [
    "MIN_WAIT_SECONDS",
    "MetricsSnapshot",
    "PerformanceStats",
    "flush_performance_metrics",
    "performance_metrics",
    "recording_enabled",
    "reset_performance_metrics",
    "stats_path",
]

logger = logging.getLogger("modelforge.metrics")  # the name it had before it moved here

ENV_SWITCH = "MODELFORGE_STATS"
SETTING = "record_stats"
# A rate-limit admission faster than this did not wait: it only took its place (a Redis round trip at most).
MIN_WAIT_SECONDS = 0.01

stats_path = _metrics_store.stats_path


class _Counters:
    """The mutable counters of one (provider, model)."""

    __slots__ = COUNTERS
    calls: int
    ok: int
    failed: int
    retried: int
    retried_ok: int
    retries: int
    streams: int
    stream_chunks: int
    stream_output_tokens: int
    stream_seconds: float
    stream_ttft_seconds: float
    rate_limit_waits: int
    rate_limit_wait_seconds: float
    rate_limit_max_wait_seconds: float
    cache_hits: int
    cache_stale_hits: int
    cache_misses: int
    cache_tokens: int
    cache_saved_usd: float
    cache_unpriced_hits: int
    batch_jobs: int
    batch_items: int
    batch_answered: int
    batch_cost_usd: float
    batch_live_cost_usd: float
    batch_unpriced_items: int

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)

    def values(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in COUNTERS}


class _Collector:
    """Counters by (provider, model) and what of them was already saved."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[tuple[str, str], _Counters] = {}
        self.saved: dict[tuple[str, str], dict[str, float]] = {}
        self.since: datetime | None = None
        self.updated: datetime | None = None
        self.dirty = False

    def get(self, provider: str, model: str) -> _Counters:
        """The counters of (provider, model); call with ``lock`` held."""
        key = (provider, model)
        counters = self.counters.get(key)
        if counters is None:
            counters = self.counters[key] = _Counters()
            if self.since is None:
                self.since = datetime.now(UTC)
        self.dirty = True
        return counters

    def rows(self) -> dict[tuple[str, str], dict[str, float]]:
        with self.lock:
            return {key: counters.values() for key, counters in self.counters.items()}

    def unsaved(self) -> dict[tuple[str, str], dict[str, float]]:
        """What was counted since the last save; call with ``lock`` held."""
        delta: dict[tuple[str, str], dict[str, float]] = {}
        for key, counters in self.counters.items():
            before = self.saved.get(key, {})
            values = counters.values()
            changed = {
                name: value if name in MAX_COUNTERS else value - before.get(name, 0)
                for name, value in values.items()
                if value != before.get(name, 0)
            }
            if changed:
                delta[key] = changed
        return delta

    def reset(self) -> None:
        with self.lock:
            self.counters.clear()
            self.saved.clear()
            self.since = self.updated = None
            self.dirty = False


_collector = _Collector()


# --- recording (called by the models) ------------------------------------------------------------------


def record_call(provider: str, model: str, attempts: int, ok: bool) -> None:
    """One call to the provider ended after ``attempts`` attempts, succeeding or not."""
    with _collector.lock:
        counters = _collector.get(provider, model)
        counters.calls += 1
        if ok:
            counters.ok += 1
        else:
            counters.failed += 1
        if attempts > 1:
            counters.retried += 1
            counters.retries += attempts - 1
            if ok:
                counters.retried_ok += 1


def record_stream(
    provider: str, model: str, *, chunks: int, output_tokens: int, ttft: float, seconds: float
) -> None:
    """A stream of ``chunks`` chunks: ``ttft`` seconds to the first, then ``seconds`` to the end."""
    with _collector.lock:
        counters = _collector.get(provider, model)
        counters.streams += 1
        counters.stream_chunks += chunks
        counters.stream_output_tokens += output_tokens
        counters.stream_ttft_seconds += ttft
        counters.stream_seconds += seconds


def record_rate_limit_wait(provider: str, seconds: float) -> None:
    """An admission under ``provider``'s rate limit that took ``seconds`` (a real wait when long enough)."""
    if seconds < MIN_WAIT_SECONDS:
        return
    with _collector.lock:
        counters = _collector.get(provider, "")
        counters.rate_limit_waits += 1
        counters.rate_limit_wait_seconds += seconds
        counters.rate_limit_max_wait_seconds = max(counters.rate_limit_max_wait_seconds, seconds)


def record_cache_miss(provider: str, model: str) -> None:
    with _collector.lock:
        _collector.get(provider, model).cache_misses += 1


def record_cache_hit(
    provider: str,
    model: str,
    messages: Sequence[Any],
    *,
    stale: bool = False,
    priced: tuple[int, float | None, str | None] | None = None,
) -> None:
    """The response cache answered with ``messages`` (an answer's message, or its chunks' messages);
    ``priced`` is ``price_answer(provider, model, messages)`` when the caller kept it from an earlier hit."""
    tokens, cost, _ = priced if priced is not None else price_answer(provider, model, messages)
    with _collector.lock:
        counters = _collector.get(provider, model)
        counters.cache_hits += 1
        if stale:  # its lookup was counted a miss before the provider failed: it is a hit after all
            counters.cache_stale_hits += 1
            counters.cache_misses = max(counters.cache_misses - 1, 0)
        counters.cache_tokens += tokens
        if cost is None:
            counters.cache_unpriced_hits += 1
        else:
            counters.cache_saved_usd += cost


def record_batch_api(provider: str, model: str, items: int, answers: Sequence[Any]) -> None:
    """A provider batch-API job of ``items`` items was collected, with ``answers`` (the answered messages)."""
    from modelforge.catalog.prices import BATCH_API_DISCOUNT

    live = 0.0
    unpriced = 0
    for answer in answers:
        _, cost, _ = price_answer(provider, model, [answer])
        if cost is None:
            unpriced += 1
        else:
            live += cost
    with _collector.lock:
        counters = _collector.get(provider, model)
        counters.batch_jobs += 1
        counters.batch_items += items
        counters.batch_answered += len(answers)
        counters.batch_unpriced_items += unpriced
        counters.batch_live_cost_usd += live
        counters.batch_cost_usd += live * (1.0 - BATCH_API_DISCOUNT)


def price_answer(provider: str, model: str, messages: Sequence[Any]) -> tuple[int, float | None, str | None]:
    """(total tokens, cost at the catalogue's price or None when unpriced, reported model) of an answer."""
    from langchain_core.outputs import ChatGeneration, LLMResult

    from modelforge.telemetry import price_with_source, usage_from_result

    result = LLMResult(generations=[[ChatGeneration(message=message) for message in messages]])
    usage, actual = usage_from_result(result)
    if usage is None:
        return 0, None, actual
    cost, source = price_with_source(provider, model, usage, actual, None)
    return usage.total_tokens, (cost if source.get("pricing") in ("models.dev", "local") else None), actual


# --- reading -------------------------------------------------------------------------------------------


def performance_metrics(*, stored: bool = False, provider: str | None = None) -> MetricsSnapshot:
    """This process's performance counters (``stored=True``: the stats file's plus this process's unsaved
    ones, what ``modelforge stats`` shows); ``provider`` keeps only that provider's."""
    if not stored:
        rows = _collector.rows()
        return snapshot_of(
            rows,
            since=_collector.since,
            updated=datetime.now(UTC) if rows else None,
            source="process",
            pricing_snapshot_date=_snapshot_date(),
            provider=provider,
        )
    path = stats_path()
    rows, since, updated = _metrics_store.read(path)
    with _collector.lock:
        unsaved = _collector.unsaved()
        mine = _collector.since if unsaved else None
    for key, values in unsaved.items():
        merged = rows.setdefault(key, {})
        for name, value in values.items():
            old = merged.get(name, 0)
            merged[name] = max(old, value) if name in MAX_COUNTERS else old + value
    if mine is not None:
        since = min(since, mine) if since is not None else mine
        updated = datetime.now(UTC)
    return snapshot_of(
        rows,
        since=since,
        updated=updated,
        source=str(path),
        pricing_snapshot_date=_snapshot_date(),
        provider=provider,
    )


def _snapshot_date() -> str | None:
    try:
        from modelforge.catalog import Catalog

        return Catalog.bundled().snapshot_date
    except Exception:  # pragma: no cover - the snapshot ships with the package
        return None


# --- saving --------------------------------------------------------------------------------------------


def recording_enabled() -> bool:
    """Whether counters are saved to the stats file: ``MODELFORGE_STATS`` first, then the setting."""
    switch = os.environ.get(ENV_SWITCH, "").strip().lower()
    if switch in ("0", "false", "off", "no"):
        return False
    if switch in ("1", "true", "on", "yes"):
        return True
    try:
        from modelforge.config import get_settings

        return bool(get_settings().get(SETTING, True))
    except Exception as err:  # an unreadable config: keep the default
        logger.debug("Could not read the %s setting (%s): saving stats", SETTING, type(err).__name__)
        return True


# One flush at a time: a second one must measure its delta against what the first one saved, or the
# first one's counts would reach the file twice.
_flush_lock = threading.Lock()


def flush_performance_metrics() -> Path | None:
    """Add what this process counted since its last flush to the stats file; the file written, or None
    (nothing new, saving turned off, or the file could not be written: logged at DEBUG). Never raises."""
    with _flush_lock:
        return _flush()


def _flush() -> Path | None:
    with _collector.lock:
        if not _collector.dirty:
            return None
    if not recording_enabled():
        return None
    with _collector.lock:
        delta = _collector.unsaved()
        since = _collector.since or datetime.now(UTC)
        snapshot = {key: counters.values() for key, counters in _collector.counters.items()}
        _collector.dirty = False
    if not delta:
        return None
    path = stats_path()
    try:
        _metrics_store.merge(delta, since=since, path=path)
    except Exception as err:
        logger.debug("Could not save performance stats to %s: %s", path, err)
        with _collector.lock:
            _collector.dirty = True
        return None
    with _collector.lock:
        for key, values in snapshot.items():
            _collector.saved[key] = values
    return path


def reset_performance_metrics(*, stored: bool = False) -> None:
    """Zero this process's counters (``stored=True``: empty the stats file too)."""
    _collector.reset()
    if stored:
        _metrics_store.clear(stats_path())


def _forget_in_forked_child() -> None:
    """A forked child starts with its parent's counters, which the parent saves itself: count them as saved
    (so the child adds only its own calls), with fresh locks (one may have been held at the fork)."""
    global _flush_lock
    _flush_lock = threading.Lock()
    _collector.lock = threading.Lock()
    _collector.saved = {key: counters.values() for key, counters in _collector.counters.items()}
    _collector.dirty = False


atexit.register(flush_performance_metrics)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_forked_child)
