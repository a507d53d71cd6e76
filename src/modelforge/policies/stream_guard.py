"""The stream checks of a ``get_llm()`` model, for any LangChain chat model the stream helpers are given.

``modelforge.stream``, ``stream_events``, ``stream_to_file`` and ``StreamWrapper`` are public API for any
LangChain model. A ``get_llm()`` model runs its streams through ModelForge's pipeline: an SDK error becomes a
ModelForge error, and a stream cut before its finish reason raises ``StreamInterruptedError``. For a model
ModelForge did not build (``ChatOpenAI(...)``, possibly under ``bind_tools``), ``guarded_astream`` reads the
model's own public ``astream`` (its callbacks, tags, rate limiter and ``disable_streaming`` as LangChain
applies them) and checks what comes out the same way:

* an error becomes the ModelForge error of the model's SDK family (``ProviderFamily.translate_error``), or
  a ``StreamInterruptedError`` carrying the text when text had arrived;
* a stream of one of the four SDK families (``ChatOpenAI``, ``ChatAnthropic``, ``ChatOllama``,
  ``ChatGoogleGenerativeAI`` and their subclasses) that ends without a finish reason raises
  ``StreamInterruptedError``; other models (LangChain's fakes, community integrations) may never report
  one, so their streams end freely.

Nothing is retried (the user did not ask for it) and nothing is counted in ModelForge's metrics. Models
ModelForge built or wrapped, and runnables that are not chat models (a chain ending in a parser, a
``with_structured_output`` sequence), are streamed as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableBinding

from modelforge.delegating import DelegatingChatModel, ModelChain
from modelforge.policies.retry import reports_finish, sdk_family_name
from modelforge.policies.stream_integrity import StreamWatch
from modelforge.providers import get_family
from modelforge.providers._managed import ManagedChatModel

__all__ = ["guarded_astream"]


def _foreign_model(runnable: Any) -> BaseChatModel | None:
    """The chat model ModelForge did not build inside ``runnable`` (itself or under bindings), else None."""
    model = runnable
    while isinstance(model, RunnableBinding):
        model = model.bound
    if not isinstance(model, BaseChatModel):
        return None
    if isinstance(model, ManagedChatModel | DelegatingChatModel | ModelChain):
        return None
    return model


def guarded_astream(runnable: Any, prompt: Any, config: Any, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
    """``runnable.astream(prompt, config=config, **kwargs)``, checked as the module docstring says when it
    streams a chat model ModelForge did not build."""
    stream = runnable.astream(prompt, config=config, **kwargs)
    model = _foreign_model(runnable)
    if model is None:
        return cast(AsyncIterator[Any], stream)
    return _checked(cast(AsyncGenerator[Any, None], stream), model)


async def _checked(stream: AsyncGenerator[Any, None], model: BaseChatModel) -> AsyncIterator[Any]:
    label = str(getattr(model, "_llm_type", None) or type(model).__name__)
    alias = getattr(model, "model_name", None) or getattr(model, "model", None)
    watch = StreamWatch(label)
    try:
        async with contextlib.aclosing(stream):  # an early exit closes the model's stream too
            async for chunk in stream:
                watch.see_message(chunk)
                yield chunk
        if reports_finish(model):
            watch.check_end()
    except Exception as err:
        family = get_family(sdk_family_name(model) or "openai_compatible")
        translated = family.translate_error(
            err, provider=label, model=alias if isinstance(alias, str) else None
        )
        raised = watch.failed(translated)
        if raised is err:
            raise
        raise raised from err
