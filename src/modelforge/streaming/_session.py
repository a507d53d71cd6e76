"""One model stream as the streaming helpers see it: chunks under a deadline and an idle limit.

``StreamSession`` drives ``llm.astream`` through a ``ChunkPump``, turns the pump's timeouts into
``NetworkTimeoutError`` naming the provider and the limit, and stops the stream (so every layer releases
its HTTP response) whatever happens. Shared by the text stream (``stream``) and the
event stream (``stream_events``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from modelforge.exceptions import InvalidInputError, NetworkTimeoutError
from modelforge.policies.stream_guard import guarded_astream
from modelforge.streaming._pump import END, FLUSH, ChunkPump
from modelforge.validation import InputValidator

__all__ = ["END", "FLUSH", "Limits", "StreamSession", "check_prompt", "model_of", "provider_of"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The total deadline and the idle limit of one stream, in seconds (None: no limit)."""

    timeout: float | None = None
    idle_timeout: float | None = None

    @classmethod
    def checked(cls, timeout: float | None, idle_timeout: float | None) -> Limits:
        return cls(_limit(timeout, "timeout"), _limit(idle_timeout, "idle_timeout"))


def _limit(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    number = InputValidator.validate_positive_number(value, name)
    return None if math.isinf(number) else number


def check_prompt(prompt: object) -> None:
    """Refuse an empty prompt at the call, before any request is made."""
    empty = prompt is None or (
        prompt.strip() == "" if isinstance(prompt, str) else isinstance(prompt, Sequence) and len(prompt) == 0
    )
    if empty:
        raise InvalidInputError(
            "The prompt is empty. Give a question or instruction, or a non-empty list of messages.",
            suggestion="Give a non-empty prompt",
            error_code="EMPTY_PROMPT",
        )


def _find(llm: Any, attributes: tuple[str, ...]) -> str | None:
    """The first string attribute found on ``llm`` or the models it binds or wraps."""
    for _ in range(8):
        if llm is None:
            return None
        for attribute in attributes:
            value = getattr(llm, attribute, None)
            if isinstance(value, str) and value:
                return value
        llm = getattr(llm, "bound", None) or getattr(llm, "wrapped_llm", None)
    return None


def provider_of(llm: Any) -> str | None:
    """The provider name a ModelForge model carries (through ``bind_tools`` bindings), if any."""
    return _find(llm, ("provider_name",))


def model_of(llm: Any) -> str | None:
    """The model id a chat model sends (through bindings and wrappers), if it exposes one."""
    return _find(llm, ("model_name", "model", "model_id"))


class StreamSession:
    """Streams ``llm``'s answer to ``prompt`` chunk by chunk; always ``aclose()`` it."""

    def __init__(
        self,
        llm: Runnable[Any, Any],
        prompt: Any,
        *,
        limits: Limits,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        provider: str | None,
        url: str | None = None,
    ) -> None:
        self.limits = limits
        self.provider = provider
        self.url = url
        self._pump = ChunkPump(
            guarded_astream(llm, prompt, config, kwargs),
            deadline=limits.timeout,
            idle_timeout=limits.idle_timeout,
            timeout_error=self._timeout_error,
        )
        # ``await session.next_chunk(flush_at=None)``: the next chunk, or ``END``; raises the model's error
        # or ``NetworkTimeoutError``. With ``flush_at`` (loop time): ``FLUSH`` if no chunk came by then (ask
        # again for the chunk). The pump's own method, so a chunk costs no extra frame.
        self.next_chunk: Callable[..., Awaitable[Any]] = self._pump.next_chunk

    @property
    def chunks(self) -> int:
        """Chunks received so far."""
        return self._pump.chunks

    async def aclose(self) -> None:
        await self._pump.aclose()

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self._pump.started_at

    def _timeout_error(self, kind: str) -> NetworkTimeoutError:
        who = f"'{self.provider}'" if self.provider else "the model"
        if kind == "idle":
            limit = self.limits.idle_timeout
            operation = f"waiting for the next chunk from {who} (idle timeout)"
            fix = "The model sent nothing for that long: check the server, or raise idle_timeout."
        else:
            limit = self.limits.timeout
            operation = f"streaming from {who} (total timeout)"
            fix = "Raise timeout, or ask for a shorter answer."
        return NetworkTimeoutError(
            operation,
            limit,
            self.url,
            provider=self.provider,
            suggestion=fix,
            details={"kind": kind, "chunks_received": self.chunks},
        )
