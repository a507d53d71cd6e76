"""Fixtures for the auth tests: an isolated HOME and cwd, a fake clock, the provider test server, and a
record of the files a block of code opens (through Python's audit hooks, so nothing is patched)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def isolated_home(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The suite's isolated HOME and cwd (tests/conftest.py), plus the file credential store."""
    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "file")
    return isolated_home


@pytest.fixture(autouse=True)
def no_real_keyring() -> Iterator[None]:
    """Never touch the developer's real keyring: the default backend is keyring's "fail" one."""
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def config_dir(isolated_home: Path) -> Path:
    return isolated_home / ".config" / "model-forge"


class FakeClock:
    """Wall-clock seconds that only move when told; ``sleep``/``asleep`` record the delay and move it."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server() -> Iterator[Any]:
    from modelforge.testing import ProviderServer

    with ProviderServer() as srv:
        yield srv


# --- which files does the code open? ------------------------------------------------------------------------

_FILE_EVENTS = {"open", "os.rename", "os.remove", "os.chmod", "shutil.copyfile"}
_recorders: list[list[Path]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _recorders or event not in _FILE_EVENTS or not args:
        return
    target = args[0]
    if isinstance(target, str | bytes | os.PathLike):
        path = Path(os.fsdecode(target))
        for record in list(_recorders):
            record.append(path)


sys.addaudithook(_audit)  # hooks cannot be removed; it records only while a test asks for it


class FileAccess:
    """The paths opened, renamed, removed or chmod-ed (by any thread) while ``recording`` runs."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def recording(self) -> _Recording:
        return _Recording(self.paths)

    def touching(self, *files: Path) -> list[Path]:
        """The recorded paths that are one of ``files`` or their lock/temporary siblings."""
        names = {(f.parent.resolve(), f.name) for f in files}
        return [
            p
            for p in self.paths
            if any(p.resolve().parent == d and p.name.lstrip(".").startswith(n) for d, n in names)
        ]


class _Recording:
    def __init__(self, paths: list[Path]) -> None:
        self._paths = paths

    def __enter__(self) -> None:
        _recorders.append(self._paths)

    def __exit__(self, *_: object) -> None:
        _recorders.remove(self._paths)


@pytest.fixture
def file_access() -> FileAccess:
    return FileAccess()
