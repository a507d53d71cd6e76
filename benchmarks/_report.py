"""What ``benchmarks/run.py`` shows and writes: one rich table of ratios, ``results.json`` and PNG charts.

Everything here works on ``Record`` lists (``_records.py``), so it can be checked on synthetic figures
without running a benchmark. A record whose peer could not be installed shows ``not installed: <reason>``
in place of the peer's value; a benchmark that crashed shows ``FAILED`` with its stderr tail.

Charts (matplotlib, Agg backend, no display needed): ``overhead.png`` (median time per call of every
arm), ``startup.png`` (wall time and peak memory, ours against 2.3.0's) and ``figures.png`` (ModelForge /
peer for every other figure with a ratio; below 1 is ModelForge ahead for times and counts).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from _records import FAILED, NOT_INSTALLED, Record
from rich.console import Console
from rich.table import Table

# The targets issue 7 asks run.py to print, by (benchmark, metric) of the record that carries each.
REQUIRED_TARGETS = {
    ("overhead", "added per call (median)"): "per-call overhead over a bare ChatOpenAI below 1 ms",
    ("startup", "`import modelforge` time"): "`import modelforge` under 0.5 s",
    ("startup", "`modelforge --help` wall"): "`modelforge --help` at most half of 2.3.0's time",
}


def format_value(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "":
        return f"{value:,.0f}"
    if unit in ("%", "MB"):
        return f"{value:,.1f} {unit}"
    magnitude = abs(value)
    digits = 3 if magnitude < 1 else 2 if magnitude < 100 else 0
    return f"{value:,.{digits}f} {unit}"


def format_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def verdict(met: bool | None) -> str:
    return "met" if met else "NOT met" if met is False else ""


def _peer_cell(record: Record) -> str:
    if record.status == NOT_INSTALLED:
        return "[yellow]not installed[/yellow]"
    if record.status == FAILED:
        return "[red]FAILED[/red]"
    return format_value(record.peer_value, record.unit)


def build_table(records: list[Record], title: str = "ModelForge vs its peers") -> Table:
    """One row per record: the figure, ModelForge's value, the peer's, their ratio, the target."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for name, justify in [
        ("Benchmark", "left"),
        ("Metric", "left"),
        ("ModelForge", "right"),
        ("Peer", "left"),
        ("Peer value", "right"),
        ("Ratio", "right"),
        ("Target", "left"),
        ("Met", "left"),
        ("Note", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for record in records:
        note = f"not installed: {record.note}" if record.status == NOT_INSTALLED else record.note
        met = verdict(record.met)
        table.add_row(
            record.benchmark if record.benchmark != previous else "",
            record.metric,
            format_value(record.modelforge, record.unit)
            if record.status != FAILED or record.modelforge
            else "—",
            record.peer,
            _peer_cell(record),
            format_ratio(record.ratio) if record.status == "ok" else "—",
            record.target,
            f"[green]{met}[/green]" if record.met else f"[red]{met}[/red]" if met else "",
            note,
            end_section=False,
        )
        previous = record.benchmark
    return table


def target_lines(records: list[Record]) -> list[str]:
    """The required targets, each ``met`` / ``NOT met`` (or why not measured), then any other target."""
    by_key = {(r.benchmark, r.metric): r for r in records}
    lines = []
    for key, text in REQUIRED_TARGETS.items():
        record = by_key.get(key)
        if record is None:
            lines.append(f"{text}: not measured (the benchmark did not report it)")
        elif record.met is None:
            why = record.note or record.status
            lines.append(f"{text}: not measured ({why})")
        else:
            shown = format_value(record.modelforge, record.unit)
            if record.ratio is not None and record.unit == "s" and "2.3.0" in record.target:
                shown = (
                    f"{shown} = {record.ratio:.2f}x 2.3.0's {format_value(record.peer_value, record.unit)}"
                )
            lines.append(f"{text}: {verdict(record.met)} ({shown})")
    for record in records:
        if (
            record.target
            and (record.benchmark, record.metric) not in REQUIRED_TARGETS
            and record.met is not None
        ):
            detail = format_value(record.modelforge, record.unit) + (
                f"; {record.note}" if record.note else ""
            )
            lines.append(
                f"{record.benchmark}, {record.metric} {record.target}: {verdict(record.met)} ({detail})"
            )
    return lines


def print_report(records: list[Record], console: Console, title: str = "ModelForge vs its peers") -> None:
    console.print(build_table(records, title))
    console.print()
    console.print("[bold]Targets[/bold]")
    for line in target_lines(records):
        style = "red" if "NOT met" in line else "yellow" if "not measured" in line else "green"
        console.print(f"  [{style}]{line}[/{style}]")


def write_json(path: Path, records: list[Record], meta: dict[str, Any]) -> None:
    """``results.json``: the run's metadata, every record, and the required targets' verdicts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**meta, "records": [r.to_dict() for r in records], "targets": target_lines(records)}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


# -- charts ---------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _select(records: Iterable[Record], benchmark: str, metric: str | None = None) -> list[Record]:
    return [r for r in records if r.benchmark == benchmark and (metric is None or r.metric == metric)]


def _placeholder(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def overhead_chart(records: list[Record], path: Path) -> Path:
    """Median per call of every arm: ModelForge first, then each peer (an empty slot says why it is not)."""
    plt = _pyplot()
    rows = _select(records, "overhead", "median per call")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ours = next((r.modelforge for r in rows if r.modelforge is not None), None)
    if ours is None:
        _placeholder(ax, "per-call overhead: not measured")
    else:
        names, values, colors = ["ModelForge get_llm()"], [ours], ["tab:blue"]
        for record in rows:
            names.append(record.peer.replace(" get_llm()", "\nget_llm()"))
            values.append(record.peer_value if record.status == "ok" and record.peer_value else 0.0)
            colors.append("tab:gray")
        bars = ax.bar(range(len(values)), values, color=colors)
        for bar, record in zip(bars[1:], rows, strict=True):
            label = format_ratio(record.ratio) if record.status == "ok" else record.status
            ax.annotate(
                label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
            )
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylabel("median wall time per call (ms)")
        ax.set_title("Per-call overhead, same local server (labels: ModelForge / peer)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def startup_chart(records: list[Record], path: Path) -> Path:
    """Wall time and peak memory of each start-up figure, ours beside 2.3.0's."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    rows = _select(records, "startup")
    for ax, unit, ylabel in [(left, "s", "seconds (median)"), (right, "MB", "peak memory, MB (median)")]:
        chosen = [r for r in rows if r.unit == unit and r.modelforge is not None]
        if not chosen:
            _placeholder(ax, "not measured")
            continue
        xs = range(len(chosen))
        ours = [r.modelforge or 0.0 for r in chosen]
        theirs = [r.peer_value if r.status == "ok" and r.peer_value is not None else 0.0 for r in chosen]
        for offset, values, label, color in [
            (-0.2, ours, "ModelForge", "tab:blue"),
            (0.2, theirs, "2.3.0", "tab:gray"),
        ]:
            bars = ax.bar([x + offset for x in xs], values, width=0.4, label=label, color=color)
            for bar, value in zip(bars, values, strict=True):
                if value:
                    shown = f"{value:.3g}"
                    ax.annotate(shown, (bar.get_x() + 0.2, value), ha="center", va="bottom", fontsize=7)
        for x, record in zip(xs, chosen, strict=True):
            if record.status != "ok":
                ax.annotate(record.status, (x + 0.2, 0), ha="center", va="bottom", rotation=90, fontsize=7)
        labels = [
            r.metric.replace(" wall", "").replace(" peak memory", "").replace(" time", "") for r in chosen
        ]
        ax.set_xticks(list(xs), labels, fontsize=7, rotation=10)
        ax.set_ylabel(ylabel)
        ax.set_ylim(top=max(ours + theirs) * 1.15)
        ax.legend(loc="upper left")
    fig.suptitle("CLI start-up and import: ModelForge vs model-forge-llm 2.3.0")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def figures_chart(records: list[Record], path: Path) -> Path:
    """ModelForge / peer for every figure of the other benchmarks that has a ratio."""
    plt = _pyplot()
    rows = [
        r
        for r in records
        if r.benchmark not in ("overhead", "startup") and r.ratio is not None and r.status == "ok"
    ]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.42 * len(rows) + 1.2)))
    if not rows:
        _placeholder(ax, "no ratios measured")
    else:
        labels = [f"{r.benchmark}: {r.metric}\nvs {r.peer}" for r in rows]
        ratios = [r.ratio or 0.0 for r in rows]
        ys = range(len(rows))
        ax.barh(list(ys), ratios, color=["tab:green" if r.met is not False else "tab:red" for r in rows])
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_yticks(list(ys), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("ModelForge / peer")
        for y, value in zip(ys, ratios, strict=True):
            ax.annotate(
                f"{value:.2f}x",
                (value, y),
                va="center",
                fontsize=7,
                xytext=(3, 0),
                textcoords="offset points",
            )
        ax.set_title("Other figures: ModelForge / peer (red: a target not met)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_charts(records: list[Record], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        overhead_chart(records, folder / "overhead.png"),
        startup_chart(records, folder / "startup.png"),
        figures_chart(records, folder / "figures.png"),
    ]
