"""``modelforge stats``: the performance counters every ModelForge process saved, per provider.

Reads the stats file (``modelforge.telemetry.metrics``: ``~/.cache/model-forge/stats.sqlite3`` or
``$MODELFORGE_STATS_FILE``) and prints one row per provider and a total: calls and failures, retry success
rate, rate-limit waits, stream throughput and time to first chunk, the response cache's hit rate and the
money it saved, and the provider batch APIs' items and savings. ``--json`` prints the counters and rates as
JSON; ``--provider`` keeps one provider; ``--reset`` empties the file. Money figures use the bundled
models.dev price snapshot, whose date is printed.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

import click

from modelforge.cli._output import echo_json, note, print_table

if TYPE_CHECKING:
    from modelforge.telemetry.metrics import PerformanceStats

__all__ = ["stats_command"]

_COLUMNS = (
    "Provider",
    "Calls",
    "Failed",
    "Retry success",
    "Rate-limit waits",
    "Stream tok/s",
    "TTFT",
    "Cache hits",
    "Cache saved",
    "Batch items",
    "Batch saved",
)


@click.command(name="stats")
@click.option("--json", "as_json", is_flag=True, help="Print the counters and rates as JSON.")
@click.option("--provider", help="Only this provider.")
@click.option("--reset", is_flag=True, help="Empty the stats file.")
def stats_command(as_json: bool, provider: str | None, reset: bool) -> None:
    """Show the performance metrics ModelForge recorded: retries, streams, rate limits, cache, batch API."""
    from modelforge.telemetry.metrics import (
        performance_metrics,
        recording_enabled,
        reset_performance_metrics,
        stats_path,
    )

    path = stats_path()
    if reset:
        reset_performance_metrics(stored=True)
        click.echo(f"Performance stats cleared ({path}).")
        return
    snapshot = performance_metrics(stored=True, provider=provider)
    if as_json:
        echo_json({**snapshot.to_dict(), "file": str(path), "recording": recording_enabled()})
        return
    if not recording_enabled():
        note(
            "Recording is off (setting record_stats or MODELFORGE_STATS=0): turn it on with "
            "`modelforge settings stats on`."
        )
    if snapshot.empty:
        which = f" for provider '{provider}'" if provider else ""
        click.echo(
            f"No performance stats recorded yet{which} ({path}). They are saved when a program using "
            "ModelForge's models exits."
        )
        return
    rows = [_row(name, stats) for name, stats in sorted(snapshot.providers.items())]
    if len(snapshot.providers) > 1:
        rows.append(_row("Total", snapshot.total))
    since = _when(snapshot.since)
    print_table(_COLUMNS, rows, title=f"Performance since {since}")
    date = snapshot.pricing_snapshot_date or "unknown date"
    note(f"Money saved at models.dev catalogue prices (snapshot of {date}). File: {path}")


def _row(name: str, stats: PerformanceStats) -> list[str]:
    waits = (
        f"{stats.rate_limit_waits} / {stats.rate_limit_wait_seconds:.1f}s" if stats.rate_limit_waits else "0"
    )
    hits = "-"
    if stats.cache_hit_rate is not None:
        hits = f"{stats.cache_hits} ({_percent(stats.cache_hit_rate)})"
    return [
        name,
        str(stats.calls),
        str(stats.failed),
        f"{stats.retried_ok}/{stats.retried} ({_percent(stats.retry_success_rate)})"
        if stats.retried
        else "-",
        waits,
        f"{stats.stream_tokens_per_second:.1f}" if stats.stream_tokens_per_second is not None else "-",
        f"{stats.mean_ttft_seconds * 1000:.0f} ms" if stats.mean_ttft_seconds is not None else "-",
        hits,
        _money(stats.cache_saved_usd) if stats.cache_hits else "-",
        str(stats.batch_items) if stats.batch_jobs else "-",
        _money(stats.batch_saved_usd) if stats.batch_jobs else "-",
    ]


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def _money(amount: float) -> str:
    if amount >= 1:
        return f"${amount:,.2f}"
    # Small savings keep two significant digits ($0.000075), so a few cache hits never read as $0.0000.
    if amount == 0 or amount >= 0.01:
        return f"${amount:.4f}"
    decimals = min(1 - math.floor(math.log10(amount)), 12)
    return f"${amount:.{decimals}f}"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "now"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
