"""Performance counters of every call (``performance_metrics()``, ``modelforge stats``), under their earlier
name: they live in ``modelforge.telemetry.metrics``, with the rest of telemetry. Every name of that module
reads through from here."""

from __future__ import annotations

from typing import Any

from modelforge.telemetry import metrics as _metrics
from modelforge.telemetry.metrics import *  # noqa: F403

__all__ = _metrics.__all__


def __getattr__(name: str) -> Any:
    return getattr(_metrics, name)
