"""Pooled HTTP connections: one pool per provider, base URL and credential, shared by every model handed out.

Every model ``ModelForgeRegistry.get_llm()`` builds for the same provider, base URL and credential sends
through the same pool of keep-alive connections, so a hundred calls (from one model or from many) reuse one
TCP connection instead of opening their own. The pool lives in the transport: ``shared_http_clients``
returns, for each model it is called for, a sync client and an async client of its own (of the httpx
flavour the SDK uses: ``httpx``, or ``httpx2`` for openai>=3 and anthropic>=2) over a transport that sends
through the key's shared pool, plus that transport for SDKs that build their own clients (Ollama, Gemini).
So a model's cookies stay its own, and closing one model's client (``OpenAI.close()`` does) never closes the
pool or the clients of the others.

* Limits come from the provider's ``connection_pool`` config section (``PoolLimits.from_config``)::

      connection_pool: {max_connections: 10, max_keepalive_connections: 5, keepalive_expiry: 30}

  ``connection_pool: {enabled: false}`` lets the SDK make its own clients, as before.
* The async side keeps one pool per running event loop (see ``modelforge._pool_transport``), so a model
  works from ``asyncio.run`` twice in a row; a loop's pool is closed when that loop shuts down.
* Timeouts, headers and credentials stay per request, as each SDK sends them: sharing a pool never shares a
  credential. The key holds a SHA-256 digest of the credential, never the credential itself; a callable
  credential (the Copilot token source) keys by provider and base URL only.
* Several credentials of one provider and base URL (tenants, or a key and its rotated successor) keep
  pools side by side, up to ``MAX_CREDENTIALS``: beyond that, the pools of the least recently used
  credential (models made or requests sent) are dropped from the table and closed once idle (models still
  holding them keep working, each request on a connection of its own). So a rotated-away key's pools are
  closed once enough newer ones are in use, and the table never grows without bound.
* Proxies from the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) apply to the pool's base URL, as they
  would to the SDK's own client; an SDK's own proxy setting (``OPENAI_PROXY``, ``ANTHROPIC_PROXY``) wins.
* A model whose SDK does not send through the transport it was handed (a new SDK release that builds its
  own client, say on another httpx flavour) gets neither pooling nor send-time rate-limit accounting: the
  first successful call of such a model logs one WARNING per provider and model class
  (``report_unpooled``), never silence. Error translation does not depend on the transport.
* ``close_pools()`` (also run at interpreter exit) closes every sync pool, drops the pools of closed event
  loops and asks loops running in other threads to close theirs; ``await aclose_pools()`` also closes the
  running loop's pools. The clients stay usable: the next request opens a new connection.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import hashlib
import importlib.metadata
import logging
import math
import threading
import urllib.request
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from modelforge._pool_transport import LoopPools, load_flavor, running_loop, shared_transport

__all__ = [
    "PoolLimits",
    "PoolStats",
    "PooledClients",
    "aclose_pools",
    "close_pools",
    "httpx_flavor_of",
    "pool_stats",
    "report_unpooled",
    "shared_http_clients",
    "validate_section",
]

logger = logging.getLogger(__name__)

SECTION = "connection_pool"
# How long ``close_pools`` waits for event loops in other threads to close their pools.
CLOSE_WAIT_SECONDS = 2.0
# Credentials with pools side by side per httpx flavour, provider and base URL (least recently used retired).
MAX_CREDENTIALS = 8


def validate_section(section: Mapping[str, Any] | None) -> None:
    """Check a provider's ``connection_pool`` section; ``ValueError`` naming the key and what is allowed."""
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise ValueError(f"{SECTION} must be a mapping of {_allowed_keys()}, got {type(section).__name__}")
    unknown = sorted(str(key) for key in section if key not in {f.name for f in fields(PoolLimits)})
    if unknown:
        raise ValueError(f"unknown key {SECTION}.{unknown[0]}; allowed keys: {_allowed_keys()}")
    for name in ("max_connections", "max_keepalive_connections"):
        if name in section:
            value = section[name]
            smallest = 1 if name == "max_connections" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
                raise ValueError(f"{SECTION}.{name} must be a whole number >= {smallest}, got {value!r}")
    if "keepalive_expiry" in section:
        value = section["keepalive_expiry"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{SECTION}.keepalive_expiry must be a number of seconds >= 0, got {value!r}")
    if "enabled" in section and not isinstance(section["enabled"], bool):
        raise ValueError(f"{SECTION}.enabled must be true or false, got {section['enabled']!r}")


def _allowed_keys() -> str:
    return ", ".join(f.name for f in fields(PoolLimits))


@dataclass(frozen=True)
class PoolLimits:
    """How many connections one pool keeps (per event loop for the async side), and for how long."""

    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry: float = 30.0
    # False: the SDK makes its own clients, as without pooling.
    enabled: bool = True

    validate_section = staticmethod(validate_section)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> PoolLimits:
        """The limits a ``connection_pool`` section asks for (defaults for what it leaves out)."""
        validate_section(section)
        return cls(**dict(section or {}))


@dataclass(frozen=True)
class PooledClients:
    """One model's HTTP clients, and the transport under them (sync and async at once) over its key's pool.

    Closing the clients or the transport never closes the shared pool (see ``close_pools``).
    """

    client: Any  # an httpx.Client / httpx2.Client
    async_client: Any  # an httpx.AsyncClient / httpx2.AsyncClient
    transport: Any = field(repr=False)  # for SDKs that build their own clients: pass as ``transport=``
    limits: PoolLimits = field(default_factory=PoolLimits)
    pool: LoopPools | None = field(default=None, repr=False, compare=False)  # the key's shared pools


@dataclass(frozen=True)
class PoolStats:
    """What the pools hold right now (for tests and debugging)."""

    clients: int  # pool keys (provider, base URL, credential, limits, flavour) in use for new models
    open_sync_pools: int  # keys whose sync pool is open
    event_loops: int  # distinct event loops with an async pool


@dataclass(frozen=True)
class _Key:
    flavor: str
    provider: str
    base_url: str
    credential_digest: str | None = field(repr=False)
    limits: PoolLimits
    proxy: str | None = field(repr=False)  # may hold a proxy password


_entries: dict[_Key, LoopPools] = {}
# Pools of retired credentials, still held by older models: closed by ``close_pools`` too, until collected.
_retired: weakref.WeakSet[LoopPools] = weakref.WeakSet()
_lock = threading.Lock()


def httpx_flavor_of(client_class: type) -> str:
    """``"httpx2"`` if ``client_class`` (an SDK's default client class) is built on httpx2, else ``"httpx"``.

    openai>=3 and anthropic>=2 are built on httpx2 and catch its exceptions: their clients must be httpx2 too.
    """
    for base in client_class.__mro__:
        if base.__module__.split(".")[0] == "httpx2":
            return "httpx2"
    return "httpx"


def shared_http_clients(
    provider: str,
    base_url: str,
    credential: object | None,
    limits: PoolLimits,
    *,
    flavor: str = "httpx",
    proxy: str | None = None,
) -> PooledClients:
    """New HTTP clients for one model of ``provider`` at ``base_url`` with ``credential``, over the pool
    that every model of that key shares (made on first use).

    ``credential`` only tells keys apart (as a SHA-256 digest); a callable credential keys by provider and
    base URL only. ``flavor`` is the httpx package the SDK expects (see ``httpx_flavor_of``). ``proxy`` is
    an SDK's own proxy setting (``OPENAI_PROXY``, ``ANTHROPIC_PROXY``); without one, the environment's
    proxy for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``, ...) is used.
    """
    base_url = base_url.rstrip("/")
    key = _Key(flavor, provider, base_url, _digest(credential), limits, proxy or _environment_proxy(base_url))
    stale: list[LoopPools] = []
    with _lock:
        pools = _entries.get(key)
        if pools is None:
            pools = _entries[key] = _new_pools(key)
            stale = _least_recently_used(key)
            _retired.update(stale)
        else:
            pools.touch()
    for old in stale:
        old.retire()
    return _clients(pools, key.limits)


def _least_recently_used(new: _Key) -> list[LoopPools]:
    """Drop from the table (under ``_lock``) the pools of the least recently used credentials of ``new``'s
    flavour, provider and base URL beyond ``MAX_CREDENTIALS`` (never ``new``'s own); return them."""
    group = (new.flavor, new.provider, new.base_url)
    last_use: dict[str | None, int] = {}
    for key, pools in _entries.items():
        if (key.flavor, key.provider, key.base_url) == group:
            last_use[key.credential_digest] = max(last_use.get(key.credential_digest, -1), pools.last_use)
    last_use.pop(new.credential_digest, None)
    dropped: list[LoopPools] = []
    while len(last_use) >= MAX_CREDENTIALS:  # the others, plus ``new``'s, are over the bound
        oldest = min(last_use, key=last_use.__getitem__)
        del last_use[oldest]
        for key in [k for k in _entries if (k.flavor, k.provider, k.base_url) == group]:
            if key.credential_digest == oldest:
                dropped.append(_entries.pop(key))
    return dropped


def _digest(credential: object | None) -> str | None:
    if credential is None or callable(credential):
        return None
    if not isinstance(credential, str):
        raise TypeError("a pooled client's credential must be a string, a callable or None")
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()


def _new_pools(key: _Key) -> LoopPools:
    module = load_flavor(key.flavor)
    transport_kwargs: dict[str, Any] = {
        "limits": module.Limits(
            max_connections=key.limits.max_connections,
            max_keepalive_connections=key.limits.max_keepalive_connections,
            keepalive_expiry=key.limits.keepalive_expiry,
        )
    }
    if key.proxy:
        transport_kwargs["proxy"] = module.Proxy(key.proxy)
    return LoopPools(module, transport_kwargs)


def _clients(pools: LoopPools, limits: PoolLimits) -> PooledClients:
    # One model's own clients (own cookie jar; closing them leaves the pool open) over the shared pool.
    # follow_redirects as the SDKs' own default clients; timeouts are sent with each request.
    transport = shared_transport(pools)
    return PooledClients(
        client=pools.flavor.Client(transport=transport, follow_redirects=True),
        async_client=pools.flavor.AsyncClient(transport=transport, follow_redirects=True),
        transport=transport,
        limits=limits,
        pool=pools,
    )


_unpooled_reported: set[tuple[str, str]] = set()


def report_unpooled(provider: str, model: object) -> bool:
    """Log (once per provider and model class) that ``model``, built over a pooled transport, answered a
    call without sending it through that transport; ``True`` the first time."""
    # A get_llm model is named by the SDK class it extends (``ManagedChatOpenAI`` -> ``ChatOpenAI``).
    sdk_class = getattr(type(model), "sdk_class", None)
    kind = sdk_class() if callable(sdk_class) else type(model)
    key = (provider, f"{kind.__module__}.{kind.__qualname__}")
    with _lock:
        if key in _unpooled_reported:
            return False
        _unpooled_reported.add(key)
    logger.warning(
        "Provider '%s': %s (%s) answered without sending through ModelForge's pooled transport (its SDK built"
        " an HTTP client of its own), so connection pooling and send-time rate-limit accounting do not"
        " apply to it (errors are still translated). The SDK under it sends differently from the releases"
        " ModelForge was tested with: install one of those, or report this release; `connection_pool:"
        " {enabled: false}` on the provider turns pooling and this check off.",
        provider,
        kind.__name__,
        _release_of(kind.__module__),
    )
    return True


def _release_of(module: str) -> str:
    """``"langchain-openai 1.8.1"``: the distribution that installed ``module`` and its version."""
    package = module.split(".")[0]
    names = importlib.metadata.packages_distributions().get(package) or [package]
    try:
        return f"{names[0]} {importlib.metadata.version(names[0])}"
    except importlib.metadata.PackageNotFoundError:
        return package


def _environment_proxy(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (a custom transport turns httpx's lookup off)."""
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def close_pools() -> None:
    """Close every sync pool, drop the async pools of closed event loops, and ask loops running in other
    threads to close theirs (waiting up to ``CLOSE_WAIT_SECONDS``). Run at interpreter exit too.

    The running loop's pools (when called from async code) are left to ``aclose_pools``. Clients stay
    usable: the next request opens a new connection.
    """
    scheduled = _close_all()
    if scheduled and running_loop() is None:
        concurrent.futures.wait(scheduled, timeout=CLOSE_WAIT_SECONDS)


async def aclose_pools() -> None:
    """``close_pools``, plus the running event loop's pools, without blocking the loop."""
    scheduled = _close_all()
    for pool in _all_pools():
        await pool.aclose_current()
    if scheduled:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.wrap_future(f) for f in scheduled), return_exceptions=True),
                CLOSE_WAIT_SECONDS,
            )


def _all_pools() -> list[LoopPools]:
    with _lock:
        return [*_entries.values(), *_retired]


def _close_all() -> list[concurrent.futures.Future[None]]:
    scheduled: list[concurrent.futures.Future[None]] = []
    for pool in _all_pools():
        scheduled.extend(pool.close())
    return scheduled


def pool_stats() -> PoolStats:
    """How many pool keys serve new models, how many sync pools are open (retired ones included), and how
    many loops have pools."""
    with _lock:
        keys = len(_entries)
    open_sync = 0
    loops: set[int] = set()
    for pool in _all_pools():
        sync_open, loop_ids = pool.stats()
        open_sync += sync_open
        loops |= loop_ids
    return PoolStats(clients=keys, open_sync_pools=open_sync, event_loops=len(loops))


atexit.register(close_pools)
