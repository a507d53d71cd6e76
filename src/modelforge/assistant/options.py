"""Per-call options, checked against the provider family and put where its LangChain SDK expects them.

``call_options("ollama", {"num_ctx": 8192, "max_tokens": 200}, leaf=chat_ollama)`` gives the keyword
arguments for ``llm.invoke``: Ollama's model options travel in one ``options`` dict (``num_ctx``, ``seed``,
``top_k``...; ``max_tokens`` becomes ``num_predict``), and since that dict replaces all of ``ChatOllama``'s
own options for the call, the model's own settings are carried into it. ``keep_alive`` and ``format`` stay
top-level. Gemini's output limit is ``max_output_tokens``. OpenAI-compatible servers take ``seed`` and the
sampling penalties as they are; Anthropic ``top_k``, ``metadata`` and ``thinking``.

An option the family does not know is an ``InvalidInputError`` listing the accepted ones (and naming the
family it belongs to, when it is another family's), so a typo never silently does nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelforge.exceptions import InvalidInputError
from modelforge.providers.ollama import OLLAMA_OPTION_FIELDS

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["ACCEPTED_OPTIONS", "accepted_options", "call_options", "family_of", "options_for"]

_COMMON = ("max_tokens", "temperature", "top_p", "stop")
_OPENAI = (
    *_COMMON,
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "parallel_tool_calls",
    "reasoning_effort",
    "service_tier",
)
ACCEPTED_OPTIONS: dict[str, tuple[str, ...]] = {
    "openai_compatible": _OPENAI,
    "github_copilot": _OPENAI,
    "local": (*_OPENAI, "top_k", "min_p", "repeat_penalty"),
    "anthropic": (*_COMMON, "top_k", "metadata", "thinking"),
    "ollama": tuple(dict.fromkeys((*_COMMON, *OLLAMA_OPTION_FIELDS, "keep_alive", "format"))),
    "google_genai": (
        *_COMMON,
        "top_k",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "safety_settings",
        "response_mime_type",
        "thinking_budget",
    ),
}


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(
            f"Option {name} must be a whole number > 0, got {value!r}", suggestion=f"e.g. {name}=1024"
        )


def _whole(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(
            f"Option {name} must be a whole number, got {value!r}", suggestion=f"e.g. {name}=42"
        )


def _number(low: float, high: float) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise InvalidInputError(
                f"Option {name} must be a number from {low:g} to {high:g}, got {value!r}",
                suggestion=f"e.g. {name}={(low + high) / 2:g}",
            )

    return check


def _stop(name: str, value: Any) -> None:
    if (
        isinstance(value, str)
        or not isinstance(value, list | tuple)
        or not all(isinstance(s, str) for s in value)
    ):
        raise InvalidInputError(
            f"Option stop must be a list of strings, got {value!r}", suggestion='e.g. stop=["\\n\\n"]'
        )


def _keep_alive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInputError(
            f"Option keep_alive must be a duration such as '10m' or a number of seconds, got {value!r}",
            suggestion='e.g. keep_alive="30m" (or -1 to keep the model loaded)',
        )


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "max_tokens": _positive_int,
    "num_ctx": _positive_int,
    "num_predict": _whole,
    "seed": _whole,
    "top_k": _positive_int,
    "temperature": _number(0.0, 2.0),
    "top_p": _number(0.0, 1.0),
    "stop": _stop,
    "keep_alive": _keep_alive,
}


def accepted_options(llm_type: str) -> tuple[str, ...]:
    """The per-call options a provider family takes."""
    return ACCEPTED_OPTIONS.get(llm_type, _COMMON)


def check_options(llm_type: str, provider: str, options: Mapping[str, Any]) -> None:
    """Raise ``InvalidInputError`` for an option ``llm_type`` does not take or a value of the wrong kind."""
    accepted = accepted_options(llm_type)
    for name, value in options.items():
        if name not in accepted:
            owners = [family for family, names in ACCEPTED_OPTIONS.items() if name in names]
            hint = f" ({name} is an option of {', '.join(owners)})" if owners else ""
            raise InvalidInputError(
                f"Unknown option {name!r} for provider '{provider}' ({llm_type}){hint}",
                suggestion="Accepted options: " + ", ".join(sorted(accepted)),
                details={"option": name, "accepted": sorted(accepted)},
            )
        check = _CHECKS.get(name)
        if check is not None and value is not None:
            check(name, value)


def call_options(
    llm_type: str, provider: str, options: Mapping[str, Any], *, leaf: Any = None
) -> dict[str, Any]:
    """``options`` checked and translated into ``invoke`` keyword arguments for ``llm_type``.

    ``leaf`` is the provider's own LangChain model (for Ollama, whose own options are carried over).
    """
    check_options(llm_type, provider, options)
    chosen = {name: value for name, value in options.items() if value is not None}
    if llm_type == "ollama":
        return _ollama(chosen, leaf)
    if llm_type == "google_genai" and "max_tokens" in chosen:
        chosen["max_output_tokens"] = chosen.pop("max_tokens")
    return chosen


def family_of(llm: Any) -> str | None:
    """The provider family (``llm_type``) of a model the registry built, or None when it cannot tell (a
    fallback chain: ``options_for`` asks each member)."""
    from modelforge.providers._managed import managed_of

    managed = managed_of(llm)
    return managed.forge.llm_type if managed is not None else None


def options_for(
    llm: BaseChatModel, provider: str, llm_type: str, options: Mapping[str, Any]
) -> tuple[BaseChatModel, dict[str, Any]]:
    """The model to call and its keyword arguments for ``options``.

    For a fallback chain (``FallbackChatModel``) each member gets the options its own family takes, put
    where its SDK expects them; an option that no member takes is an error.
    """
    from modelforge.delegating import innermost
    from modelforge.policies.fallback import FallbackChatModel, member_provider

    if not options:
        return llm, {}
    if not isinstance(llm, FallbackChatModel):
        return llm, call_options(llm_type, provider, options, leaf=innermost(llm))
    families = [family_of(member) or llm_type for member in llm.models]
    taken = {name for family in families for name in accepted_options(family)}
    unknown = sorted(set(options) - taken)
    if unknown:
        raise InvalidInputError(
            f"Unknown option {unknown[0]!r}: none of {' -> '.join(llm.labels)} takes it",
            suggestion="Accepted options: " + ", ".join(sorted(taken)),
        )
    existing = llm.member_kwargs or [{} for _ in llm.models]
    per_member = [
        {
            **existing[index],
            **call_options(
                family,
                member_provider(member),
                {k: v for k, v in options.items() if k in accepted_options(family)},
                leaf=innermost(member),
            ),
        }
        for index, (member, family) in enumerate(zip(llm.models, families, strict=True))
    ]
    return llm.model_copy(update={"member_kwargs": per_member}), {}


def _ollama(chosen: dict[str, Any], leaf: Any) -> dict[str, Any]:
    if "max_tokens" in chosen:
        chosen.setdefault("num_predict", chosen.pop("max_tokens"))
    model_options = {name: chosen.pop(name) for name in OLLAMA_OPTION_FIELDS if name in chosen}
    if not model_options:
        return chosen
    # ``options`` replaces all of ChatOllama's own options (and its stop list) for the call: carry them over.
    carried = {name: getattr(leaf, name, None) for name in OLLAMA_OPTION_FIELDS}
    merged = {name: value for name, value in carried.items() if value is not None}
    stop = chosen.pop("stop", None) or getattr(leaf, "stop", None)
    if stop:
        merged["stop"] = list(stop)
    merged.update(model_options)
    return {**chosen, "options": merged}
