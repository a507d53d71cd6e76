"""Fixtures for the response-cache tests: a provider server and a config pointing at it, a fake clock, and
the three backends (memory, SQLite in the test's folder, real Redis at 127.0.0.1:6379 with a namespace of
the test's own, deleted afterwards).

Redis tests skip when no Redis answers there, except under CI (``CI=true``), where they fail: CI has Redis.
Every test ends with the process's shared caches closed and forgotten, so no answer leaks between tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import Runnable

from modelforge import config
from modelforge.cache import CachedChatModel, aclose_caches, cache_of, with_cache
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests._clock import FakeClock
from tests.conftest import ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY
from tests.providers.conftest import provider_config

REDIS_URL = "redis://127.0.0.1:6379/0"
BACKEND_NAMES = ("memory", "sqlite", "redis")
# Provider name -> the protocol the server records its requests under.
PROTOCOLS = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama", "google": "gemini"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000.0)


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)


def redis_available() -> bool:
    try:
        redis_client().ping()
    except Exception as err:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI needs Redis at {REDIS_URL} for the cache tests") from err
        return False
    return True


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    namespace = f"mf-cache-test-{uuid.uuid4().hex}"
    yield namespace
    client = redis_client()
    for name in client.scan_iter(match=f"{namespace}*"):  # its neighbours ("<namespace>-x") too
        client.delete(name)
    client.close()


def redis_values(namespace: str) -> list[bytes]:
    client = redis_client()
    try:
        return [client.get(name) or b"" for name in client.scan_iter(match=f"{namespace}:*")]
    finally:
        client.close()


@pytest.fixture(autouse=True)
async def _close_caches() -> AsyncIterator[None]:
    yield
    await aclose_caches()


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """API keys of the families the cache tests use, from the environment as users give them."""
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("MODELFORGE_GOOGLE_API_KEY", GOOGLE_KEY)


def write_config(
    server: ProviderServer, cache: Any = None, provider: str = "openai", retry: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The global config: every family against ``server``, ``provider`` with ``cache`` as its section
    (and ``retry``, when given)."""
    data = provider_config(server)
    if cache is not None:
        data["providers"][provider]["cache"] = cache
    if retry is not None:
        data["providers"][provider]["retry"] = retry
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    return data


@pytest.fixture
def configured(server: ProviderServer, keys: None) -> dict[str, Any]:
    return write_config(server)


@pytest.fixture(params=BACKEND_NAMES)
def section(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A ``cache`` section for each backend, in a namespace (and file) of this test's own."""
    name: str = request.param
    if name == "redis":
        namespace = request.getfixturevalue("redis_namespace")
        return {"backend": "redis", "url": REDIS_URL, "namespace": namespace}
    namespace = f"test-{uuid.uuid4().hex}"
    if name == "sqlite":
        return {
            "backend": "sqlite",
            "path": str(tmp_path / "cache" / "answers.sqlite3"),
            "namespace": namespace,
        }
    return {"backend": "memory", "namespace": namespace}


@pytest.fixture
async def make_cached(configured: dict[str, Any]) -> AsyncIterator[Callable[..., CachedChatModel]]:
    """Builds ``get_llm(provider)`` wrapped in a cache with ``section`` (on ``now`` when given: a cache of
    its own, closed after the test)."""
    private: list[CachedChatModel] = []

    def make(
        section: dict[str, Any] | bool | None,
        *,
        provider: str = "openai",
        now: Callable[[], float] | None = None,
        ttl: float | None = None,
    ) -> CachedChatModel:
        base = ModelForgeRegistry().get_llm(provider)
        llm = with_cache(base, provider, section, enable=True, ttl=ttl, now=now)
        assert cache_of(llm) is not None
        if now is not None:
            private.append(llm)
        return llm

    yield make
    for llm in private:
        await llm.response_cache.aclose()


def requests_to(server: ProviderServer, provider: str = "openai") -> int:
    return len(server.requests_for(PROTOCOLS[provider]))


async def ask(llm: Runnable[Any, Any], prompt: Any, mode: str, **kwargs: Any) -> AIMessage:
    """``invoke`` in a worker thread (as sync callers run) or ``ainvoke``."""
    if mode == "sync":
        result = await asyncio.to_thread(llm.invoke, prompt, **kwargs)
    else:
        result = await llm.ainvoke(prompt, **kwargs)
    assert isinstance(result, AIMessage)
    return result


async def stream_chunks(
    llm: Runnable[Any, Any], prompt: Any, mode: str, **kwargs: Any
) -> list[AIMessageChunk]:
    """All chunks of ``stream`` (in a worker thread) or ``astream``."""
    if mode == "sync":
        return await asyncio.to_thread(lambda: list(llm.stream(prompt, **kwargs)))
    return [chunk async for chunk in llm.astream(prompt, **kwargs)]


def marker(message: AIMessage | AIMessageChunk) -> str | None:
    value = message.response_metadata.get("modelforge_cache")
    return value if isinstance(value, str) else None


def chunk_view(chunk: AIMessageChunk) -> dict[str, Any]:
    """What a consumer of a chunk sees, without the run id and the cache's own marker."""
    return {
        "content": chunk.content,
        "tool_call_chunks": chunk.tool_call_chunks,
        "tool_calls": chunk.tool_calls,
        "usage": chunk.usage_metadata,
        "metadata": {k: v for k, v in chunk.response_metadata.items() if k != "modelforge_cache"},
        "additional_kwargs": chunk.additional_kwargs,
        "position": chunk.chunk_position,
    }
