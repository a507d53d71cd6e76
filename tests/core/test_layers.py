"""The import contracts (``make lint`` runs import-linter on them) cover every module: a module added at
the top of ``modelforge`` must be given its layer, or this fails and says which one is missing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import modelforge

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PACKAGE = Path(modelforge.__file__).resolve().parent


def top_level_modules() -> set[str]:
    names = set()
    for entry in PACKAGE.iterdir():
        if entry.suffix == ".py" and entry.stem != "__init__":
            names.add(f"modelforge.{entry.stem}")
        elif entry.is_dir() and (entry / "__init__.py").exists():
            names.add(f"modelforge.{entry.name}")
    return names


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads(PYPROJECT.read_text())
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def test_every_module_has_a_layer() -> None:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    named = {
        name.strip()
        for layer in layers["layers"]
        for name in str(layer).replace(":", "|").split("|")  # type: ignore[attr-defined]
    }
    missing = top_level_modules() - named - {"modelforge.testing"}
    assert not missing, f"give these modules a layer in pyproject.toml [tool.importlinter]: {sorted(missing)}"
    assert not named - top_level_modules(), "a layer names a module that no longer exists"


def test_the_test_servers_are_forbidden_every_other_module() -> None:
    (own,) = [c for c in contracts() if c.get("source_modules") == ["modelforge.testing"]]
    missing = top_level_modules() - set(own["forbidden_modules"]) - {"modelforge.testing"}  # type: ignore[arg-type]
    assert not missing, f"add to the forbidden_modules of modelforge.testing's contract: {sorted(missing)}"


def test_no_cycle_contract_covers_the_whole_package() -> None:
    (acyclic,) = [c for c in contracts() if c["type"] == "acyclic_siblings"]
    assert acyclic["ancestors"] == ["modelforge"]
