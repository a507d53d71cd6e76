"""The benchmark scripts live in ``benchmarks/`` (not a package: each runs as a script and imports its sibling
helpers by name), so these tests put that folder on ``sys.path`` to import the reporting code."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
