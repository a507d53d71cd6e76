"""The stats file: every process adds its counters at exit; ``modelforge stats`` (the real console script)
reads them as a table or JSON and ``--reset`` empties them; the ``record_stats`` setting and
``MODELFORGE_STATS=0`` turn saving off; the file is owner-only; a file that cannot be written is no error."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from modelforge import flush_performance_metrics, performance_metrics, reset_performance_metrics
from modelforge.metrics import stats_path
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply, Usage
from tests.metrics.conftest import WriteConfig

MODELFORGE = str(Path(sys.executable).with_name("modelforge"))

# A program that makes one call with a retry before it, then exits (its counters are saved at exit).
PROGRAM = """
from modelforge.registry import ModelForgeRegistry
print(ModelForgeRegistry().get_llm().invoke("hello").content)
"""


def run_program(**env: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def modelforge(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [MODELFORGE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def test_two_processes_add_up_and_modelforge_stats_shows_them(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config()
    server.script(Fault(503), Reply(text="one"), Reply(text="two"))
    run_program()
    run_program()

    path = stats_path()
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    data = json.loads(modelforge("stats", "--json").stdout)
    openai = data["providers"]["openai"]
    assert (openai["calls"], openai["ok"], openai["retried"], openai["retried_ok"]) == (2, 2, 1, 1)
    assert openai["retry_success_rate"] == 1.0
    assert data["total"]["calls"] == 2
    assert data["since"] is not None and data["pricing"] == "models.dev"
    assert data["file"] == str(path)

    table = modelforge("stats")
    assert "openai" in table.stdout and "1/1 (100%)" in table.stdout
    assert "models.dev" in table.stderr

    other = modelforge("stats", "--provider", "anthropic")
    assert "No performance stats recorded yet for provider 'anthropic'" in other.stdout

    assert "cleared" in modelforge("stats", "--reset").stdout
    assert "No performance stats recorded yet" in modelforge("stats").stdout
    assert json.loads(modelforge("stats", "--json").stdout)["total"]["calls"] == 0


def test_nothing_recorded_yet(write_config: WriteConfig) -> None:
    write_config()
    done = modelforge("stats")
    assert "No performance stats recorded yet" in done.stdout
    assert not stats_path().exists()


def test_the_setting_and_the_environment_turn_saving_off(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config()
    assert "turned off" in modelforge("settings", "stats", "off").stdout
    assert "recording: off" in modelforge("settings", "stats", "status").stdout
    run_program()
    assert not stats_path().exists()

    modelforge("settings", "stats", "on")
    run_program(MODELFORGE_STATS="0")
    assert not stats_path().exists()
    status = modelforge("settings", "stats", "status", MODELFORGE_STATS="0")
    assert "recording: off" in status.stdout and "MODELFORGE_STATS" in status.stderr

    run_program()
    assert stats_path().exists()


def test_flush_adds_only_what_is_new_and_stored_metrics_include_unsaved_counters(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config()
    llm = ModelForgeRegistry().get_llm()
    assert flush_performance_metrics() is None  # nothing recorded yet: no file
    assert not stats_path().exists()
    llm.invoke("one")
    assert flush_performance_metrics() == stats_path()
    assert flush_performance_metrics() is None  # nothing new
    llm.invoke("two")  # not saved yet
    assert performance_metrics(stored=True).total.calls == 2
    assert performance_metrics().total.calls == 2
    flush_performance_metrics()
    assert performance_metrics(stored=True).total.calls == 2  # the second flush added one

    reset_performance_metrics()
    assert performance_metrics().empty
    assert performance_metrics(stored=True).total.calls == 2
    reset_performance_metrics(stored=True)
    assert performance_metrics(stored=True).empty


def test_a_stats_file_that_cannot_be_written_is_no_error(
    server: ProviderServer, write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("MODELFORGE_STATS_FILE", str(blocker / "stats.sqlite3"))
    ModelForgeRegistry().get_llm().invoke("hello")
    assert flush_performance_metrics() is None  # logged at DEBUG, never raised
    good = tmp_path / "elsewhere" / "stats.sqlite3"
    monkeypatch.setenv("MODELFORGE_STATS_FILE", str(good))
    assert flush_performance_metrics() == good  # the counters were kept for the next try
    assert performance_metrics(stored=True).total.calls == 1


def test_a_damaged_stats_file_is_named_and_reset_starts_again(write_config: WriteConfig) -> None:
    write_config()
    path = stats_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    done = subprocess.run([MODELFORGE, "stats"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert str(path) in done.stderr and "modelforge stats --reset" in done.stderr
    modelforge("stats", "--reset")
    assert "No performance stats recorded yet" in modelforge("stats").stdout


def test_a_forked_child_saves_only_its_own_calls(write_config: WriteConfig) -> None:
    # A pre-fork server's worker inherits the parent's unsaved counters; the parent saves those itself.
    write_config()
    llm = ModelForgeRegistry().get_llm()
    llm.invoke("in the parent, before the fork")
    pid = os.fork()
    if pid == 0:  # the child: one call of its own, then a normal exit's flush
        code = 0
        try:
            llm.invoke("in the child")
            flush_performance_metrics()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    flush_performance_metrics()
    assert performance_metrics(stored=True).total.calls == 2  # not 3: the parent's call is saved once


def test_a_busy_stats_file_is_not_called_damaged(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from modelforge.exceptions import ConfigurationError
    from modelforge.telemetry import _store as _metrics_store

    # SQLite waits 10 s for another writer's lock before it gives up; a test need not wait that long.
    monkeypatch.setattr(_metrics_store, "_BUSY_TIMEOUT_SECONDS", 0.1)
    write_config()
    ModelForgeRegistry().get_llm().invoke("hello")
    path = flush_performance_metrics()
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
    try:
        with pytest.raises(ConfigurationError) as reading:
            performance_metrics(stored=True)
        with pytest.raises(ConfigurationError) as resetting:
            reset_performance_metrics(stored=True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for err in (reading.value, resetting.value):
        assert "busy" in err.message and "--reset" not in (err.suggestion or "")
    assert path.exists()
    assert performance_metrics(stored=True).total.calls == 1  # nothing was deleted


def test_small_cache_savings_are_shown_not_rounded_to_zero(
    server: ProviderServer, write_config: WriteConfig
) -> None:
    write_config(cache={"backend": "memory", "ttl": 60})
    server.script(Reply(text="cached answer", usage=Usage(12, 8)))
    program = (
        "from modelforge.registry import ModelForgeRegistry\n"
        "llm = ModelForgeRegistry().get_llm()\n"
        "llm.invoke('same question'); llm.invoke('same question')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    saved = json.loads(modelforge("stats", "--json").stdout)["providers"]["openai"]["cache_saved_usd"]
    assert 0 < saved < 0.0001  # 12 + 8 tokens of gpt-4o-mini
    table = modelforge("stats").stdout
    assert "1 (50%)" in table and "$0.0000 " not in table and "$0.00000" in table
