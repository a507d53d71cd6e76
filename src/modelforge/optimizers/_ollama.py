"""Optimizer for Ollama (``ChatOllama``).

* ``keep_alive`` (``DEFAULT_KEEP_ALIVE``, "10m", unless the section says otherwise): how long the server
  keeps the model loaded after a call, so the next call does not wait for a reload.
* ``num_ctx``: Ollama's context window defaults to 2048/4096 tokens and silently drops the start of a longer
  prompt. With ``num_ctx: auto`` each call asks for the estimated prompt tokens plus the output limit,
  rounded up to a power of two (Ollama reloads the model whenever ``num_ctx`` changes, so few distinct
  sizes mean few reloads), at least 2048 and at most ``max_num_ctx`` (a WARNING says when a prompt does
  not fit even then). A number is sent as is. A ``num_ctx`` the model or the call already sets wins.
  ``options`` replaces all of ``ChatOllama``'s own options for a call, so they are carried over.
* Connection reuse is done by the pooled HTTP clients (``modelforge.pooling``), not here.
* The ``<<STATIC>>``/``<<DYNAMIC>>`` markers are removed (Ollama keeps the prompt's KV cache by itself).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from modelforge.optimizers._base import (
    PreparedCall,
    RequestOptimizer,
    estimate_text_tokens,
    estimate_tokens,
    logger,
)
from modelforge.optimizers._markers import strip_message_markers
from modelforge.providers.ollama import OLLAMA_OPTION_FIELDS
from modelforge.sections.optimizations import MIN_NUM_CTX

__all__ = ["OllamaOptimizer", "context_size"]

# Output reserved when the model sets no num_predict (Ollama's own default is "until the context is full").
DEFAULT_OUTPUT_TOKENS = 1024


def context_size(needed: int, maximum: int) -> int:
    """The ``num_ctx`` for ``needed`` tokens: the next power of two, at least 2048, at most ``maximum``."""
    size = MIN_NUM_CTX
    while size < needed:
        size *= 2
    return max(MIN_NUM_CTX, min(size, maximum))


class OllamaOptimizer(RequestOptimizer):
    """``keep_alive``, a context window that fits the prompt, and marker removal."""

    family: ClassVar[str] = "ollama"

    def prepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        call = PreparedCall(strip_message_markers(messages), kwargs)
        self.step("keep_alive", call, lambda c: self._add_keep_alive(leaf, c.kwargs))
        self.step("num_ctx", call, lambda c: self._add_num_ctx(leaf, c.messages, c.kwargs, stop))
        return call

    def _add_keep_alive(self, leaf: BaseChatModel, kwargs: dict[str, Any]) -> bool:
        keep_alive = self.config.keep_alive
        if keep_alive is None or "keep_alive" in kwargs or getattr(leaf, "keep_alive", None) is not None:
            return False
        kwargs["keep_alive"] = keep_alive
        return True

    def _add_num_ctx(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> bool:
        setting = self.config.num_ctx
        if setting is None or getattr(leaf, "num_ctx", None) is not None:
            return False
        given = kwargs.get("options")
        if isinstance(given, dict) and given.get("num_ctx") is not None:
            return False
        if setting == "auto":
            output = getattr(leaf, "num_predict", None)
            if not isinstance(output, int) or output <= 0:
                output = DEFAULT_OUTPUT_TOKENS
            prompt = estimate_tokens(messages)
            if kwargs.get("tools"):
                prompt += estimate_text_tokens(json.dumps(kwargs["tools"], default=str))
            needed = prompt + output
            size = context_size(needed, self.config.max_num_ctx)
            if needed > size:
                logger.warning(
                    "The prompt for %s/%s needs about %d tokens of context but max_num_ctx is %d: Ollama "
                    "will drop the start of it (raise optimizations.max_num_ctx if the model allows more)",
                    self.provider_name,
                    self.model_name,
                    needed,
                    size,
                )
        else:
            size = setting
        options = dict(given) if isinstance(given, dict) else self._model_options(leaf, stop)
        options["num_ctx"] = size
        kwargs["options"] = options
        return True

    @staticmethod
    def _model_options(leaf: BaseChatModel, stop: list[str] | None) -> dict[str, Any]:
        """The options ``ChatOllama`` would send itself (a per-call ``options`` replaces them all)."""
        options = {name: getattr(leaf, name, None) for name in OLLAMA_OPTION_FIELDS}
        model_stop = getattr(leaf, "stop", None)
        options["stop"] = model_stop if model_stop is not None else stop
        return {name: value for name, value in options.items() if value is not None}
