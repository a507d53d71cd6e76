"""The decisions of a fallback chain, kept apart from its I/O loops.

* ``should_fall_back(err)``: whether a failure sends the call on to the next model (the decision table in
  ``modelforge.policies.fallback``).
* ``FallbackAttempts``: one call through a chain: asks each model's circuit breaker, records every failure
  (breaker verdict included), and builds the ``AllProvidersFailedError`` when nothing is left.
* ``StreamRelay``: what of one model's stream reaches the caller: chunks that carry nothing are held back
  until one carries text or a tool call (so a model that fails before that is left silently), the text
  delivered since the last restart is remembered, and a restart marker goes out just before the first
  chunk of the model that takes over after text was delivered (never when nobody takes over).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from langchain_core.messages import AIMessageChunk

from modelforge._chunks import RESTART_KEY, chunk_text
from modelforge.delegating import member_label, member_provider
from modelforge.exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ConfigurationError,
    NetworkError,
    ProviderError,
)
from modelforge.policies.circuit import (
    CircuitBreaker,
    CircuitBreakerRegistry,
    default_breakers,
    is_transport_error,
    status_of,
)

__all__ = [
    "RESTART_KEY",
    "FallbackAttempts",
    "Permit",
    "StreamRelay",
    "breakers_of",
    "member_label",
    "member_provider",
    "restart_info",
    "should_fall_back",
]

logger = logging.getLogger("modelforge.policies.fallback")


# Statuses that blame the request itself: the next model would refuse it too.
_REQUEST_FAULTS = frozenset({400, 413, 422})

Classifier = Callable[[BaseException], bool]


def should_fall_back(err: BaseException) -> bool:
    """Whether ``err`` sends the call on to the next model of a fallback chain (else it is raised at once)."""
    if isinstance(err, AllProvidersFailedError):
        return any(should_fall_back(inner) for inner in err.errors)
    if isinstance(err, BadRequestError):  # 400 / 422, context length: the next model would refuse it too
        return False
    if isinstance(err, NetworkError | ProviderError | AuthenticationError | ConfigurationError):
        return err.status_code not in _REQUEST_FAULTS
    status = status_of(err)
    if status is not None:
        return status not in _REQUEST_FAULTS
    return is_transport_error(err)


def breakers_of(
    names: Sequence[str], *, enabled: bool, registry: CircuitBreakerRegistry | None
) -> list[CircuitBreaker | None]:
    """The breaker of each member (None for all when breakers are off)."""
    if not enabled:
        return [None] * len(names)
    chosen = registry if registry is not None else default_breakers()
    return [chosen.get(name) for name in names]


def restart_info(chunk: Any) -> dict[str, Any] | None:
    """The restart a chunk announces (``reason``, ``discarded_text``, ``failed``, ``provider``), or None."""
    metadata = getattr(chunk, "response_metadata", None)
    info = metadata.get(RESTART_KEY) if isinstance(metadata, dict) else None
    return info if isinstance(info, dict) else None


class Permit(Protocol):
    """What a call reports to its circuit breaker (``CircuitPermit``)."""

    def succeeded(self) -> None: ...
    def failed(self, error: BaseException | None = None) -> None: ...
    def release(self) -> None: ...


class _FreePermit:
    """The permit of a model with no circuit breaker."""

    def succeeded(self) -> None:
        pass

    def failed(self, error: BaseException | None = None) -> None:
        pass

    def release(self) -> None:
        pass


_FREE = _FreePermit()


class FallbackAttempts:
    """One call through a chain: who was tried, how each failed, whether to go on."""

    __slots__ = ("breakers", "classify", "errors", "labels", "tried")

    def __init__(
        self, labels: Sequence[str], breakers: Sequence[CircuitBreaker | None], classify: Classifier
    ) -> None:
        self.labels = list(labels)
        self.breakers = list(breakers)
        self.classify = classify
        self.errors: list[tuple[int, Exception]] = []
        self.tried: list[int] = []

    def admit(self, index: int) -> Permit | None:
        """The permit to call member ``index``, or None when its circuit is open (recorded as a failure)."""
        breaker = self.breakers[index]
        if breaker is None:
            self.tried.append(index)
            return _FREE
        try:
            permit = breaker.acquire()
        except CircuitOpenError as err:
            logger.info("Skipping %s: its circuit is open", self.labels[index])
            self.errors.append((index, err))
            return None
        self.tried.append(index)
        return permit

    def failed(self, index: int, permit: Permit, err: Exception) -> bool:
        """Record member ``index``'s failure; True to go on to the next member, False to raise ``err``."""
        permit.failed(err)
        go_on = self.classify(err)
        if go_on:
            logger.info("%s failed (%s)", self.labels[index], type(err).__name__)
            self.errors.append((index, err))
        elif self.errors:
            err.add_note("Earlier in the fallback chain: " + "; ".join(self._lines()))
        return go_on

    def exhausted(self) -> AllProvidersFailedError:
        """The error for a chain where every member failed or was skipped."""
        return AllProvidersFailedError(
            [err for _, err in self.errors], [self.labels[index] for index, _ in self.errors]
        )

    def served_by(self, index: int) -> dict[str, Any]:
        """The ``modelforge_fallback`` metadata of an answer given by member ``index`` after failures."""
        return {
            "provider": self.labels[index],
            "index": index,
            "failed": [{"provider": self.labels[i], "error": type(err).__name__} for i, err in self.errors],
        }

    def _lines(self) -> list[str]:
        return [f"{self.labels[index]}: {type(err).__name__}: {err}" for index, err in self.errors]


