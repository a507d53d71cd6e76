"""The state behind ``modelforge chat``: the model, the conversation memory and what the calls cost.

``ChatSession`` holds the chosen model, a ``Conversation`` (the memory, trimmed to the prompt budget) and one
``CostTracker`` per model used (a tracker prices the calls of the model it wraps). ``send`` runs one turn on
an ``asyncio.Runner`` the caller keeps for the whole session, so the SDKs' async clients live on one loop:

* the user's line is added to the memory and the newest turns that fit the budget are sent, through the
  tracker (``tracker.stream`` / ``tracker.chat``), so every call is priced;
* a finished answer joins the memory;
* a failed call (any exception) leaves no trace in the memory: the user's line is taken out again;
* an answer stopped by Ctrl-C (the runner cancels the turn, the stream is closed and the tracker records it
  as ``aborted``, counting the tokens received) is kept when some text arrived, followed by
  ``INTERRUPTED_MARK`` so the model knows it was cut; with no text at all the user's line is taken out.

The default prompt budget is half the model's context length from the catalogue (the other half is left
for the answer), at most ``MAX_DEFAULT_BUDGET`` tokens (memory beyond that costs much and helps a chat
little), or ``FALLBACK_BUDGET`` when the catalogue does not know the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from modelforge.assistant.conversation import Conversation
from modelforge.assistant.costs import CallCost, CostTracker
from modelforge.exceptions import ModelNotFoundError

__all__ = [
    "FALLBACK_BUDGET",
    "INTERRUPTED_MARK",
    "MAX_DEFAULT_BUDGET",
    "ChatSession",
    "CostLine",
    "TurnOutcome",
    "default_budget",
]

FALLBACK_BUDGET = 4000
MAX_DEFAULT_BUDGET = 32_000
INTERRUPTED_MARK = "[answer interrupted by the user]"

TurnOutcome = Literal["answered", "interrupted", "interrupted-empty"]


def default_budget(provider: str, model_names: list[str]) -> int:
    """Prompt tokens a chat keeps by default for this model (see the module docstring)."""
    from modelforge.catalog import Catalog

    info = Catalog.bundled().lookup(provider, model_names)
    context = info.context_length if info is not None else None
    if not context:
        return FALLBACK_BUDGET
    return max(min(context // 2, MAX_DEFAULT_BUDGET), 1)


def _names(llm: Any) -> tuple[str | None, str | None]:
    """ModelForge's provider name and model alias of ``llm``, looking through wrappers."""
    current = llm
    for _ in range(32):
        provider, alias = getattr(current, "provider_name", None), getattr(current, "model_alias", None)
        if isinstance(provider, str) and isinstance(alias, str):
            return provider, alias
        current = getattr(current, "wrapped_llm", None)
        if current is None:
            break
    return None, None


