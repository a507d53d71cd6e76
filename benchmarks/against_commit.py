"""Per-call overhead of this checkout against an earlier ModelForge (another source tree), over a bare
``ChatOpenAI``: did a change make every call dearer?

Run: ``git worktree add /tmp/base <commit>`` then
``.venv/bin/python benchmarks/against_commit.py /tmp/base/src`` (about three minutes; ``--quick``: fewer
processes). Not part of ``benchmarks/run.py``: it needs the tree to compare with.

``overhead.py`` keeps one worker process per arm alive and drives them in alternating rounds of 50 calls;
that is right for comparing libraries, but one process can run a few percent faster or slower than another
for its whole life (where its memory landed, which core it got, a round starting with cold caches), and
with identical code on both sides its two ModelForge arms differed by up to 0.08 ms of CPU per call. A
change to ModelForge itself moves the figure by less than that, so this benchmark runs each arm in many
fresh processes, one at a time, in rotating order: this checkout's ``get_llm()`` model, the other tree's
(its ``src/`` first on ``PYTHONPATH``, in this environment, so only ModelForge's code differs) and a bare
``ChatOpenAI``. Each process warms up, then makes 2,000 ``ainvoke`` calls of a plain ``get_llm()`` model
(no cache, no observers: ``observability.py`` and ``_cache_bench.py`` measure those) against one
OpenAI-compatible ``ProviderServer`` in a child process (``_overhead_worker.py``, as ``overhead.py`` uses
it). It prints, over the processes, the median CPU per call and the median of the processes' median wall
times, and what each ModelForge adds over the bare ``ChatOpenAI``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _records import Record, add_common_arguments, write_records
from _server import REPLY, env_for, serve, temp_home

WORKER = Path(__file__).resolve().parent / "_overhead_worker.py"
THIS_SOURCE = Path(__file__).resolve().parent.parent / "src"
WARMUP, CALLS = 300, 2000


@dataclass
class Arm:
    """One side and the figures of its processes."""

    label: str
    worker_arm: str  # the worker's ARM argument
    source: Path  # first on the worker's PYTHONPATH
    cpu_ms: list[float] = field(default_factory=list)  # per process: CPU per call
    wall_ms: list[float] = field(default_factory=list)  # per process: median wall time per call

    def cpu(self) -> float:
        return statistics.median(self.cpu_ms)

    def wall(self) -> float:
        return statistics.median(self.wall_ms)


def one_process(arm: Arm, base_url: str, env: dict[str, str], home: Path) -> None:
    """Start a worker, warm it up, time CALLS calls, record its figures."""
    child = subprocess.Popen(
        [sys.executable, str(WORKER), arm.worker_arm, base_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONPATH": str(arm.source)},
        cwd=home,
    )
    assert child.stdin is not None and child.stdout is not None
    answers = (json.loads(line) for line in child.stdout if line.startswith("{"))

    def answer(what: str) -> dict[str, Any]:
        found = next(answers, None)
        if found is None:
            raise SystemExit(f"{arm.label}: the worker exited {what} (exit code {child.wait()})")
        if "error" in found:
            raise SystemExit(f"{arm.label}: {found['error']} ({what})")
        return cast(dict[str, Any], found)

    try:
        ready = answer("while starting")
        if ready.get("answer") != REPLY:
            raise SystemExit(f"{arm.label}: unexpected first answer {ready}")
        for count in (WARMUP, CALLS):
            child.stdin.write(f"{count}\n")
            child.stdin.flush()
            result = answer(f"during {count} calls")
        arm.cpu_ms.append(result["cpu"] / CALLS * 1000)
        arm.wall_ms.append(statistics.median(result["wall"]) * 1000)
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "baseline_src", type=Path, help="the other tree's src/ folder (e.g. a git worktree's)"
    )
    add_common_arguments(parser)
    args = parser.parse_args()
    baseline = args.baseline_src.resolve()
    if not (baseline / "modelforge" / "__init__.py").is_file():
        parser.error(f"{baseline}: no modelforge package there (pass the tree's src/ folder)")
    processes = 3 if args.quick else 9  # a multiple of the arms: each order of the rotation as often
    arms = [
        Arm("ModelForge (this checkout)", "modelforge", THIS_SOURCE),
        Arm(f"ModelForge ({baseline})", "baseline", baseline),
        Arm("bare ChatOpenAI", "chatopenai", THIS_SOURCE),
    ]
    with serve() as server, temp_home(server.base_url) as home:
        env = env_for(home)
        for index in range(processes):
            shift = index % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                one_process(arm, server.base_url, env, home)
    ours, theirs, bare = arms
    for arm in arms:
        print(
            f"{arm.label:<40} {processes} processes x {CALLS} calls: CPU {arm.cpu():.3f} ms per call, "
            f"wall {arm.wall():.3f} ms (medians)"
        )
    records = []
    for arm in (ours, theirs):
        added_cpu, added_wall = arm.cpu() - bare.cpu(), arm.wall() - bare.wall()
        print(f"{arm.label} adds over bare ChatOpenAI: CPU {added_cpu:+.3f} ms, wall {added_wall:+.3f} ms")
        records.append(
            Record(
                "against_commit",
                f"added per call over bare ChatOpenAI: {arm.label}",
                added_wall,
                bare.label,
                unit="ms",
                note=f"CPU {added_cpu:+.3f} ms per call; {processes} processes x {CALLS} calls",
                with_ratio=False,
            )
        )
    cpu_change, wall_change = ours.cpu() - theirs.cpu(), ours.wall() - theirs.wall()
    print(f"this checkout against {baseline}: CPU {cpu_change:+.3f} ms per call, wall {wall_change:+.3f} ms")
    records.append(
        Record(
            "against_commit",
            "CPU per call, this checkout against the other tree",
            ours.cpu(),
            theirs.label,
            theirs.cpu(),
            "ms",
            note=f"wall {wall_change:+.3f} ms (medians of the processes' medians)",
        )
    )
    write_records(args.json, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
