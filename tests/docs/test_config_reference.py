"""The configuration reference (``docs/configuration.md``) names every key a config file may hold.

Each key is taken from the code that accepts it, not from a list written here: the fields of the config
schema models (``ProviderConfig``, ``ModelConfig``, ``AuthDetails``, ``CurrentModel``, ``ModelForgeConfig``)
and of the dataclasses that validate each policy section (``ProviderRetryConfig``, ``RateLimitConfig``,
``CacheConfig``, ``PoolLimits``, ``BatchConfig``), plus the exported ``OPERATIONS`` and ``KNOWN_KEYS``.
Where a validator keeps its accepted keys inside a function (the sub-keys of ``optimizations.prompt_caching``
and ``optimizations.context_caching``, the keys of a ``fallbacks`` entry), the test feeds it an unknown key
and reads the "allowed" list from the error it raises: the same list a user sees.

A key counts as documented when it starts a table row (`` | `key` | ``) in the section of the page whose
heading names the section (`` ### `retry` ``); defaults written in the code must appear in that row's
default column. A new key added to the code without a line in the reference fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from modelforge import config as config_module
from modelforge.auth.keyring_store import STORE_ENV
from modelforge.config_schema import AuthDetails, CurrentModel, ModelConfig, ModelForgeConfig, ProviderConfig
from modelforge.exceptions import ConfigurationValidationError
from modelforge.modelsdev import OFFLINE_ENV, URL_ENV
from modelforge.policies.fallback_config import parse_fallbacks
from modelforge.policies.ratelimit import RateLimitConfig
from modelforge.policies.retry import OPERATIONS, ProviderRetryConfig
from modelforge.pooling import PoolLimits
from modelforge.sections.batch import BatchConfig
from modelforge.sections.cache import CacheConfig
from modelforge.sections.optimizations import KNOWN_KEYS, OptimizationConfig

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_HEADING = re.compile(r"^(#{2,4})\s+(.*)$")
_ALLOWED = re.compile(r"allowed(?: keys)?: (.+)$")


def _sections() -> dict[str, str]:
    """Heading text -> the text under it, up to the next heading of the same or a higher level."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = _HEADING.match(line)
        if not match:
            continue
        level = len(match[1])
        body: list[str] = []
        for later in lines[index + 1 :]:
            other = _HEADING.match(later)
            if other and len(other[1]) <= level:
                break
            body.append(later)
        found[match[2].strip()] = "\n".join(body)
    return found


def _section(name: str) -> str:
    """The section whose heading names ``name`` in backticks (e.g. ``### `retry` section``)."""
    for heading, body in _sections().items():
        if f"`{name}`" in heading:
            return body
    pytest.fail(f"docs/configuration.md has no section whose heading names `{name}`")


def _row(section: str, key: str) -> str | None:
    for line in section.splitlines():
        if re.match(rf"^\|\s*`{re.escape(key)}`\s*\|", line):
            return line
    return None


def _allowed_from_error(error: Exception) -> list[str]:
    """The names an "allowed keys: a, b, c" (or "allowed: a, b") error message lists."""
    text = str(error).splitlines()[0]
    match = _ALLOWED.search(text)
    assert match, f"the error does not list what is allowed: {text}"
    return [name.strip() for name in match[1].split(",") if name.strip()]


def _switch_options(key: str) -> list[str]:
    """The keys ``optimizations.<key>`` accepts as a mapping, as its validator reports them."""
    with pytest.raises(ValueError) as caught:
        OptimizationConfig.from_config({key: {"no_such_option": 1}})
    return _allowed_from_error(caught.value)


def _fallback_entry_keys() -> list[str]:
    """The keys of a ``{provider, model}`` fallbacks entry, as its validator reports them."""
    with pytest.raises(ConfigurationValidationError) as caught:
        parse_fallbacks("a", "m", [{"provider": "b", "no_such_key": 1}], {"a": ["m"], "b": ["n"]})
    return _allowed_from_error(caught.value)


def _model_fields(model: type[BaseModel]) -> dict[str, Any]:
    """Field name -> default (``PydanticUndefined`` when required, ``dataclasses.MISSING`` for a factory)."""
    return {
        name: (dataclasses.MISSING if field.default_factory is not None else field.default)
        for name, field in model.model_fields.items()
    }


def _dataclass_fields(cls: type) -> dict[str, Any]:
    return {
        field.name: (field.default if field.default is not dataclasses.MISSING else dataclasses.MISSING)
        for field in dataclasses.fields(cls)
    }


