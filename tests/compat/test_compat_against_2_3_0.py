"""Against a real model-forge-llm 2.3.0 (``.venv-2.3``, built by ``make test`` from
requirements/compat-2.3.0.txt): the same CLI session in two fresh HOMEs, and config files written by each
version used by the other, ``modelforge config export-legacy`` included (``scripts/compare_cli_2_3.py``).

The session and round trips drive both real CLIs as subprocesses against one local OpenAI-protocol test
server; nothing is patched. A difference is allowed only when the script's ``KNOWN_DIFFERENCES`` names it
(a 2.3.0 defect of the compat page, or an intentional change docs/migrating.md explains).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEGACY_VENV = ROOT / ".venv-2.3"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_cli_2_3", ROOT / "scripts" / "compare_cli_2_3.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def legacy_venv() -> Path:
    """model-forge-llm 2.3.0 in its own venv; built here when `make test` has not built it already."""
    if not (LEGACY_VENV / ".installed").exists():
        subprocess.run(["make", ".venv-2.3/.installed"], cwd=ROOT, check=True, timeout=900)
    return LEGACY_VENV


@pytest.mark.timeout(900)  # about 80 commands of two CLIs; 2.3.0 takes 2 s to start
def test_the_cli_session_and_config_round_trips_match_2_3_0(
    legacy_venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script()
    current_venv = Path(sys.executable).parent.parent
    monkeypatch.delenv("MODELFORGE_CREDENTIAL_STORE", raising=False)  # the session sets its own env

    reports, checks = script.compare(legacy_venv, current_venv, tmp_path)

    unexplained = {r.step.name: (r.unexplained, r.notes) for r in reports if r.unexplained}
    assert not unexplained, unexplained
    assert [c.what for c in checks if not c.ok] == []
    ran = [r for r in reports if r.old is not None]
    assert len(ran) >= 40
    # Data, exit codes or files differ only in the steps that name a known difference for it.
    allowed = {step.name for step in script.SESSION if step.known}
    assert {r.step.name for r in ran if r.differs} <= allowed


def _outcome(script: ModuleType, stdout: str, stderr: str = "") -> object:
    return script.Outcome(0, stdout, stderr, {})


@pytest.mark.parametrize(
    ("args", "old", "new"),
    [
        (
            ["auth", "status"],
            "Provider: openai\n   Status: Valid credentials found",
            "openai  api_key  missing  -",
        ),
        (["models", "list"], "  o3 - Reasoning model\n  o1 - Reasoning model", "o3  Reasoning model"),
        (["test"], "Q: Hi\nA: line one\nline two\n=====", "Q: Hi\nA: line one\nline 2\n====="),
        (["test"], "Estimated Cost: $0.000010", "Estimated Cost: $0.000020"),
        (["settings", "telemetry", "status"], "currently enabled", "currently on"),
        (
            ["models", "list"],
            '[{"id": "m", "capabilities": ["a", "b"]}]',
            '[{"id": "m", "capabilities": ["b", "a"]}]',
        ),
    ],
)
def test_the_script_calls_a_change_of_data_a_difference(args: list[str], old: str, new: str) -> None:
    """What a user's script reads (credential states, model ids, the whole answer, the cost, on/off
    words, JSON values in order) is data, never "wording"."""
    script = _script()
    verdict, problems, _known = script.compare_stdout(_outcome(script, old), _outcome(script, new), args)
    assert verdict == "differs" and problems
