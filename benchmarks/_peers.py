"""The peers ModelForge is measured against, each in a virtual environment of its own.

``model-forge-llm`` 2.3.0 needs ``langchain-core<0.4`` (through ``langchain-github-copilot``) and so cannot
share ModelForge's environment; LiteLLM is not a dependency. Each peer is installed with ``pip`` into
``benchmarks/.peers/<name>/`` (gitignored) and reused when the installed version is the pinned one. A
peer that cannot be installed is reported as ``not installed: <reason>``, and the run goes on.

``ensure_peers`` installs the missing ones in parallel; ``installed_peer`` looks one up without
installing (for a benchmark script run on its own). A benchmark script takes ``--peer NAME=PYTHON`` and
``--missing NAME=REASON`` (``peer_arguments``, read by ``resolve_peers``): ``run.py`` passes every peer
that way, and on its own a script looks in ``benchmarks/.peers/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / ".peers"
INSTALL_TIMEOUT = 480.0
MARKER = ".bench-installed"


@dataclass(frozen=True)
class PeerSpec:
    """What to install (``requirement``, pinned) and what it is called once installed."""

    name: str
    requirement: str
    distribution: str
    label: str

    @property
    def version(self) -> str:
        return self.requirement.split("==", 1)[1]


PEERS: dict[str, PeerSpec] = {
    "mf23": PeerSpec("mf23", "model-forge-llm==2.3.0", "model-forge-llm", "model-forge-llm 2.3.0"),
    "litellm": PeerSpec("litellm", "litellm==1.106.2", "litellm", "LiteLLM"),
}


@dataclass
class PeerStatus:
    """Where a peer's interpreter is, or why there is none."""

    name: str
    label: str
    python: Path | None
    version: str = ""
    reason: str = ""
    seconds: float = 0.0
    reused: bool = False

    @property
    def installed(self) -> bool:
        return self.python is not None

    def describe(self) -> str:
        if self.python is None:
            return f"not installed: {self.reason}"
        how = "reused" if self.reused else f"installed in {self.seconds:.0f} s"
        return f"{self.version} ({how})"


def _python(folder: Path) -> Path:
    return folder / "bin" / "python"


def _installed_version(python: Path, distribution: str) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({distribution!r}))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def installed_peer(spec: PeerSpec, root: Path = PEERS_DIR) -> PeerStatus:
    """The peer's status without installing anything."""
    folder = root / spec.name
    python = _python(folder)
    version = _installed_version(python, spec.distribution) if (folder / MARKER).exists() else None
    if version == spec.version:
        return PeerStatus(spec.name, spec.label, python, version=version, reused=True)
    return PeerStatus(
        spec.name, spec.label, None, reason=f"not installed in {folder} (benchmarks/run.py installs it)"
    )


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    kept = [line for line in kept if not line.startswith("WARNING: Location")]  # pip's local-index noise
    return " | ".join(kept[-lines:]) or "no output"


def install_peer(spec: PeerSpec, root: Path = PEERS_DIR, timeout: float = INSTALL_TIMEOUT) -> PeerStatus:
    """Reuse the peer's environment when it holds the pinned version, else (re)create it with pip."""
    status = installed_peer(spec, root)
    if status.installed:
        return status
    folder = root / spec.name
    start = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(folder)],
        [
            str(_python(folder)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            spec.requirement,
        ],
    ]
    for step in steps:
        left = timeout - (time.monotonic() - start)
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=max(left, 1.0))
        except subprocess.TimeoutExpired:
            return PeerStatus(
                spec.name, spec.label, None, reason=f"`{' '.join(step[2:5])}` took over {timeout:.0f} s"
            )
        except OSError as err:
            return PeerStatus(spec.name, spec.label, None, reason=f"{step[0]}: {err}")
        if done.returncode != 0:
            return PeerStatus(
                spec.name,
                spec.label,
                None,
                reason=f"pip install {spec.requirement} failed: {_tail(done.stderr)}",
            )
    version = _installed_version(_python(folder), spec.distribution)
    if version != spec.version:
        return PeerStatus(
            spec.name, spec.label, None, reason=f"pip installed {version!r}, not {spec.version}"
        )
    (folder / MARKER).write_text(spec.requirement + "\n")
    return PeerStatus(
        spec.name, spec.label, _python(folder), version=version, seconds=time.monotonic() - start
    )


def ensure_peers(specs: list[PeerSpec], root: Path = PEERS_DIR) -> dict[str, PeerStatus]:
    """Install (or reuse) every peer, in parallel; never raises for a peer that cannot be installed."""
    with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
        futures = {spec.name: pool.submit(install_peer, spec, root) for spec in specs}
    statuses = {}
    for spec in specs:
        try:
            statuses[spec.name] = futures[spec.name].result()
        except Exception as err:  # an unexpected error is reported like a failed install
            statuses[spec.name] = PeerStatus(
                spec.name, spec.label, None, reason=f"{type(err).__name__}: {err}"
            )
    return statuses


def skipped(specs: list[PeerSpec], reason: str) -> dict[str, PeerStatus]:
    """Statuses for peers left out on purpose (``--no-peers``)."""
    return {spec.name: PeerStatus(spec.name, spec.label, None, reason=reason) for spec in specs}


def parse_peers(values: list[str]) -> dict[str, Path]:
    peers = {}
    for value in values:
        name, _, python = value.partition("=")
        if name not in PEERS or not python:
            raise SystemExit(f"--peer takes NAME=PYTHON with NAME one of {', '.join(PEERS)}; got {value!r}")
        peers[name] = Path(python)
    return peers


def peer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help=f"a peer's interpreter ({', '.join(PEERS)}); default: benchmarks/.peers/NAME",
    )
    parser.add_argument(
        "--missing",
        action="append",
        default=[],
        metavar="NAME=REASON",
        help="a peer that could not be installed, and why (reported, not measured)",
    )


def resolve_peers(args: argparse.Namespace) -> dict[str, tuple[Path | None, str]]:
    """Each peer's interpreter, or None with the reason it has none."""
    given = parse_peers(args.peer)
    missing = dict(value.partition("=")[::2] for value in args.missing)
    resolved: dict[str, tuple[Path | None, str]] = {}
    for name, spec in PEERS.items():
        if name in given:
            resolved[name] = (given[name], "")
        elif name in missing:
            resolved[name] = (None, missing[name])
        else:
            status = installed_peer(spec)
            resolved[name] = (status.python, status.reason)
    return resolved
