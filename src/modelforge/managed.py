"""The model ``get_llm`` hands back, and retries for any other model (names kept for earlier 3.0 code).

``get_llm`` models are instances of a subclass of the SDK's own class (``ManagedChatOpenAI(ChatOpenAI)``
and the like), all based on ``ManagedChatModel`` (``modelforge.providers._managed``); their calls go through
the pipeline of ``modelforge.pipeline``. ``RetryWrapper`` and ``RETRY_EVENT`` live with the rest of retry
in ``modelforge.policies.retry``.
"""

from __future__ import annotations

from modelforge._pipeline import CallAttempts, in_batch
from modelforge.delegating import DelegatingChatModel
from modelforge.policies.retry import (
    RETRY_EVENT,
    ProviderRetryConfig,
    ProviderRetryPolicy,
    RetryWrapper,
)
from modelforge.providers._managed import ManagedChatModel, managed_of

__all__ = [
    "RETRY_EVENT",
    "CallAttempts",
    "DelegatingChatModel",
    "ManagedChatModel",
    "ProviderRetryConfig",
    "ProviderRetryPolicy",
    "RetryWrapper",
    "in_batch",
    "managed_of",
]
