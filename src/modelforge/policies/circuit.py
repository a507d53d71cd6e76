"""Circuit breakers: a provider that keeps failing is rested for a cooldown, then probed again.

::

    closed ──(failure_threshold consecutive health failures)──► open ──(cooldown passed)──► half-open
      ▲                                                          ▲                              │
      └───────────────(a probe succeeds)─────────────────────────┼──────(a probe fails)─────────┘

* **closed**: calls go through; each *health failure* (``counts_against_health``: 5xx, 529 / overloaded,
  429, timeouts, connection resets, malformed answers — the errors marked ``retryable``) adds one to a
  count that a success resets. Errors that say nothing about the provider's health (400, 401, 403, 404,
  context length, our own validation errors) neither add nor reset.
* **open**: ``acquire()`` raises ``CircuitOpenError`` at once, ``retry_after`` the rest of the cooldown
  (the cooldown, or the failure's own ``Retry-After`` when that is longer).
* **half-open**: ``half_open_max_calls`` probe calls go through, the others are rejected; a probe that
  succeeds closes the circuit, one that fails re-opens it for a new cooldown. A probe never reported
  (its caller vanished) frees its slot after a cooldown, so the breaker cannot stick.

A breaker only decides; it never sleeps and reads time from the injected ``clock``. Calls report through
the ``CircuitPermit`` that ``acquire()`` returns (also a context manager); a report from before the last
state change is ignored, so a slow call that started while the circuit was closed cannot re-open a circuit
that has since closed again. Thread-safe; async code uses it as is (no call blocks).

``breaker_for(name)`` gives the process-wide breaker of a provider (``default_breakers()`` holds them all;
``configure`` sets one provider's thresholds). Tests build their own ``CircuitBreakerRegistry`` with a fake
clock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from modelforge.policies._circuit_breaker import (
    CircuitBreaker,
    CircuitPermit,
    CircuitSnapshot,
    CircuitState,
    Clock,
    StateListener,
)
from modelforge.policies._health import counts_against_health, is_transport_error, status_of

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitPermit",
    "CircuitSnapshot",
    "CircuitState",
    "breaker_for",
    "counts_against_health",
    "default_breakers",
    "is_transport_error",
    "status_of",
]


class CircuitBreakerRegistry:
    """One breaker per provider name, made on first use with this registry's settings."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Clock = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        self._settings: dict[str, Any] = {
            "failure_threshold": failure_threshold,
            "cooldown": cooldown,
            "half_open_max_calls": half_open_max_calls,
            "clock": clock,
            "on_state_change": on_state_change,
        }
        CircuitBreaker("check", **self._settings)  # validate the settings now, not at first use
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        """The breaker of ``name``, made with the registry's settings the first time."""
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = self._breakers[name] = CircuitBreaker(name, **self._settings)
            return breaker

    def configure(self, name: str, **settings: Any) -> CircuitBreaker:
        """Replace ``name``'s breaker by a fresh one with these settings (the others as the registry's)."""
        breaker = CircuitBreaker(name, **{**self._settings, **settings})
        with self._lock:
            self._breakers[name] = breaker
        return breaker

    def reset(self) -> None:
        """Close every circuit."""
        with self._lock:
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.reset()

    def snapshot(self) -> dict[str, CircuitSnapshot]:
        with self._lock:
            breakers = dict(self._breakers)
        return {name: breaker.snapshot() for name, breaker in breakers.items()}


_DEFAULT = CircuitBreakerRegistry()


def default_breakers() -> CircuitBreakerRegistry:
    """The process-wide breakers, one per provider name."""
    return _DEFAULT


def breaker_for(provider_name: str) -> CircuitBreaker:
    """The process-wide breaker of ``provider_name``."""
    return _DEFAULT.get(provider_name)
