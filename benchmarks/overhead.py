"""Per-call overhead: ``get_llm()``'s model against a bare ``ChatOpenAI``, LiteLLM and model-forge-llm 2.3.0.

Run: ``.venv/bin/python benchmarks/overhead.py`` (about half a minute; the peers come from
``benchmarks/.peers/``, which ``benchmarks/run.py`` fills, or ``--peer NAME=PYTHON``). One
OpenAI-compatible ``ProviderServer`` runs in a child process and every arm calls it, each arm in a worker
process of its own (``_overhead_worker.py``), so no arm shares an interpreter with the server or another arm:

* ModelForge: ``ModelForgeRegistry().get_llm()`` from a config file in a temporary ``$HOME``, ``ainvoke``;
* bare ``ChatOpenAI`` on the same server, in the same environment (the same langchain-openai ModelForge
  builds on, so the difference is ModelForge's own work), ``ainvoke``;
* LiteLLM ``acompletion(model="openai/gpt-4o-mini", api_base=..., api_key=...)``, in its environment;
* 2.3.0's ``get_llm()`` from the same config file, ``ainvoke``, in its environment.

Each library's default user-facing path (retries as it ships them; every call succeeds, so none fires).
All workers start up front, make one checked call and a warm-up round, then are driven in alternating
rounds (the order rotates each round) so drift in the machine's speed hits every arm alike. Printed per
arm: median, mean and p95 wall time per call and CPU time per call; then ModelForge's median minus bare
``ChatOpenAI``'s (target < 1 ms) and ModelForge's median as a ratio of each peer's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules

from _peers import peer_arguments, resolve_peers
from _records import FAILED, NOT_INSTALLED, Record, add_common_arguments, write_records
from _server import REPLY, env_for, serve, temp_home

WORKER = Path(__file__).resolve().parent / "_overhead_worker.py"
TARGET_MS = 1.0
LABELS = {
    "modelforge": "ModelForge get_llm()",
    "chatopenai": "bare ChatOpenAI",
    "litellm": "LiteLLM acompletion",
    "mf23": "model-forge-llm 2.3.0 get_llm()",
}


@dataclass
class Arm:
    """One worker process and what it measured."""

    name: str
    python: Path | None
    reason: str = ""
    child: subprocess.Popen[str] | None = None
    wall: list[float] = field(default_factory=list)
    cpu: float = 0.0
    error: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.name]

    @property
    def running(self) -> bool:
        return self.child is not None and not self.error

    def median_ms(self) -> float:
        return statistics.median(self.wall) * 1000

    def mean_ms(self) -> float:
        return statistics.mean(self.wall) * 1000

    def p95_ms(self) -> float:
        ordered = sorted(self.wall)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000

    def cpu_ms(self) -> float:
        return self.cpu / len(self.wall) * 1000


def _answer(arm: Arm, timeout_note: str) -> dict[str, Any] | None:
    """The worker's next JSON line (other output, e.g. a library's banner, is skipped)."""
    assert arm.child is not None and arm.child.stdout is not None
    for line in arm.child.stdout:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            if "error" in data:
                arm.error = f"{data['error']} ({timeout_note})"
                return None
            return data
    arm.error = f"the worker exited ({timeout_note}; exit code {arm.child.wait()})"
    return None


def _send(arm: Arm, calls: int) -> dict[str, Any] | None:
    assert arm.child is not None and arm.child.stdin is not None
    arm.child.stdin.write(f"{calls}\n")
    arm.child.stdin.flush()
    return _answer(arm, f"during a round of {calls} calls")


def run(arms: list[Arm], rounds: int, calls: int, warmup: int) -> None:
    with serve() as server, temp_home(server.base_url) as home:
        env = env_for(home)
        for arm in arms:
            if arm.python is None:
                continue
            try:
                arm.child = subprocess.Popen(
                    [str(arm.python), str(WORKER), arm.name, server.base_url],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=home,  # no project-local .model-forge/config.json
                )
            except OSError as err:
                arm.error = f"cannot start {arm.python}: {err}"
        try:
            for arm in arms:
                if arm.child is None:
                    continue
                ready = _answer(arm, "while starting")
                if ready is not None and ready.get("answer") != REPLY:
                    arm.error = f"unexpected answer {ready.get('answer')!r}"
            for arm in arms:
                if arm.running:
                    _send(arm, warmup)
            for index in range(rounds):
                live = [arm for arm in arms if arm.running]
                shift = index % len(live) if live else 0
                for arm in live[shift:] + live[:shift]:
                    result = _send(arm, calls)
                    if result is not None:
                        arm.wall += result["wall"]
                        arm.cpu += result["cpu"]
        finally:
            for arm in arms:
                if arm.child is not None:
                    assert arm.child.stdin is not None
                    arm.child.stdin.close()
                    try:
                        arm.child.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        arm.child.kill()
                        arm.child.wait()


def records(arms: list[Arm]) -> list[Record]:
    by_name = {arm.name: arm for arm in arms}
    ours = by_name["modelforge"]
    out: list[Record] = []
    if ours.error or not ours.wall:
        return [Record("overhead", "median per call", status=FAILED, note=ours.error or "no calls measured")]
    for name in ("chatopenai", "litellm", "mf23"):
        peer = by_name.get(name)
        if peer is None:
            continue
        problem = None
        if peer.python is None:
            problem = (NOT_INSTALLED, peer.reason)
        elif peer.error or not peer.wall:
            problem = (FAILED, peer.error or "no calls measured")
        if problem is not None:
            status, note = problem
            out.append(
                Record(
                    "overhead",
                    "median per call",
                    ours.median_ms(),
                    peer.label,
                    unit="ms",
                    status=status,
                    note=note,
                )
            )
            continue
        extra = {
            "modelforge_mean_ms": ours.mean_ms(),
            "peer_mean_ms": peer.mean_ms(),
            "modelforge_p95_ms": ours.p95_ms(),
            "peer_p95_ms": peer.p95_ms(),
            "modelforge_cpu_ms": ours.cpu_ms(),
            "peer_cpu_ms": peer.cpu_ms(),
            "calls": len(ours.wall),
        }
        out.append(
            Record(
                "overhead",
                "median per call",
                ours.median_ms(),
                peer.label,
                peer.median_ms(),
                "ms",
                note=f"mean {ours.mean_ms():.2f} vs {peer.mean_ms():.2f} ms; CPU per call "
                f"{ours.cpu_ms():.2f} vs {peer.cpu_ms():.2f} ms",
                extra=extra,
            )
        )
        if name == "chatopenai":
            added = ours.median_ms() - peer.median_ms()
            out.append(
                Record(
                    "overhead",
                    "added per call (median)",
                    added,
                    peer.label,
                    unit="ms",
                    target=f"< {TARGET_MS:g} ms",
                    met=added < TARGET_MS,
                    note=f"mean {ours.mean_ms() - peer.mean_ms():+.2f} ms, CPU "
                    f"{ours.cpu_ms() - peer.cpu_ms():+.2f} ms per call",
                )
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    peer_arguments(parser)
    args = parser.parse_args()
    rounds, calls, warmup = (10, 30, 30) if args.quick else (20, 50, 50)
    peers = resolve_peers(args)
    arms = [Arm("modelforge", Path(sys.executable)), Arm("chatopenai", Path(sys.executable))]
    arms += [Arm(name, *peers[name]) for name in ("litellm", "mf23")]
    run(arms, rounds, calls, warmup)
    for arm in arms:
        if arm.wall:
            print(
                f"{arm.label:<33} {len(arm.wall)} calls: median {arm.median_ms():6.2f} ms   mean "
                f"{arm.mean_ms():6.2f} ms   p95 {arm.p95_ms():6.2f} ms   CPU {arm.cpu_ms():6.2f} ms per call"
            )
        else:
            print(f"{arm.label:<33} not measured: {arm.reason or arm.error}")
    found = records(arms)
    for record in found:
        if record.metric == "added per call (median)":
            print(
                f"ModelForge adds {record.modelforge:.3f} ms per call over bare ChatOpenAI (median; "
                f"{record.note}); target < {TARGET_MS:g} ms: {'met' if record.met else 'NOT met'}"
            )
        elif record.ratio is not None:
            print(f"ModelForge / {record.peer}: {record.ratio:.2f}x (median per call)")
    write_records(args.json, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
