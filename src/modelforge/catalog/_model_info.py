"""The records a catalogue lookup hands back: ``ModelInfo`` and ``ProviderInfo``, and their dict forms.

``ModelInfo.to_dict()`` is the model shape ``ModelsDevClient`` returns and ``EnhancedLLM`` reads (2.3.0
keys kept: ``id``, ``provider``, ``display_name``, ``description``, ``capabilities``, ``context_length``,
``max_tokens``, ``pricing``). Prices are US dollars per million tokens; ``None`` means unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelforge.exceptions import InvalidInputError

__all__ = ["CAPABILITIES", "ModelInfo", "ProviderInfo", "normalise_capabilities"]

CAPABILITIES: tuple[str, ...] = (
    "reasoning",
    "function_calling",
    "multimodal",
    "vision",
    "audio",
    "video",
    "pdf",
    "structured_output",
)
_CAPABILITY_ALIASES = {
    "tools": "function_calling",
    "tool_call": "function_calling",
    "tool_calling": "function_calling",
    "functions": "function_calling",
    "image": "vision",
    "images": "vision",
    "attachment": "multimodal",
    "json": "structured_output",
}


def normalise_capabilities(capabilities: Iterable[str] | None) -> frozenset[str]:
    """The canonical capability names for ``capabilities``; ``InvalidInputError`` for an unknown one."""
    if capabilities is None:
        return frozenset()
    if isinstance(capabilities, str):
        capabilities = [capabilities]
    wanted = set()
    for raw in capabilities:
        name = str(raw).strip().lower().replace("-", "_")
        name = _CAPABILITY_ALIASES.get(name, name)
        if name not in CAPABILITIES:
            raise InvalidInputError(
                f"Unknown capability '{raw}'",
                suggestion="Use one of: " + ", ".join(CAPABILITIES),
                details={"capability": str(raw), "allowed": list(CAPABILITIES)},
            )
        wanted.add(name)
    return frozenset(wanted)


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One models.dev provider."""

    id: str
    name: str
    env: tuple[str, ...] = ()
    api: str | None = None
    doc: str | None = None
    model_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The 2.3.0 provider dict (``name`` is the id, ``display_name`` the human name) plus extras."""
        if self.id == "github-copilot":
            auth_types = ["device_flow"]
        elif any("KEY" in e or "TOKEN" in e for e in self.env):
            auth_types = ["api_key"]
        else:
            auth_types = ["none"]
        return {
            "id": self.id,
            "name": self.id,
            "display_name": self.name,
            "description": self.doc or self.name,
            "auth_types": auth_types,
            "base_urls": [self.api] if self.api else [],
            "env": list(self.env),
            "doc": self.doc,
            "model_count": self.model_count,
        }


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model at one provider, as models.dev describes it on ``snapshot_date``."""

    provider: str  # the models.dev provider id, e.g. "github-copilot"
    model: str  # the catalogue's model id that matched
    name: str
    context_length: int | None
    max_output_tokens: int | None
    input_per_1m: float | None
    output_per_1m: float | None
    cache_read_per_1m: float | None
    supports_function_calling: bool
    supports_vision: bool
    supports_reasoning: bool
    supports_structured_output: bool
    knowledge: str | None
    release_date: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    cache_write_per_1m: float | None = None
    family: str | None = None
    snapshot_date: str | None = None

    @classmethod
    def from_entry(
        cls, provider: str, model: str, entry: Mapping[str, Any], *, snapshot_date: str | None = None
    ) -> ModelInfo:
        """Build from one models.dev model entry (a private copy is kept in ``raw``)."""
        cost = _mapping(entry.get("cost"))
        limit = _mapping(entry.get("limit"))
        inputs = _mapping(entry.get("modalities")).get("input") or ()
        return cls(
            provider=provider,
            model=model,
            name=str(entry.get("name") or model),
            context_length=_int(limit.get("context")),
            max_output_tokens=_int(limit.get("output")),
            input_per_1m=_float(cost.get("input")),
            output_per_1m=_float(cost.get("output")),
            cache_read_per_1m=_float(cost.get("cache_read")),
            cache_write_per_1m=_float(cost.get("cache_write")),
            supports_function_calling=bool(entry.get("tool_call")),
            supports_vision="image" in inputs,
            supports_reasoning=bool(entry.get("reasoning")),
            supports_structured_output=bool(entry.get("structured_output")),
            knowledge=_str(entry.get("knowledge")),
            release_date=_str(entry.get("release_date")),
            family=_str(entry.get("family")),
            snapshot_date=snapshot_date,
            raw=_copy_json(entry),
        )

    @property
    def priced(self) -> bool:
        """Whether models.dev gives both the input and the output price."""
        return self.input_per_1m is not None and self.output_per_1m is not None

    @property
    def capabilities(self) -> list[str]:
        """Capability names (see ``CAPABILITIES``), in that order."""
        inputs = _mapping(self.raw.get("modalities")).get("input") or ()
        present = {
            "reasoning": self.supports_reasoning,
            "function_calling": self.supports_function_calling,
            "multimodal": bool(self.raw.get("attachment")),
            "vision": self.supports_vision,
            "audio": "audio" in inputs,
            "video": "video" in inputs,
            "pdf": "pdf" in inputs,
            "structured_output": self.supports_structured_output,
        }
        return [name for name in CAPABILITIES if present[name]]

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float | None:
        """US dollars for one call, or ``None`` when the price is unknown.

        ``input_tokens`` counts every prompt token, cached ones included (as OpenAI and LangChain report
        them); cached reads and writes are charged at their own price when models.dev gives one. Prompts
        above a context tier (``cost.tiers``) use that tier's prices.
        """
        prices = self._prices_for(input_tokens)
        price_in, price_out = prices.get("input"), prices.get("output")
        if price_in is None or price_out is None:
            return None
        cached = max(cache_read_tokens, 0) + max(cache_write_tokens, 0)
        plain = max(input_tokens - cached, 0)
        read_price = prices.get("cache_read", price_in)
        write_price = prices.get("cache_write", price_in)
        total = (
            plain * price_in
            + max(cache_read_tokens, 0) * (price_in if read_price is None else read_price)
            + max(cache_write_tokens, 0) * (price_in if write_price is None else write_price)
            + max(output_tokens, 0) * price_out
        )
        return total / 1_000_000

    def _prices_for(self, input_tokens: int) -> dict[str, float | None]:
        prices: dict[str, float | None] = {
            "input": self.input_per_1m,
            "output": self.output_per_1m,
            "cache_read": self.cache_read_per_1m,
            "cache_write": self.cache_write_per_1m,
        }
        best_size = 0
        for tier in _mapping(self.raw.get("cost")).get("tiers") or ():
            size = _int(_mapping(_mapping(tier).get("tier")).get("size")) or 0
            if input_tokens > size > best_size:
                best_size = size
                prices.update({k: _float(v) for k, v in tier.items() if k in prices})
        return prices

    def to_dict(self) -> dict[str, Any]:
        """The dict shape ``ModelsDevClient`` returns for a model (2.3.0 keys plus extras)."""
        modalities = _mapping(self.raw.get("modalities"))
        return {
            "id": self.model,
            "provider": self.provider,
            "name": self.name,
            "display_name": self.name,
            "description": self.description,
            "family": self.family,
            "capabilities": self.capabilities,
            "context_length": self.context_length,
            "max_tokens": self.max_output_tokens,
            "max_output_tokens": self.max_output_tokens,
            "pricing": {
                # 2.3.0's keys (USD per million tokens), then the same prices under the shorter names.
                "input_per_1m_tokens": self.input_per_1m,
                "output_per_1m_tokens": self.output_per_1m,
                "cache_read_per_1m_tokens": self.cache_read_per_1m,
                "cache_write_per_1m_tokens": self.cache_write_per_1m,
                "input_per_1m": self.input_per_1m,
                "output_per_1m": self.output_per_1m,
                "cache_read_per_1m": self.cache_read_per_1m,
                "cache_write_per_1m": self.cache_write_per_1m,
                "currency": "USD",
            },
            "modalities": {
                "input": list(modalities.get("input") or []),
                "output": list(modalities.get("output") or []),
            },
            "knowledge": self.knowledge,
            "release_date": self.release_date,
            "open_weights": self.raw.get("open_weights"),
            "status": self.raw.get("status"),
            "snapshot_date": self.snapshot_date,
        }

    @property
    def description(self) -> str:
        """A one-line summary, worded as 2.3.0 wrote it (scripts compare it): the kind of model, the input
        price per 1M tokens as models.dev gives it, the context size; the model's name for a text model
        with neither."""
        if self.supports_reasoning:
            parts = ["Reasoning model"]
        elif self.raw.get("attachment"):
            parts = ["Multimodal model"]
        else:
            parts = ["Text model"]
        price = _mapping(self.raw.get("cost")).get("input")
        if price:
            parts.append(f"${price}/1M input")
        if self.context_length:
            parts.append(f"{self.context_length // 1000}K context")
        description = ", ".join(parts)
        return str(self.raw.get("name", "Language model")) if description == "Text model" else description


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars); much faster than ``copy.deepcopy``."""
    if isinstance(value, Mapping):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(v) for v in value]
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _str(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None
