"""benchmarks/run.py's reporting: the table, results.json and the charts from synthetic figures; a peer that
cannot be installed and a benchmark that crashes are reported, not left out. No benchmark and no real
install runs here."""

from __future__ import annotations

import importlib.metadata
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import _peers
import _report
import overhead
import pytest
import run
from _records import FAILED, NOT_INSTALLED, Record, read_records, write_records
from rich.console import Console

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REASON = "pip install litellm==1.106.2 failed: ERROR: No matching distribution found for litellm==1.106.2"


def synthetic() -> list[Record]:
    return [
        Record("overhead", "median per call", 2.10, "bare ChatOpenAI", 2.00, "ms"),
        Record("overhead", "added per call (median)", 0.10, "bare ChatOpenAI", unit="ms", target="< 1 ms",
               met=True),
        Record("overhead", "median per call", 2.10, "LiteLLM acompletion", unit="ms", status=NOT_INSTALLED,
               note=REASON),
        Record("overhead", "median per call", 2.10, "model-forge-llm 2.3.0 get_llm()", 4.20, "ms"),
        Record("startup", "`modelforge --help` wall", 0.12, "model-forge-llm 2.3.0", 2.40, "s",
               target="<= 0.5x 2.3.0", met=True),
        Record("startup", "`modelforge --help` peak memory", 24.0, "model-forge-llm 2.3.0", 135.0, "MB"),
        Record("startup", "`import modelforge` time", 0.03, "model-forge-llm 2.3.0", 2.0, "s",
               target="< 0.5 s", met=True),
        Record("streaming", "CPU, 5,000 chunks", 1.05, "raw llm.astream", 1.00, "s", target="<= 1.10x",
               met=True),
        Record("batch", "wall, rate_limit in config", 30.0, "LangChain abatch", 27.0, "s"),
        Record("cache", "cache hit, p95", 900.0, "LangChain InMemoryCache", 300.0, "µs", target="<= 2x",
               met=False),
        Record("retry", "run", status=FAILED, note="exit code 1: RuntimeError: the server went away"),
    ]  # fmt: skip


def rendered(records: list[Record]) -> str:
    console = Console(record=True, width=400, color_system=None, file=io.StringIO())
    _report.print_report(records, console)
    return console.export_text()


def test_the_table_shows_values_ratios_targets_and_what_is_missing() -> None:
    text = rendered(synthetic())
    assert "2.10 ms" in text and "1.05x" in text  # ModelForge vs bare ChatOpenAI, with the ratio
    assert "0.05x" in text  # --help: 0.12 s / 2.40 s
    assert f"not installed: {REASON}" in text
    assert "FAILED" in text and "the server went away" in text
    assert "NOT met" in text
    targets = text.split("Targets", 1)[1]
    assert "per-call overhead over a bare ChatOpenAI below 1 ms: met (0.100 ms)" in targets
    assert "`import modelforge` under 0.5 s: met (0.030 s)" in targets
    assert "`modelforge --help` at most half of 2.3.0's time: met (0.120 s = 0.05x 2.3.0's 2.40 s)" in targets
    assert "cache, cache hit, p95 <= 2x: NOT met" in targets


def test_a_target_whose_peer_is_missing_says_why_it_was_not_measured() -> None:
    records = [
        Record("startup", "`modelforge --help` wall", 0.12, "model-forge-llm 2.3.0", unit="s",
               status=NOT_INSTALLED, note="pip install model-forge-llm==2.3.0 failed: no index"),
    ]  # fmt: skip
    lines = _report.target_lines(records)
    assert "`modelforge --help` at most half of 2.3.0's time: not measured (pip install" in lines[2]
    assert lines[0].endswith("not measured (the benchmark did not report it)")


def test_results_json_and_charts_are_written(tmp_path: Path) -> None:
    records = synthetic()
    _report.write_json(tmp_path / "results.json", records, {"duration_s": 12.5, "machine": {"cpu_count": 2}})
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["duration_s"] == 12.5 and document["machine"] == {"cpu_count": 2}
    assert len(document["records"]) == len(records)
    missing = [r for r in document["records"] if r["status"] == NOT_INSTALLED]
    assert missing[0]["peer"] == "LiteLLM acompletion" and missing[0]["note"] == REASON
    overhead_target = document["targets"][0]
    assert overhead_target.startswith("per-call overhead") and overhead_target.endswith("met (0.100 ms)")

    charts = _report.write_charts(records, tmp_path)
    assert [c.name for c in charts] == ["overhead.png", "startup.png", "figures.png"]
    for chart in charts:
        assert chart.read_bytes()[:8] == PNG_MAGIC and chart.stat().st_size > 5000


