"""``SQLiteBackend``: cached answers in a file that survives restarts and is shared by local processes.

The file (default ``~/.cache/model-forge/responses/cache.sqlite3``) is created owner-only (0600) in an
owner-only directory (0700); SQLite gives its ``-wal``/``-shm`` files the same permissions. One table holds
``(namespace, key) -> value, expires_at, keep_until``; entries past ``keep_until`` are never returned and
are deleted as new ones are stored, and past ``max_entries`` the entries that expire soonest go first.
WAL mode lets readers and a writer of other processes work at once; a lock held longer than ``timeout``
raises ``sqlite3.OperationalError`` (the cache turns it into a warning and an uncached call). The async
methods run the same statements in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from modelforge.sections.cache import default_sqlite_path

__all__ = ["SQLiteBackend"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries ("
    " namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " expires_at REAL NOT NULL, keep_until REAL NOT NULL, PRIMARY KEY (namespace, key))",
    "CREATE INDEX IF NOT EXISTS entries_keep_until ON entries (namespace, keep_until)",
)


def _private_file(path: Path) -> None:
    """Create ``path``'s missing directories (0700; our default one always 0700) and the file (0600)."""
    directory = path.parent
    for missing in reversed([d for d in (directory, *directory.parents) if not d.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    if directory == default_sqlite_path().parent:
        os.chmod(directory, 0o700)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(descriptor)
    os.chmod(path, 0o600)


class SQLiteBackend:
    """Entries of ``namespace`` in the SQLite file at ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        namespace: str,
        max_entries: int = 1000,
        timeout: float = 1.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.namespace = namespace
        self.max_entries = max_entries
        self._timeout = timeout
        self._now = now
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"SQLiteBackend(path={str(self.path)!r}, namespace={self.namespace!r})"

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            _private_file(self.path)
            connection = sqlite3.connect(
                self.path, timeout=self._timeout, check_same_thread=False, isolation_level=None
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    connection.execute(statement)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def get(self, key: str) -> bytes | None:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT value FROM entries WHERE namespace = ? AND key = ? AND keep_until > ?",
                    (self.namespace, key, self._now()),
                )
                .fetchone()
            )
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO entries (namespace, key, value, expires_at, keep_until) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (self.namespace, key, value, expires_at, keep_until),
                )
                db.execute(
                    "DELETE FROM entries WHERE namespace = ? AND keep_until <= ?",
                    (self.namespace, self._now()),
                )
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM entries WHERE namespace = ?", (self.namespace,)
                ).fetchone()
                if count > self.max_entries:
                    db.execute(
                        "DELETE FROM entries WHERE rowid IN (SELECT rowid FROM entries WHERE namespace = ? "
                        "ORDER BY keep_until LIMIT ?)",
                        (self.namespace, count - self.max_entries),
                    )
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def clear(self) -> None:
        with self._lock:
            self._db().execute("DELETE FROM entries WHERE namespace = ?", (self.namespace,))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def aget(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, expires_at: float, keep_until: float) -> None:
        await asyncio.to_thread(self.set, key, value, expires_at, keep_until)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
