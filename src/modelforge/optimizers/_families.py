"""Which optimizer each provider family has (``optimizer_for``), imported when first used."""

from __future__ import annotations

import importlib

from modelforge.optimizers._base import RequestOptimizer
from modelforge.providers import normalize_llm_type
from modelforge.sections.optimizations import OptimizationConfig

__all__ = ["optimizer_for"]

# llm_type -> the optimizer class's module and name (imported when first used).
_OPTIMIZERS: dict[str, tuple[str, str]] = {
    "openai_compatible": ("modelforge.optimizers._openai", "OpenAIOptimizer"),
    "local": ("modelforge.optimizers._openai", "OpenAIOptimizer"),
    "github_copilot": ("modelforge.optimizers._openai", "OpenAIOptimizer"),
    "anthropic": ("modelforge.optimizers._anthropic", "AnthropicOptimizer"),
    "google_genai": ("modelforge.optimizers._google", "GoogleOptimizer"),
    "ollama": ("modelforge.optimizers._ollama", "OllamaOptimizer"),
}


def optimizer_for(
    llm_type: str, config: OptimizationConfig, *, provider_name: str, model_name: str
) -> RequestOptimizer | None:
    """The optimizer of a family with ``config`` (``None``: the family has none, or it is switched off)."""
    if not config.enabled:
        return None
    family = normalize_llm_type(llm_type)
    found = _OPTIMIZERS.get(family)
    if found is None:
        return None
    module_name, class_name = found
    cls: type[RequestOptimizer] = getattr(importlib.import_module(module_name), class_name)
    return cls(config, provider_name=provider_name, model_name=model_name, llm_type=family)