def test_records_round_trip_through_a_benchmarks_json(tmp_path: Path) -> None:
    records = [
        Record("rate limits", "429s", 0, "LangChain", 83, "", with_ratio=False, target="0", met=True),
        Record("retry", "wall time", 16.5, "SDK default retries", 33.0, "s"),
    ]
    write_records(tmp_path / "r.json", records)
    back = read_records(tmp_path / "r.json")
    assert back == records
    assert back[0].ratio is None and back[1].ratio == 0.5


def test_charts_are_written_with_nothing_measured(tmp_path: Path) -> None:
    charts = _report.write_charts([Record("overhead", "run", status=FAILED, note="crashed")], tmp_path)
    assert all(chart.read_bytes()[:8] == PNG_MAGIC for chart in charts)


def test_a_peer_that_cannot_be_installed_is_reported_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if "pip" in command:  # no real install: pip fails the way it does when the index lacks the version
            stderr = (
                "WARNING: Location 'file:///opt/pypi/simple/litellm/' is ignored\n"
                "ERROR: Could not find a version that satisfies the requirement litellm==1.106.2\n"
                "ERROR: No matching distribution found for litellm==1.106.2\n"
            )
            return subprocess.CompletedProcess(command, 1, "", stderr)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(_peers.subprocess, "run", fake_run)
    statuses = _peers.ensure_peers([_peers.PEERS["litellm"]], root=tmp_path)
    status = statuses["litellm"]
    assert not status.installed
    assert status.describe().startswith("not installed: pip install litellm==1.106.2 failed: ")
    assert "No matching distribution found for litellm==1.106.2" in status.reason
    assert "WARNING: Location" not in status.reason
    assert any("venv" in command for command in calls)

    # run.py hands the reason to the benchmark, which reports the peer instead of leaving it out.
    installed = _peers.PeerStatus("mf23", "model-forge-llm 2.3.0", Path("/peers/mf23/bin/python"), "2.3.0")
    args = run.peer_arguments(("litellm", "mf23"), {**statuses, "mf23": installed})
    assert args == ["--missing", f"litellm={status.reason}", "--peer", "mf23=/peers/mf23/bin/python"]
    arms = [overhead.Arm("modelforge", Path(sys.executable), wall=[0.002, 0.0021], cpu=0.003)]
    arms.append(overhead.Arm("litellm", None, reason=status.reason))
    records = overhead.records(arms)
    assert records[0].status == NOT_INSTALLED and records[0].peer == "LiteLLM acompletion"
    assert f"not installed: {status.reason}" in rendered(records)


def test_an_installed_peer_of_the_pinned_version_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = importlib.metadata.version("rich")
    spec = _peers.PeerSpec("fake", f"rich=={version}", "rich", "Fake peer")
    folder = tmp_path / "fake"
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (folder / _peers.MARKER).write_text(spec.requirement + "\n")
    monkeypatch.setattr(_peers.shutil, "rmtree", lambda *a, **k: pytest.fail("a good install was removed"))

    status = _peers.install_peer(spec, root=tmp_path)
    assert status.installed and status.reused and status.version == version
    assert status.describe() == f"{version} (reused)"


def test_a_crashed_benchmark_is_reported_failed_and_a_finished_one_gives_its_records(tmp_path: Path) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('started')\nraise RuntimeError('the server went away')\n")
    good = tmp_path / "good.py"
    good.write_text(
        "import json, sys\n"
        "path = sys.argv[sys.argv.index('--json') + 1]\n"
        "json.dump([{'benchmark': 'good', 'metric': 'm', 'modelforge': 1.0, 'peer': 'p', 'peer_value': 2.0,"
        " 'unit': 's'}], open(path, 'w'))\n"
    )
    logs = tmp_path / "logs"

    failed = run.run_benchmark(run.Benchmark("crash", str(crash)), {}, quick=True, logs=logs)
    assert failed.exit_code == 1
    [record] = failed.records
    assert record.status == FAILED and record.benchmark == "crash"
    assert "exit code 1" in record.note and "RuntimeError: the server went away" in record.note
    assert "started" in (logs / "crash.txt").read_text()

    ok = run.run_benchmark(run.Benchmark("good", str(good)), {}, quick=True, logs=logs)
    [record] = ok.records
    assert ok.exit_code == 0 and record.ratio == 0.5 and record.status == "ok"
