"""``modelforge auth``: log in, log out, and see which credentials each provider will use.

Keys and tokens go to the credential store of ``modelforge.auth`` (an owner-only file or the OS keyring),
never into a config file. ``auth status`` shows, per provider, the auth strategy, whether credentials are
present, where they come from (``env``, ``store`` or ``config`` for 2.3.0 ``auth_data``), the key masked,
and when a token expires. Nothing here contacts a provider except the device login itself.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from modelforge._secrets import mask
from modelforge.cli._errors import ForgeGroup, set_verbose
from modelforge.cli._output import note, print_table, stdin_is_tty, warn
from modelforge.cli._setup import find_provider
from modelforge.exceptions import ConfigurationNotFoundError, InvalidApiKeyError, InvalidInputError

__all__ = ["auth_group", "auth_status", "format_expiry"]


def _configured(provider: str) -> tuple[str, dict[str, Any]]:
    from modelforge.config import get_config

    data, path = get_config()
    providers = data.get("providers", {})
    name = find_provider(provider, providers)
    if name is None:
        raise ConfigurationNotFoundError(
            provider,
            suggestion=f"Configured providers in {path}: {', '.join(sorted(providers)) or '(none)'}. "
            f"Add it with: modelforge config add --provider {provider} --model <model>",
        )
    return name, providers[name]


def _env_var_names(name: str) -> list[str]:
    """The variables that override ``name``'s stored credentials (``MODELFORGE_<NAME>_API_KEY``, ...)."""
    from modelforge.auth import env_var_name

    return [env_var_name(name, kind) for kind in ("API_KEY", "ACCESS_TOKEN")]


def _env_vars_set(name: str) -> list[str]:
    return [var for var in _env_var_names(name) if os.environ.get(var, "").strip()]


def format_expiry(expires_at: float | None, *, now: float | None = None) -> str:
    """``"in 2h 5m"``, ``"expired 3d ago"`` or ``"-"`` for a token without expiry."""
    if expires_at is None:
        return "-"
    delta = expires_at - (time.time() if now is None else now)
    seconds = int(abs(delta))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        span = f"{days}d {hours}h"
    elif hours:
        span = f"{hours}h {minutes}m"
    else:
        span = f"{minutes}m" if minutes else f"{seconds}s"
    return f"in {span}" if delta > 0 else f"expired {span} ago"


@click.group(name="auth", cls=ForgeGroup)
def auth_group() -> None:
    """Log in to providers and check their credentials."""


def _read_key(name: str) -> str:
    """The API key from a hidden prompt on a terminal, else the first line of piped stdin."""
    from modelforge.auth import env_var_name

    if stdin_is_tty():
        return str(click.prompt(f"API key for {name}", hide_input=True))
    line = sys.stdin.readline().strip() if sys.stdin else ""
    if not line:
        raise InvalidApiKeyError(
            name,
            f"No API key given for '{name}', and no terminal to ask for one",
            suggestion=f"Run: modelforge auth login --provider {name} --api-key <KEY> "
            f"(or pipe the key on stdin, or set {env_var_name(name, 'API_KEY')})",
        )
    return line


@auth_group.command(name="login")
@click.option("--provider", required=True, help="The provider to log in to.")
@click.option("--api-key", help="The API key (otherwise asked for, or read from piped stdin).")
@click.option("--force", is_flag=True, help="Log in again even when credentials are present.")
def login(provider: str, api_key: str | None, force: bool) -> None:
    """Store an API key, or run the device login (github_copilot)."""
    from modelforge.auth import get_auth_strategy, resolve_credentials, save_auth_data
    from modelforge.validation import InputValidator

    name, entry = _configured(provider)
    strategy = entry.get("auth_strategy") or "none"
    if api_key is None and strategy == "none":
        click.echo(f"Provider '{name}' needs no authentication.")
        return
    if strategy == "device_flow" and api_key is not None:
        raise InvalidInputError(
            f"Provider '{name}' signs in with the device flow, not an API key",
            suggestion=f"Run: modelforge auth login --provider {name}",
        )
    creds = resolve_credentials(name, entry)
    fresh = bool(creds) and (creds.expires_at is None or creds.expires_at > time.time())
    if fresh and not force and api_key is None:
        click.echo(
            f"Already logged in to '{name}' (credentials from {creds.source}). Use --force to log in again."
        )
        return
    if strategy == "device_flow":
        note(f"Starting the device login for '{name}'...")
        get_auth_strategy(name, entry).authenticate()
        click.echo(f"Logged in to '{name}'; the token is in the credential store.")
    else:
        key = InputValidator.validate_api_key(api_key if api_key is not None else _read_key(name), name)
        save_auth_data(name, {"api_key": key})
        click.echo(f"API key for '{name}' saved in the credential store ({mask(key)}).")
    for var in _env_vars_set(name):
        warn(f"{var} is set and takes precedence over the stored credentials.")


