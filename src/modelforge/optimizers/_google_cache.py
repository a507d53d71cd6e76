"""The life of Gemini cached contents (``cachedContents``): one per prefix in the process, reuse, renewal,
deletion.

One process-wide store remembers, by key, the cached content made for a static prefix and when it
expires. The key is (provider, base URL, a SHA-256 digest of the credential, never the credential itself,
model, digest of the prefix), so every model of a provider, including the new model each ``get_llm()``
returns, reuses the same cached content, and two credentials or endpoints never share one. A call with
the same prefix reuses it until shortly before it expires (a margin of a tenth of its TTL, at most a
minute, so no call is sent with a cache that dies in flight); after that a new one is created.

A creation the provider refuses as invalid (HTTP 400, e.g. a prefix below its minimum size, which ModelForge
can only estimate) is remembered for the store's TTL: calls with that prefix are then sent without the cache
at once, instead of asking again (and logging again) on every call.

Only one creation per key is in flight: concurrent calls with the same prefix (threads, or the items of an
``abatch``) wait for the one creating it (a ``concurrent.futures.Future`` per key, awaited through
``asyncio.wrap_future`` from async code, so waiting never blocks an event loop) and use its answer; if
that creation fails, they are sent without the cache as it is. Creation goes through the google-genai
client of the calling model's innermost ``ChatGoogleGenerativeAI`` (``client.caches.create``, or
``client.aio.caches.create`` from async code).

Each model reaches the store through its ``ContextCacheStore`` (one per optimizer: its TTL, its clock
and the cached contents it used). The store keeps cache names, expiry times and the settings of the
google-genai client that created each one (to delete it with a client of its own), never the models: a
model dropped by its user is garbage-collected, and its cached contents stay usable by the next model
until they expire. Cached contents cost storage while they live, so they are deleted (``DELETE``): by
``OptimizedChatModel.close()`` / ``aclose()`` (the ones that model used and no other live model uses), by
``close_context_caches()``, and at interpreter exit (all). Deletion failures are logged and otherwise
ignored (the cache expires on its own). Times come from each handle's ``clock`` (``time.time``; tests set
their own).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelforge.optimizers._base import reason

__all__ = [
    "ContextCacheStore",
    "CreationRefused",
    "aclose_context_caches",
    "cache_key",
    "close_context_caches",
]

logger = logging.getLogger("modelforge.optimizers")

_MAX_MARGIN_SECONDS = 60.0


class CreationRefused(Exception):
    """The provider refused to create this prefix's cached content a short while ago: send without it."""


def _is_refusal(err: BaseException) -> bool:
    """A 400 from the provider: asking again with the same prefix would be refused again."""
    return getattr(err, "code", None) == 400 or getattr(err, "status_code", None) == 400


def cache_key(provider: str, base_url: str | None, credential: str | None, model: str, prefix: str) -> str:
    """The store key of a prefix: provider, base URL, credential digest, model and prefix digest."""
    digest = hashlib.sha256()
    secret = hashlib.sha256(credential.encode()).hexdigest() if credential else ""
    for part in (provider, base_url or "", secret, model, prefix):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(eq=False)
class _Entry:
    key: str
    name: str
    expires_at: float
    ttl: float
    # How to make a google-genai client that can delete it (never the model, which may be long gone).
    client: _ClientRecipe = field(repr=False)
    # The clock of the model that created it (tests move their own).
    clock: Callable[[], float]
    users: weakref.WeakSet[ContextCacheStore] = field(default_factory=weakref.WeakSet)

    def usable(self, now: float) -> bool:
        return self.expires_at - min(_MAX_MARGIN_SECONDS, self.ttl / 10) > now


