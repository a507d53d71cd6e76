"""Cost tracking: what each model call cost and the running total, from the bundled catalogue's prices.

::

    tracker = CostTracker(llm, budget=0.50)          # any LangChain chat model, or a provider with ``.llm``
    answer = await tracker.chat(messages)             # ``invoke`` is the sync twin
    async with contextlib.aclosing(tracker.stream(messages)) as chunks:
        async for chunk in chunks:
            print(chunk.content, end="")
    print(f"Cost: ${tracker.total_cost:.4f}")         # tracker.calls: one CallCost per call
    print(tracker.summary())

Prices are US dollars per million tokens from the models.dev snapshot, looked up by exact model id
(``price_usage`` in ``_cost_usage``, the same computation as ``modelforge.telemetry.calculate_cost``).
What is counted:

* prompt-cache reads and writes at their own prices (``usage_metadata["input_token_details"]``
  ``cache_read`` / ``cache_creation``; Anthropic's one-hour writes, ``ephemeral_1h_input_tokens``, at twice
  the input price);
* streamed calls, from the usage the stream reported (LangChain merges it into the last chunks);
* aborted streams (the caller stopped, or the stream broke): the tokens the provider reported, else the
  prompt estimated from its text and the output from the text received so far (``CallCost.estimated``);
  a stream is recorded when it is closed — at once with ``contextlib.aclosing``, or when it is collected;
* retries: ModelForge announces each one (the ``modelforge.retry`` callback event); ``attempts`` counts
  them, and a failed attempt the provider did not bill costs nothing;
* answers from ModelForge's response cache (``response_metadata["modelforge_cache"]`` is ``hit`` or
  ``stale``): cost 0;
* provider batch-API results (``add_batch(results, via_batch_api=True)``): half price.

With ``budget`` (dollars), a call that would start once ``total_cost >= budget`` raises
``BudgetExceededError`` before any request is sent. Calls already running when the budget is reached finish
and are counted, so the total can pass the budget by what those calls cost.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from modelforge._chunks import RETRY_EVENT
from modelforge.assistant._cost_records import CallCost, CallKind, CostSummary
from modelforge.assistant._cost_usage import (
    Usage,
    estimate_tokens,
    identify,
    price_usage,
    prompt_text,
    reported_model,
    served_from_cache,
    usage_of,
)
from modelforge.catalog import Catalog
from modelforge.catalog.prices import BATCH_API_DISCOUNT
from modelforge.exceptions import (
    InvalidInputError,
    ModelForgeError,
    NetworkTimeoutError,
    StreamInterruptedError,
)

__all__ = ["BATCH_API_DISCOUNT", "BudgetExceededError", "CallCost", "CallKind", "CostSummary", "CostTracker"]

# Provider batch APIs (OpenAI Batch API, Anthropic Message Batches) bill half the regular price.


class BudgetExceededError(ModelForgeError):
    """The tracker's budget is spent; no further call was sent. ``budget`` and ``spent`` are in dollars."""

    default_code = "BUDGET_EXCEEDED"

    def __init__(self, budget: float, spent: float, **kwargs: Any) -> None:
        kwargs.setdefault(
            "suggestion",
            "Raise the budget (tracker.budget = ...), or start a new CostTracker for further calls.",
        )
        super().__init__(
            f"The cost budget of ${budget:.4f} is spent (${spent:.4f} so far); the call was not sent",
            details={"budget": budget, "spent": spent},
            **kwargs,
        )
        self.budget = budget
        self.spent = spent


class _RetryCounter(BaseCallbackHandler):
    """Counts the ``modelforge.retry`` events of one call."""

    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self.retries = 0

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == RETRY_EVENT:
            self.retries += 1


def _with_handler(config: Any, handler: BaseCallbackHandler) -> dict[str, Any]:
    """A copy of a LangChain run ``config`` with ``handler`` added to its callbacks."""
    merged: dict[str, Any] = dict(config or {})
    callbacks = merged.get("callbacks")
    if callbacks is None:
        merged["callbacks"] = [handler]
    elif isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.add_handler(handler, inherit=True)
        merged["callbacks"] = manager
    else:
        merged["callbacks"] = [*callbacks, handler]
    return merged