@dataclass(frozen=True)
class CostLine:
    """The calls of one model in this session, totalled."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float
    priced: bool
    estimated: bool


@dataclass
class _Model:
    provider: str
    alias: str
    llm: Any
    tracker: CostTracker

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.alias}"


class ChatSession:
    """One chat: the current model, the conversation memory and the cost of every call so far."""

    def __init__(
        self,
        registry: Any,
        *,
        provider: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        max_tokens: int | None = None,
        stream: bool = True,
    ) -> None:
        self.registry = registry
        self.system_prompt = system_prompt
        self.stream = stream
        self._fixed_budget = max_tokens
        self._models: dict[str, _Model] = {}
        self.current = self._load(provider, model)
        self.conversation = self._new_conversation(self.current, [])

    # --- reading -----------------------------------------------------------------------------------------

    @property
    def max_tokens(self) -> int:
        """The prompt budget of the conversation (tokens)."""
        return self.conversation.max_tokens

    @property
    def history(self) -> list[BaseMessage]:
        """Every remembered turn (no system prompt)."""
        return [m for m in self.conversation.messages if not isinstance(m, SystemMessage)]

    def describe(self) -> str:
        """The current model, its API id and the prompt budget, in one line."""
        api_id = self.current.tracker.model
        shown = f" ({api_id})" if api_id and api_id != self.current.alias else ""
        return f"{self.current.label}{shown}, prompt budget {self.max_tokens:,} tokens"

    def calls(self) -> list[CallCost]:
        """Every call of the session that reached a model (failed ones cost nothing and are left out)."""
        return [call for m in self._models.values() for call in m.tracker.calls if call.error is None]

    def cost_lines(self) -> list[CostLine]:
        """Per model used: calls, tokens and dollars (``priced`` False: the catalogue has no price)."""
        lines = []
        for entry in self._models.values():
            calls = [call for call in entry.tracker.calls if call.error is None]
            if not calls:
                continue
            lines.append(
                CostLine(
                    model=entry.label,
                    calls=len(calls),
                    input_tokens=sum(c.input_tokens for c in calls),
                    output_tokens=sum(c.output_tokens for c in calls),
                    cost=sum(c.cost for c in calls),
                    priced=all(c.priced for c in calls),
                    estimated=any(c.estimated for c in calls),
                )
            )
        return lines

    @property
    def total_cost(self) -> float:
        return sum(call.cost for call in self.calls())

    # --- changing ----------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every turn; the system prompt and the costs so far stay."""
        self.conversation.reset()

    def switch(self, spec: str) -> str:
        """Talk to ``spec`` (``provider/alias`` or an alias) from now on, keeping the memory; its label.

        An unknown model raises the registry's error and leaves the session as it was.
        """
        provider, alias = self._parse(spec.strip())
        chosen = self._load(provider, alias)
        self.conversation = self._new_conversation(chosen, self.history)
        self.current = chosen
        return chosen.label

    # --- one turn ----------------------------------------------------------------------------------------

    def send(self, runner: asyncio.Runner, text: str, on_text: Callable[[str], None]) -> TurnOutcome:
        """Ask the model about ``text`` with the whole memory; ``on_text`` gets each piece of the answer.

        Errors propagate (the memory is as before the turn); Ctrl-C is reported as an outcome.
        """
        self.conversation.append(HumanMessage(content=text))  # too long for the budget: raises, nothing kept
        parts: list[str] = []
        try:
            runner.run(self._answer(parts, on_text))
        except KeyboardInterrupt:
            partial = "".join(parts)
            if not partial.strip():
                self._drop_last()
                return "interrupted-empty"
            self.conversation.append(AIMessage(content=f"{partial.rstrip()}\n{INTERRUPTED_MARK}"))
            return "interrupted"
        except BaseException:
            self._drop_last()
            raise
        self.conversation.append(AIMessage(content="".join(parts)))
        return "answered"

    async def _answer(self, parts: list[str], on_text: Callable[[str], None]) -> None:
        tracker = self.current.tracker
        prompt = self.conversation.prompt_messages()
        if not self.stream:
            answer = await tracker.chat(prompt)
            parts.append(answer.text)
            on_text(answer.text)
            return
        async for chunk in tracker.stream(prompt):
            piece = chunk.text
            if piece:
                parts.append(piece)
                on_text(piece)

    # --- internals ---------------------------------------------------------------------------------------

    def _load(self, provider: str | None, alias: str | None) -> _Model:
        llm = self.registry.get_llm(provider, alias)
        tracker = CostTracker(llm)
        found_provider, found_alias = _names(llm)
        label_provider = found_provider or tracker.provider
        label_alias = found_alias or alias or tracker.model
        key = f"{label_provider}/{label_alias}"
        if key in self._models:  # back to a model used before: its costs go on adding up
            return self._models[key]
        entry = _Model(label_provider, label_alias, llm, tracker)
        self._models[key] = entry
        return entry

    def _budget_for(self, entry: _Model) -> int:
        if self._fixed_budget is not None:
            return self._fixed_budget
        return default_budget(entry.tracker.provider, [entry.tracker.model, entry.alias])

    def _new_conversation(self, entry: _Model, history: list[BaseMessage]) -> Conversation:
        conversation = Conversation(
            max_tokens=self._budget_for(entry), provider=entry.llm, system_prompt=self.system_prompt
        )
        for message in history:
            conversation.append(message)
        return conversation

    def _drop_last(self) -> None:
        """Take the newest message out of the memory (the conversation has no pop: rebuild it)."""
        kept = self.history[:-1]
        conversation = Conversation(
            max_tokens=self.conversation.max_tokens,
            provider=self.conversation.provider,
            system_prompt=self.system_prompt,
            token_counter=self.conversation.token_counter,
        )
        for message in kept:
            conversation.append(message)
        self.conversation = conversation

    def _parse(self, spec: str) -> tuple[str, str]:
        """An alias of the current provider, else ``provider/alias``, else an alias only one provider has."""
        if self.registry.is_model_configured(self.current.provider, spec):
            return self.current.provider, spec
        provider, slash, alias = spec.partition("/")
        if slash and alias:
            return provider, alias  # the registry names the provider's models, or the configured providers
        configured = sorted(self.registry.get_configured_models())
        owners = [key.partition("/")[0] for key in configured if key.partition("/")[2] == spec]
        if len(owners) == 1:
            return owners[0], spec
        if not owners:
            raise ModelNotFoundError(
                self.current.provider,
                spec,
                suggestion=f"Configured models: {', '.join(configured) or '(none)'}. "
                "Use /model <provider>/<alias> or /model <alias>.",
            )
        raise ModelNotFoundError(
            self.current.provider,
            spec,
            suggestion=f"Several providers have '{spec}': name one, e.g. /model {owners[0]}/{spec}",
        )
