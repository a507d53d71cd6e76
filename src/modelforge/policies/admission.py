"""Admitting model calls under a provider's ``rate_limit``: one shared limiter per provider, and the
bookkeeping around each attempt.

Before each attempt a reservation of the estimated input tokens plus the output limit is taken (waiting in
line while the budget is spent) and a send mark is set for the attempt (``modelforge._send_marks``), which
ModelForge's HTTP transports stamp when the request goes out; after it, the reservation is settled with the
tokens the provider reported (or the estimate when it reported none) and how long ago the request was sent,
so the request counts from its send rather than from its reservation or its answer. A 429 gives the
reservation back and lets the limiter tighten from the provider's ``x-ratelimit-*`` /
``anthropic-ratelimit-*`` headers and ``Retry-After``, so every caller sharing the limiter (in this process,
or across processes through Redis) slows down; the headers of successful answers tighten it too where the
SDK exposes them (the OpenAI-compatible families).

An admission that had to wait is counted for the provider in ``modelforge.telemetry.metrics``
(rate-limit waits).

Input tokens are estimated at four characters a token plus a few per message (``modelforge._token_estimate``):
no tokenizer is loaded on the hot path, and the settle afterwards corrects the count with the provider's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

from modelforge import _send_marks
from modelforge._token_estimate import tokens_in_messages
from modelforge.exceptions import RateLimitError
from modelforge.policies.ratelimit import RateLimitConfig, RateLimiter, Reservation
from modelforge.telemetry import metrics

__all__ = ["DEFAULT_OUTPUT_TOKENS", "Admission", "estimate_tokens", "limiter_for"]

DEFAULT_OUTPUT_TOKENS = 1024

_limiters: dict[tuple[str, str], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(provider: str, section: Mapping[str, Any]) -> RateLimiter:
    """The process-wide limiter for ``provider`` with this ``rate_limit`` section (one per section)."""
    key = (provider, json.dumps(section, sort_keys=True, default=str))
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = RateLimiter(RateLimitConfig.from_config(section, provider=provider))
            _limiters[key] = limiter
        return limiter


def estimate_tokens(messages: Sequence[BaseMessage], output_limit: int) -> tuple[int, int]:
    """(estimated input tokens, input plus the output limit) for a request."""
    estimate = tokens_in_messages(messages)
    return estimate, estimate + output_limit


@dataclass(slots=True)
class Admission:
    """One attempt's place in the budget: what it reserved, the input part of it, and its send mark."""

    limiter: RateLimiter
    reservation: Reservation
    input_tokens: int
    mark: _send_marks.SendMark | None = None

    @classmethod
    def start(
        cls, limiter: RateLimiter, reservation: Reservation, input_tokens: int, *, provider: str | None = None
    ) -> Admission:
        """The admission of an attempt about to run in this context: sets its send mark, which the pooled
        transports stamp when its request goes out (``release`` takes it down). The reservation's wait is
        counted for ``provider`` (default: the limiter's key) in ``modelforge.telemetry.metrics``."""
        if reservation.waited >= metrics.MIN_WAIT_SECONDS:
            metrics.record_rate_limit_wait(provider or limiter.config.key, reservation.waited)
        return cls(limiter, reservation, input_tokens, _send_marks.begin())

    def release(
        self, tokens: int | None, error: Exception | None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        sent_ago = None
        if self.mark is not None:
            sent_ago = self.mark.sent_ago()  # None: never stamped (not sent, or not through our transports)
            _send_marks.end(self.mark)
        if isinstance(error, RateLimitError):
            self.reservation.cancel()  # refused: it used nothing, but everyone should now slow down
            headers = error.details.get("rate_limit") if isinstance(error.details, Mapping) else None
            self.limiter.observe(headers or {}, retry_after=error.retry_after)
        elif error is not None:
            # The request may have been read, not answered.
            self.reservation.settle(self.input_tokens, sent_ago=sent_ago)
        else:
            used = tokens if tokens is not None else self.reservation.tokens
            self.reservation.settle(used, sent_ago=sent_ago)
            if headers:  # the provider's own count of what is left: tighten to it
                self.limiter.observe(headers)
