"""The package installs under its real name: ``model-forge-llm`` 3.0.0 (the next major version of 2.3.0),
import package and console script ``modelforge``; no document tells a user to install anything else.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_is_model_forge_llm_3_with_the_modelforge_package_and_command(tmp_path: Path) -> None:
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    assert re.fullmatch(r"model_forge_llm-3\.0\.0-py3-none-any\.whl", wheel.name), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read("model_forge_llm-3.0.0.dist-info/METADATA").decode()
        entry_points = archive.read("model_forge_llm-3.0.0.dist-info/entry_points.txt").decode()
    assert "Name: model-forge-llm\n" in metadata and "Version: 3.0.0\n" in metadata
    assert "modelforge = modelforge.cli:main" in entry_points
    assert "modelforge/__init__.py" in names and "modelforge/cli/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_every_install_line_names_the_real_distribution() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    sources = sorted((ROOT / "src" / "modelforge").rglob("*.py"))
    wrong = re.compile(r"pip install (-U )?['\"]?modelforge\b")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in [*documents, *sources]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if wrong.search(line) or "'modelforge[" in line or '"modelforge[' in line
    ]
    assert not found, "install lines must name model-forge-llm:\n" + "\n".join(found)
