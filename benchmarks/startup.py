"""Start-up: ``modelforge --help``, ``modelforge test --quiet`` and ``import modelforge``, ours vs 2.3.0's.

Run: ``.venv/bin/python benchmarks/startup.py`` (about a minute; 2.3.0 comes from
``benchmarks/.peers/mf23``, which ``benchmarks/run.py`` fills, or ``--peer mf23=PYTHON``). Every command
runs as a fresh process in a temporary ``$HOME`` whose config file selects a model on a local
OpenAI-compatible ``ProviderServer`` (in a child process of its own), alternating ours and 2.3.0's, a few
times each. Wall time is from spawn to exit; peak memory is the child's ``ru_maxrss`` from ``os.wait4``.

* ``modelforge --help`` (target: at most half of 2.3.0's wall time);
* ``modelforge test --quiet --prompt hi`` (one real call to the server; the answer is checked). Ours runs
  with ``MODELFORGE_OFFLINE=1``; 2.3.0 has no such switch and tries models.dev for its ``EnhancedLLM``
  metadata, which fails at once here (no network);
* ``import modelforge`` timed inside a fresh interpreter, interpreter start-up excluded (target: ours
  under 0.5 s).

Printed: the median wall time and the peak memory of each, and the ratios ours / 2.3.0's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules

from _peers import PEERS, peer_arguments, resolve_peers
from _records import NOT_INSTALLED, Record, add_common_arguments, write_records
from _server import REPLY, env_for, serve, temp_home

IMPORT_TARGET_S = 0.5
HELP_TARGET_RATIO = 0.5
_IMPORT = "import time; t = time.perf_counter(); import modelforge; print(time.perf_counter() - t)"


@dataclass
class Runs:
    """Wall seconds, peak memory (MB) and, for the import, the in-process import seconds of each run."""

    wall: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    inner: list[float] = field(default_factory=list)

    def median_wall(self) -> float:
        return statistics.median(self.wall)

    def median_peak(self) -> float:
        return statistics.median(self.peak_mb)

    def median_inner(self) -> float:
        return statistics.median(self.inner)


def measure(
    command: list[str], env: dict[str, str], cwd: Path, expect: str | None
) -> tuple[float, float, str]:
    """Run ``command`` once: wall seconds, peak RSS in MB, stdout. Raises when it fails.

    The child is reaped with ``os.wait4`` (not ``Popen.wait``) to get its rusage; stderr goes to a file so
    reading stdout to its end cannot block on a full stderr pipe."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env, cwd=cwd
        )
        assert child.stdout is not None
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = code = os.waitstatus_to_exitcode(status)
        child.stdout.close()
        errors.seek(0)
        err = errors.read().decode(errors="replace")
    if code != 0:
        tail = err.strip().splitlines()[-3:]
        shown = " ".join([Path(command[0]).name, *command[1:3]])
        raise RuntimeError(f"`{shown}` exited {code}: {' | '.join(tail)}")
    text = out.decode(errors="replace")
    if expect is not None and expect not in text:
        raise RuntimeError(f"`{' '.join(command[1:3])}` printed {text[:200]!r}, not the server's answer")
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    peak_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return wall, peak_mb, text


COMMANDS = {
    "help": ["--help"],
    "test": ["test", "--quiet", "--prompt", "hi"],
}
LABELS = {
    "help": "`modelforge --help`",
    "test": "`modelforge test --quiet`",
    "import": "`import modelforge`",
}


def command_for(kind: str, python: Path) -> list[str]:
    if kind == "import":
        return [str(python), "-c", _IMPORT]
    return [str(python.parent / "modelforge"), *COMMANDS[kind]]


