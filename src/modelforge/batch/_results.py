"""What a batch hands back: one ``BatchResult`` per input (an answer or an error), and ``BatchProgress``.

Also owns ``notify``: calling the caller's ``on_progress`` (a plain function or a coroutine function). A
progress callback that raises is logged and ignored: a broken progress bar must not cost the answers.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage

__all__ = ["BatchProgress", "BatchResult", "ProgressCallback", "anotify", "notify"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Where a batch stands: ``done`` of ``total`` items finished (``succeeded`` + ``failed``).

    ``job_id`` is the ModelForge job id of a provider batch job (``None`` for live batches): keep it to
    collect the results with ``resume_batch`` should this process stop. ``status`` is the provider's word for
    the job's state (``in_progress``, ``ended``...), or ``"live"``.
    """

    total: int
    done: int
    succeeded: int
    failed: int
    elapsed: float
    job_id: str | None = None
    status: str = "live"

    @property
    def fraction(self) -> float:
        """``done / total`` (1.0 for an empty batch)."""
        return self.done / self.total if self.total else 1.0


@dataclass(slots=True)
class BatchResult:
    """The outcome of one input of a batch, at position ``index``: ``message`` or ``error``, never neither.

    ``content`` / ``text`` read the answer (``responses[0].content``); on a failed item they raise its error,
    as ``unwrap()`` does, so a failure is never mistaken for an empty answer. Check ``ok`` (or ``error``)
    to tell them apart without raising. ``output`` is what the model returned when that is not an
    ``AIMessage`` (a structured-output runnable, say). ``custom_id`` is the id the item had in a provider
    batch job.
    """

    index: int
    input: Any
    message: AIMessage | None = None
    error: Exception | None = None
    custom_id: str | None = None
    output: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> AIMessage:
        """The answer, or raise the item's error."""
        if self.error is not None:
            raise self.error
        if self.message is None:
            raise TypeError(f"item {self.index} returned {type(self.output).__name__}, not a message")
        return self.message

    @property
    def content(self) -> str | list[str | dict[str, Any]]:
        """The answer's ``content`` (raises the item's error if it failed)."""
        return self.unwrap().content

    @property
    def text(self) -> str:
        """The answer's text (raises the item's error if it failed)."""
        return str(self.unwrap().text)

    def __repr__(self) -> str:
        if self.error is not None:
            outcome = f"error={type(self.error).__name__}({str(self.error)[:80]!r})"
        elif self.message is not None:
            outcome = f"text={self.message.text[:40]!r}"
        else:
            outcome = f"output={type(self.output).__name__}"
        return f"BatchResult(index={self.index}, {outcome})"


ProgressCallback = Callable[[BatchProgress], Any]


def notify(callback: ProgressCallback | None, progress: BatchProgress) -> Awaitable[Any] | None:
    """Call ``callback`` (sync); the awaitable it returned, if any, for the caller to await."""
    if callback is None:
        return None
    try:
        returned = callback(progress)
    except Exception:
        logger.warning("The batch progress callback failed; the batch goes on", exc_info=True)
        return None
    return returned if inspect.isawaitable(returned) else None


async def anotify(callback: ProgressCallback | None, progress: BatchProgress) -> None:
    """Call ``callback`` and await it when it is a coroutine function."""
    pending = notify(callback, progress)
    if pending is None:
        return
    try:
        await pending
    except Exception:
        logger.warning("The batch progress callback failed; the batch goes on", exc_info=True)