class StreamRelay:
    """Decides which chunks of the members' streams reach the caller, and when a restart is announced."""

    __slots__ = ("_delivered", "_held", "_label", "_member_delivered", "_pending", "restart_streams")

    def __init__(self, *, restart_streams: bool) -> None:
        self.restart_streams = restart_streams
        self._delivered: list[str] = []  # text the caller holds since the start or the last restart
        self._held: list[AIMessageChunk] = []
        self._member_delivered = False
        self._pending: dict[str, Any] | None = None
        self._label = ""

    @property
    def delivered_text(self) -> str:
        return "".join(self._delivered)

    @property
    def member_delivered(self) -> bool:
        """Whether the current member's stream has reached the caller."""
        return self._member_delivered

    def start(self, label: str) -> None:
        """Member ``label``'s stream begins: what an earlier member held back is dropped."""
        self._label = label
        self._held = []
        self._member_delivered = False

    def accept(self, chunk: AIMessageChunk) -> list[AIMessageChunk]:
        """The chunks to hand the caller now for ``chunk``."""
        if not self._member_delivered and not (chunk.content or chunk.tool_call_chunks):
            self._held.append(chunk)
            return []
        out = self._release()
        out.append(chunk)
        text = chunk_text(chunk)
        if text:
            self._delivered.append(text)
        return out

    def finish(self) -> list[AIMessageChunk]:
        """The member's stream ended well: what is still held back goes out."""
        return self._release()

    def may_move_on(self, member_label: str, err: Exception, next_label: str | None) -> bool:
        """After a member failed with a fall-back error: True if the next member may take over.

        Before the member's first chunk reached the caller the move is silent. After it, the move is
        allowed only with ``restart_streams`` and a next member, and is announced by a restart chunk before
        that member's first chunk.
        """
        if not self._member_delivered:
            return next_label is not None
        if not self.restart_streams or next_label is None:
            return False
        code = getattr(err, "error_code", None) or type(err).__name__
        self._pending = {
            "reason": f"{member_label} failed after its answer had started ({code}: {err})",
            "failed": member_label,
            "error_type": type(err).__name__,
            "error_code": code,
        }
        return True

    def _release(self) -> list[AIMessageChunk]:
        out: list[AIMessageChunk] = []
        if self._pending is not None:
            info = {**self._pending, "provider": self._label, "discarded_text": self.delivered_text}
            out.append(AIMessageChunk(content="", response_metadata={RESTART_KEY: info}))
            self._pending = None
            self._delivered = []
        out.extend(self._held)
        self._held = []
        self._member_delivered = True
        return out
