"""``FallbackProvider``: a provider object whose calls move to the next provider when one fails.

::

    provider = FallbackProvider(primary=create_provider(openai_config),
                                fallback=create_provider(ollama_config))
    reply = await provider.chat(messages)        # openai; on a 503, a timeout or an open circuit: ollama

It is a ``ChatProvider`` over ``FallbackChatModel`` (``modelforge.policies.fallback``): the same decisions
on which failures move on, the same per-provider circuit breakers, the same stream restarts; each member
keeps its own retry, rate limit, cache and observers. Per-call options go to every member that takes
them (``num_ctx`` reaches the Ollama member only); an option no member takes is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel

from modelforge.assistant.compression import CompressionConfig
from modelforge.assistant.provider import ChatProvider
from modelforge.exceptions import InvalidInputError
from modelforge.policies.circuit import CircuitBreakerRegistry
from modelforge.policies.fallback import FallbackChatModel

__all__ = ["FallbackProvider"]


class FallbackProvider(ChatProvider):
    """``primary``, then each of ``fallback`` (one provider or a list) in order."""

    def __init__(
        self,
        primary: ChatProvider,
        fallback: ChatProvider | Sequence[ChatProvider],
        *,
        restart_streams: bool = True,
        circuit_breakers: CircuitBreakerRegistry | None = None,
        compression: CompressionConfig | None = None,
        logger: logging.Logger | None = None,
        callbacks: Any = None,
        tracing: bool | None = False,
        tracer_provider: Any = None,
    ) -> None:
        members = [primary, *([fallback] if isinstance(fallback, ChatProvider) else list(fallback))]
        for member in members:
            if not isinstance(member, ChatProvider):
                raise InvalidInputError(
                    f"FallbackProvider takes providers, got {type(member).__name__}",
                    suggestion="Pass providers from create_provider(...).",
                )
        if len(members) < 2:
            raise InvalidInputError(
                "FallbackProvider needs at least one fallback provider",
                suggestion="Pass fallback=create_provider(...) (or a list of them).",
            )
        self.providers = members
        llm: BaseChatModel = FallbackChatModel(
            models=[member.llm for member in members],
            restart_streams=restart_streams,
            circuit_breakers=circuit_breakers,
        )
        if logger is not None or callbacks is not None or tracing:
            from modelforge.telemetry.observability import observe

            llm = observe(
                llm,
                provider=primary.provider_name,
                model=primary.model_alias,
                logger=logger,
                callbacks=callbacks,
                tracing=tracing,
                tracer_provider=tracer_provider,
            )
        super().__init__(
            llm,
            provider_name=primary.provider_name,
            model_alias=primary.model_alias,
            llm_type=primary.llm_type,
            registry=None,
            compression=compression,
        )

    def __repr__(self) -> str:
        return f"FallbackProvider({' -> '.join(member.name for member in self.providers)})"

    @property
    def name(self) -> str:
        return " -> ".join(member.name for member in self.providers)

    async def aclose(self) -> None:
        """Close the members' pooled connections (those built from a ``ModelConfig``)."""
        for member in self.providers:
            await member.aclose()

    def close(self) -> None:
        for member in self.providers:
            member.close()

    def _batch_concurrency(self) -> int:
        return self.providers[0]._batch_concurrency()
