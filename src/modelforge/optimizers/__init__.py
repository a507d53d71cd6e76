"""Provider optimizers: each provider's own savings, applied to every request of a model.

``ModelForgeRegistry(enable_optimizations=True).get_llm(...)`` adds an ``OptimizeStep`` to the model's
pipeline (an ``OptimizedChatModel`` wrapper around a model ModelForge did not build), whose
``RequestOptimizer`` shapes each call for its provider family:

==================  =============================================================================
family              what is applied (each switchable in the provider's ``optimizations`` section)
==================  =============================================================================
openai_compatible   ``seed``; JSON mode when the prompt asks for JSON; batch bodies alike
local (llama.cpp)   the same
github_copilot      markers only, unless the section turns ``seed`` / ``json_mode`` on
anthropic           prompt-cache breakpoints on long static prefixes (``prompt_caching``)
google_genai        cached contents for long static prefixes (``context_caching``), ``safety_settings``
ollama              ``keep_alive``, ``num_ctx`` sized to the prompt
==================  =============================================================================

Every family removes the ``<<STATIC>>``/``<<DYNAMIC>>`` markers (see ``_markers``) where it does nothing
else with them, so a prompt written with them works with any provider. ``optimizations: {enabled: false}``
turns a provider's optimizer off; without ``enable_optimizations`` requests are sent untouched.

* ``optimize(llm, request, llm_type)``: what the registry calls (returns ``llm`` unchanged when there is
  nothing to do);
* ``optimizer_of(llm)``: the ``RequestOptimizer`` inside a model handed out (``None`` if none), e.g. for
  the batch code: ``optimizer.prepare_batch_body(body)``; ``prepare_batch_body(llm, body)`` does both;
* ``validate_section(section)``: checks an ``optimizations`` section (``ValueError`` naming the key);
* ``close_context_caches()`` / ``aclose_context_caches()``: delete the Gemini cached contents still alive
  (also done at interpreter exit).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from modelforge.delegating import DelegatingChatModel
from modelforge.optimizers._base import PreparedCall, RequestOptimizer
from modelforge.optimizers._families import optimizer_for
from modelforge.optimizers._google_cache import aclose_context_caches, close_context_caches
from modelforge.optimizers._model import OptimizedChatModel
from modelforge.optimizers._step import OptimizeStep
from modelforge.providers import ModelRequest
from modelforge.providers._managed import ManagedChatModel, with_step
from modelforge.sections.optimizations import OptimizationConfig, validate_section

__all__ = [
    "OptimizationConfig",
    "OptimizeStep",
    "OptimizedChatModel",
    "PreparedCall",
    "RequestOptimizer",
    "aclose_context_caches",
    "add_optimizer_step",
    "close_context_caches",
    "optimize",
    "optimizer_for",
    "optimizer_of",
    "prepare_batch_body",
    "validate_section",
]


def optimize(llm: BaseChatModel, request: ModelRequest, llm_type: str) -> BaseChatModel:
    """``llm`` wrapped so every call is shaped by its family's optimizer (``llm`` itself when none applies).

    Raises ``ValueError`` naming the key when the provider's ``optimizations`` section is wrong.
    """
    config = OptimizationConfig.from_config(request.provider.optimizations)
    optimizer = optimizer_for(
        llm_type, config, provider_name=request.provider_name, model_name=request.model_name
    )
    if optimizer is None:
        return llm
    if isinstance(llm, ManagedChatModel) and llm.forge_or_none() is not None:
        return add_optimizer_step(llm, optimizer)
    return OptimizedChatModel(wrapped_llm=llm, optimizer=optimizer, callbacks=getattr(llm, "callbacks", None))


def add_optimizer_step(llm: BaseChatModel, optimizer: RequestOptimizer) -> BaseChatModel:
    """A copy of a ``get_llm`` model with ``optimizer`` in its pipeline, after its response cache (in place
    of an optimizer it had)."""
    return with_step(
        llm,
        OptimizeStep(optimizer),
        position=_after_the_cache,
        wrap=lambda model, step: model,
        replaces=OptimizeStep,
    )


def _after_the_cache(steps: tuple[Any, ...]) -> int:
    """Where the optimizer goes in a pipeline: after a response cache (which keys the request as written)."""
    return 1 if steps and hasattr(steps[0], "response_cache") else 0


def optimizer_of(llm: Any) -> RequestOptimizer | None:
    """The optimizer inside a model ``get_llm`` handed out (through any wrappers), or ``None``."""
    current = llm
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OptimizedChatModel):
            return current.optimizer
        forge = getattr(current, "forge", None) if isinstance(current, ManagedChatModel) else None
        if forge is not None:
            step = forge.pipeline.find(OptimizeStep)
            return step.optimizer if step is not None else None
        if isinstance(current, DelegatingChatModel):
            current = current.wrapped_llm
            continue
        current = getattr(current, "wrapped_llm", None) or getattr(current, "runnable", None)
    return None


def prepare_batch_body(llm: Any, body: dict[str, Any]) -> dict[str, Any]:
    """A provider batch request body shaped as ``llm``'s live calls are (a copy; unchanged without one)."""
    optimizer = optimizer_of(llm)
    return optimizer.prepare_batch_body(body) if optimizer is not None else dict(body)
