"""Fixtures for the auth tests: an isolated HOME and cwd, a fake clock, the provider test server."""

from __future__ import annotations

import asyncio
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
