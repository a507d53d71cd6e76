"""The records ``CostTracker`` keeps: ``CallCost`` for one call, ``CostSummary`` for the totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CallCost", "CallKind", "CostSummary"]

CallKind = Literal["invoke", "stream", "aborted", "batch"]


@dataclass(frozen=True, slots=True)
class CallCost:
    """One tracked call: its tokens, its cost in dollars and how it went.

    ``input_tokens`` counts every prompt token, cached reads and cache writes included. ``kind`` is
    ``invoke``, ``stream``, ``aborted`` (a stream that did not finish) or ``batch``. ``attempts`` counts
    ModelForge's retries too. ``estimated`` says some tokens were estimated from text; ``priced`` is False
    when the catalogue has no price for the model (``cost`` is then 0.0, not a sign the call was free);
    ``cache`` is ``"hit"``/``"stale"`` when the response cache answered; ``discount`` is the batch-API share
    taken off; ``error`` names the error type of a call that failed (it cost nothing).
    """

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: float
    kind: CallKind
    attempts: int = 1
    cache_write_1h_tokens: int = 0
    estimated: bool = False
    priced: bool = True
    cache: str | None = None
    discount: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CostSummary:
    """Totals over a tracker's calls; ``str()`` gives a few readable lines."""

    total_cost: float
    calls: int
    attempts: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    by_kind: dict[str, int] = field(default_factory=dict)
    unpriced_calls: int = 0
    budget: float | None = None

    @property
    def remaining(self) -> float | None:
        """Dollars left of the budget (never below 0), or None without a budget."""
        return None if self.budget is None else max(self.budget - self.total_cost, 0.0)

    def __str__(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.by_kind.items()))
        lines = [
            f"Cost: ${self.total_cost:.6f} over {self.calls} call(s)" + (f" ({kinds})" if kinds else ""),
            f"Tokens: {self.input_tokens:,} in ({self.cache_read_tokens:,} cached, "
            f"{self.cache_write_tokens:,} written to cache), {self.output_tokens:,} out",
            f"Attempts: {self.attempts}",
        ]
        if self.unpriced_calls:
            lines.append(f"{self.unpriced_calls} call(s) have no price in the catalogue (counted as $0)")
        if self.budget is not None:
            lines.append(f"Budget: ${self.budget:.4f}, ${self.remaining or 0.0:.4f} left")
        return "\n".join(lines)
