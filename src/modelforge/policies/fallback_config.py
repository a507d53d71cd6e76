"""Fallback chains from the config: a provider's ``fallbacks`` list, validated, built into a chain.

::

    providers:
      openai:
        models: {gpt-4o-mini: {}}
        fallbacks: ["anthropic", {provider: ollama, model: "qwen3:1.7b"}]

Each entry names a configured provider, as a string (its model is the provider's only model, else the
config's current model when that is on this provider) or as ``{provider, model}`` (``model`` is an alias
under that provider). The list is checked when the chain is built; a mistake raises
``ConfigurationValidationError`` naming the file, the key (``providers.openai.fallbacks[1]``) and what is
allowed there. Only the first model's ``fallbacks`` are followed: a fallback's own list is not (no nested
chains, no cycles).

``build_fallback_chain(registry, provider, alias, *, primary=None, build=None)`` returns the
``FallbackChatModel`` (or the primary alone when the list is empty or absent). ``primary`` is the model
already built for ``provider``/``alias``; ``build(provider, alias)`` builds each fallback (default:
``registry.get_llm``). Called from inside ``get_llm``, a nested call (``get_llm`` building a fallback calls
``build_fallback_chain`` again) returns its ``primary`` unchanged, so ``get_llm`` may use itself as
``build``. Inside ``with no_fallbacks():`` every ``build_fallback_chain`` call does the same (a model alone,
whatever its config says).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel

from modelforge.exceptions import ConfigurationValidationError
from modelforge.policies.fallback import FallbackChatModel

if TYPE_CHECKING:
    from modelforge.registry import ModelForgeRegistry

__all__ = ["FallbackTarget", "build_fallback_chain", "no_fallbacks", "parse_fallbacks"]

Builder = Callable[[str, str], BaseChatModel]

_BUILDING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "modelforge_building_fallbacks", default=False
)


@contextmanager
def no_fallbacks() -> Iterator[None]:
    """Inside it, ``build_fallback_chain`` (so ``get_llm``) gives each model alone, without its fallbacks."""
    token = _BUILDING.set(True)
    try:
        yield
    finally:
        _BUILDING.reset(token)


@dataclass(frozen=True, slots=True)
class FallbackTarget:
    """One entry of a ``fallbacks`` list: a configured provider and one of its model aliases."""

    provider: str
    model: str


def parse_fallbacks(
    provider_name: str,
    model_alias: str,
    entries: Sequence[Any] | None,
    providers: Mapping[str, Sequence[str]],
    *,
    current: tuple[str, str] | None = None,
    source: str = "config",
) -> list[FallbackTarget]:
    """The targets of ``provider_name``'s ``fallbacks`` list, checked against ``providers`` (name -> aliases).

    ``current`` is the config's current (provider, alias); ``source`` names the file in errors.
    """
    if entries is None:
        return []
    base = f"providers.{provider_name}.fallbacks"
    if not isinstance(entries, list | tuple):
        raise _invalid(source, base, "must be a list of provider names or {provider, model} entries")
    targets: list[FallbackTarget] = []
    seen = {(provider_name, model_alias)}
    for position, entry in enumerate(entries):
        key = f"{base}[{position}]"
        target = _target(entry, key, providers, current, source)
        if (target.provider, target.model) in seen:
            itself = target.provider == provider_name and target.model == model_alias
            what = "the model itself" if itself else "an earlier entry"
            raise _invalid(source, key, f"'{target.provider}/{target.model}' repeats {what}")
        seen.add((target.provider, target.model))
        targets.append(target)
    return targets


def _target(
    entry: Any,
    key: str,
    providers: Mapping[str, Sequence[str]],
    current: tuple[str, str] | None,
    source: str,
) -> FallbackTarget:
    known = ", ".join(sorted(providers)) or "(none)"
    name: Any
    model: Any
    if isinstance(entry, str):
        name, model = entry, None
    elif isinstance(entry, Mapping):
        unknown = sorted(set(entry) - {"provider", "model"})
        if unknown:
            raise _invalid(source, key, f"unknown key(s) {', '.join(unknown)}; allowed: provider, model")
        name, model = entry.get("provider"), entry.get("model")
        if model is not None and not (isinstance(model, str) and model):
            raise _invalid(source, f"{key}.model", "must be a model alias (a non-empty string)")
    else:
        raise _invalid(source, key, "must be a provider name or {provider: ..., model: ...}")
    if not (isinstance(name, str) and name):
        raise _invalid(source, f"{key}.provider", f"must name a configured provider: {known}")
    if name not in providers:
        raise _invalid(source, key, f"provider '{name}' is not configured; configured providers: {known}")
    aliases = list(providers[name])
    if model is None:
        if len(aliases) == 1:
            model = aliases[0]
        elif current is not None and current[0] == name:
            model = current[1]
        else:
            choices = ", ".join(sorted(aliases)) or "(none configured)"
            raise _invalid(
                source,
                key,
                f"provider '{name}' has {len(aliases)} models; say which: {{provider: {name}, "
                f"model: <one of {choices}>}}",
            )
    elif model not in aliases:
        choices = ", ".join(sorted(aliases)) or "(none configured)"
        raise _invalid(source, f"{key}.model", f"'{model}' is not a model of '{name}'; its models: {choices}")
    return FallbackTarget(name, model)


def _invalid(source: str, key: str, problem: str) -> ConfigurationValidationError:
    return ConfigurationValidationError(
        f"Invalid config in {source}: {key}: {problem}",
        context=source,
        suggestion="Fix the fallbacks list, or run `modelforge config show` to see the file as loaded.",
        details={"file": source, "key": key, "problems": [f"{key}: {problem}"]},
    )


def build_fallback_chain(
    registry: ModelForgeRegistry,
    provider_name: str,
    model_alias: str,
    *,
    primary: BaseChatModel | None = None,
    build: Builder | None = None,
    **settings: Any,
) -> BaseChatModel:
    """The chain for ``provider_name``/``model_alias`` from its config (see the module docstring).

    ``settings`` go to ``FallbackChatModel`` (``restart_streams``, ``use_circuit_breakers``...).
    """
    make: Builder = build if build is not None else (lambda name, alias: registry.get_llm(name, alias))
    if _BUILDING.get():  # a fallback being built: no chain of its own
        return primary if primary is not None else make(provider_name, model_alias)
    targets = _targets_of(registry, provider_name, model_alias)
    with no_fallbacks():
        first = primary if primary is not None else make(provider_name, model_alias)
        if not targets:
            return first
        others = [make(target.provider, target.model) for target in targets]
    return FallbackChatModel(models=[first, *others], **settings)


def _targets_of(registry: ModelForgeRegistry, provider_name: str, model_alias: str) -> list[FallbackTarget]:
    configured = registry.get_configured_providers()
    entries = configured.get(provider_name, {}).get("fallbacks")
    if not entries:
        return []
    providers = {name: list(data.get("models") or {}) for name, data in configured.items()}
    current = _current_model(registry)
    source = str(registry.config_path) if registry.config_path else "config"
    return parse_fallbacks(provider_name, model_alias, entries, providers, current=current, source=source)


def _current_model(registry: ModelForgeRegistry) -> tuple[str, str] | None:
    loaded = getattr(registry, "_loaded", None)
    selected = getattr(getattr(loaded, "config", None), "current_model", None)
    if selected is None:
        return None
    return (selected.provider, selected.model)
