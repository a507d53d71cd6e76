"""What every provider optimizer is: ``RequestOptimizer`` and the ``PreparedCall`` it hands back.

An optimizer sees one call (the LangChain messages and the per-call keyword arguments the SDK's chat model
will get) and returns the call to send instead: the same messages with markers removed or split, extra
keyword arguments (``seed``, ``response_format``, ``keep_alive``, ``options``, ``safety_settings``,
``cached_content``...) or content blocks carrying ``cache_control``. It never changes what the caller
passed in (messages are copied when changed) and never overrides what the caller or the model's own
settings chose. Each optimization is a step; a step that fails is skipped with a WARNING naming it and
why, and the call goes on without it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from modelforge._secrets import mask_secrets
from modelforge._token_estimate import tokens_in_messages, tokens_in_text
from modelforge.optimizers._markers import strip_message_markers
from modelforge.sections.optimizations import OptimizationConfig

__all__ = [
    "PreparedCall",
    "RequestOptimizer",
    "error_chain",
    "estimate_text_tokens",
    "estimate_tokens",
    "reason",
]

logger = logging.getLogger("modelforge.optimizers")

# The one estimate (``modelforge._token_estimate``), under the names the optimizers use.
estimate_text_tokens = tokens_in_text
estimate_tokens = tokens_in_messages


def reason(err: BaseException) -> str:
    """A short, secret-free description of ``err`` for a log line."""
    text = mask_secrets(" ".join(str(err).split()))
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def error_chain(err: BaseException) -> list[BaseException]:
    """``err`` and the errors it was raised from (``__cause__``/``__context__``), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@dataclass
class PreparedCall:
    """The call to send: messages, per-call keyword arguments, and what was applied (for logs/tests)."""

    messages: list[BaseMessage]
    kwargs: dict[str, Any]
    applied: list[str] = field(default_factory=list)
    # The Gemini cached content the call uses, if any (forgotten when the provider says it is gone).
    cached_content: str | None = None


class RequestOptimizer:
    """Shapes the calls of one provider family; subclasses add their steps in ``prepare``/``aprepare``.

    The base class removes the ``<<STATIC>>``/``<<DYNAMIC>>`` markers and nothing else.
    """

    family: ClassVar[str] = "any"

    def __init__(
        self, config: OptimizationConfig, *, provider_name: str, model_name: str, llm_type: str
    ) -> None:
        self.config = config
        self.provider_name = provider_name
        self.model_name = model_name
        self.llm_type = llm_type

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider_name!r}, model={self.model_name!r})"

    # --- what the model wrapper calls --------------------------------------------------------------------

    def prepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        """The call to send for ``messages``/``kwargs`` (both already copies the optimizer may change)."""
        return PreparedCall(strip_message_markers(messages), kwargs)

    async def aprepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        """``prepare`` for async calls: steps that do I/O await it instead of blocking the loop."""
        return self.prepare(leaf, messages, kwargs, stop)

    def plain(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> PreparedCall:
        """The call without optimizations (markers still removed, so the provider never sees them)."""
        return PreparedCall(strip_message_markers(messages), dict(kwargs))

    def retry_plain(self, call: PreparedCall, err: Exception) -> bool:
        """Whether ``err`` came from an optimization (a cached content gone...): the plain call may work."""
        return False

    def cache_identity(self) -> dict[str, Any]:
        """The optimizer's effective settings as plain JSON data (for response-cache keys): two optimizers
        that may shape a call differently give different data. Subclasses replace the ``None`` defaults
        with what they actually send (the seed, the minimum cacheable length...)."""
        settings = {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(self.config)
            if f.name != "enabled"
        }
        settings["safety_settings"] = dict(sorted(self.config.safety_settings.items()))
        return {"family": self.family, "llm_type": self.llm_type, **settings}

    def prepare_batch_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """A provider batch request body shaped as a live call would be (a copy; the base: unchanged)."""
        return dict(body)

    def close(self) -> None:
        """Release what the optimizer holds at the provider (cached contents); called at exit too."""

    async def aclose(self) -> None:
        """``close`` without blocking the event loop."""
        self.close()

    # --- helpers for subclasses ----------------------------------------------------------------------------

    def step(self, name: str, call: PreparedCall, action: Callable[[PreparedCall], bool]) -> None:
        """Run one optimization step; a failure is logged (WARNING) and the call goes on without it."""
        try:
            if action(call):
                call.applied.append(name)
        except Exception as err:
            logger.warning(
                "%s optimization %s failed for %s/%s (%s); sending the request without it",
                self.family,
                name,
                self.provider_name,
                self.model_name,
                reason(err),
            )
