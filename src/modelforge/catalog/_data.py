"""The catalogue's data format: reading models.dev ``api.json`` documents and the bundled snapshot.

models.dev publishes one JSON object ``{provider_id: {id, name, env, api, doc, models: {model_id: {...}}}}``
(see ``/work/shared/data/README.md``). Some model entries only name a ``base_model`` (``"vendor/model"``) and
list what differs; ``resolve_base_models`` fills in the inherited fields so every entry stands alone.
``trim`` keeps only the fields ModelForge reads, which is what ``scripts/build_catalog.py`` writes to
``modelforge/data/models_dev.json.gz`` and what ``ModelsDevClient`` keeps in its cache. Both files use the
same envelope: ``{"format": 1, "snapshot_date": "YYYY-MM-DD", "source": url, "providers": {...}}``.

Everything here is pure (no network); ``read_envelope`` raises ``ValueError`` for anything malformed.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLED_RESOURCE",
    "ENVELOPE_FORMAT",
    "MODELS_DEV_URL",
    "MODEL_FIELDS",
    "PROVIDER_FIELDS",
    "dump_envelope",
    "is_api_json",
    "load_bundled_envelope",
    "make_envelope",
    "parse_envelope",
    "read_envelope",
    "resolve_base_models",
    "trim",
]

MODELS_DEV_URL = "https://models.dev/api.json"
ENVELOPE_FORMAT = 1
BUNDLED_RESOURCE = "models_dev.json.gz"

# What ModelForge reads from each model and provider entry; the rest of models.dev is left out.
MODEL_FIELDS: tuple[str, ...] = (
    "name",
    "family",
    "cost",
    "limit",
    "modalities",
    "tool_call",
    "reasoning",
    "attachment",
    "temperature",
    "structured_output",
    "knowledge",
    "release_date",
    "last_updated",
    "open_weights",
    "status",
)
COST_FIELDS: tuple[str, ...] = ("input", "output", "cache_read", "cache_write", "tiers")
PROVIDER_FIELDS: tuple[str, ...] = ("id", "name", "env", "api", "doc")

# Inherited dictionaries that merge key by key; every other field (cost included) is replaced whole.
_MERGED_FIELDS = frozenset({"limit"})
_MAX_BASE_DEPTH = 8


def is_api_json(data: object) -> bool:
    """Whether ``data`` has the shape of a models.dev ``api.json`` document (at least one provider)."""
    if not isinstance(data, dict) or not data:
        return False
    return all(isinstance(p, dict) and isinstance(p.get("models", {}), dict) for p in data.values())


def resolve_base_models(api: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``api`` in which each ``base_model`` entry carries the fields it inherits.

    ``base_model`` is ``"vendor/model"``: the entry ``model`` of provider ``vendor``. Some documents name a
    base that is not among their providers (models.dev keeps those base files elsewhere, and an entry may
    even name itself); then the fields other than ``cost`` are taken from a self-contained entry of the same
    model at another provider, so limits and capabilities are still known. Prices are never borrowed.
    """
    siblings = _self_contained_entries(api)
    resolved: dict[str, Any] = {}
    for provider_id, provider in api.items():
        if not isinstance(provider, dict):
            continue
        models = provider.get("models") or {}
        resolved[provider_id] = {
            **provider,
            "models": {
                model_id: _resolved_model(api, siblings, entry, 0)
                for model_id, entry in models.items()
                if isinstance(entry, dict)
            },
        }
    return resolved


