"""Check that requirements/lock.txt still covers pyproject.toml, and print the releases a run used.

``python scripts/check_lock.py``: every requirement of the project (its dependencies and every extra) and of
requirements/lock.in is pinned in the lock at a version its range allows, and every pin carries a hash. On a
mismatch it names each one and the fix (``make lock``) and exits 1. ``make install`` runs it after
installing, and a test runs it too, so a range edited without a new lock never goes unnoticed.

``--constraints-except 'google-genai==2.34.0'`` prints the lock's pins but that package's as pip constraints
(``make test-sdk``: the lock with one package moved). ``--tool-constraints`` prints the locked releases of
the tools we build, test and lock with (the ``dev`` and ``bench`` extras' own packages, and lock.in's): ``make
test-oldest`` keeps them while everything a user installs goes to the oldest release its range allows.
``--versions`` prints, on one line, the installed releases of the packages whose changes break us most often
(the LangChain partner packages and the provider SDKs); ``--against-lock`` adds the locked release beside
each one that differs (``make test-latest``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "lock.txt"
LOCK_INPUT = ROOT / "requirements" / "lock.in"
FIX = "run `make lock` (or `make lock LOCK_UPGRADE=` to keep the other pins) and commit requirements/lock.txt"

# The packages whose new releases have broken us before: printed after every test run.
WATCHED = (
    "langchain-core",
    "langchain-openai",
    "langchain-anthropic",
    "langchain-google-genai",
    "langchain-ollama",
    "google-genai",
    "openai",
    "anthropic",
    "ollama",
    "httpx",
    "httpx2",
)

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


@dataclass
class Pin:
    """One ``name==version`` line of the lock and how many hashes follow it."""

    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    marker: str | None = None  # the environments it is for (a universal lock pins some packages twice)


def read_lock(text: str) -> list[Pin]:
    """The pins of a ``uv pip compile --generate-hashes`` file, with their hashes."""
    pins: list[Pin] = []
    for raw in text.splitlines():
        line = raw.strip()
        match = _PIN.match(line)
        if match:
            pins.append(Pin(canonicalize_name(match.group(1)), match.group(2), marker=match.group(3)))
        elif line.startswith("--hash=") and pins:
            pins[-1].hashes.append(line.removeprefix("--hash=").rstrip(" \\"))
    return pins


def project_requirements(pyproject: dict[str, object], lock_input: str) -> list[Requirement]:
    """The requirements the lock must cover: the project's dependencies, every extra, and lock.in's."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    own = canonicalize_name(str(project["name"]))
    texts: list[str] = list(project.get("dependencies", []))
    for extra in dict(project.get("optional-dependencies", {})).values():
        texts.extend(extra)
    texts.extend(
        line.split("#", 1)[0].strip() for line in lock_input.splitlines() if line.split("#", 1)[0].strip()
    )
    requirements = [Requirement(text) for text in texts]
    return [r for r in requirements if canonicalize_name(r.name) != own]


def problems(requirements: Iterable[Requirement], pins: list[Pin]) -> list[str]:
    """What is wrong: requirements the lock does not satisfy, and pins without a hash."""
    found: list[str] = []
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
        if not pin.hashes:
            found.append(f"{pin.name}=={pin.version} has no hash")
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        candidates = by_name.get(name, [])
        if not candidates:
            found.append(f"{requirement} is not in the lock")
        elif not any(requirement.specifier.contains(p.version, prereleases=True) for p in candidates):
            locked = ", ".join(p.version for p in candidates)
            found.append(f"{requirement} is locked at {locked}, outside its range")
    return found


def constraints_except(pins: list[Pin], moved: str) -> str:
    """pip constraints holding every locked package but ``moved`` (a requirement) at its locked release."""
    name = canonicalize_name(Requirement(moved).name)
    if not any(pin.name == name for pin in pins):
        raise SystemExit(f"{moved} names a package that is not in {LOCK.name}: nothing to move")
    return "".join(
        f"{pin.name}=={pin.version}" + (f" ; {pin.marker}" if pin.marker else "") + "\n"
        for pin in pins
        if pin.name != name
    )


def tool_names(pyproject: dict[str, object], lock_input: str) -> set[str]:
    """The packages of the ``dev`` and ``bench`` extras (not the user extras in ``dev``), and lock.in's."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    extras = dict(project.get("optional-dependencies", {}))
    own = canonicalize_name(str(project["name"]))
    names: set[str] = {canonicalize_name(Requirement(t).name) for t in [*extras["dev"], *extras["bench"]]}
    names |= {canonicalize_name(r.name) for r in project_requirements({"project": {"name": own}}, lock_input)}
    return names - {own}


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Each package's installed release, None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def versions_line(against: list[Pin] | None = None) -> str:
    """``resolved: langchain-core 1.8.3, ...``; ``(lock X)`` beside releases that differ from the lock."""
    locked = {pin.name: pin.version for pin in against or []}
    parts = []
    for name, version in installed_versions(WATCHED).items():
        text = f"{name} {version or 'not installed'}"
        if against is not None and locked.get(name) not in (None, version):
            text += f" (lock {locked[name]})"
        parts.append(text)
    return "resolved: " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--versions", action="store_true", help="print the installed releases of key packages"
    )
    parser.add_argument("--against-lock", action="store_true", help="with --versions: show locked releases")
    parser.add_argument("--constraints-except", metavar="REQUIREMENT", help="the lock as pip constraints")
    parser.add_argument("--tool-constraints", action="store_true", help="the locked releases of our tools")
    args = parser.parse_args(argv)
    pins = read_lock(LOCK.read_text(encoding="utf-8"))
    if args.constraints_except:
        print(constraints_except(pins, args.constraints_except), end="")
        return 0
    if args.tool_constraints:
        pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
        tools = tool_names(pyproject, LOCK_INPUT.read_text(encoding="utf-8"))
        print("".join(f"{pin.name}=={pin.version}\n" for pin in pins if pin.name in tools), end="")
        return 0
    if args.versions:
        print(versions_line(pins if args.against_lock else None))
        return 0
    pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    found = problems(project_requirements(pyproject, LOCK_INPUT.read_text(encoding="utf-8")), pins)
    if found:
        print(f"{LOCK.relative_to(ROOT)} does not match pyproject.toml:", file=sys.stderr)
        for problem in found:
            print(f"  {problem}", file=sys.stderr)
        print(f"Fix: {FIX}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