# section heading name -> the keys (with their code defaults) its table must hold
def _expected() -> dict[str, dict[str, Any]]:
    optimizations: dict[str, Any] = {key: dataclasses.MISSING for key in KNOWN_KEYS}
    for switch in ("prompt_caching", "context_caching"):
        for option in _switch_options(switch):
            optimizations[f"{switch}.{option}"] = dataclasses.MISSING
    return {
        "ModelForgeConfig": _model_fields(ModelForgeConfig),
        "current_model": _model_fields(CurrentModel),
        "ProviderConfig": _model_fields(ProviderConfig),
        "ModelConfig": _model_fields(ModelConfig),
        "auth_details": _model_fields(AuthDetails),
        "retry": {**_dataclass_fields(ProviderRetryConfig), **{op: dataclasses.MISSING for op in OPERATIONS}},
        "rate_limit": _dataclass_fields(RateLimitConfig),
        "optimizations": optimizations,
        "cache": _dataclass_fields(CacheConfig),
        "fallbacks": {key: dataclasses.MISSING for key in _fallback_entry_keys()},
        "connection_pool": _dataclass_fields(PoolLimits),
        "batch": _dataclass_fields(BatchConfig),
        # DEFAULT_SETTINGS is the code's own list of settings with defaults; ``enable_optimizations`` is
        # read by ModelForgeRegistry.__init__ / from_config with ``settings.get(...)`` and kept in no
        # constant, so it is named here.
        "settings": {**config_module.DEFAULT_SETTINGS, "enable_optimizations": False},
    }


CASES = [(section, key) for section, keys in _expected().items() for key in keys]


@pytest.mark.parametrize(("section", "key"), CASES, ids=[f"{s}.{k}" for s, k in CASES])
def test_every_accepted_key_has_a_row(section: str, key: str) -> None:
    assert _row(_section(section), key), (
        f"docs/configuration.md: the `{section}` section has no table row for `{key}` "
        f"(add `| `{key}` | type | default | meaning |`)"
    )


def _default_forms(value: Any) -> list[str] | None:
    """How a code default may be written in the default column (None: not checked)."""
    if value is None or value is dataclasses.MISSING or value is PydanticUndefined:
        return None
    if isinstance(value, bool):
        return [f"`{str(value).lower()}`"]
    if isinstance(value, int | float):
        forms = {f"`{value}`", f"`{value:g}`"}
        if isinstance(value, int) and value >= 1000:
            forms.add(f"`{value:,}`")
        return sorted(forms)
    if isinstance(value, str):
        return [f"`{value}`", f'`"{value}"`']
    return None


DEFAULT_CASES = [
    (section, key, default)
    for section, keys in _expected().items()
    for key, default in keys.items()
    if _default_forms(default) is not None
]


@pytest.mark.parametrize(
    ("section", "key", "default"), DEFAULT_CASES, ids=[f"{s}.{k}" for s, k, _ in DEFAULT_CASES]
)
def test_the_default_column_matches_the_code(section: str, key: str, default: Any) -> None:
    row = _row(_section(section), key)
    assert row, f"no row for `{key}` in the `{section}` section"
    cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
    assert len(cells) >= 4, f"the row for `{key}` needs the columns key | type | default | meaning: {row}"
    forms = _default_forms(default) or []
    assert any(form in cells[2] for form in forms), (
        f"`{section}.{key}` defaults to {default!r} in the code; its default column says {cells[2]!r}"
    )


def test_the_required_keys_are_marked_required() -> None:
    for section, model in (("auth_details", AuthDetails), ("current_model", CurrentModel)):
        for name, field in model.model_fields.items():
            if field.is_required():
                row = _row(_section(section), name)
                assert row and "required" in row.lower(), f"`{section}.{name}` is required; say so"


@pytest.mark.parametrize("name", [STORE_ENV, URL_ENV, OFFLINE_ENV, "MODELFORGE_ENHANCED"])
def test_the_environment_variables_are_listed(name: str) -> None:
    assert _row(_env_section(), name), (
        f"docs/configuration.md: `{name}` is read by the code but not listed under Environment variables"
    )


def _env_section() -> str:
    for heading, body in _sections().items():
        if heading.lower().startswith("environment variables"):
            return body
    pytest.fail("docs/configuration.md has no 'Environment variables' section")


def test_the_config_file_names_are_listed() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for name in config_module.CONFIG_NAMES:
        assert f"`{name}`" in text or name in text, f"the config file name {name} is not mentioned"
