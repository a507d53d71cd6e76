"""A chat history that always fits the model's prompt budget.

::

    conversation = Conversation(max_tokens=4000, provider=provider, system_prompt="Be brief.")
    await conversation.add_user_message("Hello!")
    response = await conversation.continue_chat()
    async for chunk in conversation.stream_continue():
        print(chunk.content, end="")

``provider`` is any LangChain chat model (``ModelForgeRegistry().get_llm()``) or an object with ``.llm``.
The history holds user, assistant and tool messages (an assistant message's ``tool_calls`` and the
``ToolMessage`` results answering them) and images (URLs, data URLs or file paths, sent as LangChain image
content blocks, ``{"type": "image", "url" | "base64": ...}``). Every request sends the system prompt, the
compression summary if any, and the newest turns that fit ``max_tokens`` prompt tokens (counted by
``TokenCounter``; tool definitions bound to the model are not counted); a tool call is never separated from
its results. With a ``CompressionConfig`` the stored history itself is truncated or summarized once it grows
past the trigger (see ``compression``).
``save``/``load`` keep a conversation as JSON.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    messages_from_dict,
    messages_to_dict,
)

from modelforge._files import atomic_write_text
from modelforge.assistant.compression import (
    SUMMARY_HEADER,
    CompressionConfig,
    CompressionReport,
    compress_history,
    fit_newest,
    group_units,
    system_block,
)
from modelforge.assistant.images import ImageSource, image_blocks
from modelforge.assistant.tokens import TokenCounter
from modelforge.exceptions import FileValidationError, InvalidInputError, JsonDecodeError

__all__ = ["Conversation"]

FORMAT_VERSION = 1


class Conversation:
    """History with roles, tool messages and images, sent to a model within ``max_tokens`` prompt tokens."""

    def __init__(
        self,
        max_tokens: int = 4000,
        provider: Any = None,
        system_prompt: str | None = None,
        compression: CompressionConfig | None = None,
        token_counter: TokenCounter | None = None,
    ) -> None:
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            raise InvalidInputError(
                f"max_tokens must be a positive integer, got {max_tokens!r}",
                suggestion="Pass the prompt budget of the model, e.g. Conversation(max_tokens=4000, ...).",
            )
        self.max_tokens = max_tokens
        self.provider = provider
        self.llm: Any = getattr(provider, "llm", provider)
        self.compression = compression
        self.token_counter = token_counter or TokenCounter.for_llm(self.llm)
        self.last_compression: CompressionReport | None = None
        self._system_prompt = system_prompt
        self._summary: str | None = None
        self._history: list[BaseMessage] = []
        if compression is not None and compression.target_tokens >= self.trigger_tokens:
            raise InvalidInputError(
                f"Compression target_tokens ({compression.target_tokens}) must be below the trigger "
                f"({self.trigger_tokens})",
                suggestion="Lower target_tokens, or raise max_tokens or trigger_tokens.",
            )
        self._check_fits(self._system(), "The system prompt")

    def __repr__(self) -> str:
        return (
            f"Conversation(max_tokens={self.max_tokens}, messages={len(self._history)}, "
            f"summary={self._summary is not None})"
        )

    # --- reading ---------------------------------------------------------------------------------------

    @property
    def system_prompt(self) -> str | None:
        return self._system_prompt

    @property
    def summary(self) -> str | None:
        """The summary of compressed older turns (``summarize`` strategy), or None."""
        return self._summary

    @property
    def trigger_tokens(self) -> int:
        """History size (prompt tokens) above which compression runs."""
        if self.compression is None or self.compression.trigger_tokens is None:
            return self.max_tokens
        return self.compression.trigger_tokens

    @property
    def messages(self) -> list[BaseMessage]:
        """The whole stored history: system prompt, summary message (if any), then every turn."""
        head: list[BaseMessage] = [SystemMessage(self._system_prompt)] if self._system_prompt else []
        if self._summary:
            head.append(SystemMessage(f"{SUMMARY_HEADER}\n{self._summary}", name="summary"))
        return [*head, *self._history]

    @property
    def token_count(self) -> int:
        """Prompt tokens the whole stored history would take (before trimming)."""
        return self.token_counter.count_messages([*self._system(), *self._history])

    def prompt_messages(self) -> list[BaseMessage]:
        """What the next request sends: one system message, then the newest turns within ``max_tokens``."""
        system = self._system()
        if not self._history:
            return system
        budget = self.max_tokens - self.token_counter.count_messages(system)
        kept = fit_newest(group_units(self._history), budget, self.token_counter)
        return [*system, *(message for unit in kept for message in unit)]

    # --- adding ----------------------------------------------------------------------------------------

    async def add_user_message(
        self, content: str | list[Any], *, images: Sequence[ImageSource] = ()
    ) -> HumanMessage:
        """Append a user message; ``images`` are URLs, data URLs or image file paths."""
        blocks = await asyncio.to_thread(image_blocks, images) if images else []
        if blocks:
            text_blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            message = HumanMessage(content=[*text_blocks, *blocks])
        else:
            message = HumanMessage(content=content)
        self.append(message)
        return message

    async def add_assistant_message(
        self, content: str | list[Any] = "", *, tool_calls: Sequence[dict[str, Any]] = ()
    ) -> AIMessage:
        """Append an assistant answer; ``tool_calls`` as ``{"name", "args", "id"}`` (id made if absent)."""
        calls = [
            ToolCall(name=call["name"], args=dict(call.get("args", {})), id=call.get("id") or _call_id())
            for call in tool_calls
        ]
        message = AIMessage(content=content, tool_calls=calls)
        self.append(message)
        return message

    async def add_tool_result(
        self, tool_call_id: str, content: str | list[Any], *, name: str | None = None
    ) -> ToolMessage:
        """Append the result of one of the last assistant message's tool calls."""
        message = ToolMessage(content=content, tool_call_id=tool_call_id, name=name)
        self.append(message)
        return message

    def append(self, message: BaseMessage) -> None:
        """Append any LangChain message (tool results must answer an open tool call of the last answer)."""
        if isinstance(message, SystemMessage):
            raise InvalidInputError(
                "A conversation has one system prompt, set when it is created",
                suggestion="Pass system_prompt=... to Conversation(), or add the text as a user message.",
            )
        if isinstance(message, ToolMessage) and message.tool_call_id not in self._open_tool_calls():
            raise InvalidInputError(
                f"Tool result for {message.tool_call_id!r} answers no open tool call of the last assistant "
                "message",
                suggestion="Add the assistant message with its tool_calls first, and use one of their ids.",
            )
        self._check_fits([*self._system(), message], f"A {message.type} message")
        self._history.append(message)

    def reset(self) -> None:
        """Forget every turn and the summary; the system prompt, budget and settings stay."""
        self._history.clear()
        self._summary = None
        self.last_compression = None

    # --- asking the model ------------------------------------------------------------------------------

    async def continue_chat(self, **kwargs: Any) -> AIMessage:
        """Send the (compressed, trimmed) history, append the model's answer and return it."""
        prompt = await self._prepare()
        answer = await self._require_llm().ainvoke(prompt, **kwargs)
        message = _as_ai_message(answer)
        self._history.append(message)
        return message

    async def stream_continue(self, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        """Stream the answer; it is appended once the stream ends (an interrupted stream appends nothing)."""
        prompt = await self._prepare()
        whole: AIMessageChunk | None = None
        async for chunk in self._require_llm().astream(prompt, **kwargs):
            if not isinstance(chunk, AIMessageChunk):
                chunk = AIMessageChunk(content=getattr(chunk, "content", str(chunk)))
            whole = chunk if whole is None else whole + chunk
            yield chunk
        self._history.append(_as_ai_message(whole if whole is not None else AIMessageChunk(content="")))

    async def compress(self, *, force: bool = False) -> CompressionReport | None:
        """Compress the stored history now if it is past the trigger (or ``force``); the report or None."""
        if self.compression is None:
            return None
        self._summary, self._history, report = await compress_history(
            self._history,
            self.compression,
            counter=self.token_counter,
            system_prompt=self._system_prompt,
            summary=self._summary,
            llm=self.llm,
            trigger_tokens=0 if force else self.trigger_tokens,
            max_prompt_tokens=self.max_tokens,
        )
        if report is not None:
            self.last_compression = report
        return report

    # --- saving ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The conversation as JSON-ready data (the model itself is not saved)."""
        return {
            "version": FORMAT_VERSION,
            "max_tokens": self.max_tokens,
            "system_prompt": self._system_prompt,
            "summary": self._summary,
            "compression": self.compression.to_dict() if self.compression else None,
            "messages": messages_to_dict(self._history),
        }

    def save(self, path: str | Path) -> None:
        """Write the conversation to ``path`` as JSON, atomically (owner-only permissions)."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        provider: Any = None,
        compression: CompressionConfig | None = None,
        token_counter: TokenCounter | None = None,
    ) -> Conversation:
        """A conversation saved by ``save``, talking to ``provider`` (compression: as saved unless given)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise FileValidationError(
                str(path), f"cannot be read ({err.strerror or err})", suggestion="Check the path."
            ) from err
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise JsonDecodeError(str(path), err.lineno, err.colno, err.msg) from err
        try:
            saved = data.get("compression")
            conversation = cls(
                max_tokens=data["max_tokens"],
                provider=provider,
                system_prompt=data.get("system_prompt"),
                compression=compression or (CompressionConfig(**saved) if saved else None),
                token_counter=token_counter,
            )
            conversation._summary = data.get("summary")
            conversation._history = list(messages_from_dict(data["messages"]))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise FileValidationError(
                str(path),
                f"is not a saved conversation ({type(err).__name__}: {err})",
                suggestion="Load a file written by Conversation.save().",
            ) from err
        return conversation

    # --- internals -------------------------------------------------------------------------------------

    def _system(self) -> list[BaseMessage]:
        return system_block(self._system_prompt, self._summary)

    def _open_tool_calls(self) -> set[str]:
        for message in reversed(self._history):
            if isinstance(message, AIMessage):
                answered = {
                    m.tool_call_id
                    for m in self._history[self._history.index(message) :]
                    if isinstance(m, ToolMessage)
                }
                return {call["id"] for call in message.tool_calls if call["id"]} - answered
            if not isinstance(message, ToolMessage):
                return set()
        return set()

    def _check_fits(self, messages: list[BaseMessage], what: str) -> None:
        tokens = self.token_counter.count_messages(messages)
        if tokens > self.max_tokens:
            raise InvalidInputError(
                f"{what} needs {tokens} prompt tokens (with the system prompt), more than "
                f"max_tokens={self.max_tokens}",
                suggestion="Raise max_tokens, or shorten the message or the system prompt.",
                details={"tokens": tokens, "max_tokens": self.max_tokens},
            )

    async def _prepare(self) -> list[BaseMessage]:
        self._require_llm()
        if self._open_tool_calls():
            raise InvalidInputError(
                f"Tool calls {sorted(self._open_tool_calls())} have no result yet",
                suggestion="Add each result with add_tool_result(tool_call_id, content) before continuing.",
            )
        if not self._history or not isinstance(self._history[-1], HumanMessage | ToolMessage):
            raise InvalidInputError(
                "The conversation has no user message or tool result to answer",
                suggestion="Add one first with add_user_message(...) or add_tool_result(...).",
            )
        await self.compress()
        return self.prompt_messages()

    def _require_llm(self) -> Any:
        if self.llm is None:
            raise InvalidInputError(
                "This conversation has no model to talk to",
                suggestion="Pass provider=... (a chat model or a provider object) to Conversation().",
            )
        return self.llm


def _as_ai_message(answer: Any) -> AIMessage:
    if isinstance(answer, AIMessageChunk):
        return AIMessage(
            content=answer.content,
            tool_calls=answer.tool_calls,
            response_metadata=answer.response_metadata,
            usage_metadata=answer.usage_metadata,
            id=answer.id,
        )
    if isinstance(answer, AIMessage):
        return answer
    return AIMessage(content=getattr(answer, "content", str(answer)))


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]
