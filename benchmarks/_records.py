"""Structured benchmark figures: one ``Record`` per measured figure, written as a JSON list for ``run.py``.

Every benchmark script takes ``--json PATH`` (``add_common_arguments``) and, when given, writes its
figures there with ``write_records``. A record compares ModelForge with one peer (or stands alone, with
``peer`` empty) and may carry a target and whether it was met::

    Record("overhead", "median per call", modelforge=2.31, peer="bare ChatOpenAI", peer_value=2.05,
           unit="ms", target="< 1 ms over bare ChatOpenAI", met=True)

``ratio`` is ModelForge's value over the peer's, computed when both are numbers (``with_ratio=False``:
none). ``status`` is ``ok``, ``not installed`` (the peer could not be installed; ``note`` says why) or
``failed`` (the benchmark crashed; ``note`` holds its stderr tail).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import InitVar, asdict, dataclass, field
from pathlib import Path
from typing import Any

# Every benchmark script imports this module: their calls must not land in the user's `modelforge stats`.
os.environ.setdefault("MODELFORGE_STATS", "0")

OK = "ok"
NOT_INSTALLED = "not installed"
FAILED = "failed"


@dataclass
class Record:
    """One figure: ModelForge's value, optionally beside one peer's, with an optional target."""

    benchmark: str
    metric: str
    modelforge: float | None = None
    peer: str = ""
    peer_value: float | None = None
    unit: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    status: str = OK
    extra: dict[str, Any] = field(default_factory=dict)
    with_ratio: InitVar[bool] = True  # False: no ratio (e.g. counts where one side is 0)

    def __post_init__(self, with_ratio: bool) -> None:
        if self.ratio is None and with_ratio:
            self.ratio = ratio(self.modelforge, self.peer_value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known, with_ratio="ratio" not in data)  # a written ratio is kept, None included


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs`` when both are finite numbers and ``theirs`` is not zero."""
    if ours is None or theirs is None or not theirs:
        return None
    value = ours / theirs
    return value if math.isfinite(value) else None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quick`` (smaller sizes, for ``run.py``) and ``--json PATH`` (write the figures there)."""
    parser.add_argument("--quick", action="store_true", help="smaller sizes (what benchmarks/run.py uses)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON")


def write_records(path: Path | None, records: list[Record]) -> None:
    """Write ``records`` to ``path`` as a JSON list (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_dict() for r in records], indent=2) + "\n")


def read_records(path: Path) -> list[Record]:
    return [Record.from_dict(item) for item in json.loads(path.read_text())]