class CostTracker:
    """Calls a chat model and records what each call cost; see the module docstring.

    ``provider_or_llm`` is a LangChain ``BaseChatModel`` (``ModelForgeRegistry().get_llm()``) or an object
    with one as ``.llm``. ``provider`` / ``model`` override the names the price is looked up by (by default
    ModelForge's provider name and the API model id, or LangChain's ``ls_provider`` / ``ls_model_name``).
    """

    def __init__(
        self,
        provider_or_llm: Any,
        budget: float | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        llm = getattr(provider_or_llm, "llm", provider_or_llm)
        if not isinstance(llm, BaseChatModel):
            raise InvalidInputError(
                f"CostTracker needs a LangChain chat model or an object with one as .llm, "
                f"got {type(provider_or_llm).__name__}",
                suggestion="Pass ModelForgeRegistry().get_llm(...) or a provider from create_provider(...).",
            )
        self.budget = _check_budget_value(budget)
        self.llm: BaseChatModel = llm
        found_provider, found_model = identify(llm)
        self.provider = provider or found_provider
        self.model = model or found_model
        self._catalog = catalog
        self._lock = threading.Lock()
        self._calls: list[CallCost] = []

    def __repr__(self) -> str:
        return (
            f"CostTracker(provider={self.provider!r}, model={self.model!r}, calls={len(self._calls)}, "
            f"total_cost={self.total_cost:.6f}, budget={self.budget!r})"
        )

    # --- results -----------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[CallCost]:
        """One ``CallCost`` per tracked call, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def total_cost(self) -> float:
        """Dollars spent over every tracked call."""
        with self._lock:
            return sum(call.cost for call in self._calls)

    def summary(self) -> CostSummary:
        """Totals over every tracked call (``str()`` of it is readable)."""
        calls = self.calls
        by_kind: dict[str, int] = {}
        for call in calls:
            by_kind[call.kind] = by_kind.get(call.kind, 0) + 1
        return CostSummary(
            total_cost=sum(c.cost for c in calls),
            calls=len(calls),
            attempts=sum(c.attempts for c in calls),
            input_tokens=sum(c.input_tokens for c in calls),
            output_tokens=sum(c.output_tokens for c in calls),
            cache_read_tokens=sum(c.cache_read_tokens for c in calls),
            cache_write_tokens=sum(c.cache_write_tokens for c in calls),
            by_kind=by_kind,
            unpriced_calls=sum(1 for c in calls if not c.priced),
            budget=self.budget,
        )

    def reset(self) -> None:
        """Forget every tracked call (the budget starts over)."""
        with self._lock:
            self._calls.clear()

    # --- calls -------------------------------------------------------------------------------------------

    async def chat(self, messages: Any, **kwargs: Any) -> BaseMessage:
        """``await llm.ainvoke(messages, **kwargs)``, recorded; ``BudgetExceededError`` first when spent."""
        self._check_budget()
        counter = _RetryCounter()
        config = _with_handler(kwargs.pop("config", None), counter)
        try:
            answer = await self.llm.ainvoke(messages, config=config, **kwargs)  # type: ignore[arg-type]
        except BaseException as err:
            self._record_failure(counter.retries, err)
            raise
        self.record(answer, prompt=messages, attempts=1 + counter.retries)
        return answer

    def invoke(self, messages: Any, **kwargs: Any) -> BaseMessage:
        """The sync twin of ``chat``."""
        self._check_budget()
        counter = _RetryCounter()
        config = _with_handler(kwargs.pop("config", None), counter)
        try:
            answer = self.llm.invoke(messages, config=config, **kwargs)  # type: ignore[arg-type]
        except BaseException as err:
            self._record_failure(counter.retries, err)
            raise
        self.record(answer, prompt=messages, attempts=1 + counter.retries)
        return answer

    def stream(self, messages: Any, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        """``llm.astream(messages, **kwargs)``, recorded when it ends or is closed (``aborted`` if early).

        The budget is checked here, before the stream is created.
        """
        self._check_budget()
        return self._stream(messages, kwargs)

    async def _stream(self, messages: Any, kwargs: dict[str, Any]) -> AsyncIterator[AIMessageChunk]:
        counter = _RetryCounter()
        config = _with_handler(kwargs.pop("config", None), counter)
        merged: AIMessageChunk | None = None
        finished = False
        refused: BaseException | None = None
        inner = self.llm.astream(messages, config=config, **kwargs)  # type: ignore[arg-type]
        try:
            async for chunk in inner:
                if isinstance(chunk, AIMessageChunk):
                    merged = chunk if merged is None else merged + chunk
                yield chunk
            finished = True
        except ModelForgeError as err:
            # Refused before any chunk (a 400, a 5xx...): nothing was generated, nothing billed.
            if merged is None and not isinstance(err, StreamInterruptedError | NetworkTimeoutError):
                refused = err
            raise
        finally:
            try:
                await inner.aclose()  # type: ignore[attr-defined]
            finally:
                attempts = 1 + counter.retries
                if finished:
                    self.record(merged, prompt=messages, kind="stream", attempts=attempts)
                elif refused is not None:
                    self._record_failure(counter.retries, refused, kind="stream")
                else:
                    self._record_aborted(merged, messages, attempts)

    def add_batch(
        self,
        results: Iterable[Any],
        *,
        via_batch_api: bool = True,
        provider: str | None = None,
        model: str | None = None,
    ) -> list[CallCost]:
        """Record the answers of a batch (``modelforge.batch`` ``BatchResult``s or ``AIMessage``s).

        With ``via_batch_api`` (the results came from a provider batch API) each is billed at half price.
        Failed items cost nothing and are skipped.
        """
        recorded: list[CallCost] = []
        for result in results:
            message = result if isinstance(result, BaseMessage) else getattr(result, "message", None)
            if not isinstance(message, AIMessage):
                continue
            recorded.append(
                self.record(
                    message,
                    kind="batch",
                    discount=BATCH_API_DISCOUNT if via_batch_api else 0.0,
                    provider=provider,
                    model=model,
                )
            )
        return recorded

    # --- recording ---------------------------------------------------------------------------------------

    def record(
        self,
        message: BaseMessage | None,
        *,
        prompt: Any = None,
        kind: CallKind = "invoke",
        attempts: int = 1,
        discount: float = 0.0,
        provider: str | None = None,
        model: str | None = None,
    ) -> CallCost:
        """Record an answer obtained elsewhere; its usage is estimated from ``prompt`` and the answer's text
        when the provider reported none."""
        usage = usage_of(message)
        estimated = usage is None
        if usage is None:
            text = message.text if message is not None else ""
            usage = Usage(
                estimate_tokens(prompt_text(prompt) if prompt is not None else ""), estimate_tokens(text)
            )
        return self._add(
            usage,
            kind=kind,
            attempts=attempts,
            estimated=estimated,
            message=message,
            discount=discount,
            provider=provider,
            model=model,
        )

    def _record_aborted(self, merged: AIMessageChunk | None, prompt: Any, attempts: int) -> None:
        reported = usage_of(merged) or Usage()
        received = estimate_tokens(merged.text if merged is not None else "")
        if reported.input_tokens:
            input_tokens, estimated = reported.input_tokens, reported.output_tokens < received
        else:
            input_tokens, estimated = estimate_tokens(prompt_text(prompt)), True
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=max(reported.output_tokens, received),
            cache_read_tokens=reported.cache_read_tokens,
            cache_write_tokens=reported.cache_write_tokens,
            cache_write_1h_tokens=reported.cache_write_1h_tokens,
        )
        self._add(usage, kind="aborted", attempts=attempts, estimated=estimated, message=merged)

    def _record_failure(self, retries: int, err: BaseException, kind: CallKind = "invoke") -> None:
        """A call that failed with no answer: the provider billed nothing; its attempts are counted."""
        self._add(Usage(), kind=kind, attempts=1 + retries, estimated=False, message=None, error=err)

    def _add(
        self,
        usage: Usage,
        *,
        kind: CallKind,
        attempts: int,
        estimated: bool,
        message: BaseMessage | None,
        discount: float = 0.0,
        provider: str | None = None,
        model: str | None = None,
        error: BaseException | None = None,
    ) -> CallCost:
        provider = provider or self.provider
        model = model or self.model
        cache = served_from_cache(message)
        if cache is not None:
            cost: float | None = 0.0
        else:
            cost = price_usage(
                provider, model, usage, other_names=[reported_model(message)], catalog=self._catalog
            )
        call = CallCost(
            provider=provider,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost=(cost or 0.0) * (1.0 - discount),
            kind=kind,
            attempts=attempts,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            estimated=estimated,
            priced=cost is not None,
            cache=cache,
            discount=discount,
            error=type(error).__name__ if error is not None else None,
        )
        with self._lock:
            self._calls.append(call)
        return call

    def _check_budget(self) -> None:
        if self.budget is None:
            return
        spent = self.total_cost
        if spent >= self.budget:
            raise BudgetExceededError(self.budget, spent, provider=self.provider)


def _check_budget_value(budget: float | None) -> float | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget >= 0:
        raise InvalidInputError(
            f"budget must be a number of dollars >= 0, or None for no budget; got {budget!r}",
            suggestion="Pass e.g. CostTracker(llm, budget=1.50).",
        )
    return float(budget)
