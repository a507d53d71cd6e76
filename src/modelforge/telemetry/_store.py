"""The stats file: performance counters of every process, added up in one SQLite database.

``merge`` adds a process's counters (since its last merge) to the file in one ``BEGIN IMMEDIATE``
transaction, so processes exiting at the same time never lose each other's counts; ``read`` gives the
counters keyed by (provider, model) with the first and latest record times (a file that is not a stats
database is a ``ConfigurationError`` that says how to start again); ``clear`` empties it. The file
is ``$MODELFORGE_STATS_FILE`` or ``~/.cache/model-forge/stats.sqlite3`` (the home directory read at call
time), created owner-only (0600, its directory 0700). It holds counts, durations and dollar amounts: never
a prompt, an answer or a credential.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from modelforge.exceptions import ConfigurationError
from modelforge.telemetry._snapshot import MAX_COUNTERS

__all__ = ["Stored", "clear", "merge", "read", "stats_path"]

ENV_FILE = "MODELFORGE_STATS_FILE"
_BUSY_TIMEOUT_SECONDS = 10.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters (provider TEXT NOT NULL, model TEXT NOT NULL, name TEXT NOT NULL, "
    "value REAL NOT NULL, PRIMARY KEY (provider, model, name))",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_ADD = (
    "INSERT INTO counters (provider, model, name, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (provider, model, name) DO UPDATE SET value = value + excluded.value"
)
_MAX = (
    "INSERT INTO counters (provider, model, name, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (provider, model, name) DO UPDATE SET value = max(value, excluded.value)"
)

Rows = dict[tuple[str, str], dict[str, float]]
Stored = tuple[Rows, datetime | None, datetime | None]


def stats_path() -> Path:
    """Where the stats file is (it may not exist yet)."""
    configured = os.environ.get(ENV_FILE, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "model-forge" / "stats.sqlite3"


@contextlib.contextmanager
def _connect(path: Path, *, create: bool) -> Iterator[sqlite3.Connection]:
    if create:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created owner-only before SQLite opens it (its journal files take the database file's mode).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE takes the write lock first).
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def merge(
    rows: Mapping[tuple[str, str], Mapping[str, float]], *, since: datetime, path: Path | None = None
) -> None:
    """Add ``rows`` (counters by (provider, model)) to the file; raises ``OSError`` / ``sqlite3.Error``."""
    path = path or stats_path()
    now = datetime.now(UTC).isoformat()
    with _connect(path, create=True) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            for (provider, model), counters in rows.items():
                for name, value in counters.items():
                    if value:
                        db.execute(_MAX if name in MAX_COUNTERS else _ADD, (provider, model, name, value))
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('since', ?)", (since.isoformat(),))
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'since' AND value > ?",
                (since.isoformat(), since.isoformat()),
            )
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('updated', ?)", (now,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def read(path: Path | None = None) -> Stored:
    """The counters of the file, its first record and its latest update (empty when there is no file)."""
    path = path or stats_path()
    if not path.exists():
        return {}, None, None
    rows: Rows = {}
    try:
        with _connect(path, create=False) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "counters" not in tables:
                return {}, None, None
            query = "SELECT provider, model, name, value FROM counters"
            for provider, model, name, value in db.execute(query):
                rows.setdefault((provider, model), {})[name] = value
            meta = dict(db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    except sqlite3.OperationalError as err:
        if not _busy(err):
            raise _damaged(path, err) from err
        raise _busy_error(path, err) from err
    except sqlite3.DatabaseError as err:
        raise _damaged(path, err) from err
    return rows, _time(meta.get("since")), _time(meta.get("updated"))


def _busy(err: sqlite3.OperationalError) -> bool:
    """A lock held by another connection past the busy timeout: the file is fine."""
    text = str(err).lower()
    return "locked" in text or "busy" in text


def _busy_error(path: Path, err: sqlite3.OperationalError) -> ConfigurationError:
    return ConfigurationError(
        f"The performance stats file {path} is busy (another process is writing to it): {err}",
        suggestion="Try again in a moment.",
    )


def _damaged(path: Path, err: sqlite3.DatabaseError) -> ConfigurationError:
    return ConfigurationError(
        f"The performance stats file {path} cannot be read: {err}",
        suggestion="Empty it with `modelforge stats --reset` (or delete it); counting starts again.",
    )


def clear(path: Path | None = None) -> bool:
    """Empty the file (a damaged one is deleted); False when there was none."""
    path = path or stats_path()
    if not path.exists():
        return False
    try:
        with _connect(path, create=False) as db:
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("DELETE FROM counters")
            db.execute("DELETE FROM meta")
            db.execute("COMMIT")
    except sqlite3.OperationalError as err:
        if _busy(err):  # another process is writing: its data is fine, do not delete the file under it
            raise _busy_error(path, err) from err
        path.unlink()
    except sqlite3.DatabaseError:  # not a stats database (damaged): start a new one
        path.unlink()
    return True


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
