"""A clock for tests: it moves only when told to (the suites inject it wherever ModelForge takes ``now``)."""

from __future__ import annotations


class FakeClock:
    """Seconds that only move on ``advance``."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
