"""Suite-wide fixtures and the secret scan.

Every test runs with HOME and the working directory in a fresh temporary folder and no ``MODELFORGE_*``
variables, so no test can read or write a real user's config or credentials.

The secret scan: every log record of the whole run (at DEBUG, from every library, our SDKs included), every
captured stdout/stderr, every failure report, and the message, repr and ``to_dict()`` of every ModelForge
error raised anywhere in the run are searched for the test secrets below and for every secret ModelForge
registered while loading credentials (``modelforge._secrets``). Any hit fails the run and names the test
and the place it leaked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelforge import _secrets
from modelforge.exceptions import ModelForgeError

# Distinct, realistic-looking secrets shared by the tests that need one.
OPENAI_KEY = "sk-proj-MFTESTSECRETopenai0000000000000000000001"
ANTHROPIC_KEY = "sk-ant-api03-MFTESTSECRETanthropic00000000000002"
GOOGLE_KEY = "AIzaMFTESTSECRETgoogle000000000000003"
GITHUB_TOKEN = "gho_MFTESTSECRETgithub0000000000000000004"
TEST_SECRETS = (OPENAI_KEY, ANTHROPIC_KEY, GOOGLE_KEY, GITHUB_TOKEN)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HOME and cwd in a temporary folder; no MODELFORGE_* or provider variables from the outside."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for name in list(os.environ):
        if name.startswith("MODELFORGE_") or name in ("OLLAMA_HOST", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            monkeypatch.delenv(name, raising=False)
    # Never reach models.dev from a test.
    monkeypatch.setenv("MODELFORGE_MODELSDEV_URL", "http://127.0.0.1:9/api.json")
    yield home
    from modelforge.policies.circuit import default_breakers

    default_breakers().reset()  # a provider rested by one test is not rested in the next
    from modelforge.pooling import close_pools

    close_pools()  # connections to this test's (now stopped) servers do not pile up through the suite
    from modelforge.providers import github_copilot

    # Copilot tokens are cached per provider and exchange URL for the process, as they should be; but a later
    # test's server may get this one's port, and would refuse a token it never issued (one 401 and a
    # re-exchange that tests counting requests would see). Nothing public forgets them: clear the cache.
    with github_copilot._sources_lock:
        github_copilot._sources.clear()
    from modelforge.metrics import reset_performance_metrics

    # Performance counters are the process's: none carry into the next test, or into the stats file that the
    # suite's exit would otherwise write under the real HOME.
    reset_performance_metrics()


class _RecordEverything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))  # message plus any traceback
        except Exception:  # a broken log call must not break the scan
            self.lines.append(str(record.msg))


_handler = _RecordEverything()
_leaks: list[str] = []


_errors_seen: list[str] = []


def _record_errors() -> None:
    """Wrap ModelForgeError.__init__ so the scan sees every error's message, repr and dict."""
    original = ModelForgeError.__init__

    def recording_init(self: ModelForgeError, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        _errors_seen.append(f"{self!s}\n{self!r}\n{self.to_dict()!r}")

    ModelForgeError.__init__ = recording_init  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_handler)
    root.setLevel(logging.DEBUG)
    _record_errors()


def _secrets_to_find() -> set[str]:
    with _secrets._lock:
        registered = set(_secrets._known)
    return registered | set(TEST_SECRETS)


def _scan(where: str, text: str) -> None:
    for secret in _secrets_to_find():
        if secret and secret in text:
            _leaks.append(f"{where}: ...{secret[-6:]}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        _scan(f"{report.nodeid} [{title}]", content)
    if report.failed:
        _scan(f"{report.nodeid} [failure report]", report.longreprtext)
    lines, _handler.lines = _handler.lines, []
    _scan(f"{report.nodeid} [log records]", "\n".join(lines))
    errors = list(_errors_seen)
    _errors_seen.clear()
    _scan(f"{report.nodeid} [ModelForge errors]", "\n".join(errors))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("SECRET SCAN FAILED: a test secret reached output or logs:", red=True)
            for leak in sorted(set(_leaks)):
                reporter.write_line(f"  {leak}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
