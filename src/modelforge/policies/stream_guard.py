"""The stream checks of a ``get_llm()`` model, for any LangChain chat model the stream helpers are given.

``modelforge.stream``, ``stream_events``, ``stream_to_file`` and ``StreamWrapper`` are public API for any
LangChain model. A ``get_llm()`` model runs its streams through ModelForge's pipeline: an SDK error becomes a
ModelForge error, and a stream cut before its finish reason raises ``StreamInterruptedError``. A model
ModelForge did not build (``ChatOpenAI(...)``, possibly under ``bind_tools``) is put inside a ``StreamGuard``
by ``guard_stream``, so it gets the same two steps: the stream-integrity step and the error translation
(``RetryStep`` with one attempt: no retries, which the user did not ask for, and no metrics, which count
ModelForge's own models).

Models ModelForge built or wrapped (``get_llm`` models, fallback chains, ``RetryWrapper``, ``with_cache``)
are returned unchanged; so is anything that is not a chat model (a chain ending in a parser).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableBinding

from modelforge._pipeline import Pipeline
from modelforge.delegating import DelegatingChatModel, ModelChain, PipelineChatModel, rebind
from modelforge.policies.retry import RetryStep
from modelforge.policies.stream_integrity import StreamIntegrityStep
from modelforge.providers._managed import ManagedChatModel
from modelforge.sections.retry import ProviderRetryConfig

__all__ = ["StreamGuard", "guard_stream"]

_ONE_ATTEMPT = ProviderRetryConfig(max_attempts=1)


# The LangChain packages whose chat models report a finish reason on every finished stream (the four SDK
# families ModelForge builds on): a stream of theirs that ends without one was cut.
_REPORTS_FINISH = ("langchain_openai", "langchain_anthropic", "langchain_ollama", "langchain_google_genai")


class StreamGuard(PipelineChatModel):
    """``wrapped_llm`` with the stream checks and error translation of a ``get_llm()`` model (no retries).

    A model of another package may never report a finish reason (LangChain's fake models, some community
    integrations): its streams are not required to end with one; its errors are still translated.
    """

    def current_pipeline(self) -> Pipeline:
        model = self.wrapped_llm
        label = str(getattr(model, "_llm_type", None) or type(model).__name__)
        alias = str(getattr(model, "model_name", None) or getattr(model, "model", None) or label)
        finishes = type(model).__module__.split(".", 1)[0] in _REPORTS_FINISH
        return Pipeline(
            [
                StreamIntegrityStep(label, alias, record_metrics=False, require_finish=finishes),
                RetryStep(config=_ONE_ATTEMPT, notify=False, require_finish=finishes),
            ]
        )


def _built_by_modelforge(model: BaseChatModel) -> bool:
    return isinstance(model, ManagedChatModel | DelegatingChatModel | ModelChain)


def guard_stream(runnable: Any) -> Any:
    """``runnable`` with a model ModelForge did not build (itself, or under ``bind``/``bind_tools``) put
    inside a ``StreamGuard``; anything else unchanged."""
    model = runnable
    while isinstance(model, RunnableBinding):
        model = model.bound
    if not isinstance(model, BaseChatModel) or _built_by_modelforge(model):
        return runnable
    guarded = StreamGuard(wrapped_llm=model)
    return guarded if model is runnable else rebind(runnable, model, guarded)
