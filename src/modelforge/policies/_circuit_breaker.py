"""The circuit breaker of one provider and the permits it hands out (see ``modelforge.policies.circuit``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from modelforge.exceptions import CircuitOpenError, InvalidInputError
from modelforge.policies._health import counts_against_health

__all__ = ["CircuitBreaker", "CircuitPermit", "CircuitSnapshot", "CircuitState", "Clock", "StateListener"]

logger = logging.getLogger("modelforge.policies.circuit")

Clock = Callable[[], float]
StateListener = Callable[["CircuitBreaker", "CircuitState", "CircuitState"], None]


class CircuitState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    """A breaker at one moment, for metrics and logs."""

    name: str
    state: CircuitState
    consecutive_failures: int
    retry_after: float | None
    times_opened: int


class CircuitPermit:
    """One call let through by a breaker; report how it went exactly once (later reports are ignored)."""

    __slots__ = ("_breaker", "_done", "_generation", "_probe")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self._generation = generation
        self._probe = probe
        self._done = False

    @property
    def probe(self) -> bool:
        """Whether this call probes a half-open circuit."""
        return self._probe

    def succeeded(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._report(self._generation, self._probe, success=True, error=None)

    def failed(self, error: BaseException | None = None) -> None:
        """Report a failure; only ``counts_against_health`` failures count, others just free the slot."""
        if not self._done:
            self._done = True
            self._breaker._report(self._generation, self._probe, success=False, error=error)

    def release(self) -> None:
        """The call ended without a verdict (e.g. its caller stopped early): free the slot, change nothing."""
        if not self._done:
            self._done = True
            self._breaker._release(self._generation, self._probe)

    def __enter__(self) -> CircuitPermit:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if error is None:
            self.succeeded()
        elif isinstance(error, Exception):
            self.failed(error)
        else:  # cancelled, interrupted: no verdict on the provider
            self.release()


class CircuitBreaker:
    """The circuit of one provider (see the module docstring)."""

    __slots__ = (
        "_clock",
        "_failures",
        "_generation",
        "_lock",
        "_open_until",
        "_probes",
        "_state",
        "_times_opened",
        "cooldown",
        "failure_threshold",
        "half_open_max_calls",
        "name",
        "on_state_change",
    )

    def __init__(
        self,
        name: str = "provider",
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Clock = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise InvalidInputError(f"failure_threshold must be an integer >= 1, got {failure_threshold!r}")
        if not isinstance(cooldown, int | float) or not cooldown >= 0:
            raise InvalidInputError(f"cooldown must be a number of seconds >= 0, got {cooldown!r}")
        if not isinstance(half_open_max_calls, int) or half_open_max_calls < 1:
            raise InvalidInputError(
                f"half_open_max_calls must be an integer >= 1, got {half_open_max_calls!r}"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown = float(cooldown)
        self.half_open_max_calls = half_open_max_calls
        self.on_state_change = on_state_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._open_until = 0.0
        self._probes: list[float] = []  # start times of the probes in flight
        self._generation = 0
        self._times_opened = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value!r})"

    # --- reading -----------------------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        with self._lock:
            changed = self._refresh()
            state = self._state
        self._announce(changed)
        return state

    def retry_after(self) -> float | None:
        """Seconds until a call may go through: 0 if one may now, None while a probe's verdict is awaited."""
        with self._lock:
            changed = self._refresh()
            wait = self._wait()
        self._announce(changed)
        return wait

    def snapshot(self) -> CircuitSnapshot:
        with self._lock:
            changed = self._refresh()
            snap = CircuitSnapshot(self.name, self._state, self._failures, self._wait(), self._times_opened)
        self._announce(changed)
        return snap

    # --- deciding ----------------------------------------------------------------------------------------

    def acquire(self) -> CircuitPermit:
        """Let one call through, or raise ``CircuitOpenError`` at once if the circuit does not allow it."""
        with self._lock:
            changed = self._refresh()
            state = self._state
            permit: CircuitPermit | None = None
            if state is CircuitState.CLOSED:
                permit = CircuitPermit(self, self._generation, probe=False)
            elif state is CircuitState.HALF_OPEN and len(self._probes) < self.half_open_max_calls:
                self._probes.append(self._clock())
                permit = CircuitPermit(self, self._generation, probe=True)
            wait = self._wait()
        self._announce(changed)
        if permit is not None:
            return permit
        reason = (
            f"its circuit is open after {self.failure_threshold} consecutive failures"
            if state is CircuitState.OPEN
            else "its circuit is half-open and a probe call is already in flight"
        )
        raise CircuitOpenError(self.name, wait, reason, details={"state": state.value})

    def reset(self) -> None:
        """Close the circuit and forget every failure."""
        with self._lock:
            before = self._state
            self._move(CircuitState.CLOSED)
        self._announce((before, CircuitState.CLOSED) if before is not CircuitState.CLOSED else None)

    # --- what permits report -----------------------------------------------------------------------------

    def _report(self, generation: int, probe: bool, *, success: bool, error: BaseException | None) -> None:
        with self._lock:
            changed = self._refresh()
            if probe and generation == self._generation and self._probes:
                self._probes.pop(0)
            if generation != self._generation:
                pass  # the circuit changed state since this call started: its verdict is stale
            elif success:
                self._failures = 0
                if self._state is CircuitState.HALF_OPEN:
                    changed = (self._state, CircuitState.CLOSED)
                    self._move(CircuitState.CLOSED)
            elif counts_against_health(error):
                self._failures += 1
                if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
                    changed = (self._state, CircuitState.OPEN)
                    self._open(error)
        self._announce(changed)

    def _release(self, generation: int, probe: bool) -> None:
        with self._lock:
            if probe and generation == self._generation and self._probes:
                self._probes.pop(0)

    # --- under the lock ----------------------------------------------------------------------------------

    def _refresh(self) -> tuple[CircuitState, CircuitState] | None:
        """Apply what time alone changes; returns the transition, if one happened."""
        now = self._clock()
        if self._state is CircuitState.OPEN and now >= self._open_until:
            self._move(CircuitState.HALF_OPEN)
            return (CircuitState.OPEN, CircuitState.HALF_OPEN)
        if self._state is CircuitState.HALF_OPEN:
            # A probe whose caller never reported frees its slot after one cooldown.
            self._probes = [started for started in self._probes if now - started < max(self.cooldown, 1e-9)]
        return None

    def _wait(self) -> float | None:
        if self._state is CircuitState.OPEN:
            return max(0.0, self._open_until - self._clock())
        if self._state is CircuitState.HALF_OPEN and len(self._probes) >= self.half_open_max_calls:
            return None
        return 0.0

    def _open(self, error: BaseException | None) -> None:
        rest = self.cooldown
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, int | float) and asked > rest:
            rest = float(asked)
        self._move(CircuitState.OPEN)
        self._open_until = self._clock() + rest
        self._times_opened += 1

    def _move(self, state: CircuitState) -> None:
        self._state = state
        self._generation += 1
        self._probes = []
        if state is CircuitState.CLOSED:
            self._failures = 0

    # --- outside the lock --------------------------------------------------------------------------------

    def _announce(self, changed: tuple[CircuitState, CircuitState] | None) -> None:
        if changed is None:
            return
        before, after = changed
        level = logging.WARNING if after is CircuitState.OPEN else logging.INFO
        logger.log(level, "Circuit of '%s': %s -> %s", self.name, before.value, after.value)
        if self.on_state_change is not None:
            self.on_state_change(self, before, after)