def run(
    pythons: dict[str, Path], repeats: int
) -> tuple[dict[tuple[str, str], Runs], dict[tuple[str, str], str]]:
    """Each (kind, side) measured ``repeats`` times after one warm-up run, sides alternating."""
    runs: dict[tuple[str, str], Runs] = {}
    errors: dict[tuple[str, str], str] = {}
    with serve() as server, temp_home(server.base_url) as home:
        env = env_for(home)
        for kind in ("help", "test", "import"):
            expect = REPLY if kind == "test" else None
            for index in range(repeats + 1):
                sides = list(pythons) if index % 2 == 0 else list(reversed(pythons))
                for side in sides:
                    key = (kind, side)
                    if key in errors:
                        continue
                    try:
                        wall, peak, text = measure(command_for(kind, pythons[side]), env, home, expect)
                    except (RuntimeError, OSError) as err:
                        errors[key] = str(err)
                        continue
                    if index == 0:
                        continue  # warm-up: the file cache, not the program
                    found = runs.setdefault(key, Runs())
                    found.wall.append(wall)
                    found.peak_mb.append(peak)
                    if kind == "import":
                        found.inner.append(float(text.strip().splitlines()[-1]))
    return runs, errors


def records(
    runs: dict[tuple[str, str], Runs], errors: dict[tuple[str, str], str], missing: str
) -> list[Record]:
    out: list[Record] = []
    peer = PEERS["mf23"].label
    for kind in ("help", "test", "import"):
        ours, theirs = runs.get((kind, "modelforge")), runs.get((kind, "mf23"))
        status, note = "ok", ""
        if missing:
            status, note = NOT_INSTALLED, missing
        elif theirs is None:
            status, note = "failed", errors.get((kind, "mf23"), "not measured")
        if ours is None:
            out.append(
                Record(
                    "startup",
                    f"{LABELS[kind]} wall",
                    peer=peer,
                    unit="s",
                    status="failed",
                    note=errors.get((kind, "modelforge"), "not measured"),
                )
            )
            continue
        if kind == "import":
            value, peer_value = ours.median_inner(), theirs.median_inner() if theirs else None
            out.append(
                Record(
                    "startup",
                    "`import modelforge` time",
                    value,
                    peer,
                    peer_value,
                    "s",
                    target=f"< {IMPORT_TARGET_S:g} s",
                    met=value < IMPORT_TARGET_S,
                    status=status,
                    note=note or "in-process, interpreter start-up excluded",
                )
            )
        else:
            wall, peer_wall = ours.median_wall(), theirs.median_wall() if theirs else None
            record = Record(
                "startup", f"{LABELS[kind]} wall", wall, peer, peer_wall, "s", status=status, note=note
            )
            if kind == "help":
                record.target = f"<= {HELP_TARGET_RATIO:g}x 2.3.0"
                record.met = record.ratio <= HELP_TARGET_RATIO if record.ratio is not None else None
            out.append(record)
        peak_peer = theirs.median_peak() if theirs else None
        out.append(
            Record(
                "startup",
                f"{LABELS[kind]} peak memory",
                ours.median_peak(),
                peer,
                peak_peer,
                "MB",
                status=status,
                note=note,
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    peer_arguments(parser)
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    mf23, reason = resolve_peers(args)["mf23"]
    pythons = {"modelforge": Path(sys.executable)}
    if mf23 is not None:
        pythons["mf23"] = mf23
    runs, errors = run(pythons, repeats)
    for (kind, side), found in sorted(runs.items()):
        name = "ModelForge" if side == "modelforge" else "2.3.0"
        inner = f"   import {found.median_inner():.3f} s" if found.inner else ""
        print(
            f"{LABELS[kind]:<27} {name:<11} wall {found.median_wall():6.3f} s   "
            f"peak {found.median_peak():6.1f} MB{inner}   (median of {len(found.wall)})"
        )
    for (kind, side), message in errors.items():
        print(f"{LABELS[kind]:<27} {side}: failed: {message}")
    if mf23 is None:
        print(f"model-forge-llm 2.3.0: not installed: {reason}")
    found_records = records(runs, errors, "" if mf23 is not None else reason)
    for record in found_records:
        if record.ratio is not None:
            print(f"{record.metric}: ModelForge / 2.3.0 = {record.ratio:.2f}x")
        if record.target:
            verdict = "met" if record.met else ("NOT met" if record.met is False else "not measured")
            print(f"Target {record.metric} {record.target}: {verdict}")
    write_records(args.json, found_records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
