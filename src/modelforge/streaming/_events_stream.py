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

from modelforge.streaming._session import END, Limits, StreamSession, check_prompt, model_of, provider_of
from modelforge.streaming.events import EventAssembler, StreamEvent, Usage

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
        closing = assembler.finish(cost=await _cost(provider, model_of(llm), assembler.usage()))
    except Exception as err:
        closing = [assembler.error(err)]
    finally:
        await session.aclose()
    for event in closing:
        yield event


async def _cost(provider: str | None, model: str | None, usage: Usage | None) -> float | None:
    """The price of ``usage`` from the bundled catalogue, or None when the model has no known price.

    Looked up in a worker thread: the first use reads and indexes the catalogue file (tens of ms)."""
    if provider is None or model is None or usage is None:
        return None
    from modelforge.catalog import LOCAL_PROVIDERS

    if provider in LOCAL_PROVIDERS:
        return 0.0
    return await asyncio.to_thread(_catalogue_cost, provider, model, usage)


def _catalogue_cost(provider: str, model: str, usage: Usage) -> float | None:
    from modelforge.catalog import Catalog

    info = Catalog.bundled().lookup(provider, [model])
    return None if info is None else info.cost(usage.input_tokens, usage.output_tokens)
