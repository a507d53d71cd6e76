"""Requests that differ must never share a key: user file ids, bytes, dataclass / TypedDict response
formats, function tools, a tool message's status, wrapper (optimizer) settings, answer-changing headers.
Requests holding something that cannot be keyed reliably are not cached at all."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from typing_extensions import TypedDict

from modelforge.cache import CachedChatModel, CacheStats, cache_of, with_cache
from modelforge.cache._keys import UncacheableRequest, cache_key, canonical_json, model_identity
from modelforge.delegating import DelegatingChatModel
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.cache.conftest import ask, marker, requests_to
from tests.conftest import TEST_SECRETS


def key(messages: list[BaseMessage], **kwargs: Any) -> str:
    return cache_key("ns", "model", messages, None, kwargs)


def test_user_file_blocks_with_different_ids_have_different_keys() -> None:
    def asks(file_id: str) -> str:
        block = {"type": "file", "source_type": "id", "id": file_id}
        return key([HumanMessage(content=[{"type": "text", "text": "Summarise"}, block])])

    assert asks("file-AAA") != asks("file-BBB")


def test_ai_block_ids_still_do_not_matter() -> None:
    def answered(block_id: str) -> str:
        ai = AIMessage(content=[{"type": "text", "text": "Hi", "id": block_id, "index": 0}])
        return key([HumanMessage("hello"), ai, HumanMessage("again")])

    assert answered("blk_1") == answered("blk_2")


def test_bytes_are_hashed_not_named() -> None:
    def asks(data: bytes) -> str:
        return key([HumanMessage(content=[{"type": "file", "data": data, "mime_type": "application/pdf"}])])

    assert asks(b"%PDF-1 first") != asks(b"%PDF-1 second")
    assert asks(b"%PDF-1 first") == asks(b"%PDF-1 first")
    assert key([HumanMessage("x")], blob=b"one") != key([HumanMessage("x")], blob=b"two")


@dataclasses.dataclass
class Person:
    """A person."""

    name: str


@dataclasses.dataclass
class Place:
    """A place."""

    city: str


class Movie(TypedDict):
    """A movie."""

    title: str


class Song(TypedDict):
    """A song."""

    artist: str


def test_dataclass_and_typeddict_response_formats_do_not_collide() -> None:
    prompt = [HumanMessage("Extract")]
    keys = {key(prompt, response_format=fmt) for fmt in (Person, Place, Movie, Song)}
    assert len(keys) == 4
    assert key(prompt, response_format=Person) == key(prompt, response_format=Person)


def weather(city: str) -> str:
    """Get the weather of a city."""
    return "sunny"


def forecast(city: str) -> str:
    """Get the weather of a city."""
    return "rain"


def test_function_tools_do_not_collide() -> None:
    prompt = [HumanMessage("Weather?")]
    assert key(prompt, tools=[weather]) != key(prompt, tools=[forecast])
    assert key(prompt, tools=[weather]) == key(prompt, tools=[weather])


def test_a_value_that_cannot_be_reduced_is_not_keyed() -> None:
    class Opaque:
        pass

    with pytest.raises(UncacheableRequest):
        key([HumanMessage("x")], extra=Opaque())
    with pytest.raises(UncacheableRequest):
        key([HumanMessage(content=[{"type": "text", "text": "x", "extra": Opaque()}])])


def test_tool_message_status_is_part_of_the_key() -> None:
    call = {"name": "lookup", "args": {}, "id": "call_1", "type": "tool_call"}

    def asks(status: str) -> str:
        tool = ToolMessage("boom", tool_call_id="call_1", status=status)  # type: ignore[arg-type]
        return key([HumanMessage("go"), AIMessage("", tool_calls=[call]), tool])

    assert asks("error") != asks("success")


async def test_a_failed_tool_result_asks_the_provider_again(
    server: ProviderServer, make_cached: Callable[..., CachedChatModel]
) -> None:
    llm = make_cached({"namespace": "status"})
    call = {"name": "lookup", "args": {}, "id": "call_1", "type": "tool_call"}
    history: list[BaseMessage] = [HumanMessage("go"), AIMessage("", tool_calls=[call])]
    server.script(Reply(text="It worked."), Reply(text="The tool failed, sorry."))
    ok = await ask(llm, [*history, ToolMessage("42", tool_call_id="call_1")], "async")
    failed = await ask(llm, [*history, ToolMessage("42", tool_call_id="call_1", status="error")], "async")
    assert (ok.content, failed.content) == ("It worked.", "The tool failed, sorry.")
    assert requests_to(server) == 2


class FakeOptimizer(DelegatingChatModel):
    """A wrapper with settings of its own that change answers (like the optimizers' model)."""

    level: str = "low"

    def cache_identity(self) -> dict[str, Any]:
        return {"level": self.level}


class BrokenOptimizer(DelegatingChatModel):
    """A wrapper whose identity cannot be reduced to plain data."""

    def cache_identity(self) -> Any:
        return object()


async def test_wrapper_cache_identity_is_part_of_the_key(
    server: ProviderServer, configured: dict[str, Any]
) -> None:
    base = ModelForgeRegistry().get_llm("openai")

    def cached(wrapper: DelegatingChatModel) -> CachedChatModel:
        llm = with_cache(wrapper, "openai", {"namespace": "optimizers"}, enable=True)
        assert cache_of(llm) is not None
        return llm

    low = cached(FakeOptimizer(wrapped_llm=base, level="low"))
    high = cached(FakeOptimizer(wrapped_llm=base, level="high"))
    assert model_identity(low.wrapped_llm, "openai")["wrapper_settings"] == [
        {"wrapper": "FakeOptimizer", "identity": {"level": "low"}}
    ]
    await ask(low, "Question", "async")
    await ask(high, "Question", "async")
    await ask(cached(FakeOptimizer(wrapped_llm=base, level="high")), "Question", "async")
    assert requests_to(server) == 2


async def test_an_unkeyable_request_goes_to_the_provider_uncached(
    server: ProviderServer, configured: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    base = ModelForgeRegistry().get_llm("openai")
    llm = with_cache(BrokenOptimizer(wrapped_llm=base), "openai", {"namespace": "broken"}, enable=True)
    assert cache_of(llm) is not None
    server.script(Reply(text="one"), Reply(text="two"))
    with caplog.at_level(logging.DEBUG, logger="modelforge.cache"):
        first = await ask(llm, "Question", "async")
        second = await ask(llm, "Question", "sync")
    assert (first.content, second.content) == ("one", "two")
    assert requests_to(server) == 2
    assert llm.cache_stats == CacheStats()
    assert "not cached" in caplog.text


def test_answer_changing_headers_count_and_secret_headers_do_not(
    server: ProviderServer, configured: dict[str, Any]
) -> None:
    from modelforge.delegating import innermost, replace_innermost

    llm = ModelForgeRegistry().get_llm("anthropic")
    leaf = innermost(llm)

    def identity(headers: dict[str, str]) -> str:
        model = replace_innermost(llm, leaf.model_copy(update={"default_headers": headers}))
        return canonical_json(model_identity(model, "anthropic"))

    beta = identity({"anthropic-beta": "context-1m-2025-08-07"})
    assert beta != identity({"anthropic-beta": "other-beta"})
    assert "context-1m-2025-08-07" in beta
    secret = TEST_SECRETS[1]
    for header in ("Authorization", "x-api-key", "Cookie", "Proxy-Authorization", "X-Goog-Api-Key"):
        assert secret not in identity({header: secret, "anthropic-beta": "b"})


def test_setting_names_match_secret_words_whole() -> None:
    from modelforge.cache._keys import _secret_name

    for secret in (
        "api_key",
        "openai_api_key",
        "apiKey",
        "x-api-key",
        "Authorization",
        "auth_token",
        "http_client",
        "client_session",
        "cookie",
        "password",
        "secret",
    ):
        assert _secret_name(secret), secret
    for setting in (
        "author",
        "authority_level",
        "max_tokens_hint",
        "default_headers",
        "model_name",
        "top_k",
        "keywords",
        "anthropic-beta",
        "monkey",
    ):
        assert not _secret_name(setting), setting


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_redis_clear_keeps_a_longer_namespace(
    mode: str, server: ProviderServer, redis_namespace: str, make_cached: Callable[..., CachedChatModel]
) -> None:
    from tests.cache.conftest import REDIS_URL

    llm = make_cached({"backend": "redis", "url": REDIS_URL, "namespace": redis_namespace})
    sub = make_cached({"backend": "redis", "url": REDIS_URL, "namespace": redis_namespace + ":sub"})
    await ask(llm, "q", "async")
    await ask(sub, "q", "async")
    assert requests_to(server) == 2
    if mode == "sync":
        llm.clear_cache()
    else:
        await llm.aclear_cache()
    assert marker(await ask(sub, "q", "async")) == "hit"
    assert marker(await ask(llm, "q", "async")) is None
    assert requests_to(server) == 3
