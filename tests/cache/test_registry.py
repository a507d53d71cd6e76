"""The cache through ``ModelForgeRegistry.get_llm``: ``enable_cache`` / ``cache_ttl`` and the provider's
``cache:`` section, models with the same settings sharing one cache, and pickling."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

from modelforge.cache import CacheStats, cache_of
from modelforge.managed import ManagedChatModel
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.cache.conftest import ask, marker, requests_to, write_config


async def test_get_llm_enable_cache_with_ttl(server: ProviderServer, configured: dict[str, Any]) -> None:
    llm = ModelForgeRegistry().get_llm(enable_cache=True, cache_ttl=300)
    assert cache_of(llm) is not None
    assert isinstance(llm, ManagedChatModel)  # the cache is a step of its own pipeline, not a wrapper
    config = llm.response_cache.config
    assert (config.backend, config.ttl) == ("memory", 300)
    await ask(llm, "q", "async")
    answer = await ask(llm, "q", "sync")
    assert marker(answer) == "hit"
    assert requests_to(server) == 1
    assert llm.cache_stats == CacheStats(hits=1, misses=1, stores=1)


async def test_no_cache_unless_asked(server: ProviderServer, configured: dict[str, Any]) -> None:
    registry = ModelForgeRegistry()
    assert cache_of(registry.get_llm()) is None
    assert cache_of(registry.get_llm(enable_cache=False)) is None


@pytest.mark.parametrize("cache", [True, {"ttl": 120}, {"enabled": True, "backend": "memory"}])
async def test_config_section_turns_the_cache_on(server: ProviderServer, keys: None, cache: Any) -> None:
    write_config(server, cache)
    llm = ModelForgeRegistry().get_llm()
    assert cache_of(llm) is not None
    assert llm.response_cache.config.ttl == (cache.get("ttl", 3600) if isinstance(cache, dict) else 3600)
    await ask(llm, "q", "async")
    await ask(llm, "q", "async")
    assert requests_to(server) == 1


async def test_arguments_win_over_the_section(server: ProviderServer, keys: None) -> None:
    write_config(server, {"ttl": 120})
    registry = ModelForgeRegistry()
    assert cache_of(registry.get_llm(enable_cache=False)) is None
    llm = registry.get_llm(cache_ttl=30)
    assert cache_of(llm) is not None and llm.response_cache.config.ttl == 30
    write_config(server, {"enabled": False, "ttl": 120})
    registry = ModelForgeRegistry()
    assert cache_of(registry.get_llm()) is None
    forced = registry.get_llm(enable_cache=True)
    assert cache_of(forced) is not None and forced.response_cache.config.ttl == 120


async def test_models_with_the_same_settings_share_one_cache(
    server: ProviderServer, configured: dict[str, Any]
) -> None:
    server.script(Reply(text="first"), Reply(text="second"))
    one = ModelForgeRegistry().get_llm(enable_cache=True)
    two = ModelForgeRegistry().get_llm(enable_cache=True)
    assert cache_of(one) is not None and cache_of(two) is not None
    assert one.response_cache is two.response_cache
    await ask(one, "q", "async")
    assert (await ask(two, "q", "async")).content == "first"
    assert requests_to(server) == 1
    assert two.cache_stats.hits == 1
    other = ModelForgeRegistry().get_llm("anthropic", enable_cache=True)
    assert cache_of(other) is not None
    assert other.response_cache is not one.response_cache  # counters are per provider...
    assert other.response_cache.backend is one.response_cache.backend  # ...the memory store is shared


async def test_bind_tools_and_structured_output_keep_the_cache(
    server: ProviderServer, configured: dict[str, Any]
) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        value: int

    server.default_reply = Reply(text='{"value": 4}')
    llm = ModelForgeRegistry().get_llm(enable_cache=True)
    structured = llm.with_structured_output(Answer, method="json_schema")
    assert (await structured.ainvoke("2 + 2?")) == Answer(value=4)
    assert (await structured.ainvoke("2 + 2?")) == Answer(value=4)
    assert requests_to(server) == 1


async def test_a_cached_model_pickles_without_credentials(
    server: ProviderServer, configured: dict[str, Any]
) -> None:
    from tests.conftest import OPENAI_KEY

    llm = ModelForgeRegistry().get_llm(enable_cache=True, cache_ttl=300)
    await ask(llm, "q", "async")
    data = pickle.dumps(llm)
    assert OPENAI_KEY.encode() not in data
    copy = pickle.loads(data)
    assert cache_of(copy) is not None
    assert copy.response_cache is llm.response_cache  # rebuilt from its config: the same shared cache
    assert marker(await ask(copy, "q", "async")) == "hit"
    assert requests_to(server) == 1


async def test_batches_are_cached_and_keep_the_batch_retry_policy(server: ProviderServer, keys: None) -> None:
    retry = {"max_attempts": 1, "batch": {"max_attempts": 2, "initial_wait": 0.001, "max_wait": 0.001}}
    write_config(server, True, retry=retry)
    server.script(Fault(503), Reply(text="A"), Reply(text="B"))
    llm = ModelForgeRegistry().get_llm()
    answers = await asyncio.to_thread(llm.batch, ["a", "b"], config={"max_concurrency": 1})
    assert [m.content for m in answers] == ["A", "B"]
    assert [m.content for m in await llm.abatch(["a", "b", "a"])] == ["A", "B", "A"]
    assert requests_to(server) == 3  # the 503 was retried by the batch policy; the rest came from the cache


_PICKLED_CHILD = """
import pickle, sys
copy = pickle.loads(sys.stdin.buffer.read())
print(copy.response_cache.config.url)
"""


async def test_a_redis_password_does_not_travel_in_a_pickle(server: ProviderServer, keys: None) -> None:
    import subprocess
    import sys

    url = "redis://:s3cr3t-cache-password@127.0.0.1:6379/0"  # the client connects only when used
    write_config(server, {"backend": "redis", "url": url, "namespace": "pickled"})
    llm = ModelForgeRegistry().get_llm()
    assert cache_of(llm) is not None
    data = pickle.dumps(llm)
    assert b"s3cr3t-cache-password" not in data
    copy = pickle.loads(data)  # this process: the live cache, with its full URL
    assert copy.response_cache is llm.response_cache
    assert copy.response_cache.config.url == url
    # Another process: the URL comes back from the provider's config.
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", _PICKLED_CHILD], input=data, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == url


async def test_cache_ttl_alone_turns_the_cache_on(server: ProviderServer, keys: None) -> None:
    write_config(server, None)
    assert cache_of(ModelForgeRegistry().get_llm()) is None
    llm = ModelForgeRegistry().get_llm(cache_ttl=45)
    assert cache_of(llm) is not None and llm.response_cache.config.ttl == 45
    write_config(server, {"enabled": False})
    assert cache_of(ModelForgeRegistry().get_llm(cache_ttl=45)) is not None
    assert cache_of(ModelForgeRegistry().get_llm(enable_cache=False, cache_ttl=45)) is None
