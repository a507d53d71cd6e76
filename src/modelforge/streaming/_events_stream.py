"""``stream_events``: a model's answer as typed events, the same for every provider family.

::

    async for event in modelforge.stream_events(llm.bind_tools(tools), "Weather in Paris?"):
        match event:
            case TextDelta(text=text): print(text, end="")
            case ToolCallComplete(name=name, arguments=args): ...
            case StreamEnd(finish_reason=reason, usage=usage, cost=cost): ...
            case StreamError(error=err, partial_text=text): ...

Events come in this order: ``TextDelta`` and ``ToolCallDelta`` as chunks arrive, then on success every
``ToolCallComplete`` (arguments reassembled and parsed), ``Usage`` when the provider reported it, and
``StreamEnd`` (finish reason, full text, tool calls, usage, and the cost from the bundled models.dev prices
when the model is priced there). A failure — a timeout, a cut or dropped stream, an HTTP error — ends the
stream with one ``StreamError`` event carrying the error and the text received so far; nothing is raised
after the call itself, so a consumer sees exactly one ending. Timeouts, cleanup and early exit behave as
for ``stream``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from modelforge.catalog import LOCAL_PROVIDERS
from modelforge.catalog.prices import price_usage, usage_from_metadata
from modelforge.streaming._session import END, Limits, StreamSession, check_prompt, model_of, provider_of
from modelforge.streaming.events import EventAssembler, StreamEvent

__all__ = ["stream_events"]


def stream_events(
    llm: Runnable[Any, Any],
    prompt: Any,
    *,
    timeout: float | None = 300.0,
    idle_timeout: float | None = None,
    config: RunnableConfig | None = None,
    **kwargs: Any,
) -> AsyncGenerator[StreamEvent, None]:
    """Stream ``llm``'s answer to ``prompt`` as typed events (see the module docstring).

    ``timeout`` and ``idle_timeout`` as for ``stream``; ``config`` and ``kwargs`` go to ``llm.astream``.
    Arguments are checked at the call.
    """
    check_prompt(prompt)
    limits = Limits.checked(timeout, idle_timeout)
    return _run(llm, prompt, limits, config, kwargs)


async def _run(
    llm: Runnable[Any, Any],
    prompt: Any,
    limits: Limits,
    config: RunnableConfig | None,
    kwargs: dict[str, Any],
) -> AsyncGenerator[StreamEvent, None]:
    provider = provider_of(llm)
    assembler = EventAssembler(provider=provider)
    session = StreamSession(llm, prompt, limits=limits, config=config, kwargs=kwargs, provider=provider)
    closing: list[StreamEvent] = []
    try:
        while (chunk := await session.next_chunk()) is not END:
            for event in assembler.feed(chunk):
                yield event
        closing = assembler.finish(cost=await _cost(provider, model_of(llm), assembler))
    except Exception as err:
        closing = [assembler.error(err)]
    finally:
        await session.aclose()
    for event in closing:
        yield event


async def _cost(provider: str | None, model: str | None, assembler: EventAssembler) -> float | None:
    """The price of the stream's usage (``modelforge.catalog.prices.price_usage``, as ``CostTracker``
    prices it: cache reads and writes at their prices, the model id the provider reported as a second
    name), or None when the model has no known price.

    Looked up in a worker thread: the first use reads and indexes the catalogue file (tens of ms)."""
    usage = usage_from_metadata(assembler.usage_metadata)
    if provider is None or model is None or usage is None:
        return None
    if provider in LOCAL_PROVIDERS:
        return 0.0
    return await asyncio.to_thread(
        price_usage, provider, model, usage, other_names=[assembler.reported_model]
    )
