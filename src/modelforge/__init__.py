"""ModelForge: LLM providers, credentials and model choice, handed back as ready LangChain chat models.

The public API is what ``__all__`` lists; names are imported on first use so ``import modelforge`` stays
cheap (the LangChain SDKs load only when a model is built).

    from modelforge import ModelForgeRegistry
    llm = ModelForgeRegistry().get_llm()          # the configured current model, or the local model
    print(llm.invoke("Hello").content)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelforge._lazy import lazy_exports

__version__ = "3.0.0"

_LAZY: dict[str, str] = {
    "ModelForgeRegistry": "modelforge.registry",
    "ManagedChatModel": "modelforge.providers._managed",
    "EnhancedLLM": "modelforge.enhanced_llm",
    "ModelsDevClient": "modelforge.catalog.modelsdev",
    "StreamWrapper": "modelforge.streaming",
    "stream": "modelforge.streaming",
    "stream_events": "modelforge.streaming",
    "stream_sync": "modelforge.streaming",
    "stream_to_file": "modelforge.streaming",
    "stream_with_callback": "modelforge.streaming",
    "ProviderRetryConfig": "modelforge.policies.retry",
    "RetryWrapper": "modelforge.policies.retry",
    "RateLimiter": "modelforge.policies.ratelimit",
    "RequestCounter": "modelforge.policies.ratelimit",
    "FallbackChatModel": "modelforge.policies.fallback",
    "BatchProcessor": "modelforge.batch",
    "BatchProgress": "modelforge.batch",
    "BatchResult": "modelforge.batch",
    "CacheStats": "modelforge.cache",
    "performance_metrics": "modelforge.telemetry.metrics",
    "reset_performance_metrics": "modelforge.telemetry.metrics",
    "flush_performance_metrics": "modelforge.telemetry.metrics",
    "MetricsSnapshot": "modelforge.telemetry.metrics",
    "PerformanceStats": "modelforge.telemetry.metrics",
    "with_fallbacks_of": "modelforge.policies.fallback",
    "AllProvidersFailedError": "modelforge.exceptions",
    "ModelForgeError": "modelforge.exceptions",
    "ConfigurationError": "modelforge.exceptions",
    "AuthenticationError": "modelforge.exceptions",
    "NetworkError": "modelforge.exceptions",
    "NetworkTimeoutError": "modelforge.exceptions",
    "RateLimitError": "modelforge.exceptions",
    "ProviderError": "modelforge.exceptions",
    "ModelNotFoundError": "modelforge.exceptions",
    "create_provider": "modelforge.assistant.provider",
    "ChatProvider": "modelforge.assistant.provider",
    "FallbackProvider": "modelforge.assistant.fallback_provider",
    "ModelConfig": "modelforge.assistant.provider_config",
    "Provider": "modelforge.assistant.provider_config",
    "RetryConfig": "modelforge.assistant.provider_config",
    "Conversation": "modelforge.assistant.conversation",
    "CompressionConfig": "modelforge.assistant.compression",
    "CostTracker": "modelforge.assistant.costs",
    "PromptTemplate": "modelforge.assistant.templates",
    "ValidationConfig": "modelforge.assistant.structured",
}

__all__ = [
    "AllProvidersFailedError",
    "AuthenticationError",
    "BatchProcessor",
    "BatchProgress",
    "BatchResult",
    "CacheStats",
    "ChatProvider",
    "CompressionConfig",
    "ConfigurationError",
    "Conversation",
    "CostTracker",
    "EnhancedLLM",
    "FallbackChatModel",
    "FallbackProvider",
    "ManagedChatModel",
    "MetricsSnapshot",
    "ModelConfig",
    "ModelForgeError",
    "ModelForgeRegistry",
    "ModelNotFoundError",
    "ModelsDevClient",
    "NetworkError",
    "NetworkTimeoutError",
    "PerformanceStats",
    "PromptTemplate",
    "Provider",
    "ProviderError",
    "ProviderRetryConfig",
    "RateLimitError",
    "RateLimiter",
    "RequestCounter",
    "RetryConfig",
    "RetryWrapper",
    "StreamWrapper",
    "ValidationConfig",
    "__version__",
    "create_provider",
    "flush_performance_metrics",
    "performance_metrics",
    "reset_performance_metrics",
    "stream",
    "stream_events",
    "stream_sync",
    "stream_to_file",
    "stream_with_callback",
    "with_fallbacks_of",
]

if TYPE_CHECKING:
    from modelforge.assistant.compression import CompressionConfig
    from modelforge.assistant.conversation import Conversation
    from modelforge.assistant.costs import CostTracker
    from modelforge.assistant.fallback_provider import FallbackProvider
    from modelforge.assistant.provider import ChatProvider, create_provider
    from modelforge.assistant.provider_config import ModelConfig, Provider, RetryConfig
    from modelforge.assistant.structured import ValidationConfig
    from modelforge.assistant.templates import PromptTemplate
    from modelforge.batch import BatchProcessor, BatchProgress, BatchResult
    from modelforge.cache import CacheStats
    from modelforge.catalog.modelsdev import ModelsDevClient
    from modelforge.enhanced_llm import EnhancedLLM
    from modelforge.exceptions import (
        AllProvidersFailedError,
        AuthenticationError,
        ConfigurationError,
        ModelForgeError,
        ModelNotFoundError,
        NetworkError,
        NetworkTimeoutError,
        ProviderError,
        RateLimitError,
    )
    from modelforge.policies.fallback import FallbackChatModel, with_fallbacks_of
    from modelforge.policies.ratelimit import RateLimiter, RequestCounter
    from modelforge.policies.retry import ProviderRetryConfig, RetryWrapper
    from modelforge.providers._managed import ManagedChatModel
    from modelforge.registry import ModelForgeRegistry
    from modelforge.streaming import (
        StreamWrapper,
        stream,
        stream_events,
        stream_sync,
        stream_to_file,
        stream_with_callback,
    )
    from modelforge.telemetry.metrics import (
        MetricsSnapshot,
        PerformanceStats,
        flush_performance_metrics,
        performance_metrics,
        reset_performance_metrics,
    )


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