@dataclass(frozen=True)
class _ClientRecipe:
    """The settings of the google-genai client that created a cached content, to delete it later with a
    client of its own (the model's client is closed when the model is garbage-collected)."""

    api_key: str | None = field(repr=False)  # never in a repr or a traceback's locals
    http_options: Any = field(repr=False)  # may carry headers

    @classmethod
    def of(cls, client: Any, config: Any = None) -> _ClientRecipe:
        """The recipe of ``client``, on the API version the creation ``config`` was sent to, if its own."""
        api = client._api_client
        version = getattr(getattr(config, "http_options", None), "api_version", None)
        options = api._http_options.model_copy(
            update={
                **({"api_version": version} if version else {}),
                "client_args": None,
                "async_client_args": None,
                "httpx_client": None,
                "httpx_async_client": None,
                "aiohttp_client": None,
            }
        )
        return cls(api.api_key, options)

    def client(self) -> Any:
        from google import genai

        return genai.Client(api_key=self.api_key, http_options=self.http_options)


@dataclass(eq=False)
class _Pending:
    future: concurrent.futures.Future[str]
    thread: int


class _SharedCaches:
    """Every cached content this process created and has not deleted, by key and by name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[str, _Entry] = {}
        self.by_name: dict[str, _Entry] = {}
        self.pending: dict[str, _Pending] = {}
        self.refused: dict[str, tuple[float, str]] = {}  # key -> (until, the provider's reason)

    def lookup(self, key: str, now: float, user: ContextCacheStore) -> str | None:
        with self.lock:
            for name, entry in list(self.by_name.items()):
                if entry.expires_at <= now:
                    del self.by_name[name]
            found = self.by_key.get(key)
            if found is None:
                return None
            if not found.usable(now):
                del self.by_key[key]
                return None
            found.users.add(user)
            return found.name

    def claim(self, key: str, now: float, user: ContextCacheStore, *, sync: bool) -> tuple[str | None, Any]:
        """``(name, None)`` when usable now; ``(None, pending)`` to wait for another creation; ``(None,
        future)`` when the caller must create it and settle ``future``."""
        name = self.lookup(key, now, user)
        if name is not None:
            return name, None
        with self.lock:
            until, why = self.refused.get(key, (0.0, ""))
            if until > now:
                raise CreationRefused(why)
            self.refused.pop(key, None)
        thread = threading.get_ident()
        with self.lock:
            pending = self.pending.get(key)
            # A sync call never waits for a creation its own thread started from async code (it would block
            # the loop that must finish it): it creates one of its own.
            if pending is not None and not (sync and pending.thread == thread):
                return None, pending
            future: concurrent.futures.Future[str] = concurrent.futures.Future()
            if pending is None:
                self.pending[key] = _Pending(future, thread)
            return None, future

    def refuse(self, key: str, until: float, err: BaseException, now: float) -> None:
        with self.lock:
            for old, (old_until, _) in list(self.refused.items()):  # the map stays as small as what is live
                if old_until <= now:
                    del self.refused[old]
            self.refused[key] = (until, reason(err) if isinstance(err, Exception) else type(err).__name__)

    def settle(self, key: str, future: concurrent.futures.Future[str]) -> None:
        with self.lock:
            pending = self.pending.get(key)
            if pending is not None and pending.future is future:
                del self.pending[key]

    def remember(self, key: str, name: str, client: _ClientRecipe, user: ContextCacheStore) -> str:
        if not name or name == "None":
            raise ValueError("the provider answered without a cached content name")
        entry = _Entry(key, name, user.clock() + user.ttl, user.ttl, client, user.clock)
        entry.users.add(user)
        with self.lock:
            self.by_key[key] = entry
            self.by_name[name] = entry
        return name

    def attach(self, name: str, user: ContextCacheStore) -> None:
        with self.lock:
            entry = self.by_name.get(name)
            if entry is not None:
                entry.users.add(user)

    def forget(self, name: str) -> None:
        with self.lock:
            self.by_name.pop(name, None)
            for key, entry in list(self.by_key.items()):
                if entry.name == name:
                    del self.by_key[key]

    def take(self, user: ContextCacheStore | None) -> list[_Entry]:
        """The live entries to delete: all (``user`` None), or those ``user`` used that no one else uses."""
        with self.lock:
            taken: list[_Entry] = []
            for name, entry in list(self.by_name.items()):
                if user is not None:
                    if user not in entry.users:
                        continue
                    entry.users.discard(user)
                    if len(entry.users):
                        continue
                del self.by_name[name]
                if self.by_key.get(entry.key) is entry:
                    del self.by_key[entry.key]
                if entry.expires_at > entry.clock():
                    taken.append(entry)
            return taken


_shared = _SharedCaches()


class ContextCacheStore:
    """One model's view of the process-wide cached contents: its TTL, its clock, what it used."""

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock

    @property
    def margin(self) -> float:
        return min(_MAX_MARGIN_SECONDS, self.ttl / 10)

    @property
    def names(self) -> list[str]:
        """The live cached contents this model used, oldest first."""
        now = self.clock()
        with _shared.lock:
            return [e.name for e in _shared.by_name.values() if e.expires_at > now and self in e.users]

    def lookup(self, key: str) -> str | None:
        """The cached content for ``key`` if it lives long enough to be used; expired entries are dropped."""
        return _shared.lookup(key, self.clock(), self)

    def get_or_create(self, owner: Any, key: str, model: str, config: Any) -> str:
        """The cached content for ``key``, created with ``owner``'s client (sync) unless another call
        already made it or is making it (then its answer, or its error)."""
        name, claim = _shared.claim(key, self.clock(), self, sync=True)
        if name is not None:
            return name
        if isinstance(claim, _Pending):
            name = claim.future.result()
            _shared.attach(name, self)
            return name
        try:
            created = owner.client.caches.create(model=model, config=config)
            name = _shared.remember(key, str(created.name), _ClientRecipe.of(owner.client, config), self)
        except BaseException as err:
            self._creation_failed(key, claim, err)
            raise
        finally:
            _shared.settle(key, claim)
        claim.set_result(name)
        return name

    async def aget_or_create(self, owner: Any, key: str, model: str, config: Any) -> str:
        """``get_or_create`` without blocking the event loop (waiting included)."""
        name, claim = _shared.claim(key, self.clock(), self, sync=False)
        if name is not None:
            return name
        if isinstance(claim, _Pending):
            name = await asyncio.wrap_future(claim.future)
            _shared.attach(name, self)
            return name
        try:
            created = await owner.client.aio.caches.create(model=model, config=config)
            name = _shared.remember(key, str(created.name), _ClientRecipe.of(owner.client, config), self)
        except BaseException as err:
            self._creation_failed(key, claim, err)
            raise
        finally:
            _shared.settle(key, claim)
        claim.set_result(name)
        return name

    def _creation_failed(self, key: str, claim: concurrent.futures.Future[str], err: BaseException) -> None:
        """Tell the calls waiting for this creation that it failed; remember a refusal for the TTL."""
        if _is_refusal(err):
            now = self.clock()
            _shared.refuse(key, now + self.ttl, err, now)
        claim.set_exception(err if isinstance(err, Exception) else RuntimeError("creation interrupted"))

    def forget(self, name: str) -> None:
        """Stop using ``name`` (the provider says it is gone), for every model."""
        _shared.forget(name)

    def close(self) -> None:
        """Delete the cached contents this model used that no other live model uses."""
        _delete(_shared.take(self))

    async def aclose(self) -> None:
        """``close`` without blocking the event loop."""
        await _adelete(_shared.take(self))


def _delete(entries: list[_Entry]) -> None:
    for entry in entries:
        try:
            with entry.client.client() as client:
                client.caches.delete(name=entry.name)
        except Exception as err:
            _delete_failed(entry.name, err)


async def _adelete(entries: list[_Entry]) -> None:
    # A sync client in a worker thread: a fresh async google-genai client would bring aiohttp in.
    if entries:
        await asyncio.to_thread(_delete, entries)


def _delete_failed(name: str, err: Exception) -> None:
    logger.warning(
        "Could not delete the Gemini cached content %s (%s); it expires on its own", name, reason(err)
    )


def close_context_caches() -> None:
    """Delete every cached content this process created and still holds (also run at interpreter exit)."""
    _delete(_shared.take(None))


async def aclose_context_caches() -> None:
    """``close_context_caches`` without blocking the event loop."""
    await _adelete(_shared.take(None))


atexit.register(close_context_caches)
