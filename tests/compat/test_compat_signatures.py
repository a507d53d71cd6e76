"""The public surface of a real model-forge-llm 2.3.0 against this checkout's: every name 2.3.0's modules
define (the modules the compat page lists), every signature with its parameter names and order, every
exception's bases, ``error_code`` and ``details`` keys, and every CLI command and option with its flags,
choices and defaults.

Both surfaces are read by the same script, tests/compat/_dump_surface.py, once in 2.3.0's venv
(``.venv-2.3``, built by ``make test``) and once here. 3.0 may add: keyword arguments with defaults,
defaults for arguments 2.3.0 required, exception bases (``InvalidInputError`` is also a ``ValueError``),
``details`` keys, commands, options and choices. Everything else must be as in 2.3.0, except the changes
``ALLOWED`` names with their reasons.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.compat.test_compat_against_2_3_0 import LEGACY_VENV, legacy_venv  # noqa: F401 - a fixture

DUMP = Path(__file__).with_name("_dump_surface.py")
REQUIRED = "<required>"

# (where, parameter): why it differs from 2.3.0's.
ALLOWED = {
    ("modelforge.streaming.StreamWrapper.stream", "retry_on_auth_error"): "deprecated (None): 2.3.0's auth "
    "retry replayed text already yielded, a defect the compat page lists; True still works",
    ("modelforge.enhanced_llm.EnhancedLLM", "callback_manager"): "a field of LangChain's BaseChatModel that "
    "LangChain 1.x removed (use callbacks); not ModelForge's to keep",
}
# Exceptions whose error_code, when built with a message alone, 2.3.0 left None and 3.0 names: every class
# has its code in docs/troubleshooting.md. ModelForgeError() itself stays None, as the compat page asks.
CODED_BASES = {
    "AuthenticationError": "AUTHENTICATION_ERROR",
    "ConfigurationError": "CONFIGURATION_ERROR",
    "ConfigurationValidationError": "CONFIG_VALIDATION_ERROR",
    "InvalidInputError": "INVALID_INPUT",
    "JsonError": "JSON_ERROR",
    "NetworkError": "NETWORK_ERROR",
    "ProviderError": "PROVIDER_ERROR",
    "ValidationError": "VALIDATION_ERROR",
}


@pytest.fixture(scope="module")
def surfaces(legacy_venv: Path) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: F811 - the fixture
    # 2.3.0's interpreter must import its own modelforge, whatever PYTHONPATH points this run at.
    legacy_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    old = subprocess.run(
        [str(legacy_venv / "bin" / "python"), str(DUMP)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=legacy_env,
    ).stdout
    new = subprocess.run(
        [sys.executable, str(DUMP), "-"], input=old, capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return json.loads(old), json.loads(new)


def params_problems(where: str, old: list[list[Any]] | None, new: list[list[Any]] | None) -> list[str]:
    """How ``new`` fails to accept every call ``old`` accepted, with the same meaning."""
    if old is None:
        return []
    if new is None:
        return [f"{where}: no signature in 3.0"]
    positional = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
    old_pos = [p for p in old if p[1] in positional]
    new_pos = [p for p in new if p[1] in positional]
    new_by_name = {p[0]: p for p in new}
    kinds = {p[1] for p in new}
    problems = []
    if [p[0] for p in new_pos[: len(old_pos)]] != [p[0] for p in old_pos]:
        problems.append(
            f"{where}: positional parameters {[p[0] for p in old_pos]} became {[p[0] for p in new_pos]}"
        )
    for name, kind, default in old:
        if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            if kind not in kinds:
                problems.append(f"{where}: 2.3.0 took {'*args' if kind == 'VAR_POSITIONAL' else '**kwargs'}")
            continue
        mine = new_by_name.get(name)
        if mine is None:
            if (kind == "KEYWORD_ONLY" and "VAR_KEYWORD" in kinds) or (where, name) in ALLOWED:
                continue
            problems.append(f"{where}: parameter '{name}' is gone")
            continue
        if default != REQUIRED and mine[2] != default and (where, name) not in ALLOWED:
            problems.append(f"{where}: default of '{name}' was {default!r}, is {mine[2]!r}")
    for name, kind, default in new:
        if (
            name not in {p[0] for p in old}
            and default == REQUIRED
            and kind not in ("VAR_POSITIONAL", "VAR_KEYWORD")
        ):
            problems.append(f"{where}: new parameter '{name}' is required")
    return problems


def test_every_2_3_0_name_is_there_with_its_signature(
    surfaces: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old, new = surfaces
    problems: list[str] = []
    for module, names in old["modules"].items():
        for name, entry in names.items():
            where = f"{module}.{name}"
            mine = new["modules"].get(module, {}).get(name)
            if mine is None or mine["kind"] != entry["kind"]:
                problems.append(f"{where}: a {entry['kind']} in 2.3.0, {mine and mine['kind']} in 3.0")
                continue
            if entry["kind"] == "function":
                problems += params_problems(where, entry["signature"], mine["signature"])
            if entry["kind"] != "class":
                continue
            problems += params_problems(where, entry["init"], mine["init"])
            for member, spec in entry["members"].items():
                other = mine["members"].get(member)
                if member not in mine["members"]:  # inherited from LangChain or pydantic in 3.0, or gone
                    if member not in mine["attributes"] and member != "__init__":
                        problems.append(f"{where}.{member}: gone")
                elif spec == "property" or other == "property":
                    if spec != other:
                        problems.append(f"{where}.{member}: a property in one version only")
                else:
                    problems += params_problems(f"{where}.{member}", spec, other)
    assert not problems, "\n".join(problems)


def test_every_exception_keeps_its_bases_code_and_details(
    surfaces: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old, new = surfaces
    exceptions = {n: e for n, e in old["modules"]["modelforge.exceptions"].items() if "bases" in e}
    assert len(exceptions) == 19  # ModelForgeError and its 18 subclasses
    for name, entry in exceptions.items():
        mine = new["modules"]["modelforge.exceptions"][name]
        assert "built" not in entry and "built" not in mine, (name, entry.get("built"), mine.get("built"))
        assert set(entry["bases"]) <= set(mine["bases"]), name
        assert mine["error_code"] == (entry["error_code"] or CODED_BASES.get(name)), name
        assert set(entry["details"]) <= set(mine["details"]), name


def test_every_command_and_option_is_there(surfaces: tuple[dict[str, Any], dict[str, Any]]) -> None:
    old, new = surfaces
    assert len(old["cli"]) >= 20
    problems = []
    for command, options in old["cli"].items():
        if command not in new["cli"]:
            problems.append(f"`modelforge {command}` is gone")
            continue
        by_opt = {opt: spec for spec in new["cli"][command].values() for opt in spec["opts"]}
        for name, spec in options.items():
            # An option is known by its spellings (--format), an argument by its name (query).
            mine = by_opt.get(spec["opts"][0]) if spec["opts"] and spec["opts"][0].startswith("-") else None
            mine = mine or new["cli"][command].get(name)
            where = f"`modelforge {command}` {'/'.join(spec['opts']) or name}"
            if mine is None:
                problems.append(f"{where}: gone")
                continue
            if not set(spec["opts"]) <= set(mine["opts"]):
                problems.append(f"{where}: spelled {mine['opts']}")
            for key in ("flag", "multiple", "required", "default"):
                if spec[key] != mine[key]:
                    problems.append(f"{where}: {key} was {spec[key]!r}, is {mine[key]!r}")
            if not set(spec["choices"]) <= set(mine["choices"]):
                problems.append(f"{where}: choices {spec['choices']} became {mine['choices']}")
    assert not problems, "\n".join(problems)
