"""A scripted fake chat model for the streaming tests.

Fakes are the right tool here: these tests are about what the streaming layer does with a chunk sequence
(buffering, callbacks, timeouts, cleanup). Real SDKs over real HTTP are exercised by the provider tests
against the ``modelforge.testing`` servers; a fake lets us stall forever, go slow or fail mid-way on cue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field


class ScriptedChatModel(BaseChatModel):
    """Streams ``pieces``; can stall forever before piece ``stall_at``, sleep ``delay`` per piece, or raise
    ``error`` before piece ``fail_at``. ``events`` records "opened" and "closed" (its ``finally``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pieces: list[Any] = Field(default_factory=list)
    delay: float = 0.0
    stall_at: int | None = None
    fail_at: int | None = None
    error: BaseException | None = None
    events: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(p for p in self.pieces if isinstance(p, str))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.events.append("opened")
        try:
            for index, piece in enumerate(self.pieces):
                if index == self.stall_at:
                    await asyncio.Event().wait()  # never set: a server that says nothing
                if index == self.fail_at:
                    assert self.error is not None
                    raise self.error
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if self.stall_at == len(self.pieces):
                await asyncio.Event().wait()
        finally:
            self.events.append("closed")


async def eventually(condition: Callable[[], bool], within: float = 1.0) -> bool:
    """Let the loop run until ``condition()`` holds (async-generator finalisers run a tick or two late)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not condition():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.005)
    return True
