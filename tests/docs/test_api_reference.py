"""The committed API reference (``docs/api/``) is what ``scripts/gen_api_reference.py`` makes of the source.

A docstring or signature changed without regenerating the pages fails here, with the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from tests._scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api"
FIX = "run .venv/bin/python scripts/gen_api_reference.py"


def _generator() -> ModuleType:
    return load_script("gen_api_reference")


def _pages(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.md"))}


def test_the_committed_api_reference_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / "api"
    _generator().generate(fresh)
    expected, committed = _pages(fresh), _pages(API)
    assert sorted(committed) == sorted(expected), f"docs/api/ has other pages than the source gives: {FIX}"
    stale = [name for name in expected if committed[name] != expected[name]]
    assert not stale, f"docs/api/ is out of date ({', '.join(stale)}): {FIX}"


def test_every_public_package_has_a_page_and_no_private_module_has_one() -> None:
    modules = {name.removesuffix(".md") for name in _pages(API)}
    for package in (
        "modelforge",
        "modelforge.streaming",
        "modelforge.assistant",
        "modelforge.testing",
        "index",
    ):
        assert package in modules
    private = [m for m in modules if "._" in m or m.startswith(("modelforge.testing.", "modelforge.cli."))]
    assert not private, private
