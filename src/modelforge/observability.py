"""Observability of provider calls (events for your callbacks and logger, OpenTelemetry spans), under its
earlier name: it lives in ``modelforge.telemetry.observability``, with the rest of telemetry. Every name of
that module reads through from here."""

from __future__ import annotations

from typing import Any

from modelforge.telemetry import observability as _observability
from modelforge.telemetry.observability import *  # noqa: F403

__all__ = _observability.__all__


def __getattr__(name: str) -> Any:
    return getattr(_observability, name)
