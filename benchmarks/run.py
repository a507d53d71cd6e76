"""Every benchmark in one run: ModelForge against its peers, one table of ratios, JSON and PNG charts.

Run: ``.venv/bin/python benchmarks/run.py`` (or ``make bench``; under 10 minutes on 2 cores, peer installs
included). It

1. installs the peers, each in a virtual environment of its own under ``benchmarks/.peers/`` (reused when
   the pinned version is already there; in parallel, in the background, while the benchmarks that need no
   peer run): ``model-forge-llm`` 2.3.0 and LiteLLM. A peer that cannot be installed is reported as
   ``not installed: <reason>`` and the run goes on (``--no-peers`` leaves them out on purpose);
2. runs each benchmark as a subprocess of its own, in ``--quick`` sizes (``--full``: their standalone
   sizes), against the project's local ``ProviderServer`` (Redis at 127.0.0.1:6379 for the rate limits):
   ``ratelimit.py``, ``retry.py``, ``batch.py``, ``overhead.py``, ``startup.py``, ``streaming.py``,
   ``observability.py``, ``_cache_bench.py`` and ``call_cpu.py``. A benchmark that crashes is reported as
   failed (with its stderr tail) and the run goes on;
3. prints one table (ModelForge's value, the peer's, ModelForge / peer, the target and whether it is met),
   then each target with met / NOT met, and writes ``benchmarks/results/results.json`` (machine, versions,
   date, durations, every figure), the PNG charts ``overhead.png``, ``startup.png`` and ``figures.png``,
   and each benchmark's own printed lines under ``benchmarks/results/logs/``.

``--only overhead,startup`` runs some of them (script names without ``.py``). Exit status: 0 when every
benchmark ran and every target was met, else 1. Not run here, because it needs a tree to compare with:
``against_commit.py``, this checkout's per-call overhead against an earlier commit's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _peers import PEERS, PeerSpec, PeerStatus, ensure_peers, skipped
from _records import FAILED, Record, read_records
from _report import print_report, write_charts, write_json
from rich.console import Console

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BENCHMARK_TIMEOUT = 420.0


@dataclass(frozen=True)
class Benchmark:
    """A script of ``benchmarks/`` and the peers it measures against (passed as ``--peer``/``--missing``)."""

    name: str
    script: str
    peers: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


# Those that need no peer come first: they run while the peers install. The rate-limit and retry figures
# are paced by the server's limits and Retry-After (not CPU bound), so an install beside them costs little.
BENCHMARKS = [
    Benchmark("rate limits", "ratelimit.py"),
    Benchmark("retry", "retry.py"),
    Benchmark("batch", "batch.py", ("litellm",), ("--no-cache",)),
    Benchmark("overhead", "overhead.py", ("litellm", "mf23")),
    Benchmark("startup", "startup.py", ("mf23",)),
    Benchmark("streaming", "streaming.py"),
    Benchmark("observability", "observability.py"),
    Benchmark("cache", "_cache_bench.py"),
    Benchmark("call cpu", "call_cpu.py"),
]


@dataclass
class Outcome:
    """How one benchmark's subprocess went."""

    name: str
    seconds: float
    exit_code: int | None
    records: list[Record] = field(default_factory=list)
    stderr_tail: str = ""
    during_install: bool = False


def peer_arguments(names: tuple[str, ...], statuses: dict[str, PeerStatus]) -> list[str]:
    """``--peer NAME=PYTHON`` for each installed peer, ``--missing NAME=REASON`` for the others."""
    args: list[str] = []
    for name in names:
        status = statuses[name]
        if status.python is not None:
            args += ["--peer", f"{name}={status.python}"]
        else:
            args += ["--missing", f"{name}={status.reason}"]
    return args


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def run_benchmark(
    bench: Benchmark,
    statuses: dict[str, PeerStatus],
    quick: bool,
    logs: Path,
    python: str = sys.executable,
    timeout: float = BENCHMARK_TIMEOUT,
) -> Outcome:
    """Run one benchmark script; its records, or one ``failed`` record with its stderr tail."""
    with tempfile.TemporaryDirectory(prefix="mf-bench-") as folder:
        out = Path(folder) / "records.json"
        command = [python, str(HERE / bench.script), "--json", str(out), *bench.extra]
        command += ["--quick"] if quick else []
        command += peer_arguments(bench.peers, statuses)
        # MODELFORGE_STATS=0: the benchmarks' calls must not land in the user's `modelforge stats`.
        env = {**os.environ, "MODELFORGE_OFFLINE": "1", "MODELFORGE_STATS": "0", "PYTHONUNBUFFERED": "1"}
        start = time.monotonic()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent
            )
            code: int | None = done.returncode
            stdout, stderr = done.stdout, done.stderr
        except subprocess.TimeoutExpired as err:
            code = None
            stdout = (
                err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else err.stdout or ""
            )
            stderr = f"timed out after {timeout:.0f} s"
        seconds = time.monotonic() - start
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{Path(bench.script).stem}.txt").write_text(
            stdout + ("\n--- stderr ---\n" + stderr if stderr else "")
        )
        records = read_records(out) if out.exists() else []
    outcome = Outcome(bench.name, seconds, code, records, _tail(stderr))
    if not records:
        why = f"exit code {code}" if code is not None else "timed out"
        outcome.records = [
            Record(bench.name, "run", status=FAILED, note=f"{why}: {outcome.stderr_tail or 'no output'}")
        ]
    return outcome


