"""``OptimizedChatModel``: a provider's optimizer around a chat model ModelForge did not build.

``optimize()`` on a ``get_llm`` model adds the optimizer to that model's own pipeline (after the response
cache, before retries: ``modelforge.pipeline``); around any other model it returns this wrapper, which
runs the same ``OptimizeStep`` (``modelforge.optimizers._step``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from modelforge._pipeline import Pipeline
from modelforge.delegating import PipelineChatModel
from modelforge.optimizers._base import RequestOptimizer
from modelforge.optimizers._families import optimizer_for
from modelforge.optimizers._step import OptimizeStep, refused_as_bad
from modelforge.sections.optimizations import OptimizationConfig

__all__ = ["OptimizedChatModel", "refused_as_bad"]


class OptimizedChatModel(PipelineChatModel):
    """Forwards to ``wrapped_llm`` the calls ``optimizer`` prepared."""

    optimizer: RequestOptimizer

    def current_pipeline(self) -> Pipeline:
        return Pipeline([OptimizeStep(self.optimizer)])

    def __repr__(self) -> str:
        return f"OptimizedChatModel({self.optimizer!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        optimizer = self.optimizer
        return (
            _rebuild,
            (
                self.wrapped_llm,
                optimizer.config,
                optimizer.provider_name,
                optimizer.model_name,
                optimizer.llm_type,
            ),
        )

    def cache_identity(self) -> dict[str, Any]:
        """The optimizer's effective settings as plain JSON data, for the response cache's key."""
        return self.optimizer.cache_identity()

    def close(self) -> None:
        """Release what the optimizer holds at the provider (Gemini cached contents)."""
        self.optimizer.close()

    async def aclose(self) -> None:
        await self.optimizer.aclose()


def _rebuild(
    wrapped: BaseChatModel, config: OptimizationConfig, provider_name: str, model_name: str, llm_type: str
) -> BaseChatModel:
    optimizer = optimizer_for(llm_type, config, provider_name=provider_name, model_name=model_name)
    if optimizer is None:
        return wrapped
    return OptimizedChatModel(
        wrapped_llm=wrapped, optimizer=optimizer, callbacks=getattr(wrapped, "callbacks", None)
    )
