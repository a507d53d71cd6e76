"""The ``batch`` section of a provider: ``BatchConfig``, validated, with each family's batch-API limits.

::

    providers:
      openai:
        batch: {max_concurrent: 16, use_batch_api: auto, min_batch_api_items: 200, poll_interval: 60,
                max_requests_per_job: 50000, max_tokens_per_job: 2000000}

* ``max_concurrent``: live calls in flight at once (the provider's ``rate_limit`` still paces them);
* ``use_batch_api``: ``false`` (live calls, the default), ``true`` (the provider's batch API: OpenAI,
  Anthropic) or ``auto`` (the batch API for batches of at least ``min_batch_api_items``, unless the call
  says ``urgent=True``);
* ``poll_interval``: seconds between two looks at a batch job; ``max_wait``: give up waiting after this
  many seconds (the job goes on at the provider and can be collected later with ``resume_batch``);
* ``max_requests_per_job`` / ``max_tokens_per_job`` / ``max_bytes_per_job``: a batch larger than this is
  split into several provider jobs (defaults: the provider's own per-job limits, ``FAMILY_LIMITS``; tokens
  are the estimated input tokens, what OpenAI's enqueued-token limit counts; without
  ``max_tokens_per_job``, the provider's ``rate_limit.tokens_per_minute`` when it sets one);
* ``completion_window``: OpenAI's ``completion_window`` (``24h``, the only value it accepts).

Errors are ``ValueError`` naming the key (``batch.poll_interval``) and what is allowed, like the ``retry``
and ``rate_limit`` sections'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["API_FAMILIES", "FAMILY_LIMITS", "BatchConfig", "JobLimits", "UseBatchApi", "validate_section"]

UseBatchApi = bool | Literal["auto"]

# The families with a provider batch API, by llm_type, and the name their API goes by.
API_FAMILIES = {"openai_compatible": "OpenAI Batch API", "anthropic": "Anthropic Message Batches"}


@dataclass(frozen=True, slots=True)
class JobLimits:
    """How much one provider batch job may hold (``None``: no limit of that kind)."""

    requests: int
    bytes: int
    tokens: int | None = None


# The providers' documented per-job limits: OpenAI 50,000 requests in a file of at most 200 MB;
# Anthropic 100,000 requests or 256 MB per Message Batch.
FAMILY_LIMITS = {
    "openai_compatible": JobLimits(requests=50_000, bytes=200 * 1024 * 1024),
    "anthropic": JobLimits(requests=100_000, bytes=256 * 1024 * 1024),
}

_COMPLETION_WINDOWS = ("24h",)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """Settings of a provider's ``batch`` section (defaults when there is none)."""

    max_concurrent: int = 8
    use_batch_api: UseBatchApi = False
    min_batch_api_items: int = 100
    poll_interval: float = 30.0
    max_wait: float | None = None
    max_requests_per_job: int | None = None
    max_tokens_per_job: int | None = None
    max_bytes_per_job: int | None = None
    completion_window: str = "24h"

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> BatchConfig:
        """Settings from a ``batch`` section; ``ValueError`` naming the key and what is allowed."""
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ValueError("batch must be a mapping of batch settings")
        values = dict(section)
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown key batch.{unknown[0]}; allowed keys: {', '.join(sorted(known))}")
        if "use_batch_api" in values:
            values["use_batch_api"] = _use_batch_api(values["use_batch_api"])
        for name in ("max_concurrent", "min_batch_api_items"):
            if name in values:
                _whole(name, values[name], minimum=1 if name == "max_concurrent" else 0)
        for name in ("max_requests_per_job", "max_tokens_per_job", "max_bytes_per_job"):
            if values.get(name) is not None:
                _whole(name, values[name], minimum=1, or_none=True)
        if "poll_interval" in values:
            _seconds("poll_interval", values["poll_interval"], allow_zero=True)
        if values.get("max_wait") is not None:
            _seconds("max_wait", values["max_wait"], allow_zero=False, or_none=True)
        if "completion_window" in values and values["completion_window"] not in _COMPLETION_WINDOWS:
            raise ValueError(
                f"batch.completion_window must be one of: {', '.join(_COMPLETION_WINDOWS)}; "
                f"got {values['completion_window']!r}"
            )
        return cls(**values)

    def limits(self, llm_type: str) -> JobLimits:
        """The per-job limits for a family: this section's where set, else the provider's."""
        default = FAMILY_LIMITS.get(llm_type, JobLimits(requests=50_000, bytes=200 * 1024 * 1024))
        return JobLimits(
            requests=self.max_requests_per_job or default.requests,
            bytes=self.max_bytes_per_job or default.bytes,
            tokens=self.max_tokens_per_job or default.tokens,
        )


def validate_section(section: Mapping[str, Any] | None) -> None:
    """Check a whole ``batch`` section (for the config schema); ``ValueError`` naming the bad key."""
    BatchConfig.from_config(section)


def _use_batch_api(value: Any) -> UseBatchApi:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("auto", "true", "false"):
        word = value.strip().lower()
        return "auto" if word == "auto" else word == "true"
    raise ValueError(f"batch.use_batch_api must be one of: true, false, auto; got {value!r}")


def _whole(name: str, value: Any, *, minimum: int, or_none: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " (or null for the provider's limit)" if or_none else ""
        raise ValueError(f"batch.{name} must be a whole number >= {minimum}{extra}; got {value!r}")


def _seconds(name: str, value: Any, *, allow_zero: bool, or_none: bool = False) -> None:
    bad = (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    )
    if bad:
        bound = ">= 0" if allow_zero else "> 0"
        extra = " (or null for no limit)" if or_none else ""
        raise ValueError(f"batch.{name} must be a number of seconds {bound}{extra}; got {value!r}")
