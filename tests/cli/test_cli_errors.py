"""The CLI's error handling: one message, an exit code, never a traceback; and a real subprocess run."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelforge import __version__
from modelforge.cli._errors import EXIT_INTERRUPTED, to_cli_error
from modelforge.exceptions import ModelNotFoundError
from tests.cli.conftest import Invoke, assert_clean_failure
from tests.conftest import OPENAI_KEY

MODELFORGE = Path(sys.executable).parent / "modelforge"


def test_modelforge_error_keeps_message_suggestion_and_code() -> None:
    err = to_cli_error(ModelNotFoundError("openai", "x", ["a", "b"]))
    assert err.exit_code == 1
    assert err.message == "Model 'x' not found for provider 'openai'"
    assert err.suggestion == "Available models: a, b" and err.error_code == "MODEL_NOT_FOUND"


def test_secrets_are_masked_even_in_unexpected_errors() -> None:
    err = to_cli_error(RuntimeError(f"boom with {OPENAI_KEY}"))
    assert OPENAI_KEY not in err.message and "RuntimeError" in err.message
    assert "--verbose" in (err.suggestion or "")


def test_os_error_names_the_file() -> None:
    err = to_cli_error(PermissionError(errno.EACCES, "denied", "/etc/secret.txt"))
    assert err.message == "/etc/secret.txt: " + os.strerror(errno.EACCES)


@pytest.mark.parametrize(
    ("raised", "code", "text"),
    [(KeyboardInterrupt(), EXIT_INTERRUPTED, "Interrupted"), (ValueError("odd"), 1, "ValueError: odd")],
)
def test_any_failure_inside_a_command_is_clean(
    raised: BaseException, code: int, text: str, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> None:
        raise raised

    monkeypatch.setattr("modelforge.config.get_config", fail)  # the commands import it when they run
    result = invoke("config", "show")
    assert result.exit_code == code
    assert_clean_failure(result, text)


def test_version(invoke: Invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"modelforge {__version__}"


def test_real_console_script(isolated_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(isolated_home), "MODELFORGE_CREDENTIAL_STORE": "file"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MODELFORGE), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )

    helped = run("--help")
    assert helped.returncode == 0
    for command in ("config", "auth", "test", "models", "settings", "status"):
        assert command in helped.stdout

    shown = run("config", "show")
    assert shown.returncode == 0 and str(isolated_home) in shown.stdout

    broken = isolated_home / ".config" / "model-forge" / "config.json"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text('{"providers": {"a": }\n')
    failed = run("config", "show")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and str(broken) in failed.stderr and "line 1" in failed.stderr


def test_help_loads_neither_config_nor_pydantic_nor_yaml() -> None:
    """`modelforge --help` stays fast: the config layer (pydantic, yaml) loads only in the commands."""
    code = (
        "import sys\n"
        "from modelforge.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('modelforge.config', 'modelforge.config_schema', 'modelforge.auth', 'pydantic', 'yaml')\n"
        "print('LOADED', [name for name in heavy if name in sys.modules], file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "config" in done.stdout  # the help itself was printed
    assert "LOADED []" in done.stderr, done.stderr
