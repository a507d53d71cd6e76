"""When an attempt's request actually left this process: a mark the admission sets and the transport stamps.

The rate limiter counts a request from the moment the provider can have received it. Between taking its
place in the budget and going out, a request may wait in this process (threads contending for the GIL,
a full connection pool, a TLS handshake); counting it from its reservation would let the budget come back
before the provider's does. So before each rate-limited attempt ``ManagedChatModel`` sets a ``SendMark``
in the ``current`` context variable (``begin``), and ModelForge's pooled transports
(``modelforge._pool_transport``) stamp it with ``time.monotonic()`` once the request has been written to
the connection (``stamp``; the first stamp wins, so a redirect does not move it). The SDK call runs in the
thread (sync) or task (async) that set the mark, so the transport sees it; the stamp is made on the shared
object, so it is seen even from a copied context. After the attempt, ``sent_ago`` says how long ago it was
sent (None: never stamped, e.g. a model that does not send through ModelForge's transports, whose request
is then counted by the conservative rule) and ``end`` takes the mark down.

Without a mark (a call outside an attempt) the transports do nothing extra. A pooled model without a
``rate_limit`` sets a bare ``SendProbe`` until its first call succeeds: a success whose mark was never
stamped means the SDK did not send through ModelForge's transport (``modelforge.pooling.report_unpooled``).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable

__all__ = ["SendMark", "SendProbe", "begin", "current", "end"]


class SendMark:
    """One attempt's send time (``time.monotonic()``), None until its request has gone out."""

    __slots__ = ("_clock", "_token", "sent")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.sent: float | None = None
        self._clock = clock
        self._token: contextvars.Token[SendMark | None] | None = None

    def __repr__(self) -> str:
        return f"SendMark(sent={self.sent!r})"

    def stamp(self) -> None:
        """The request has gone out now (a later stamp, e.g. of a redirect, changes nothing)."""
        if self.sent is None:
            self.sent = self._clock()

    def sent_ago(self) -> float | None:
        """Seconds since the request went out, or None when it was never stamped."""
        if self.sent is None:
            return None
        return max(self._clock() - self.sent, 0.0)


_current: contextvars.ContextVar[SendMark | None] = contextvars.ContextVar(
    "modelforge_send_mark", default=None
)


def current() -> SendMark | None:
    """The mark of the attempt running in this context, if any."""
    return _current.get()


def begin(clock: Callable[[], float] = time.monotonic) -> SendMark:
    """Set a fresh mark for the attempt about to run in this context, and return it."""
    mark = SendMark(clock)
    mark._token = _current.set(mark)
    return mark


def end(mark: SendMark) -> None:
    """Take ``mark`` down (restoring what was set before it) if it is still this context's mark.

    A generator may be resumed in another context than the one that set its mark: there the mark is
    cleared instead of restored (a token can only be reset in its own context).
    """
    token, mark._token = mark._token, None
    if _current.get() is not mark:
        return
    if token is not None:
        try:
            _current.reset(token)
            return
        except ValueError:
            pass
    _current.set(None)


class SendProbe:
    """An attempt's send mark without a rate-limit budget: it only tells whether the request went out
    through ModelForge's transports. ``release`` (the admission's signature) takes the mark down."""

    __slots__ = ("mark",)

    def __init__(self) -> None:
        self.mark = begin()

    def release(self, tokens: int | None, error: Exception | None, *, headers: object = None) -> None:
        end(self.mark)
