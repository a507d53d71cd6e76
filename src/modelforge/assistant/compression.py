"""Keeping a chat history within a token budget: trimming, truncation and summarization.

The history is cut in *units* that are never split: a message, or an assistant message with tool calls
together with every tool result answering it. ``fit_newest`` keeps the newest units that fit a budget (and
starts the kept part at a user message when it can, as some providers require); ``Conversation`` uses it for
every request, so what is sent never exceeds ``max_tokens``.

Compression changes the stored history once it grows past ``trigger_tokens``:

* ``truncate`` drops the oldest units until the history fits ``target_tokens``;
* ``summarize`` keeps the newest units that fit half of ``target_tokens`` and asks a model (the
  conversation's, or ``summary_model``) to fold the older ones, and the previous summary, into one summary,
  kept as one system-side message at the front. Long transcripts are summarized in pieces, each request
  within the prompt budget.

Each compression is reported as a ``CompressionReport`` (token counts before and after) and logged at INFO.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from modelforge.assistant.tokens import TokenCounter
from modelforge.exceptions import InvalidInputError

__all__ = [
    "CompressionConfig",
    "CompressionReport",
    "ContextBudgetError",
    "compress_history",
    "compress_messages",
    "fit_newest",
    "group_units",
    "system_block",
]

logger = logging.getLogger(__name__)

Strategy = Literal["truncate", "summarize"]
STRATEGIES: tuple[str, ...] = ("truncate", "summarize")
SUMMARY_HEADER = "Summary of the earlier conversation:"
SUMMARY_INSTRUCTIONS = (
    "You summarize conversations. Write a concise summary of the conversation below, keeping every fact, "
    "name, number, decision, open question and tool result that later turns may need. Fold the previous "
    "summary, if any, into the new one. Answer with the summary only."
)


class ContextBudgetError(InvalidInputError):
    """Messages that must be sent together do not fit the conversation's token budget."""

    default_code = "CONTEXT_BUDGET_EXCEEDED"


