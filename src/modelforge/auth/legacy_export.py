"""``export_legacy_auth_data``: the way back to model-forge-llm 2.3.0, which reads keys and tokens only
from ``providers.<name>.auth_data`` in config.json. Stored credentials are copied there in the form 2.3.0
parses (token expiry as ISO 8601 with the UTC offset); ``modelforge config migrate`` moves them out again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelforge.auth.store import load_scope, project_scope
from modelforge.auth.tokens import format_expires_at, parse_expires_at
from modelforge.config import get_config_path, update_config
from modelforge.exceptions import ConfigurationError, ConfigurationNotFoundError
from modelforge.validation import InputValidator

__all__ = ["LegacyExport", "export_legacy_auth_data"]

logger = logging.getLogger(__name__)


@dataclass
class LegacyExport:
    """What ``export_legacy_auth_data`` did: the file written and the providers by outcome."""

    path: Path
    exported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    without_credentials: list[str] = field(default_factory=list)


def export_legacy_auth_data(*, local: bool = False, providers: Sequence[str] | None = None) -> LegacyExport:
    """Copy the stored credentials of the providers of one config file into that file, as 2.3.0 kept
    them (``providers.<name>.auth_data``), so model-forge-llm 2.3.0 finds them after a switch back.

    The credentials stay in the store too. The global file gets the global credentials; the project file
    gets the project's own, else the global ones (what this project used). Environment variables are not
    copied: 2.3.0 reads the same ``MODELFORGE_<PROVIDER>_API_KEY``. The file is rewritten atomically and
    owner-only, since it now holds secrets. ``ConfigurationNotFoundError`` if the file does not exist or
    a named provider is not in it. Undo with ``modelforge config migrate``.
    """
    path = get_config_path(local=local)
    if path.exists() and path.suffix != ".json":
        raise ConfigurationError(
            f"{path} is YAML, and 2.3.0 reads only config.json",
            suggestion=f"Save the same settings as {path.with_suffix('.json')} (and remove {path.name}), "
            "then run this again.",
        )
    if not path.exists():
        raise ConfigurationError(
            f"There is no {'project' if local else 'global'} config file at {path} to copy credentials into",
            suggestion="Add a model first (modelforge config add), or drop --local to use the global file.",
            error_code="CONFIG_NOT_FOUND",
        )
    project = project_scope() if local else None
    result = LegacyExport(path)

    def export(data: dict[str, Any]) -> bool:
        entries = data.get("providers", {})
        wanted = (
            [name if name in entries else InputValidator.validate_provider_name(name) for name in providers]
            if providers
            else sorted(entries)
        )
        missing = [name for name in wanted if not isinstance(entries.get(name), dict)]
        if missing:
            raise ConfigurationNotFoundError(
                missing[0],
                suggestion=f"It is not in {path}; see the providers there with: modelforge config show",
            )
        for name in wanted:
            found = (load_scope(name, project) if project else None) or load_scope(name, None)
            if found is None:
                result.without_credentials.append(name)
                continue
            legacy = _as_2_3_auth_data(found.data)
            if entries[name].get("auth_data") == legacy:
                result.unchanged.append(name)
            else:
                entries[name]["auth_data"] = legacy
                result.exported.append(name)
        return bool(result.exported)

    update_config(export, local=local)
    if result.exported:
        logger.info("Copied the credentials of %s into %s", ", ".join(result.exported), path)
    return result


def _as_2_3_auth_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Stored credentials in the form 2.3.0 parses: expiry times as ISO 8601 with the UTC offset (2.3.0
    compares them with an aware datetime; a number or a naive time would crash it)."""
    legacy = dict(data)
    for key in ("expires_at", "refresh_token_expires_at"):
        if key in legacy:
            when = parse_expires_at(legacy[key])
            if when is not None:
                legacy[key] = format_expires_at(when)
    return legacy
