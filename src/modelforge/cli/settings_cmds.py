"""``modelforge settings``: show settings, and turn the telemetry line of ``modelforge test`` on or off.

Settings live under ``settings`` in the config file (``show_telemetry``, default true), written with
``modelforge.config.update_setting``; ``--local`` writes the project config instead of the global one.
"""

from __future__ import annotations

import json

import click

from modelforge.cli._errors import ForgeGroup
from modelforge.cli._output import warn
from modelforge.config import (
    DEFAULT_SETTINGS,
    get_config,
    get_config_from_path,
    get_config_path,
    update_setting,
)

__all__ = ["settings_group"]


@click.group(name="settings", cls=ForgeGroup)
def settings_group() -> None:
    """Show and change ModelForge settings."""


@settings_group.command(name="show")
def show_settings() -> None:
    """Show the settings in effect and the file they come from."""
    data, path = get_config()
    effective = {**DEFAULT_SETTINGS, **data.get("settings", {})}
    click.echo(f"Settings from {path}" + ("" if path.exists() else " (not created yet: defaults)"))
    click.echo(json.dumps(effective, indent=4, ensure_ascii=False))


@settings_group.command(name="telemetry")
@click.argument("action", type=click.Choice(["on", "off", "status"], case_sensitive=False))
@click.option("--local", is_flag=True, help="Use the project config (./.model-forge/config.json).")
def telemetry(action: str, local: bool) -> None:
    """Turn the token/duration/cost line of `modelforge test` on or off, or show its state."""
    path = get_config_path(local=local)
    action = action.lower()
    if action == "status":
        if local:
            data, _ = get_config_from_path(path)
        else:
            data, path = get_config()
        value = {**DEFAULT_SETTINGS, **data.get("settings", {})}["show_telemetry"]
        click.echo(f"Telemetry display: {'on' if value else 'off'} ({path})")
        return
    created = not path.exists()
    update_setting("show_telemetry", action == "on", local=local)
    click.echo(f"Telemetry display turned {action} in {path}.")
    if local and created:
        warn(f"created {path}; while it exists it is used instead of the global config.")
    elif not local and get_config_path(local=True).exists():
        warn(
            f"the project config {get_config_path(local=True)} is active here; "
            "add --local to change it there."
        )