@dataclass(frozen=True)
class CompressionConfig:
    """How a history is compressed once it holds more than ``trigger_tokens`` (default: ``max_tokens``).

    ``summary_model``: the model that writes summaries; a chat model, a provider object with ``.llm``, or
    ``"provider/model"`` from the configuration (default: the conversation's own model).
    """

    strategy: Strategy = "truncate"
    target_tokens: int = 2000
    trigger_tokens: int | None = None
    summary_model: Any = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidInputError(
                f"Unknown compression strategy {self.strategy!r}",
                suggestion="Use strategy='truncate' or strategy='summarize'.",
            )
        if not isinstance(self.target_tokens, int) or self.target_tokens <= 0:
            raise InvalidInputError(
                f"target_tokens must be a positive integer, got {self.target_tokens!r}",
                suggestion="Pass the size the history should be compressed to, e.g. target_tokens=2000.",
            )
        if self.trigger_tokens is not None and (
            not isinstance(self.trigger_tokens, int) or self.trigger_tokens <= self.target_tokens
        ):
            raise InvalidInputError(
                f"trigger_tokens ({self.trigger_tokens!r}) must be an integer above target_tokens "
                f"({self.target_tokens})",
                suggestion="Raise trigger_tokens, lower target_tokens, or leave trigger_tokens at None.",
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON (``summary_model`` only when it is a ``"provider/model"`` string)."""
        model = self.summary_model if isinstance(self.summary_model, str) else None
        return {
            "strategy": self.strategy,
            "target_tokens": self.target_tokens,
            "trigger_tokens": self.trigger_tokens,
            "summary_model": model,
        }


@dataclass(frozen=True)
class CompressionReport:
    """What one compression did: prompt tokens of the whole history before and after."""

    strategy: str
    before_tokens: int
    after_tokens: int
    dropped_messages: int
    summary: str | None = None


def group_units(messages: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """``messages`` cut into units: a tool-calling assistant message stays with all of its results."""
    units: list[list[BaseMessage]] = []
    open_calls: set[str] = set()
    for message in messages:
        if isinstance(message, ToolMessage) and message.tool_call_id in open_calls and units:
            units[-1].append(message)
            open_calls.discard(message.tool_call_id)
            continue
        units.append([message])
        open_calls = (
            {call["id"] for call in message.tool_calls if call["id"]}
            if isinstance(message, AIMessage)
            else set()
        )
    return units


def system_block(system_prompt: str | None, summary: str | None) -> list[BaseMessage]:
    """The one system message sent first: the system prompt and the summary (none when both are empty)."""
    parts = [part for part in (system_prompt, f"{SUMMARY_HEADER}\n{summary}" if summary else None) if part]
    return [SystemMessage("\n\n".join(parts))] if parts else []


def fit_newest(
    units: Sequence[Sequence[BaseMessage]], budget: int, counter: TokenCounter
) -> list[list[BaseMessage]]:
    """The newest ``units`` whose messages cost at most ``budget`` tokens, starting at a user message if any.

    Raises ``ContextBudgetError`` when even the newest unit does not fit.
    """
    kept: list[list[BaseMessage]] = []
    used = 0
    for unit in reversed(units):
        cost = sum(counter.count_message(message) for message in unit)
        if used + cost > budget:
            if not kept:
                raise _too_big(unit, cost, budget)
            break
        kept.append(list(unit))
        used += cost
    kept.reverse()
    first_user = next((i for i, unit in enumerate(kept) if isinstance(unit[0], HumanMessage)), 0)
    return kept[first_user:]


def _too_big(unit: Sequence[BaseMessage], cost: int, budget: int) -> ContextBudgetError:
    what = "A tool call and its results" if len(unit) > 1 else f"A single {unit[0].type} message"
    return ContextBudgetError(
        f"{what} need {cost} tokens, more than the {budget} tokens left for the history in this "
        "conversation's budget",
        suggestion="Raise max_tokens, shorten the system prompt, or send a shorter message.",
        details={"message_tokens": cost, "budget_tokens": budget},
    )


async def compress_history(
    history: Sequence[BaseMessage],
    config: CompressionConfig,
    *,
    counter: TokenCounter,
    system_prompt: str | None = None,
    summary: str | None = None,
    llm: Any = None,
    trigger_tokens: int,
    max_prompt_tokens: int,
) -> tuple[str | None, list[BaseMessage], CompressionReport | None]:
    """``(summary, history, report)`` after compressing ``history`` if it holds more than ``trigger_tokens``.

    ``report`` is None when nothing was done. ``max_prompt_tokens`` bounds every summary request.
    """
    before = counter.count_messages([*system_block(system_prompt, summary), *history])
    if before <= trigger_tokens or not history:
        return summary, list(history), None
    units = group_units(history)
    if config.strategy == "truncate":
        fixed = counter.count_messages(system_block(system_prompt, summary))
        kept = _fit_or_none(units, config.target_tokens - fixed, counter)
    else:
        fixed = counter.count_messages(system_block(system_prompt, None))
        kept = _fit_or_none(units, (config.target_tokens - fixed) // 2, counter)
        older = [message for unit in units[: len(units) - len(kept)] for message in unit]
        if older:
            model = _summary_llm(config.summary_model, llm)
            summary = await summarize(
                model, older, summary, counter=counter, max_prompt_tokens=max_prompt_tokens
            )
    new_history = [message for unit in kept for message in unit]
    after = counter.count_messages([*system_block(system_prompt, summary), *new_history])
    report = CompressionReport(
        strategy=config.strategy,
        before_tokens=before,
        after_tokens=after,
        dropped_messages=len(history) - len(new_history),
        summary=summary if config.strategy == "summarize" else None,
    )
    logger.info(
        "Compressed the conversation (%s): %d -> %d prompt tokens, %d messages folded or dropped",
        config.strategy,
        before,
        after,
        report.dropped_messages,
    )
    return summary, new_history, report


async def compress_messages(
    messages: Sequence[BaseMessage],
    config: CompressionConfig,
    *,
    llm: Any,
    counter: TokenCounter | None = None,
    max_tokens: int | None = None,
) -> tuple[list[BaseMessage], CompressionReport | None]:
    """A one-shot prompt compressed by ``config`` (for ``provider.chat``); leading system messages stay."""
    counter = counter or TokenCounter.for_llm(llm)
    split = next((i for i, m in enumerate(messages) if not isinstance(m, SystemMessage)), len(messages))
    system = "\n\n".join(str(m.content) for m in messages[:split]) or None
    trigger = config.trigger_tokens or max_tokens or config.target_tokens + 1
    summary, history, report = await compress_history(
        messages[split:],
        config,
        counter=counter,
        system_prompt=system,
        llm=llm,
        trigger_tokens=trigger,
        max_prompt_tokens=max(trigger, config.target_tokens),
    )
    return [*system_block(system, summary), *history], report


def _fit_or_none(
    units: Sequence[Sequence[BaseMessage]], budget: int, counter: TokenCounter
) -> list[list[BaseMessage]]:
    try:
        return fit_newest(units, budget, counter)
    except ContextBudgetError:
        return []


def _summary_llm(summary_model: Any, default: Any) -> BaseChatModel:
    model = summary_model if summary_model is not None else default
    if isinstance(model, str):
        from modelforge.registry import ModelForgeRegistry

        provider, _, alias = model.partition("/")
        return ModelForgeRegistry().get_llm(provider, alias or None)
    if model is None:
        raise InvalidInputError(
            "No model to write the summary with",
            suggestion="Give the conversation a provider, or set CompressionConfig(summary_model=...).",
        )
    llm: BaseChatModel = getattr(model, "llm", model)
    return llm


async def summarize(
    llm: BaseChatModel,
    messages: Sequence[BaseMessage],
    previous: str | None,
    *,
    counter: TokenCounter,
    max_prompt_tokens: int,
) -> str:
    """One summary of ``previous`` and ``messages``, asked in pieces that each fit ``max_prompt_tokens``."""
    instructions = SystemMessage(SUMMARY_INSTRUCTIONS)
    lines = [_transcript_line(message) for message in messages]
    summary = previous
    while lines:
        head = _summary_request(summary, [])
        room = max_prompt_tokens - counter.count_messages([instructions, head])
        piece: list[str] = []
        used = 0
        while lines:
            cost = counter.count_text(lines[0] + "\n")
            if used + cost > room:
                if not piece:  # one line larger than the room: keep its beginning
                    piece.append(_clip(lines.pop(0), room, counter))
                break
            piece.append(lines.pop(0))
            used += cost
        answer = await llm.ainvoke([instructions, _summary_request(summary, piece)])
        summary = answer.text.strip() if isinstance(answer, BaseMessage) else str(answer).strip()
    return summary or ""


def _summary_request(previous: str | None, lines: Sequence[str]) -> HumanMessage:
    before = f"Previous summary:\n{previous}\n\n" if previous else ""
    return HumanMessage(before + "Conversation:\n" + "\n".join(lines))


def _clip(line: str, room: int, counter: TokenCounter) -> str:
    size = max(1, room) * 3  # characters: well under the room for any tokenizer
    while size > 1 and counter.count_text(line[:size] + "\n") > room:
        size //= 2
    return line[:size]


def _transcript_line(message: BaseMessage) -> str:
    role = {"human": "User", "ai": "Assistant", "system": "System", "tool": "Tool result"}.get(
        message.type, message.type
    )
    text = str(message.text)
    if not isinstance(message.content, str) and any(
        isinstance(b, dict) and b.get("type") in ("image", "image_url") for b in message.content
    ):
        text = (text + " [image]").strip()
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            text += f" [called {call['name']} with {json.dumps(call.get('args', {}), ensure_ascii=False)}]"
    return f"{role}: {text.strip()}"
