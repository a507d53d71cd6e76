"""Server-side rate limiting: a sliding-window requests/tokens counter and its 429 headers."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from modelforge.testing.script import ServerLimits

__all__ = ["LimitDecision", "RateLimiter", "retry_after_headers"]


@dataclass
class LimitDecision:
    """Whether a request may go on; when not, how long to wait. ``headers`` go on every answer."""

    allowed: bool
    retry_after: float = 0.0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _reset(seconds: float) -> str:
    return f"{max(0.0, round(seconds, 3)):g}s"


class RateLimiter:
    """Counts requests and tokens over the last ``ServerLimits.window`` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._tokens.clear()

    def admit(self, limits: ServerLimits, prompt_tokens: int, now: float) -> LimitDecision:
        """Admit one request of ``prompt_tokens`` at ``now`` (``time.monotonic()``), or refuse it."""
        with self._lock:
            start = now - limits.window
            while self._requests and self._requests[0] <= start:
                self._requests.popleft()
            while self._tokens and self._tokens[0][0] <= start:
                self._tokens.popleft()
            used = sum(n for _, n in self._tokens)
            wait_requests = 0.0
            wait_tokens = 0.0
            if limits.rpm is not None and len(self._requests) >= limits.rpm:
                if limits.rpm <= 0:
                    wait_requests = limits.window
                else:
                    index = len(self._requests) - limits.rpm
                    wait_requests = self._requests[index] + limits.window - now
            if limits.tpm is not None and used + prompt_tokens > limits.tpm:
                wait_tokens = limits.window
                freed = 0
                for at, n in self._tokens:
                    freed += n
                    if used - freed + prompt_tokens <= limits.tpm:
                        wait_tokens = at + limits.window - now
                        break
            allowed = wait_requests <= 0 and wait_tokens <= 0
            if allowed:
                self._requests.append(now)
                self._tokens.append((now, prompt_tokens))
                used += prompt_tokens
            headers = self._headers(limits, now, used)
            if allowed:
                return LimitDecision(True, headers=headers)
            reason = "requests" if wait_requests > 0 else "tokens"
            return LimitDecision(False, max(wait_requests, wait_tokens), reason, headers)

    def add_tokens(self, tokens: int, now: float) -> None:
        """Count the completion tokens of an answer."""
        with self._lock:
            self._tokens.append((now, tokens))

    def _headers(self, limits: ServerLimits, now: float, used: int) -> dict[str, str]:
        headers: dict[str, str] = {}
        if limits.rpm is not None:
            reset = self._requests[0] + limits.window - now if self._requests else 0.0
            headers["x-ratelimit-limit-requests"] = str(limits.rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(0, limits.rpm - len(self._requests)))
            headers["x-ratelimit-reset-requests"] = _reset(reset)
        if limits.tpm is not None:
            reset = self._tokens[0][0] + limits.window - now if self._tokens else 0.0
            headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, limits.tpm - used))
            headers["x-ratelimit-reset-tokens"] = _reset(reset)
        return headers


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` (whole seconds, rounded up, at least 1) and the exact ``retry-after-ms``."""
    return {
        "retry-after": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
    }
