"""The assistant toolkit: providers as objects (``create_provider``, ``FallbackProvider``), prompt templates,
validated structured output, conversations within token limits with context compression, and cost
tracking; all built on the models ``ModelForgeRegistry.get_llm`` returns.

Names are imported on first use.
"""

from __future__ import annotations

from modelforge._lazy import lazy_exports

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
    "ChatProvider": "modelforge.assistant.provider",
    "create_provider": "modelforge.assistant.provider",
    "FallbackProvider": "modelforge.assistant.fallback_provider",
    "ModelConfig": "modelforge.assistant.provider_config",
    "Provider": "modelforge.assistant.provider_config",
    "RetryConfig": "modelforge.assistant.provider_config",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
