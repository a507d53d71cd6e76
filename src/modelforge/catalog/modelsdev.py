"""The models.dev client: fresh model metadata when the network allows, the bundled snapshot when not.

``ModelsDevClient`` keeps the 2.3.0 methods and return shapes. It downloads ``https://models.dev/api.json``
(override with ``url=`` or ``MODELFORGE_MODELSDEV_URL``; a URL not ending in ``.json`` gets ``/api.json``
appended), trims it like the bundled snapshot and caches it atomically in
``~/.cache/model-forge/modelsdev/catalog.json`` (the home directory is read at call time). One cached
document answers every question; how old it may be depends on the question: lists (providers, models,
search) 24 hours, one model's info 7 days.

When models.dev cannot be reached (short timeouts, so a CLI never hangs) the client answers from the stale
cache, or else from the snapshot bundled with the package; ``data_source`` says which (``"cache"``,
``"network"``, ``"stale-cache"``, ``"bundled"``) and ``snapshot_date`` how old the data is. After a failed
download it stays offline for ``RETRY_AFTER_FAILURE`` seconds. ``MODELFORGE_OFFLINE=1`` (or
``offline=True``) never touches the network. A cache file that cannot be read is ignored and replaced.

Return shapes (all plain dicts, JSON-serialisable):

* provider: ``{"id", "name" (the id, as 2.3.0), "display_name", "description", "auth_types",
  "base_urls", "env", "doc", "model_count"}``
* model: ``{"id", "provider", "name", "display_name", "description", "family", "capabilities" (list of
  ``modelforge.catalog.CAPABILITIES``), "context_length", "max_tokens", "max_output_tokens",
  "pricing": {"input_per_1m_tokens", "output_per_1m_tokens", "cache_read_per_1m_tokens",
  "cache_write_per_1m_tokens"} (2.3.0's keys) and the same prices as ``input_per_1m``, ``output_per_1m``,
  ``cache_read_per_1m``, ``cache_write_per_1m``, with ``currency``,
  "modalities": {"input", "output"}, "knowledge", "release_date", "open_weights", "status",
  "snapshot_date"}``; prices in USD per million tokens, ``None`` when unknown.
* model info: the model dict, plus the models.dev entry's own fields (``cost``, ``limit``, ``tool_call``...)
  under their own names where they do not clash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from modelforge._files import atomic_write_text
from modelforge._secrets import register_secret
from modelforge.catalog import Catalog, ModelInfo
from modelforge.catalog._data import MODELS_DEV_URL, dump_envelope, is_api_json, make_envelope, parse_envelope
from modelforge.catalog._data import trim as trim_api
from modelforge.exceptions import InvalidInputError, ModelNotFoundError, ProviderNotAvailableError

__all__ = [
    "ModelInfoNotFoundError",
    "ModelsDevClient",
    "ProviderInfoNotFoundError",
]

_log = logging.getLogger("modelforge.modelsdev")  # 2.3.0's logger name

URL_ENV = "MODELFORGE_MODELSDEV_URL"
OFFLINE_ENV = "MODELFORGE_OFFLINE"
CACHE_FILE = "catalog.json"
_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_TRUE = {"1", "true", "yes", "on"}


class ModelInfoNotFoundError(ModelNotFoundError, ValueError):
    """models.dev has no such model; also a ``ValueError``, which 2.3.0 raised here."""


class ProviderInfoNotFoundError(ProviderNotAvailableError, ValueError):
    """models.dev has no such provider; also a ``ValueError``, which 2.3.0 raised here."""


def _home_cache_dir() -> Path:
    return Path.home() / ".cache" / "model-forge" / "modelsdev"


try:
    _DEFAULT_CACHE_DIR = _home_cache_dir()  # as 2.3.0 computed its CACHE_DIR, at import
except RuntimeError:  # no HOME and no passwd entry: only a client given cache_dir= can cache then
    _DEFAULT_CACHE_DIR = Path(".cache") / "model-forge" / "modelsdev"

# models.dev provider ids whose ModelForge family is not the OpenAI-compatible one.
_LLM_TYPES = {
    "anthropic": "anthropic",
    "google": "google_genai",
    "ollama": "ollama",
    "github-copilot": "github_copilot",
}


def _require_name(value: str | None, what: str, code: str, example: str) -> None:
    """2.3.0 refused a blank provider or model name with ``InvalidInputError``."""
    if not value or not str(value).strip():
        raise InvalidInputError(
            f"The {what} name is empty", suggestion=f"Give a {what} name such as '{example}'", error_code=code
        )


class ModelsDevClient:
    """Model and provider metadata from models.dev, cached, with an offline fallback."""

    BASE_URL = "https://models.dev"
    CACHE_TTL: dict[str, int] = {
        "providers": 24 * 3600,
        "models": 24 * 3600,
        "model_info": 7 * 24 * 3600,
        "provider_config": 7 * 24 * 3600,
    }
    # 2.3.0's class attribute. Assigning it (``ModelsDevClient.CACHE_DIR = tmp_path``, as tests do) moves the
    # cache of every client made without ``cache_dir=``; left alone, the cache follows ``$HOME`` at call time.
    CACHE_DIR: Path = _DEFAULT_CACHE_DIR
    DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
    TOTAL_DOWNLOAD_SECONDS = 10.0
    RETRY_AFTER_FAILURE = 300.0

    def __init__(
        self,
        api_key: str | None = None,
        *,
        url: str | None = None,
        cache_dir: Path | str | None = None,
        timeout: httpx.Timeout | float | None = None,
        offline: bool | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        register_secret(api_key)
        self._url = url
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._timeout = timeout if timeout is not None else self.DEFAULT_TIMEOUT
        self._offline = offline
        self._clock = clock
        self._transport = transport
        self._memo: tuple[tuple[int, int], Catalog] | None = None
        self._failed_at: float | None = None
        self._last: Catalog | None = None
        self.data_source: str | None = None  # where the last answer came from

    # --- configuration -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The api.json URL: ``url=``, else ``MODELFORGE_MODELSDEV_URL``, else models.dev."""
        base = self._url or os.environ.get(URL_ENV) or MODELS_DEV_URL
        return base if base.split("?", 1)[0].endswith(".json") else base.rstrip("/") + "/api.json"

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is not None:
            return self._cache_dir
        assigned = self.CACHE_DIR  # the class's, or one set on this client (2.3.0 read self.CACHE_DIR)
        return Path(assigned) if assigned != _DEFAULT_CACHE_DIR else _home_cache_dir()

    @property
    def cache_path(self) -> Path:
        return self.cache_dir / CACHE_FILE

    @property
    def offline(self) -> bool:
        if self._offline is not None:
            return self._offline
        return os.environ.get(OFFLINE_ENV, "").strip().lower() in _TRUE

    @property
    def snapshot_date(self) -> str | None:
        """The date of the data behind the last answer (``None`` before the first call)."""
        return self._last.snapshot_date if self._last is not None else None

    # --- the 2.3.0 methods -------------------------------------------------------------------------------

    def get_providers(self, force_refresh: bool = False) -> list[dict[str, Any]]:
        """Every models.dev provider (see the module docstring for the dict shape)."""
        catalog = self.catalog(max_age=self.CACHE_TTL["providers"], force_refresh=force_refresh)
        return [provider.to_dict() for provider in catalog.providers()]

    def get_provider_config(self, provider: str, force_refresh: bool = False) -> dict[str, Any]:
        """A configuration template for ``provider`` (2.3.0's method): its models.dev entry (id, names,
        auth types, base URLs, the environment variables that hold its key) with ``llm_type`` and
        ``base_url`` as a config file would set them. ``ProviderInfoNotFoundError`` when unknown."""
        _require_name(provider, "provider", "EMPTY_PROVIDER", "openai")
        catalog = self.catalog(max_age=self.CACHE_TTL["provider_config"], force_refresh=force_refresh)
        info = catalog.provider(provider)
        if info is None:
            raise ProviderInfoNotFoundError(provider)
        template = info.to_dict()
        template["llm_type"] = _LLM_TYPES.get(info.id, "openai_compatible")
        template["base_url"] = info.api
        template["env"] = list(info.env)
        return template

    def get_models(self, provider: str | None = None, force_refresh: bool = False) -> list[dict[str, Any]]:
        """Every model, or those of ``provider`` (ModelForge or models.dev name; unknown gives ``[]``)."""
        catalog = self.catalog(max_age=self.CACHE_TTL["models"], force_refresh=force_refresh)
        return [info.to_dict() for info in catalog.models(provider)]

    def get_model_info(self, provider: str, model: str, force_refresh: bool = False) -> dict[str, Any]:
        """One model's metadata; ``ModelInfoNotFoundError`` / ``ProviderInfoNotFoundError`` when unknown."""
        _require_name(provider, "provider", "EMPTY_PROVIDER", "openai")
        _require_name(model, "model", "EMPTY_MODEL", "gpt-4o-mini")
        catalog = self.catalog(max_age=self.CACHE_TTL["model_info"], force_refresh=force_refresh)
        info = catalog.model(provider, model)
        if info is None and self.data_source == "cache" and not self._fresh_for_lists():
            # Newer than 7 days but older than a day: the model may be new since; look once more.
            catalog = self.catalog(max_age=self.CACHE_TTL["models"])
            info = catalog.model(provider, model)
        if info is None:
            raise self._not_found(catalog, provider, model)
        # A deep copy: the caller may change what it gets without changing the shared catalogue.
        details = {k: v for k, v in json.loads(json.dumps(info.raw)).items() if k not in ("id", "provider")}
        return {**details, **info.to_dict()}

    def search_models(
        self,
        query: str,
        provider: str | None = None,
        capabilities: list[str] | None = None,
        max_price: float | None = None,
        force_refresh: bool = False,
    ) -> list[dict[str, Any]]:
        """Models matching ``query`` and the filters (see ``Catalog.search``), as model dicts."""
        catalog = self.catalog(max_age=self.CACHE_TTL["models"], force_refresh=force_refresh)
        found = catalog.search(query, provider=provider, capabilities=capabilities, max_price=max_price)
        return [info.to_dict() for info in found]

    def clear_cache(self) -> None:
        """Delete the cached catalogue (and any 2.3.0-era cache files in the same directory)."""
        self._memo = None
        directory = self.cache_dir
        if not directory.is_dir():
            return
        for path in directory.glob("*.json"):
            with contextlib.suppress(OSError):
                path.unlink()

    # --- the catalogue behind every answer ---------------------------------------------------------------

    def catalog(self, *, max_age: float | None = None, force_refresh: bool = False) -> Catalog:
        """The freshest catalogue at hand: cache younger than ``max_age``, download, stale cache, bundled."""
        source, catalog = self._find_catalog(
            self.CACHE_TTL["models"] if max_age is None else max_age, force_refresh
        )
        self.data_source, self._last = source, catalog
        return catalog

    def _find_catalog(self, max_age: float, force_refresh: bool) -> tuple[str, Catalog]:
        cached = None if force_refresh else self._read_cache()
        if cached is not None and cached[1] < max_age:
            return "cache", cached[0]
        if not self.offline and (force_refresh or not self._recently_failed()):
            fetched = self._download()
            if fetched is not None:
                return "network", fetched
        if cached is None and force_refresh:
            cached = self._read_cache()
        if cached is not None:
            return "stale-cache", cached[0]
        return "bundled", Catalog.bundled()

    def _fresh_for_lists(self) -> bool:
        cached = self._read_cache()
        return cached is not None and cached[1] < self.CACHE_TTL["models"]

    def _recently_failed(self) -> bool:
        return self._failed_at is not None and self._clock() - self._failed_at < self.RETRY_AFTER_FAILURE

    def _read_cache(self) -> tuple[Catalog, float] | None:
        """The cached catalogue and its age in seconds; ``None`` when absent or unusable."""
        path = self.cache_path
        try:
            stat = path.stat()
        except OSError:
            return None
        age = max(self._clock() - stat.st_mtime, 0.0)
        key = (stat.st_mtime_ns, stat.st_size)
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1], age
        try:
            catalog = Catalog.from_envelope(parse_envelope(path.read_bytes()))
        except (OSError, ValueError) as err:
            _log.info("Ignoring unreadable models.dev cache %s: %s", path, err)
            return None
        self._memo = (key, catalog)
        return catalog, age

    def _download(self) -> Catalog | None:
        url = self.url
        try:
            api = self._fetch_json(url)
            if not is_api_json(api):
                raise ValueError("the document is not shaped like models.dev api.json")
        except (httpx.HTTPError, ValueError) as err:
            self._failed_at = self._clock()
            _log.info("models.dev unavailable (%s): %s; answering offline", url, err)
            return None
        self._failed_at = None
        today = dt.datetime.fromtimestamp(self._clock(), dt.UTC).date().isoformat()
        envelope = make_envelope(trim_api(api), snapshot_date=today, source=url)
        catalog = Catalog.from_envelope(envelope)
        try:
            atomic_write_text(self.cache_path, dump_envelope(envelope).decode("utf-8"), mode=0o644)
            stat = self.cache_path.stat()
            self._memo = ((stat.st_mtime_ns, stat.st_size), catalog)
        except Exception as err:  # a read-only home must not stop the answer
            _log.info("Could not cache the models.dev catalogue in %s: %s", self.cache_dir, err)
        return catalog

    def _fetch_json(self, url: str) -> Any:
        headers = {"Accept": "application/json", "User-Agent": "modelforge"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        deadline = time.monotonic() + self.TOTAL_DOWNLOAD_SECONDS
        with (
            httpx.Client(
                timeout=self._timeout, headers=headers, transport=self._transport, follow_redirects=True
            ) as client,
            client.stream("GET", url) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > _MAX_DOCUMENT_BYTES:
                    raise ValueError(f"the document is larger than {_MAX_DOCUMENT_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise ValueError(f"the download took longer than {self.TOTAL_DOWNLOAD_SECONDS:g}s")
        try:
            return json.loads(bytes(body))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"invalid JSON: {err}") from err

    def _not_found(self, catalog: Catalog, provider: str, model: str) -> Exception:
        pid = catalog.provider_id(provider)
        if pid is None:
            known = ", ".join(p.id for p in catalog.providers()[:10])
            return ProviderInfoNotFoundError(
                provider,
                reason="models.dev has no such provider",
                suggestion=f"models.dev providers include: {known}",
            )
        return ModelInfoNotFoundError(provider, model, available_models=_similar(catalog.models(pid), model))


def _similar(models: list[ModelInfo], model: str) -> list[str]:
    ids = [info.model for info in models]
    return difflib.get_close_matches(model, ids, n=5, cutoff=0.5) or ids[:5]
