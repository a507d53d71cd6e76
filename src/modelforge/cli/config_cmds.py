"""``modelforge config``: show, migrate, add, use and remove models; with no subcommand, the wizard.

``config show`` prints the active file and its contents with every secret masked. ``config add`` writes
known providers' defaults (``KNOWN_PROVIDERS``), stores an ``--api-key`` in the credential store (never in
``config.json``) and runs the device login for ``--dev-auth``; as in 2.3.0 it selects nothing (``config
use`` does; a hint says so while no model is selected). ``config migrate`` moves the pre-2.0
``models.json`` and takes 2.3.0 ``auth_data`` out of the config files into the credential store; ``config
export-legacy`` does the reverse, for a user going back to model-forge-llm 2.3.0, which reads credentials
only from the config file.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from modelforge._secrets import mask, mask_secrets
from modelforge._urls import redacted_url
from modelforge.cli import _setup
from modelforge.cli._errors import ForgeGroup, set_verbose
from modelforge.cli._output import warn
from modelforge.exceptions import ConfigurationNotFoundError, ModelNotFoundError

__all__ = ["config_group", "masked_config"]

_SECRET_KEY = re.compile(
    r"(?:^|[_\-])(?:key|token|secret|password|authorization|credentials?|cookie)$", re.IGNORECASE
)
_PUBLIC_AUTH_FIELDS = frozenset(
    {"expires_at", "expires_in", "token_type", "scope", "refresh_token_expires_at"}
)


def masked_config(value: Any, *, key: str = "", in_auth_data: bool = False) -> Any:
    """A copy of config data with every secret masked (``auth_data`` values, keys, tokens, auth headers)."""
    if isinstance(value, dict):
        return {
            k: masked_config(v, key=str(k), in_auth_data=in_auth_data or k == "auth_data")
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked_config(v, key=key, in_auth_data=in_auth_data) for v in value]
    if isinstance(value, str):
        if (in_auth_data and key not in _PUBLIC_AUTH_FIELDS) or _SECRET_KEY.search(key):
            return mask(value)
        if "@" in value and "://" in value:  # a URL's password (redis://:secret@host, http://user:pw@host)
            value = redacted_url(value) or value
        return mask_secrets(value)
    return value


def _scope_of(path: Any) -> str:
    from modelforge.config import local_config_dir

    return "local" if local_config_dir() in getattr(path, "parents", ()) else "global"


@click.group(name="config", cls=ForgeGroup, invoke_without_command=True)
@click.option(
    "--wizard", is_flag=True, help="Run the interactive setup wizard (the default with no subcommand)."
)
@click.option("--verbose", is_flag=True, callback=set_verbose, help="Show more detail.")
@click.pass_context
def config_group(ctx: click.Context, wizard: bool, verbose: bool) -> None:
    """Manage providers, models and the current model."""
    if ctx.invoked_subcommand is not None:
        if wizard:
            raise click.UsageError("--wizard cannot be combined with a subcommand", ctx=ctx)
        return
    from modelforge.cli.wizard import run_wizard

    run_wizard(verbose=verbose)


@config_group.command(name="show")
def show_config() -> None:
    """Show the active configuration (secrets masked) and which file it comes from."""
    from modelforge.config import get_config, get_config_path

    data, path = get_config()
    scope = _scope_of(path)
    state = "" if path.exists() else " (not created yet)"
    click.echo(f"Active ModelForge config ({scope}): {path}{state}")
    if scope == "local" and get_config_path(local=False).exists():
        click.echo(
            f"The global config {get_config_path(local=False)} is not used while the project config exists."
        )
    if not data.get("providers"):
        click.echo(
            "Configuration is empty. Add a model with: "
            "modelforge config add --provider <provider> --model <model>"
        )
        if not data:
            click.echo("Until then, `modelforge test` uses the bundled local model.")
            return
    click.echo(json.dumps(masked_config(data), indent=4, ensure_ascii=False))
    legacy = sorted(
        n for n, p in data.get("providers", {}).items() if isinstance(p, dict) and p.get("auth_data")
    )
    if legacy:
        warn(
            "credentials of " + ", ".join(legacy) + " are stored in the config file (2.3.0 style); "
            "move them to the credential store with: modelforge config migrate"
        )


@config_group.command(name="migrate")
def migrate_config() -> None:
    """Move the old models.json to config.json, and credentials out of config files."""
    from modelforge.auth import save_auth_data
    from modelforge.config import get_config_from_path, get_config_path, global_config_dir, migrate_old_config

    new = get_config_path(local=False)
    old = global_config_dir() / "models.json"
    if old.exists() and new.exists():  # as 2.3.0: a warning, nothing overwritten, exit code 0
        warn(f"{old} was not migrated: {new} already exists. Merge what you need into it, then delete {old}.")
    elif migrate_old_config():
        click.echo(f"Moved the old models.json to {new}")
    else:
        click.echo("No old models.json to migrate.")
    for local in (True, False):
        path = get_config_path(local=local)
        data, _ = get_config_from_path(path)
        for name, entry in sorted(data.get("providers", {}).items()):
            auth_data = entry.get("auth_data") if isinstance(entry, dict) else None
            if auth_data:
                save_auth_data(name, auth_data)  # also removes auth_data from the config files
                click.echo(f"Moved the credentials of '{name}' from {path} to the credential store.")


@config_group.command(name="export-legacy")
@click.option("--local", is_flag=True, help="Write into the project config (./.model-forge/config.json).")
@click.option(
    "--provider", "providers", multiple=True, help="Only this provider (repeat for several; default: all)."
)
def export_legacy(local: bool, providers: tuple[str, ...]) -> None:
    """Copy stored credentials into config.json as 2.3.0 keeps them, to switch back to 2.3.0."""
    from modelforge.auth.legacy_export import export_legacy_auth_data

    result = export_legacy_auth_data(local=local, providers=providers or None)
    for name in result.exported:
        click.echo(f"Copied the credentials of '{name}' into {result.path} (auth_data, as 2.3.0 reads them).")
    for name in result.unchanged:
        click.echo(f"The credentials of '{name}' were already in {result.path}.")
    for name in result.without_credentials:
        click.echo(f"No stored credentials for '{name}' (it needs none, or uses an environment variable).")
    if result.exported or result.unchanged:
        warn(
            f"{result.path} now holds secrets (owner-only). Back on ModelForge 3, move them to the "
            "credential store with: modelforge config migrate"
        )
    if local and result.exported:
        warn(
            f"a project's files are often committed: keep {result.path} out of version control (.gitignore)."
        )


@config_group.command(name="add")
@click.option(
    "--provider", required=True, help="Provider name (e.g. openai, anthropic, ollama, github_copilot)."
)
@click.option("--model", required=True, help="A local, memorable name for the model (its alias).")
@click.option("--api-model-name", help="The model id the API expects, when it differs from the alias.")
@click.option("--api-key", help="API key, saved in the credential store (never in config.json).")
@click.option("--dev-auth", is_flag=True, help="Log in with the device flow now (github_copilot).")
@click.option("--local", is_flag=True, help="Write to the project config (./.model-forge/config.json).")
@click.option("--base-url", help="Server URL (required for a provider ModelForge does not know).")
@click.option("--llm-type", help="Protocol of an unknown provider (default openai_compatible).")
@click.option(
    "--auth-strategy",
    type=click.Choice(_setup.AUTH_STRATEGIES),
    help="How the provider authenticates (default: the provider's, or api_key when --api-key is given).",
)
def add_model(
    provider: str,
    model: str,
    api_model_name: str | None,
    api_key: str | None,
    dev_auth: bool,
    local: bool,
    base_url: str | None,
    llm_type: str | None,
    auth_strategy: str | None,
) -> None:
    """Add a model (and its provider) to the configuration."""
    from modelforge.config import get_config_path
    from modelforge.validation import InputValidator

    if api_key is not None and dev_auth:
        raise click.UsageError("--api-key and --dev-auth cannot be used together")
    if api_key is not None:
        api_key = InputValidator.validate_api_key(api_key, provider)
    had_local = get_config_path(local=True).exists()
    result = _setup.add_model(
        provider,
        model,
        api_model_name=api_model_name,
        local=local,
        base_url=base_url,
        llm_type=llm_type,
        auth_strategy=auth_strategy,
        login="api_key" if api_key is not None else "device_flow" if dev_auth else None,
    )
    verb = "Updated" if result.updated_model else "Added"
    click.echo(f"{verb} model '{result.model}' of provider '{result.provider}' in {result.path}.")
    if _setup.selects_nothing(result.path):
        click.echo(
            "No model is selected yet; select this one with: modelforge config use "
            f"--provider {result.provider} --model {result.model}" + (" --local" if local else "")
        )
    if local and not had_local:
        warn(f"created {result.path}; while it exists it is used instead of the global config.")
    _setup.store_credentials(result, api_key=api_key, device_login=dev_auth)


@config_group.command(name="use")
@click.option("--provider", "provider_name", required=True, help="The provider name.")
@click.option("--model", "model_alias", required=True, help="The model alias.")
@click.option("--local", is_flag=True, help="Set the current model in the project config.")
def use_model(provider_name: str, model_alias: str, local: bool) -> None:
    """Select the model that `modelforge test` and get_llm() use by default."""
    from modelforge.config import get_config_from_path, get_config_path, set_current_model

    path = get_config_path(local=local)
    data, _ = get_config_from_path(path)
    providers = data.get("providers", {})
    name = _setup.find_provider(provider_name, providers)
    if name is None:
        known = ", ".join(sorted(providers)) or "(none)"
        raise ConfigurationNotFoundError(
            provider_name,
            suggestion=f"Configured providers in {path}: {known}. Add it with: modelforge config add "
            f"--provider {provider_name} --model {model_alias}" + (" --local" if local else ""),
        )
    models = providers[name].get("models") or {}
    if model_alias not in models:
        raise ModelNotFoundError(name, model_alias, sorted(models))
    set_current_model(name, model_alias, local=local, quiet=True)
    click.echo(f"Current model set to {name}/{model_alias} in {path}.")
    active_local = get_config_path(local=True)
    if not local and active_local.exists():
        warn(
            f"the project config {active_local} is active here and has its own selection; "
            "add --local to change it."
        )


@config_group.command(name="remove")
@click.option("--provider", required=True, help="The provider name.")
@click.option("--model", required=True, help="The model alias to remove.")
@click.option("--keep-credentials", is_flag=True, help="Keep the provider's stored credentials.")
@click.option("--local", is_flag=True, help="Remove from the project config.")
def remove_model(provider: str, model: str, keep_credentials: bool, local: bool) -> None:
    """Remove a model; the provider (and its stored credentials) go when no model is left."""
    result = _setup.remove_model(provider, model, local=local)
    click.echo(f"Removed model '{result.model}' of provider '{result.provider}' from {result.path}.")
    if result.cleared_selection:
        click.echo("The removed model was the current one; choose another with: modelforge config use")
    if not result.removed_provider:
        return
    click.echo(f"Removed provider '{result.provider}' (no models left).")
    if keep_credentials:
        click.echo("Kept its stored credentials (--keep-credentials).")
    elif _setup.provider_in_other_scope(result.provider, local=local):
        click.echo("Kept its stored credentials: the provider is still configured in the other config file.")
    else:
        from modelforge.auth import clear_auth_data, get_auth_data

        had_credentials = bool(get_auth_data(result.provider))
        clear_auth_data(result.provider)  # every scope, even one the active config file does not show
        if had_credentials:
            click.echo(f"Removed the stored credentials of '{result.provider}'.")
