"""Config files: where they live, how they are read and validated, and how they are written safely.

Locations are those of 2.3.0: the global ``~/.config/model-forge/config.json`` and the project-local
``./.model-forge/config.json``, the local one winning when it exists. Either may instead be ``config.yaml``
(or ``config.yml``) with the same data; having both a JSON and a YAML file in one place is an error rather
than a silent choice. Reads validate into ``ModelForgeConfig``; writes validate first, then replace the
file atomically under a lock, so concurrent writers never lose each other's changes and a crash never
leaves half a file. A file that cannot be parsed is never overwritten silently: ``save_config`` copies it
aside to ``<name>.corrupt-<timestamp>`` and says so, and read-modify-write updates refuse to run on it.

The 2.3.0 functions (``get_config``, ``save_config``, ``set_current_model`` ...) keep their signatures and
work on plain dicts; ``load_config`` is the typed entry point the rest of ModelForge uses.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import yaml

from modelforge._files import atomic_write_text, locked, set_aside
from modelforge.config_schema import ModelForgeConfig, validate_config
from modelforge.exceptions import (
    ConfigurationError,
    ConfigurationNotFoundError,
    ConfigurationValidationError,
    JsonDecodeError,
)

__all__ = [
    "GLOBAL_CONFIG_FILE",  # noqa: F822 - computed on access by __getattr__
    "LOCAL_CONFIG_FILE",  # noqa: F822
    "LoadedConfig",
    "config_dir_is_assigned",
    "credentials_file",
    "get_config",
    "get_config_from_path",
    "get_config_path",
    "get_current_model",
    "get_settings",
    "global_config_dir",
    "load_config",
    "local_config_dir",
    "migrate_old_config",
    "save_config",
    "set_current_model",
    "update_config",
    "update_setting",
]

logger = logging.getLogger(__name__)

CONFIG_NAMES = ("config.json", "config.yaml", "config.yml")
DEFAULT_SETTINGS: dict[str, Any] = {"show_telemetry": True}


class _DefaultPath(type(Path())):  # type: ignore[misc]
    """The HOME- or cwd-derived default of ``GLOBAL_CONFIG_FILE`` / ``LOCAL_CONFIG_FILE``: code that saves
    it and assigns it back (a test's ``setUp`` / ``tearDown``) has assigned nothing."""


def _assigned(name: str) -> Path | None:
    """The path a user's code assigned to ``GLOBAL_CONFIG_FILE`` / ``LOCAL_CONFIG_FILE`` (a test redirecting
    every read and write, directly or with ``mock.patch``), else None: then the defaults follow HOME and
    the working directory at call time. Anything but a ``str`` or a path is refused with
    ``ConfigurationError`` (a bare ``mock.patch`` gives a MagicMock)."""
    value = globals().get(name)
    if value is None or isinstance(value, _DefaultPath):
        return None
    if not isinstance(value, str | PurePath):
        raise ConfigurationError(
            f"modelforge.config.{name} was set to a {type(value).__name__}, not a path",
            suggestion=f"Assign a pathlib.Path or a str (mock.patch('modelforge.config.{name}', tmp_path / "
            "'config.json')), or delete the attribute to go back to the default",
        )
    return Path(value)


def global_config_dir() -> Path:
    """``~/.config/model-forge`` (read at call time, so a changed HOME is honoured), or the folder of an
    assigned ``GLOBAL_CONFIG_FILE``."""
    assigned = _assigned("GLOBAL_CONFIG_FILE")
    return assigned.parent if assigned is not None else Path.home() / ".config" / "model-forge"


def credentials_file() -> Path:
    """Where the global credential file lives: ``credentials.json`` beside the global config, or, when
    ``GLOBAL_CONFIG_FILE`` was assigned, ``<its name>.credentials.json`` beside that file (its folder may
    be shared, such as /tmp: it is never made private)."""
    assigned = _assigned("GLOBAL_CONFIG_FILE")
    if assigned is not None:
        return assigned.with_name(assigned.stem + ".credentials.json")
    return global_config_dir() / "credentials.json"


def config_dir_is_assigned() -> bool:
    """Whether ``GLOBAL_CONFIG_FILE`` points somewhere a user's code chose (its folder is not ours)."""
    return _assigned("GLOBAL_CONFIG_FILE") is not None


def local_config_dir() -> Path:
    """``./.model-forge`` below the current working directory, or the folder of an assigned
    ``LOCAL_CONFIG_FILE``."""
    assigned = _assigned("LOCAL_CONFIG_FILE")
    return assigned.parent if assigned is not None else Path.cwd() / ".model-forge"


def __getattr__(name: str) -> Path:
    # GLOBAL_CONFIG_FILE / LOCAL_CONFIG_FILE stay module attributes as in 2.3.0, computed on access.
    if name == "GLOBAL_CONFIG_FILE":
        return _DefaultPath(global_config_dir() / "config.json")
    if name == "LOCAL_CONFIG_FILE":
        return _DefaultPath(local_config_dir() / "config.json")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _find_in(directory: Path) -> Path | None:
    present = [directory / name for name in CONFIG_NAMES if (directory / name).is_file()]
    if len(present) > 1:
        raise ConfigurationError(
            "Two config files in one place: " + " and ".join(str(p) for p in present),
            suggestion="Keep one of them (merge what you need into it) and delete the other.",
        )
    return present[0] if present else None


def get_config_path(local: bool = False) -> Path:
    """The config file for the scope: an assigned ``GLOBAL_CONFIG_FILE`` / ``LOCAL_CONFIG_FILE`` as given,
    else the existing JSON or YAML file, else where a JSON one would go."""
    assigned = _assigned("LOCAL_CONFIG_FILE" if local else "GLOBAL_CONFIG_FILE")
    if assigned is not None:
        return assigned
    directory = local_config_dir() if local else global_config_dir()
    return _find_in(directory) or directory / "config.json"


def _active_path() -> Path:
    assigned_local = _assigned("LOCAL_CONFIG_FILE")
    if assigned_local is not None and assigned_local.is_file():
        return assigned_local
    local = None if assigned_local is not None else _find_in(local_config_dir())
    return local or get_config_path(local=False)


MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""The largest config file read (a real one is a few KB); a bigger file or a device is refused unread."""
MAX_YAML_NODES = 100_000
"""The most YAML nodes a config may expand to through anchors and aliases (a "billion laughs" bomb is
a few hundred bytes that expand to billions)."""


def _check_regular_file(path: Path) -> None:
    """Refuse a FIFO, a device or a huge file before reading (a FIFO would block, /dev/zero never ends)."""
    try:
        info = path.stat()  # follows symlinks: a dotfiles link to a real file is fine
    except OSError as err:
        raise ConfigurationError(
            f"Cannot read config file {path}: {os.strerror(err.errno or 0) or err}",
            suggestion=f"Check the permissions of {path}.",
        ) from err
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationValidationError(
            f"Config file {path} is not a regular file (a pipe, a device or a directory)",
            suggestion=f"Replace {path} with a JSON or YAML file.",
        )
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigurationValidationError(
            f"Config file {path} is {info.st_size:,} bytes; at most {MAX_CONFIG_BYTES:,} are read",
            suggestion="A config file is a few KB: check that this is the right file.",
        )


def _read_text(path: Path) -> str:
    _check_regular_file(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigurationValidationError(
            f"Config file {path} is not UTF-8 text", suggestion="Save it as UTF-8."
        ) from err
    except OSError as err:
        raise ConfigurationError(
            f"Cannot read config file {path}: {os.strerror(err.errno or 0) or err}",
            suggestion=f"Check the permissions of {path}.",
        ) from err


def _parse(path: Path, text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    if path.suffix in (".yaml", ".yml"):
        try:
            _check_yaml_size(path, text)
            data = yaml.safe_load(text)
        except RecursionError:
            raise _too_deep(path) from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            raise ConfigurationValidationError(
                f"Invalid YAML in {path}{where}: {problem}",
                suggestion="Fix the YAML syntax at that line.",
                details={"file": str(path), "line": mark.line + 1 if mark else None},
            ) from None
    else:
        try:
            data = json.loads(text)
        except RecursionError:
            raise _too_deep(path) from None
        except json.JSONDecodeError as err:
            raise JsonDecodeError(
                str(path),
                line=err.lineno,
                column=err.colno,
                reason=err.msg,
                suggestion="Fix the JSON syntax at that line (a trailing comma or a missing quote?).",
            ) from None
    if not isinstance(data, dict):
        raise ConfigurationValidationError(
            f"Invalid config in {path}: the top level must be a mapping with 'providers', "
            f"'current_model' and 'settings', not {type(data).__name__}",
            suggestion="Start the file with { (JSON) or with 'providers:' (YAML).",
        )
    return data


def _too_deep(path: Path) -> ConfigurationValidationError:
    return ConfigurationValidationError(
        f"Config file {path} is nested too deeply to read",
        suggestion="A config file is a few levels deep: check that this is the right file.",
    )


def _check_yaml_size(path: Path, text: str) -> None:
    """Refuse YAML whose anchors and aliases expand to more than ``MAX_YAML_NODES`` nodes."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sizes: dict[int, int] = {}

    def expanded(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_YAML_NODES + 1  # a node that contains itself expands without end
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(expanded(k) + expanded(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(expanded(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, MAX_YAML_NODES + 1)
        return sizes[id(node)]

    if root is not None and expanded(root) > MAX_YAML_NODES:
        raise ConfigurationValidationError(
            f"Config file {path} expands to more than {MAX_YAML_NODES:,} values through YAML aliases",
            suggestion="Use fewer anchors and aliases (*name); a config file needs only a few.",
        )


def _read(path: Path) -> tuple[dict[str, Any], ModelForgeConfig]:
    """The raw data of one config file and its validated form (empty when the file is absent)."""
    if not path.exists():
        return {}, ModelForgeConfig()
    text = _read_text(path)
    data = _parse(path, text)
    try:
        return data, validate_config(data, source=path, text=text)
    except RecursionError:
        raise _too_deep(path) from None


def get_config_from_path(path: Path | str) -> tuple[dict[str, Any], Path]:
    """Read one config file (JSON or YAML by its suffix) and validate it; ``({}, path)`` if it is absent."""
    path = Path(path)
    data, _ = _read(path)
    return data, path


def get_config() -> tuple[dict[str, Any], Path]:
    """The active config as a dict and its path: the project-local file if present, else the global one."""
    return get_config_from_path(_active_path())


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config, the raw data it came from, and its file (``None`` when there is none)."""

    config: ModelForgeConfig
    raw: dict[str, Any]
    path: Path | None


def load_config(path: Path | str | None = None) -> LoadedConfig:
    """Read and validate the active config (or ``path``), as typed objects."""
    target = Path(path) if path is not None else _active_path()
    raw, config = _read(target)
    return LoadedConfig(config=config, raw=raw, path=target if target.exists() else None)


def _dump(path: Path, data: dict[str, Any]) -> str:
    if path.suffix in (".yaml", ".yml"):
        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def _set_aside_if_corrupt(path: Path) -> None:
    if not path.exists():
        return
    try:
        _parse(path, _read_text(path))
    except (ConfigurationValidationError, JsonDecodeError) as err:
        set_aside(path, reason=err.message)


def save_config(config_data: dict[str, Any], local: bool = False) -> None:
    """Validate ``config_data`` and write it atomically to the global (or local) config file."""
    path = get_config_path(local=local)
    validate_config(config_data, source=path)
    with locked(path):
        _set_aside_if_corrupt(path)
        atomic_write_text(path, _dump(path, config_data))


def update_config(mutate: Callable[[dict[str, Any]], Any], local: bool = False) -> dict[str, Any]:
    """Read, change and write a config file as one locked step; refuses to touch a corrupt file.

    ``mutate`` changes the dict in place; returning ``False`` means "nothing to change" (no write).
    """
    path = get_config_path(local=local)
    with locked(path):
        data, _ = get_config_from_path(path)
        if mutate(data) is False:
            return data
        validate_config(data, source=path)
        atomic_write_text(path, _dump(path, data))
    return data


def set_current_model(provider: str, model: str, local: bool = False, quiet: bool = False) -> bool:
    """Select ``provider``/``model``, which must be configured in that scope; ``True`` once selected.

    ``ConfigurationNotFoundError`` (as 2.3.0) names the config file when the provider or the model is not
    there. The check and the write happen under one lock, so a concurrent ``config remove`` cannot leave
    the selection pointing at a model that is gone.
    """
    found = False
    model = model.strip()

    def select(data: dict[str, Any]) -> bool:
        nonlocal found, provider
        providers = data.get("providers", {})
        if provider not in providers:  # as 2.3.0: "GitHub-Copilot" is github_copilot
            normalized = provider.strip().lower().replace("-", "_")
            provider = normalized if normalized in providers else provider
        models = providers.get(provider, {}).get("models")
        found = models is not None and model in models
        if not found:
            return False
        data["current_model"] = {"provider": provider, "model": model}
        return True

    update_config(select, local)
    if not found:
        where = get_config_path(local=local)
        raise ConfigurationNotFoundError(
            provider,
            model,
            suggestion=f"'{provider}/{model}' is not in {where}. Add it with: modelforge config add "
            f"--provider {provider} --model {model}" + (" --local" if local else ""),
        )
    if not quiet:
        print(f"Current model set to {provider}/{model}.")
    return True


def get_current_model() -> dict[str, str] | None:
    """The active config's ``current_model`` (``{"provider", "model"}``) as 2.3.0 returned it: ``None``
    when the key is absent, ``{}`` when nothing is selected there (``config remove`` of the selection)."""
    data, _ = get_config()
    current = data.get("current_model")
    return dict(current) if isinstance(current, dict) else None


def get_settings() -> dict[str, Any]:
    """The active config's ``settings`` over the defaults (``show_telemetry: True``)."""
    data, _ = get_config()
    return {**DEFAULT_SETTINGS, **data.get("settings", {})}


def update_setting(key: str, value: Any, local: bool = False) -> None:
    """Set one key under ``settings`` in the global (or local) config file."""
    update_config(lambda d: d.setdefault("settings", {}).__setitem__(key, value), local)


def migrate_old_config() -> bool:
    """Move the pre-2.0 ``~/.config/model-forge/models.json`` to ``config.json``; ``True`` if moved.

    When both files exist nothing is overwritten: as 2.3.0, a warning says so (logged, so on stderr) and
    ``False`` is returned.
    """
    old = global_config_dir() / "models.json"
    new = get_config_path(local=False)
    if not old.exists():
        return False
    if new.exists():
        message = (
            f"Old configuration file {old} found, but {new} already exists; nothing was migrated. "
            f"Merge what you need from {old} into {new}, then delete {old}."
        )
        logger.warning("%s", message)  # on stderr (logging's last-resort handler when none is set)
        return False
    data, _ = get_config_from_path(old)
    save_config(data)
    old.unlink()
    return True