class PeerInstall:
    """The peers' installation, in a background thread."""

    def __init__(self, specs: list[PeerSpec], enabled: bool, reason: str = "left out (--no-peers)") -> None:
        self.started = time.monotonic()
        self.seconds = 0.0
        self._statuses: dict[str, PeerStatus] = {}
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._install, args=(specs,), daemon=True)
            self._thread.start()
        else:
            self._statuses = skipped(specs, reason)

    def _install(self, specs: list[PeerSpec]) -> None:
        self._statuses = ensure_peers(specs)
        self.seconds = time.monotonic() - self.started

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> dict[str, PeerStatus]:
        if self._thread is not None:
            self._thread.join()
        return self._statuses


def versions(statuses: dict[str, PeerStatus]) -> dict[str, str]:
    import modelforge

    # Ours is the distribution model-forge-llm too: "modelforge" is ours, "model-forge-llm" the 2.3.0 peer.
    found = {"modelforge": modelforge.__version__}
    for name in ("langchain-openai", "langchain-core", "openai"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    for name, spec in PEERS.items():
        status = statuses.get(name)
        found[spec.distribution] = (
            status.version
            if status and status.installed
            else (f"not installed: {status.reason}" if status else "not installed")
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peers", action="store_true", help="do not install or measure the peers")
    parser.add_argument("--full", action="store_true", help="each benchmark's standalone sizes (slower)")
    parser.add_argument(
        "--only", default="", metavar="NAMES", help="scripts to run, e.g. overhead,startup (default: all)"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where to write results (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    chosen = [b for b in BENCHMARKS if not wanted or wanted & {b.name, Path(b.script).stem}]
    if not chosen:
        known = ", ".join(Path(b.script).stem for b in BENCHMARKS)
        parser.error(f"--only {args.only!r} names no benchmark; choose from: {known}")
    started, began = time.monotonic(), dt.datetime.now(dt.UTC)

    needed = any(b.peers for b in chosen)
    reason = "left out (--no-peers)" if args.no_peers else "not needed by the chosen benchmarks"
    install = PeerInstall(list(PEERS.values()), enabled=needed and not args.no_peers, reason=reason)
    if install.running:
        console.print(
            "Installing or checking the peers in the background: "
            + ", ".join(p.requirement for p in PEERS.values())
        )
    outcomes: list[Outcome] = []
    statuses: dict[str, PeerStatus] = {}
    for bench in chosen:
        if bench.peers and not statuses:
            if install.running:
                console.print("Waiting for the peers' installation...")
            statuses = install.wait()
            for status in statuses.values():
                console.print(f"  {status.label}: {status.describe()}")
        during = install.running
        console.print(f"Running {bench.name} ({bench.script})...", end=" ")
        outcome = run_benchmark(bench, statuses, quick=not args.full, logs=args.results / "logs")
        outcome.during_install = during or install.running
        outcomes.append(outcome)
        state = "done" if outcome.exit_code is not None and outcome.records[0].status != FAILED else "FAILED"
        console.print(f"{state} in {outcome.seconds:.0f} s")
    statuses = install.wait()  # also when no chosen benchmark needed a peer
    total = time.monotonic() - started

    records = [record for outcome in outcomes for record in outcome.records]
    console.print()
    print_report(records, console, title=f"ModelForge vs its peers ({len(os.sched_getaffinity(0))} cores)")
    meta: dict[str, Any] = {
        "date": began.isoformat(timespec="seconds"),
        "duration_s": round(total, 1),
        "sizes": "full" if args.full else "quick",
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": versions(statuses),
        "peers": {
            name: {
                "requirement": PEERS[name].requirement,
                "installed": status.installed,
                "version": status.version,
                "reused": status.reused,
                "install_seconds": round(status.seconds, 1),
                "reason": status.reason,
            }
            for name, status in statuses.items()
        },
        "peer_setup_s": round(install.seconds, 1),
        "benchmarks": [
            {
                "name": o.name,
                "seconds": round(o.seconds, 1),
                "exit_code": o.exit_code,
                "ran_during_peer_install": o.during_install,
                "stderr_tail": o.stderr_tail,
            }
            for o in outcomes
        ],
    }
    write_json(args.results / "results.json", records, meta)
    charts = write_charts(records, args.results)
    setup = f"; peer setup {install.seconds:.0f} s of it, in the background" if install.seconds >= 1 else ""
    console.print()
    console.print(
        f"Total: {total:.0f} s{setup}. Results: {args.results / 'results.json'}; charts: "
        + ", ".join(str(c.name) for c in charts)
        + f"; logs: {args.results / 'logs'}/"
    )
    failed = any(r.status == FAILED for r in records)
    unmet = any(r.met is False for r in records)
    return 1 if failed or unmet else 0


if __name__ == "__main__":
    sys.exit(main())