@auth_group.command(name="logout")
@click.option("--provider", help="The provider to log out of.")
@click.option("--all-providers", is_flag=True, help="Log out of every provider.")
def logout(provider: str | None, all_providers: bool) -> None:
    """Remove stored credentials (credential store and 2.3.0 auth_data in config files)."""
    from modelforge.auth import clear_auth_data, get_auth_data
    from modelforge.auth.store import FileCredentialStore, get_store
    from modelforge.config import get_config

    if bool(provider) == all_providers:
        raise click.UsageError("Give either --provider P or --all-providers")
    data, _ = get_config()
    configured = data.get("providers", {})
    if all_providers:
        names = set(configured) | set(get_store().providers()) | set(FileCredentialStore().providers())
    else:
        name = find_provider(str(provider), configured) or str(provider).strip()
        if name not in configured and not get_auth_data(name):
            # As 2.3.0: a provider that is neither configured nor logged in is an error (exit code 1).
            from modelforge.exceptions import ConfigurationNotFoundError

            known = ", ".join(sorted(configured)) or "(none)"
            raise ConfigurationNotFoundError(
                name, suggestion=f"Configured providers: {known}. Check the name with: modelforge auth status"
            )
        names = {name}
    if not names:
        click.echo("No stored credentials.")
    for name in sorted(names):  # every provider is named, as 2.3.0 named each it cleared
        if get_auth_data(name):
            clear_auth_data(name)
            click.echo(f"Logged out of '{name}'.")
        else:
            click.echo(f"No stored credentials for '{name}'.")
        for var in _env_vars_set(name):
            warn(f"{var} is still set in the environment.")


def _status_row(name: str, entry: dict[str, Any], now: float) -> tuple[list[str], dict[str, Any]]:
    from modelforge.auth import get_auth_data, resolve_credentials

    strategy = entry.get("auth_strategy") or "none"
    creds = resolve_credentials(name, entry)
    secret = creds.api_key or creds.access_token
    stored = (entry.get("auth_data") if creds.source == "config" else get_auth_data(name)) or {}
    if not creds:
        status = "not needed" if strategy == "none" else "missing"
    elif creds.expires_at is not None and creds.expires_at <= now:
        status = "expired, will refresh" if stored.get("refresh_token") else "expired"
    else:
        status = "ok"
    row = [name, strategy, status, creds.source if creds else "-", mask(secret) if secret else "-"]
    row.append(format_expiry(creds.expires_at, now=now))
    return row, stored


@auth_group.command(name="status")
@click.option("--provider", help="Only this provider.")
@click.option("--verbose", is_flag=True, callback=set_verbose, help="Show where credentials are looked for.")
def auth_status(provider: str | None, verbose: bool) -> None:
    """Show each provider's auth strategy and credentials (masked)."""
    from modelforge.config import get_config

    if provider:
        name, entry = _configured(provider)
        providers = {name: entry}
        path = None
    else:
        data, path = get_config()
        providers = data.get("providers", {})
        if not providers:
            click.echo(f"No providers configured in {path}. Add one with: modelforge config add")
            return
    now = time.time()
    rows, details = [], {}
    for name, entry in sorted(providers.items()):
        row, stored = _status_row(name, entry, now)
        rows.append(row)
        details[name] = stored
    print_table(["PROVIDER", "AUTH", "STATUS", "SOURCE", "CREDENTIAL", "EXPIRES"], rows, title=None)
    if verbose:
        _print_details(details, path)


def _print_details(details: dict[str, dict[str, Any]], path: Any) -> None:
    from modelforge.auth.store import credentials_path, store_kind

    kind = store_kind()
    where = str(credentials_path()) if kind == "file" else "the OS keyring (service model-forge)"
    click.echo(f"\nCredential store: {where}")
    if path is not None:
        click.echo(f"Config file: {path}")
    for name, stored in details.items():
        env = ", ".join(_env_var_names(name))
        click.echo(f"{name}: environment variables {env}")
        if stored.get("refresh_token"):
            click.echo(f"  refresh token: {mask(str(stored['refresh_token']))}")
        if stored.get("scope"):
            click.echo(f"  scope: {stored['scope']}")
        if stored.get("expires_at"):
            click.echo(f"  expires at: {stored['expires_at']}")
