"""Token counts and prices for ``CostTracker``: reading a message's usage, estimating it, pricing it.

``Usage`` is what one call used: ``input_tokens`` counts every prompt token (cached reads and cache writes
included, as LangChain reports them), ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` that
Anthropic wrote to its one-hour cache (billed at twice the input price rather than the five-minute write
price). ``price_usage`` is the one price computation: the catalogue's entry for exactly the model
(``Catalog.lookup``, no substring guessing) and ``ModelInfo.cost`` — the same path the 2.3.0
``modelforge.telemetry.calculate_cost`` takes, so both give the same dollars for the same tokens.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages

from modelforge._chunks import CACHE_MARKER
from modelforge._token_estimate import tokens_in_text
from modelforge.catalog.prices import (
    ONE_HOUR_WRITE_MULTIPLIER,
    Usage,
    price_usage,
    reported_model_id,
    usage_from_metadata,
)

__all__ = [
    "ONE_HOUR_WRITE_MULTIPLIER",
    "Usage",
    "estimate_tokens",
    "identify",
    "price_usage",
    "prompt_text",
    "reported_model",
    "served_from_cache",
    "usage_of",
]


def usage_of(message: BaseMessage | None) -> Usage | None:
    """The usage the provider reported on ``message`` (``usage_metadata``), or None when it sent none."""
    if not isinstance(message, AIMessage):
        return None
    return usage_from_metadata(message.usage_metadata)


def estimate_tokens(text: str) -> int:
    """The one estimate (``modelforge._token_estimate``): four characters a token, rounded up; 0: no text."""
    return tokens_in_text(text)


def prompt_text(messages: Any) -> str:
    """All the text of a prompt (a string, messages, or anything ``convert_to_messages`` accepts)."""
    if isinstance(messages, str):
        return messages
    try:
        converted = convert_to_messages(messages)
    except (ValueError, TypeError, NotImplementedError):
        return str(messages)
    return "".join(message.text for message in converted)


def served_from_cache(message: BaseMessage | None) -> str | None:
    """``"hit"`` or ``"stale"`` when ModelForge's response cache answered, else None."""
    served = (getattr(message, "response_metadata", None) or {}).get(CACHE_MARKER)
    return str(served) if served in ("hit", "stale") else None


def reported_model(message: BaseMessage | None) -> str | None:
    """The model id the provider said answered, if any."""
    return reported_model_id(getattr(message, "response_metadata", None))


def identify(llm: BaseChatModel) -> tuple[str, str]:
    """``(provider, model)`` of a chat model: ModelForge's names when it is ours, LangChain's otherwise."""
    current: Any = llm
    for _ in range(32):  # walk DelegatingChatModel wrappers down to the model get_llm built
        forge: Any = getattr(current, "forge", None)
        if forge is not None and isinstance(getattr(forge, "provider_name", None), str):
            model = getattr(current, "model_id", None) or forge.model_alias
            return str(forge.provider_name), str(model or "")
        provider = getattr(current, "provider_name", None)
        if isinstance(provider, str):
            model = getattr(current, "model_id", None) or getattr(current, "model_alias", None)
            return provider, str(model or "")
        inner = getattr(current, "wrapped_llm", None)
        if inner is None:
            break
        current = inner
    try:
        params = llm._get_ls_params()
    except Exception:  # a model that cannot describe itself is still tracked, at no known price
        params = {}
    provider = str(params.get("ls_provider") or getattr(llm, "_llm_type", "unknown"))
    model = params.get("ls_model_name") or getattr(llm, "model_name", None) or getattr(llm, "model", None)
    return provider, str(model or "")
