"""Run a Python snippet as if permission bits applied, even when the suite runs as root.

Root's CAP_DAC_OVERRIDE ignores permission bits, so tests of "directory not writable" would pass vacuously
(or be skipped) in CI, which runs as root. As root, the snippet runs under ``setpriv`` with that capability
(and CAP_DAC_READ_SEARCH) dropped; as another user it runs as is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_DROP = "-dac_override,-dac_read_search"


def run_python(script: str, *, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--inh-caps={_DROP}", f"--bounding-set={_DROP}", "--"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-c", script],
        env={**os.environ, "HOME": str(home)},
        cwd=str(cwd or home),
        capture_output=True,
        text=True,
        timeout=60,
    )
