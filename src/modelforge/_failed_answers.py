"""The headers of the last error answer a pooled transport passed on, for SDKs whose errors drop them.

Ollama's client raises ``ResponseError(error, status_code)`` without the response's headers, so a 429's
``Retry-After`` or a server's ``x-ratelimit-*`` would be lost and the retry would guess its wait. ModelForge's
pooled transport (``modelforge._pool_transport``) notes the status and headers of every answer of 400 and
above in the calling thread's or task's context (``note``): the SDK call runs there, so the caller sees it.
The provider family reads them back when it translates that error (``take``), only for the same status,
and clears them; the retry step clears them before every attempt (``forget``), so a failure never borrows
the headers of an earlier request's (another provider's, or one that did not go through the transport).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable

__all__ = ["forget", "note", "take"]

_last: contextvars.ContextVar[tuple[int, dict[str, str]] | None] = contextvars.ContextVar(
    "modelforge_failed_answer", default=None
)


def note(status: int, headers: Iterable[tuple[str, str]]) -> None:
    """Remember an error answer's status and headers (names lower-cased) in the current context."""
    _last.set((status, {name.lower(): value for name, value in headers}))


def take(status: int) -> dict[str, str]:
    """The headers noted for an answer of ``status`` in this context (then forgotten), else ``{}``."""
    found = _last.get()
    if found is None or found[0] != status:
        return {}
    _last.set(None)
    return found[1]


def forget() -> None:
    """Clear what was noted in this context (before an attempt)."""
    if _last.get() is not None:
        _last.set(None)
