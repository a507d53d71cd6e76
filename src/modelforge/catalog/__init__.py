"""Model metadata and prices: the bundled models.dev snapshot, looked up by exact model id.

``Catalog`` owns the questions "what does this model cost, how long is its context, can it call tools?".
``Catalog.bundled()`` reads ``modelforge/data/models_dev.json.gz`` (built by ``scripts/build_catalog.py``)
once per process, on first use; ``Catalog(api_json_dict, snapshot_date=...)`` wraps any document shaped like
``https://models.dev/api.json`` (``ModelsDevClient`` uses that for fresher data). A catalogue never changes
after it is built.

Lookups are exact: ``gpt-4o-mini`` is never priced as ``gpt-4o`` (the 2.3.0 substring defect). The only
tolerance is for naming differences that carry no ambiguity:

* ModelForge provider names vs models.dev ids: an id the catalogue has is used as is; otherwise
  ``gemini`` / ``google_genai`` -> ``google``, ``github_copilot`` -> ``github-copilot`` (``_`` -> ``-``
  generally), and ``ollama`` (local models) has no entry (models.dev lists none).
* A dated id models.dev does not list falls back to its undated alias when, and only when, that alias is
  listed: ``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``.
* OpenRouter ``vendor/model`` ids: OpenRouter's own entry first, then the vendor's entry.

Prices are US dollars per million tokens as of ``snapshot_date``; a price models.dev does not give is
``None`` (unknown), never ``0.0``. ``CATALOG_SNAPSHOT_DATE`` is the bundled snapshot's date.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from modelforge.catalog._data import MODELS_DEV_URL, is_api_json, load_bundled_envelope, resolve_base_models
from modelforge.catalog._model_info import CAPABILITIES, ModelInfo, ProviderInfo, normalise_capabilities
from modelforge.exceptions import InvalidInputError

__all__ = [
    "CAPABILITIES",
    "CATALOG_SNAPSHOT_DATE",
    "LOCAL_PROVIDERS",
    "Catalog",
    "ModelInfo",
    "ProviderInfo",
    "find_model_anywhere",
]

CATALOG_SNAPSHOT_DATE: str  # resolved on first access by the module ``__getattr__`` (reads the data file)

# Providers that run models locally: no catalogue entry and no price.
LOCAL_PROVIDERS = frozenset({"ollama", "local"})

# ModelForge provider names (and LangChain ``llm_type`` spellings) whose models.dev id differs.
_PROVIDER_ALIASES: dict[str, str | None] = {
    "gemini": "google",
    "google_genai": "google",
    "google-genai": "google",
    "github_copilot": "github-copilot",
    # Local models: nothing to look up (models.dev's "ollama-cloud" is another service).
    **dict.fromkeys(LOCAL_PROVIDERS),
}

# Who makes a model, by id prefix: ``find_model_anywhere`` prefers the maker's own entry.
_VENDOR_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-oss", ""),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "google"),
    ("gemma-", "google"),
    ("grok-", "xai"),
    ("deepseek-", "deepseek"),
    ("mistral-", "mistral"),
    ("ministral-", "mistral"),
    ("codestral-", "mistral"),
    ("devstral-", "mistral"),
    ("magistral-", "mistral"),
    ("pixtral-", "mistral"),
    ("kimi-", "moonshotai"),
    ("glm-", "zhipuai"),
    ("qwen", "alibaba"),
    ("llama-", "llama"),
    ("command-", "cohere"),
    ("sonar", "perplexity"),
)

_DATED_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


class Catalog:
    """An immutable models.dev catalogue with exact lookups."""

    __slots__ = ("_by_model", "_found", "_infos", "_providers", "_snapshot_date", "_source")

    _bundled: ClassVar[Catalog | None] = None
    _bundled_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        api: Mapping[str, Any],
        *,
        snapshot_date: str | None = None,
        source: str = MODELS_DEV_URL,
        resolve: bool = True,
    ) -> None:
        if not is_api_json(api):
            raise InvalidInputError(
                "Not a models.dev catalogue: expected {provider_id: {..., 'models': {model_id: {...}}}}"
            )
        # ``resolve=False`` is for envelopes, which are written already resolved (and are never mutated).
        data = resolve_base_models(api) if resolve else dict(api)
        self._providers: Mapping[str, Mapping[str, Any]] = MappingProxyType(data)
        self._snapshot_date = snapshot_date
        self._source = source
        self._by_model: dict[str, tuple[str, ...]] | None = None
        # ModelInfo is frozen and the catalogue never changes: each entry is built once (prices are read
        # on every priced call, e.g. each response-cache hit counted in modelforge.telemetry.metrics).
        self._infos: dict[tuple[str, str], ModelInfo] = {}
        self._found: dict[tuple[str, tuple[str | None, ...]], ModelInfo | None] = {}  # ``lookup``'s answers

    @classmethod
    def bundled(cls) -> Catalog:
        """The snapshot shipped with ModelForge, read once per process on first use."""
        if cls._bundled is None:
            with cls._bundled_lock:
                if cls._bundled is None:
                    cls._bundled = cls.from_envelope(load_bundled_envelope())
        return cls._bundled

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any]) -> Catalog:
        """A catalogue from the bundled-file / cache-file envelope (see ``modelforge.catalog._data``)."""
        return cls(
            envelope["providers"],
            snapshot_date=envelope.get("snapshot_date"),
            source=envelope.get("source") or MODELS_DEV_URL,
            resolve=False,
        )

    @property
    def snapshot_date(self) -> str | None:
        """The day the data was taken from models.dev (``YYYY-MM-DD``)."""
        return self._snapshot_date

    @property
    def source(self) -> str:
        return self._source

    def __repr__(self) -> str:
        return f"Catalog({len(self._providers)} providers, snapshot_date={self._snapshot_date!r})"

    # --- providers ---------------------------------------------------------------------------------------

    def provider_id(self, provider: str) -> str | None:
        """The models.dev id for a ModelForge provider name, or ``None`` when the catalogue has none."""
        key = (provider or "").strip().lower()
        if key in self._providers:
            return key
        if key in _PROVIDER_ALIASES:
            return _PROVIDER_ALIASES[key]
        dashed = key.replace("_", "-")
        return dashed if dashed in self._providers else None

    def providers(self) -> list[ProviderInfo]:
        """Every provider, sorted by id."""
        return [self._provider_info(pid) for pid in sorted(self._providers)]

    def provider(self, provider: str) -> ProviderInfo | None:
        pid = self.provider_id(provider)
        return self._provider_info(pid) if pid else None

    def _provider_info(self, pid: str) -> ProviderInfo:
        data = self._providers[pid]
        env = data.get("env") or ()
        return ProviderInfo(
            id=pid,
            name=str(data.get("name") or pid),
            env=tuple(str(e) for e in env) if isinstance(env, list | tuple) else (),
            api=data.get("api"),
            doc=data.get("doc"),
            model_count=len(data.get("models") or {}),
        )

    # --- models ------------------------------------------------------------------------------------------

    def models(self, provider: str | None = None) -> list[ModelInfo]:
        """Every model of ``provider`` (all providers when ``None``), sorted by provider then id."""
        if provider is None:
            pids: Iterable[str] = sorted(self._providers)
        else:
            pid = self.provider_id(provider)
            pids = [pid] if pid else []
        return [self._info(pid, mid) for pid in pids for mid in sorted(self._models_of(pid))]

    def model(self, provider: str, model: str) -> ModelInfo | None:
        """The entry for exactly ``model`` at ``provider``, or ``None``. See the module docstring."""
        pid = self.provider_id(provider)
        model = (model or "").strip()
        if pid is None or not model:
            return None
        found = self._lookup(pid, model)
        if found is None and pid == "openrouter":
            model = model.removeprefix("openrouter/")
            found = self._lookup(pid, model)
            vendor, _, rest = model.partition("/")
            vendor_id = self.provider_id(vendor) if rest else None
            if found is None and vendor_id and vendor_id != pid:
                found = self._lookup(vendor_id, rest)
        return found

    def lookup(self, provider: str, names: Sequence[str | None]) -> ModelInfo | None:
        """The entry for the first of ``names`` that ``provider`` lists (``model`` on each, in order).

        ``names`` are the ids a model may go by (the API model name, the alias, the id a response
        reported); empty ones and repeats are skipped. Only for a provider the catalogue does not know
        (an OpenAI-compatible proxy) are the names then looked for at any provider
        (``find_model_anywhere``), again in order; a known provider that lacks them, and a local one
        (``LOCAL_PROVIDERS``), give ``None``.
        """
        key = (provider, tuple(names))
        try:
            return self._found[key]
        except KeyError:
            pass
        found = self._lookup_names(provider, names)
        if len(self._found) >= _MAX_REMEMBERED_LOOKUPS:  # many distinct names: start again, stay small
            self._found.clear()
        self._found[key] = found
        return found

    def _lookup_names(self, provider: str, names: Sequence[str | None]) -> ModelInfo | None:
        given = [name for name in names if isinstance(name, str) and name.strip()]
        # Then each name lower-cased (models.dev ids are): "GPT-4o-mini" is gpt-4o-mini, never a substring.
        wanted = list(dict.fromkeys([*given, *(name.lower() for name in given)]))
        for name in wanted:
            if found := self.model(provider, name):
                return found
        if self.provider_id(provider) is not None or (provider or "").strip().lower() in LOCAL_PROVIDERS:
            return None
        for name in wanted:
            if found := self.find_model_anywhere(name):
                return found
        return None

    def find_model_anywhere(self, model: str) -> ModelInfo | None:
        """The entry for exactly ``model`` at any provider, preferring the model's own maker.

        For models served through an OpenAI-compatible proxy whose provider models.dev does not know.
        ``vendor/model`` ids are looked up at the vendor first. Among other providers the first by id wins.
        """
        model = (model or "").strip()
        if not model:
            return None
        vendor, _, rest = model.partition("/")
        vendor_id = self.provider_id(vendor) if rest else None
        if vendor_id and (found := self._lookup(vendor_id, rest)):
            return found
        maker = _maker_of(model)
        if maker in self._providers and (found := self._lookup(maker, model)):
            return found
        for candidate in _candidates(model):
            holders = self._index().get(candidate)
            if holders:
                return self._info(holders[0], candidate)
        return None

    def search(
        self,
        query: str,
        provider: str | None = None,
        capabilities: Iterable[str] | None = None,
        max_price: float | None = None,
    ) -> list[ModelInfo]:
        """Models whose id, name or family contain every word of ``query`` (case-insensitive).

        ``capabilities`` must all be present (names in ``CAPABILITIES``; ``tools`` and ``image`` are
        accepted spellings); ``max_price`` keeps models whose input price per million tokens is known and at
        most that. Exact id matches come first, then ids starting with the query.
        """
        words = (query or "").lower().split()
        wanted = normalise_capabilities(capabilities)
        if max_price is not None and max_price < 0:
            raise InvalidInputError(f"max_price must be zero or more, got {max_price}")
        if provider is None:
            pids: Iterable[str] = sorted(self._providers)
        else:
            pid = self.provider_id(provider)
            pids = [pid] if pid else []
        results = []
        for pid in pids:
            for mid, entry in sorted(self._models_of(pid).items()):
                text = f"{mid} {entry.get('name') or ''} {entry.get('family') or ''}".lower()
                if not all(word in text for word in words):
                    continue
                info = self._info(pid, mid)
                if wanted and not wanted.issubset(info.capabilities):
                    continue
                if max_price is not None and (info.input_per_1m is None or info.input_per_1m > max_price):
                    continue
                results.append(info)
        joined = " ".join(words)
        results.sort(key=lambda i: (i.model.lower() != joined, not i.model.lower().startswith(joined)))
        return results

    # --- internals ---------------------------------------------------------------------------------------

    def _models_of(self, pid: str) -> Mapping[str, Any]:
        models = self._providers[pid].get("models")
        return models if isinstance(models, Mapping) else {}

    def _lookup(self, pid: str, model: str) -> ModelInfo | None:
        models = self._models_of(pid)
        for candidate in _candidates(model):
            if candidate in models:
                return self._info(pid, candidate)
        return None

    def _info(self, pid: str, model: str) -> ModelInfo:
        info = self._infos.get((pid, model))
        if info is None:
            info = ModelInfo.from_entry(
                pid, model, self._models_of(pid)[model], snapshot_date=self._snapshot_date
            )
            self._infos[(pid, model)] = info
        return info

    def _index(self) -> dict[str, tuple[str, ...]]:
        if self._by_model is None:
            index: dict[str, list[str]] = {}
            for pid in sorted(self._providers):
                for mid in self._models_of(pid):
                    index.setdefault(mid, []).append(pid)
            self._by_model = {mid: tuple(pids) for mid, pids in index.items()}
        return self._by_model


# ``lookup`` answers remembered per catalogue (it never changes): prices are read on every priced call.
_MAX_REMEMBERED_LOOKUPS = 4096


def _candidates(model: str) -> tuple[str, ...]:
    """``model`` itself, then its undated alias when it carries a date suffix."""
    undated = _DATED_SUFFIX.sub("", model)
    return (model, undated) if undated != model else (model,)


def _maker_of(model: str) -> str:
    lowered = model.lower()
    for prefix, vendor in _VENDOR_PREFIXES:
        if lowered.startswith(prefix):
            return vendor
    return ""


def find_model_anywhere(model: str, *, catalog: Catalog | None = None) -> ModelInfo | None:
    """``Catalog.find_model_anywhere`` on ``catalog`` (the bundled snapshot by default)."""
    return (catalog or Catalog.bundled()).find_model_anywhere(model)


def __getattr__(name: str) -> Any:
    if name == "CATALOG_SNAPSHOT_DATE":
        return Catalog.bundled().snapshot_date or "unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
