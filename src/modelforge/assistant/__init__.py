"""The assistant toolkit: prompt templates, validated structured output, conversations within token limits
with context compression, and cost tracking; all built on the models ``ModelForgeRegistry.get_llm`` returns.

Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "PromptTemplate": "modelforge.assistant.templates",
    "ValidationConfig": "modelforge.assistant.structured",
    "StructuredOutputError": "modelforge.assistant.structured",
    "ainvoke_validated": "modelforge.assistant.structured",
    "invoke_validated": "modelforge.assistant.structured",
    "Conversation": "modelforge.assistant.conversation",
    "CompressionConfig": "modelforge.assistant.compression",
    "TokenCounter": "modelforge.assistant.tokens",
    "CostTracker": "modelforge.assistant.costs",
    "BudgetExceededError": "modelforge.assistant.costs",
    "CallCost": "modelforge.assistant.costs",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelforge.assistant' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
