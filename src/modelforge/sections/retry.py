"""A provider's ``retry`` section: its settings per operation, validated (``modelforge.policies.retry``
makes the decisions and runs the retries).

::

    providers:
      openai:
        retry: {max_attempts: 5, backoff_factor: 2.0, max_wait: 60, respect_retry_after: true,
                stream: {max_attempts: 2}}

``ProviderRetryConfig`` holds the settings for one operation (``invoke``, ``batch``, which LangChain runs as
invokes, or ``stream``; an operation's sub-section overrides the provider's values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["OPERATIONS", "ProviderRetryConfig"]

OPERATIONS = ("invoke", "stream", "batch")
# Upper bounds: larger values are typos (or .inf) that would overflow when a wait is computed.
MAX_ATTEMPTS = 100
MAX_WAIT = 3600.0
MAX_DEADLINE = 86_400.0


@dataclass(frozen=True)
class ProviderRetryConfig:
    """Retry settings of one provider for one operation (defaults when the config has none)."""

    max_attempts: int = 3
    backoff_factor: float = 2.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    respect_retry_after: bool = True
    deadline: float | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, operation: str = "invoke") -> ProviderRetryConfig:
        """The settings for ``operation`` from a provider's ``retry`` section (raises ``ValueError``
        naming the key and what is allowed)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; allowed: {', '.join(OPERATIONS)}")
        values = dict(section or {})
        overrides = {op: values.pop(op) for op in OPERATIONS if op in values}
        config = cls()._with(values, "retry")
        chosen = overrides.get("invoke" if operation == "batch" and "batch" not in overrides else operation)
        if chosen is not None:
            if not isinstance(chosen, Mapping):
                raise ValueError(f"retry.{operation} must be a mapping of retry settings")
            config = config._with(dict(chosen), f"retry.{operation}")
        return config

    @classmethod
    def validate_section(cls, section: Mapping[str, Any] | None) -> None:
        """Check a whole ``retry`` section, every operation's override included."""
        for operation in OPERATIONS:
            cls.from_config(section, operation)

    def _with(self, values: dict[str, Any], where: str) -> ProviderRetryConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            allowed = ", ".join(sorted(known | set(OPERATIONS)))
            raise ValueError(f"unknown key {where}.{unknown[0]}; allowed keys: {allowed}")
        updated = replace(self, **values)
        updated._check(where)
        return updated

    def _check(self, where: str) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(f"{where}.max_attempts must be a whole number >= 1, got {self.max_attempts!r}")
        if self.max_attempts > MAX_ATTEMPTS:
            raise ValueError(f"{where}.max_attempts must be at most {MAX_ATTEMPTS}, got {self.max_attempts}")
        for name, highest in (("backoff_factor", 100.0), ("initial_wait", MAX_WAIT), ("max_wait", MAX_WAIT)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 < value <= highest
            ):
                raise ValueError(f"{where}.{name} must be > 0 and at most {highest:g}; got {value!r}")
        if not isinstance(self.respect_retry_after, bool):
            raise ValueError(f"{where}.respect_retry_after must be true or false")
        if self.deadline is not None and (
            isinstance(self.deadline, bool)
            or not isinstance(self.deadline, int | float)
            or not math.isfinite(self.deadline)
            or not 0 < self.deadline <= MAX_DEADLINE
        ):
            raise ValueError(
                f"{where}.deadline must be a number of seconds > 0 and at most {MAX_DEADLINE:g}, "
                f"got {self.deadline!r}"
            )
