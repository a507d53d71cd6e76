"""``modelforge settings``: show settings; turn the telemetry line of ``modelforge test`` on or off, and the
saving of performance stats (``modelforge stats``).

Settings live under ``settings`` in the config file (``show_telemetry`` and ``record_stats``, default true;
``MODELFORGE_STATS=0`` overrides ``record_stats``), read with
``modelforge.config.get_settings`` (the active file: the project config when it exists, else the global one)
and written with ``modelforge.config.update_setting``; ``--local`` writes the project config instead of the
global one.
"""

from __future__ import annotations

from pathlib import Path

import click

from modelforge.cli._errors import ForgeGroup
from modelforge.cli._output import note, warn

__all__ = ["settings_group"]


@click.group(name="settings", cls=ForgeGroup)
def settings_group() -> None:
    """Show and change ModelForge settings."""


@settings_group.command(name="show")
def show_settings() -> None:
    """Show the settings in effect and the file they come from."""
    from modelforge.config import get_settings

    effective = get_settings()
    path = _active_config()
    click.echo(
        f"Current ModelForge settings ({path}" + (")" if path.exists() else ", not created yet: defaults)")
    )
    for key, value in effective.items():  # 2.3.0's "  key: value" lines, values as Python shows them
        click.echo(f"  {key}: {value}")


def _active_config() -> Path:
    """The config file ``get_settings`` reads."""
    from modelforge.config import get_config

    return get_config()[1]


@settings_group.command(name="telemetry")
@click.argument("action", type=click.Choice(["on", "off", "status"], case_sensitive=False))
@click.option("--local", is_flag=True, help="Use the project config (./.model-forge/config.json).")
def telemetry(action: str, local: bool) -> None:
    """Turn the token/duration/cost line of `modelforge test` on or off, or show its state."""
    from modelforge.config import get_config_path, get_settings

    path = get_config_path(local=local)
    action = action.lower()
    if action == "status":
        # The state `modelforge test` will use: the project config's when it exists, else the global one's.
        if local and not path.exists():
            note(f"No project config at {path}; the global config is in effect.")
        value = get_settings()["show_telemetry"]
        state = (
            "on (enabled)" if value else "off (disabled)"
        )  # 2.3.0 said enabled / disabled: scripts grep it
        click.echo(f"Telemetry display is currently {state} in {_active_config()}")
        return
    state = "enabled" if action == "on" else "disabled"  # 2.3.0's words
    scope = "local" if local else "global"
    _write(
        path,
        "show_telemetry",
        action,
        f"Telemetry display {state} in the {scope} config ({path}).",
        local=local,
    )


@settings_group.command(name="stats")
@click.argument("action", type=click.Choice(["on", "off", "status"], case_sensitive=False))
@click.option("--local", is_flag=True, help="Use the project config (./.model-forge/config.json).")
def stats(action: str, local: bool) -> None:
    """Turn the saving of performance stats (`modelforge stats`) on or off, or show its state."""
    from modelforge.config import get_config_path, get_settings
    from modelforge.telemetry.metrics import ENV_SWITCH, SETTING, recording_enabled

    path = get_config_path(local=local)
    action = action.lower()
    if action == "status":
        if local and not path.exists():
            note(f"No project config at {path}; the global config is in effect.")
        setting = bool(get_settings().get(SETTING, True))
        state = "on" if recording_enabled() else "off"
        click.echo(f"Performance stats recording: {state} ({_active_config()})")
        if recording_enabled() != setting:
            note(f"{ENV_SWITCH} in the environment overrides the setting ({'on' if setting else 'off'}).")
        return
    _write(path, SETTING, action, f"Performance stats recording turned {action} in {path}.", local=local)


def _write(path: Path, key: str, action: str, done: str, *, local: bool) -> None:
    """Set ``key`` to ``action == "on"`` in the global (or project) config and say so."""
    from modelforge.config import get_config_path, update_setting

    created = not path.exists()
    update_setting(key, action == "on", local=local)
    click.echo(done)
    if local and created:
        warn(f"created {path}; while it exists it is used instead of the global config.")
    elif not local and get_config_path(local=True).exists():
        warn(
            f"the project config {get_config_path(local=True)} is active here; "
            "add --local to change it there."
        )
