"""Adding and removing models in a config file: the logic shared by ``config add/remove`` and the wizard.

Known provider names (``modelforge.providers.KNOWN_PROVIDERS``) get their defaults; another name needs
``--base-url`` (an OpenAI-compatible server) or ``--llm-type``. Each change is one locked
read-modify-write of the chosen config file (``modelforge.config.update_config``); credentials go to the
credential store through ``modelforge.auth``, never into the config file (``store_credentials``, the step
after ``add_model`` in both ``config add`` and the wizard).

``modelforge.config``, ``modelforge.validation`` and ``modelforge.auth`` are imported inside the functions:
``modelforge --help`` loads this module and need not wait for pydantic and yaml.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from modelforge.cli._output import note, warn
from modelforge.exceptions import (
    ConfigurationError,
    ConfigurationNotFoundError,
    InvalidInputError,
    ModelNotFoundError,
)

__all__ = [
    "AddResult",
    "RemoveResult",
    "add_model",
    "canonical_provider",
    "find_provider",
    "hint_missing_credentials",
    "provider_entry",
    "provider_in_other_scope",
    "remove_model",
    "store_credentials",
]

AUTH_STRATEGIES = ("api_key", "device_flow", "none")


@dataclass(frozen=True)
class AddResult:
    """What ``add_model`` changed."""

    provider: str
    model: str
    path: Path
    entry: dict[str, Any]
    created_provider: bool
    updated_model: bool
    selected: bool


@dataclass(frozen=True)
class RemoveResult:
    """What ``remove_model`` changed."""

    provider: str
    model: str
    path: Path
    removed_provider: bool
    cleared_selection: bool


def canonical_provider(name: str) -> str:
    """The provider name as stored: stripped, lower-case, ``-`` as ``_`` (``GitHub-Copilot`` ->
    ``github_copilot``)."""
    from modelforge.validation import InputValidator

    return InputValidator.validate_provider_name(name)


def find_provider(name: str, providers: dict[str, Any]) -> str | None:
    """The key under which ``name`` is configured (as given, or in its canonical spelling), or ``None``."""
    raw = (name or "").strip()
    if raw in providers:
        return raw
    try:
        canonical = canonical_provider(raw)
    except InvalidInputError:
        return None
    return canonical if canonical in providers else None


def _llm_type(value: str) -> str:
    from modelforge.providers import FAMILIES, normalize_llm_type

    family = normalize_llm_type(value)
    if family not in FAMILIES:
        raise InvalidInputError(
            f"Unknown llm_type '{value}'",
            suggestion="Use one of: " + ", ".join(sorted(FAMILIES)),
            error_code="UNSUPPORTED_LLM_TYPE",
        )
    return family


def provider_entry(
    name: str,
    *,
    existing: dict[str, Any] | None = None,
    base_url: str | None = None,
    llm_type: str | None = None,
    auth_strategy: str | None = None,
    with_api_key: bool = False,
) -> dict[str, Any]:
    """The provider's config entry (without models) after applying the given options.

    An existing entry is kept and only the options given change it; a known provider starts from its
    defaults; an unknown one needs ``base_url`` or ``llm_type``.
    """
    # Imported here: modelforge.providers loads langchain-core, which `modelforge --help` need not wait for.
    from modelforge.providers import KNOWN_PROVIDERS
    from modelforge.validation import InputValidator

    if existing is not None:
        entry = {k: v for k, v in existing.items() if k != "models"}
    elif name in KNOWN_PROVIDERS:
        entry = copy.deepcopy(KNOWN_PROVIDERS[name])
    elif base_url or llm_type:
        entry = {"llm_type": "openai_compatible"}
        if with_api_key:
            entry["auth_strategy"] = "api_key"
    else:  # as 2.3.0: an entry of its own, completed later (the caller warns what it lacks)
        entry = {}
    if llm_type:
        entry["llm_type"] = _llm_type(llm_type)
    if base_url:
        entry["base_url"] = InputValidator.validate_url(base_url, require_https=False).rstrip("/")
    if auth_strategy:
        if auth_strategy == "none":
            entry.pop("auth_strategy", None)
            entry.pop("auth_details", None)
        elif auth_strategy == "device_flow" and not entry.get("auth_details"):
            if entry.get("llm_type") != "github_copilot":
                raise InvalidInputError(
                    "The device flow needs auth_details (client_id, device_code_url, token_url)",
                    suggestion="Add auth_details to the provider in the config file, "
                    "or use --auth-strategy api_key.",
                )
            entry["auth_strategy"] = auth_strategy
        else:
            entry["auth_strategy"] = auth_strategy
    return entry


def add_model(
    provider: str,
    model: str,
    *,
    api_model_name: str | None = None,
    local: bool = False,
    base_url: str | None = None,
    llm_type: str | None = None,
    auth_strategy: str | None = None,
    login: str | None = None,
    select_if_none: bool = False,
) -> AddResult:
    """Add (or update) ``provider``/``model`` in the global (or local) config; with ``select_if_none``
    (the wizard) also select it when no model is selected. ``config add`` does not select, as in 2.3.0.

    ``login`` says how the caller will authenticate right after (``"api_key"`` or ``"device_flow"``); a
    provider that cannot do that is refused before anything is written.
    """
    from modelforge.config import get_config_from_path, get_config_path, update_config
    from modelforge.validation import InputValidator

    model = InputValidator.validate_model_name(model)
    path = get_config_path(local=local)
    current, _ = get_config_from_path(path)
    name = find_provider(provider, current.get("providers", {})) or canonical_provider(provider)
    options: dict[str, Any] = {
        "base_url": base_url,
        "llm_type": llm_type,
        "auth_strategy": auth_strategy,
        "with_api_key": login == "api_key",
    }
    # Checked before the write, so a bad option leaves the file untouched.
    planned = provider_entry(name, existing=current.get("providers", {}).get(name), **options)
    if not planned.get("llm_type"):
        from modelforge.providers import FAMILIES, KNOWN_PROVIDERS

        families, known = " | ".join(sorted(FAMILIES)), ", ".join(sorted(KNOWN_PROVIDERS))
        warn(
            f"'{name}' is not a known provider and has no llm_type yet, so it cannot be used until you "
            f"add one: modelforge config add --provider {name} --model {model} --base-url URL "
            f"[--llm-type {families}]. Known providers: {known}."
        )
    _check_login(name, planned.get("auth_strategy") or "none", login)
    api_name = InputValidator.validate_model_name(api_model_name) if api_model_name else None
    outcome: dict[str, bool] = {}

    def mutate(data: dict[str, Any]) -> None:
        providers = data.setdefault("providers", {})
        old = providers.get(name)
        entry = provider_entry(name, existing=old, **options)
        models = dict((old or {}).get("models") or {})
        outcome["created"] = name not in providers
        outcome["updated"] = model in models
        spec = dict(models.get(model) or {})
        if api_name:
            spec["api_model_name"] = api_name
        models[model] = spec
        providers[name] = {**entry, "models": models}
        # An entry with no llm_type yet cannot answer: it is not made the current model.
        outcome["selected"] = select_if_none and not data.get("current_model") and bool(entry.get("llm_type"))
        if outcome["selected"]:
            data["current_model"] = {"provider": name, "model": model}

    data = update_config(mutate, local=local)
    return AddResult(
        provider=name,
        model=model,
        path=path,
        entry=data["providers"][name],
        created_provider=outcome["created"],
        updated_model=outcome["updated"],
        selected=outcome["selected"],
    )


def _check_login(name: str, strategy: str, login: str | None) -> None:
    if login == "device_flow" and strategy != "device_flow":
        raise InvalidInputError(
            f"Provider '{name}' does not use the device flow (auth strategy: {strategy})",
            suggestion=f"Give its key with --api-key, or later: modelforge auth login --provider {name}",
        )
    if login == "api_key" and strategy == "device_flow":
        raise InvalidInputError(
            f"Provider '{name}' signs in with the device flow, not an API key",
            suggestion="Use --dev-auth instead of --api-key.",
        )


def remove_model(provider: str, model: str, *, local: bool = False) -> RemoveResult:
    """Remove ``provider``/``model``; the provider goes too when it has no model left."""
    from modelforge.config import get_config_from_path, get_config_path, update_config

    path = get_config_path(local=local)
    current, _ = get_config_from_path(path)
    providers = current.get("providers", {})
    name = find_provider(provider, providers)
    if name is None:
        raise ConfigurationNotFoundError(
            provider,
            suggestion=f"Configured providers in {path}: " + (", ".join(sorted(providers)) or "(none)"),
        )
    if model not in (providers[name].get("models") or {}):
        raise ModelNotFoundError(name, model, sorted(providers[name].get("models") or {}))
    outcome: dict[str, bool] = {}

    def mutate(data: dict[str, Any]) -> None:
        entry = data.get("providers", {}).get(name)
        if not entry or model not in (entry.get("models") or {}):
            raise ConfigurationError(f"{name}/{model} was removed from {path} by another process meanwhile")
        del entry["models"][model]
        outcome["provider"] = not entry["models"]
        if outcome["provider"]:
            del data["providers"][name]
        selected = data.get("current_model") or {}
        outcome["selection"] = selected.get("provider") == name and (
            outcome["provider"] or selected.get("model") == model
        )
        if outcome["selection"]:
            data["current_model"] = {}  # as 2.3.0 left it: nothing selected

    update_config(mutate, local=local)
    return RemoveResult(
        provider=name,
        model=model,
        path=path,
        removed_provider=outcome["provider"],
        cleared_selection=outcome["selection"],
    )


def selects_nothing(path: Path) -> bool:
    """Whether ``path`` is the config file in effect and selects no model (so a hint to select is useful)."""
    from modelforge.config import get_config

    data, active = get_config()
    selected = data.get("current_model")
    no_selection = not (isinstance(selected, dict) and selected.get("provider") and selected.get("model"))
    return active == path and no_selection


def provider_in_other_scope(name: str, *, local: bool) -> bool:
    """Whether the other config file (global when ``local``, else local) also configures ``name``."""
    from modelforge.config import get_config_from_path, get_config_path

    path = get_config_path(local=not local)
    data, _ = get_config_from_path(path)
    return name in data.get("providers", {})


def store_credentials(result: AddResult, *, api_key: str | None = None, device_login: bool = False) -> None:
    """The credential step after ``add_model``: save ``api_key``, or run the device login.

    With neither, a provider that needs credentials and has none gets a hint on how to add them.
    """
    name = result.provider
    if api_key is not None:
        from modelforge.auth import save_auth_data

        save_auth_data(name, {"api_key": api_key})
        click.echo(f"API key for '{name}' saved in the credential store.")
    elif device_login:
        from modelforge.auth import get_auth_strategy

        note(f"Starting the device login for '{name}'...")
        if get_auth_strategy(name, result.entry).authenticate():
            click.echo(f"Logged in to '{name}'.")
    else:
        hint_missing_credentials(name, result.entry)


def hint_missing_credentials(name: str, entry: dict[str, Any]) -> None:
    """A note naming ``auth login`` and the environment variable when ``name`` needs credentials it lacks."""
    from modelforge.auth import env_var_name, resolve_credentials

    strategy = entry.get("auth_strategy") or "none"
    if strategy not in ("api_key", "device_flow") or resolve_credentials(name, entry):
        return
    kind = "API_KEY" if strategy == "api_key" else "ACCESS_TOKEN"
    note(
        f"No credentials for '{name}' yet: run `modelforge auth login --provider {name}`"
        f" or set {env_var_name(name, kind)}."
    )