def _self_contained_entries(api: Mapping[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per model id, the ``(provider_id, entry)`` pairs without ``base_model`` that know a context size."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for provider_id in sorted(api):
        provider = api[provider_id]
        models = provider.get("models") if isinstance(provider, dict) else None
        for model_id, entry in (models or {}).items():
            if (
                isinstance(entry, dict)
                and "base_model" not in entry
                and isinstance(entry.get("limit"), dict)
                and entry["limit"].get("context")
            ):
                found.setdefault(model_id, []).append((provider_id, entry))
    return found


def _best_sibling(
    siblings: Mapping[str, list[tuple[str, dict[str, Any]]]], vendor: str, base_id: str, base_ref: str
) -> dict[str, Any] | None:
    """The vendor's own services first (``google-vertex`` for ``google/...``), then the fullest entry."""
    pairs = siblings.get(base_id) or siblings.get(base_ref)
    if not pairs:
        return None
    _, entry = min(pairs, key=lambda pair: (not pair[0].startswith(vendor), -len(pair[1]), pair[0]))
    return entry


def _resolved_model(
    api: Mapping[str, Any],
    siblings: Mapping[str, list[tuple[str, dict[str, Any]]]],
    entry: dict[str, Any],
    depth: int,
) -> dict[str, Any]:
    base_ref = entry.get("base_model")
    if not isinstance(base_ref, str) or depth >= _MAX_BASE_DEPTH:
        return dict(entry)
    vendor, _, base_id = base_ref.partition("/")
    base = ((api.get(vendor) or {}).get("models") or {}).get(base_id)
    if isinstance(base, dict) and base is not entry:
        merged = _resolved_model(api, siblings, base, depth + 1)
    else:
        sibling = _best_sibling(siblings, vendor, base_id, base_ref)
        if sibling is None:
            return dict(entry)
        merged = {k: v for k, v in sibling.items() if k != "cost"}
    for key in entry.get("base_model_omit") or ():
        merged.pop(key, None)
    for key, value in entry.items():
        if key in _MERGED_FIELDS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged["id"] = entry.get("id", merged.get("id"))
    return merged


def trim(api: Mapping[str, Any]) -> dict[str, Any]:
    """``api`` resolved and cut down to ``PROVIDER_FIELDS`` and ``MODEL_FIELDS`` (no nulls)."""
    out: dict[str, Any] = {}
    for provider_id, provider in resolve_base_models(api).items():
        kept = {k: provider[k] for k in PROVIDER_FIELDS if provider.get(k) is not None}
        kept["id"] = provider_id
        kept["models"] = {model_id: _trim_model(entry) for model_id, entry in provider["models"].items()}
        out[provider_id] = kept
    return out


def _trim_model(entry: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: entry[k] for k in MODEL_FIELDS if entry.get(k) is not None}
    cost = kept.get("cost")
    if isinstance(cost, dict):
        kept["cost"] = {k: cost[k] for k in COST_FIELDS if cost.get(k) is not None}
    return kept


def make_envelope(providers: Mapping[str, Any], *, snapshot_date: str, source: str) -> dict[str, Any]:
    """The envelope written to the bundled data file and to the models.dev cache."""
    return {
        "format": ENVELOPE_FORMAT,
        "snapshot_date": snapshot_date,
        "source": source,
        "providers": providers,
    }


def dump_envelope(envelope: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted JSON bytes (stable output, so rebuilding the data file gives the same bytes)."""
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def parse_envelope(raw: bytes) -> dict[str, Any]:
    """Decode (gzip or plain) envelope bytes; ``ValueError`` when they are not a usable envelope."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"corrupt gzip data: {err}") from err
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"invalid JSON: {err}") from err
    if not isinstance(data, dict) or data.get("format") != ENVELOPE_FORMAT:
        raise ValueError("not a ModelForge catalogue file")
    if not isinstance(data.get("snapshot_date"), str) or not is_api_json(data.get("providers")):
        raise ValueError("catalogue file without a snapshot date or providers")
    return data


def read_envelope(path: Path) -> dict[str, Any]:
    """Read an envelope file; ``ValueError`` when it is missing, unreadable or malformed."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    return parse_envelope(raw)


def load_bundled_envelope() -> dict[str, Any]:
    """The snapshot that ships inside the package."""
    raw = resources.files("modelforge.data").joinpath(BUNDLED_RESOURCE).read_bytes()
    return parse_envelope(raw)
