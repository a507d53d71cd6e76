"""Retrying a failed call with exponential backoff (the 2.3.0 ``retry_on_error`` / ``retry_with_backoff``).

The 2.3.0 module name, kept as a face: retry lives in one module, ``modelforge.policies.retry`` (the
decisions, a provider's ``retry`` section, the pipeline step and these decorators).
"""

from __future__ import annotations

# Modules 2.3.0 code patches through this one (``modelforge.retry._random``, ``modelforge.retry.time.sleep``).
import asyncio  # noqa: F401
import random as _random  # noqa: F401
import time  # noqa: F401

from modelforge.policies.retry import (
    DEFAULT_RETRY_ERRORS,
    ErrorTypes,
    RetryDecision,
    RetryPolicy,
    SleepFn,
    aretry_with_backoff,
    retry_on_error,
    retry_with_backoff,
)

__all__ = [
    "DEFAULT_RETRY_ERRORS",
    "ErrorTypes",
    "RetryDecision",
    "RetryPolicy",
    "SleepFn",
    "aretry_with_backoff",
    "retry_on_error",
    "retry_with_backoff",
]
