"""Provider-side caches of the test server, proved with the raw ``anthropic`` and ``google-genai`` SDKs.

Anthropic prompt caching (``cache_control`` breakpoints: creation, then reads, minimum length, expiry,
the four-breakpoint limit, streamed usage) and Gemini cached contents (create, get, list, update, delete,
use in ``generateContent``, expiry, the API's refusals, scripted faults).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import errors, types

from modelforge.testing import Fault, ProviderServer, Reply

KEY = "wire-caches-test-key"
CLAUDE = "claude-sonnet-4-6"
GEMINI = "gemini-2.5-flash"
LONG = "The quick brown fox jumps over the lazy dog. " * 200  # 1800 words: past every minimum


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _claude(server: ProviderServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=KEY, max_retries=0)


def _system(text: str, cached: bool = True) -> list[Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cached:
        block["cache_control"] = {"type": "ephemeral"}
    return [block]


def _ask(client: anthropic.Anthropic, system: list[Any], question: str = "Summarise.") -> Any:
    return client.messages.create(
        model=CLAUDE,
        max_tokens=50,
        system=system,
        messages=[{"role": "user", "content": question}],
    )


# --- Anthropic --------------------------------------------------------------------------------------------


def test_anthropic_breakpoint_writes_then_reads_the_prefix(server: ProviderServer) -> None:
    client = _claude(server)
    first = _ask(client, _system(LONG))
    assert first.usage.cache_creation_input_tokens == 1800
    assert first.usage.cache_read_input_tokens == 0
    second = _ask(client, _system(LONG), "Another question entirely.")
    assert second.usage.cache_read_input_tokens == 1800
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == 3  # only the question is billed in full
    assert [
        (u.cache_creation_input_tokens, u.cache_read_input_tokens) for u in server.caches.anthropic_uses
    ] == [
        (1800, 0),
        (0, 1800),
    ]


def test_anthropic_without_breakpoints_nothing_is_cached(server: ProviderServer) -> None:
    client = _claude(server)
    for _ in range(2):
        usage = _ask(client, _system(LONG, cached=False)).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


def test_anthropic_prefix_below_the_minimum_is_not_cached(server: ProviderServer) -> None:
    client = _claude(server)
    short = "Be brief. " * 100  # 200 words
    for _ in range(2):
        usage = _ask(client, _system(short)).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
    server.caches.anthropic_min_tokens = 100
    assert _ask(client, _system(short)).usage.cache_creation_input_tokens == 200


def test_anthropic_a_changed_prefix_misses(server: ProviderServer) -> None:
    client = _claude(server)
    _ask(client, _system(LONG))
    usage = _ask(client, _system(LONG + " One more sentence.")).usage
    assert usage.cache_read_input_tokens == 0
    assert usage.cache_creation_input_tokens > 0


def test_anthropic_cache_expires_after_five_minutes_unless_read(server: ProviderServer) -> None:
    clock = Clock()
    server.caches.clock = clock
    client = _claude(server)
    _ask(client, _system(LONG))
    clock.now += 240
    assert _ask(client, _system(LONG)).usage.cache_read_input_tokens == 1800  # a read renews the 5 minutes
    clock.now += 240
    assert _ask(client, _system(LONG)).usage.cache_read_input_tokens == 1800
    clock.now += 301
    usage = _ask(client, _system(LONG)).usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 1800)


def test_anthropic_longest_cached_breakpoint_is_read(server: ProviderServer) -> None:
    client = _claude(server)
    tools: list[Any] = [
        {
            "name": "lookup",
            "description": LONG,
            "input_schema": {"type": "object", "properties": {}},
            "cache_control": {"type": "ephemeral"},
        }
    ]
    server.script(Reply(text="a"), Reply(text="b"))
    first = client.messages.create(
        model=CLAUDE, max_tokens=10, tools=tools, messages=[{"role": "user", "content": "hi"}]
    )
    assert first.usage.cache_creation_input_tokens >= 1800
    second = client.messages.create(
        model=CLAUDE,
        max_tokens=10,
        tools=tools,
        system=_system(LONG),
        messages=[{"role": "user", "content": "hi"}],
    )
    # The tools prefix is read; the longer tools+system prefix is written on top of it.
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 1800


def test_anthropic_more_than_four_breakpoints_is_refused(server: ProviderServer) -> None:
    client = _claude(server)
    system = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as caught:
        _ask(client, system)
    assert "maximum of 4 blocks with cache_control" in str(caught.value)


def test_anthropic_streamed_usage_reports_cache_tokens(server: ProviderServer) -> None:
    client = _claude(server)
    _ask(client, _system(LONG))
    with client.messages.stream(
        model=CLAUDE, max_tokens=50, system=_system(LONG), messages=[{"role": "user", "content": "again"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    start = next(e for e in events if e.type == "message_start")
    assert start.message.usage.cache_read_input_tokens == 1800
    assert final.usage.cache_read_input_tokens == 1800
    assert final.usage.input_tokens == 1


# --- Gemini -----------------------------------------------------------------------------------------------


def _genai(server: ProviderServer, api_version: str = "v1beta") -> genai.Client:
    """Keep the returned client in a variable: a garbage-collected ``genai.Client`` closes its HTTP client.

    On ``v1beta``, where the Gemini API serves cachedContents, as google-genai's own caches tests do
    (google/genai/tests/conftest.py in the google-genai 3.6.1 wheel)."""
    return genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(base_url=server.gemini_base_url, api_version=api_version),
    )


def _create(client: genai.Client, ttl: str = "300s") -> types.CachedContent:
    return client.caches.create(
        model=GEMINI,
        config=types.CreateCachedContentConfig(
            system_instruction=LONG,
            contents=[types.Content(role="user", parts=[types.Part(text="Here is the manual.")])],
            ttl=ttl,
            display_name="manual",
        ),
    )


def test_gemini_serves_no_cached_contents_on_v1(server: ProviderServer) -> None:
    # The 404 is a google.rpc.Status body ({"error": {"code", "message", "status"}}), the shape of the real
    # API errors recorded in google-genai's own tests (google/genai/tests/errors/test_api_error.py, 3.6.1).
    client = _genai(server, api_version="v1")
    with pytest.raises(errors.ClientError) as caught:
        _create(client)
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert server.caches.cached_contents == []


def test_gemini_cached_content_lifecycle(server: ProviderServer) -> None:
    clock = Clock()
    server.caches.clock = clock
    client = _genai(server)
    cache = _create(client)
    assert cache.name is not None and cache.name.startswith("cachedContents/")
    assert cache.model == f"models/{GEMINI}"
    assert cache.display_name == "manual"
    assert cache.usage_metadata is not None and cache.usage_metadata.total_token_count == 1804
    assert cache.expire_time == datetime.fromtimestamp(clock.now + 300, UTC)
    body = server.requests_for("gemini")[-1].json
    assert body["ttl"] == "300s" and body["model"] == f"models/{GEMINI}"
    assert "systemInstruction" in body

    assert client.caches.get(name=cache.name).name == cache.name
    assert [c.name for c in client.caches.list()] == [cache.name]
    updated = client.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="600s"))
    assert updated.expire_time == datetime.fromtimestamp(clock.now + 600, UTC)

    client.caches.delete(name=cache.name)
    assert server.caches.deleted == [cache.name]
    assert server.requests_for("gemini")[-1].method == "DELETE"
    with pytest.raises(errors.ClientError) as caught:
        client.caches.get(name=cache.name)
    assert caught.value.code == 404
    assert list(client.caches.list()) == []


def test_gemini_generate_content_with_a_cached_content(server: ProviderServer) -> None:
    client = _genai(server)
    cache = _create(client)
    server.script(Reply(text="From the manual."))
    response = client.models.generate_content(
        model=GEMINI,
        contents="What does page 2 say?",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert response.text == "From the manual."
    assert response.usage_metadata is not None
    assert response.usage_metadata.cached_content_token_count == 1804
    assert response.usage_metadata.prompt_token_count == 1804 + 5
    assert server.requests_for("gemini")[-1].json["cachedContent"] == cache.name


def test_gemini_streamed_answer_reports_cached_tokens(server: ProviderServer) -> None:
    client = _genai(server)
    cache = _create(client)
    chunks = list(
        client.models.generate_content_stream(
            model=GEMINI, contents="hi", config=types.GenerateContentConfig(cached_content=cache.name)
        )
    )
    usage = chunks[-1].usage_metadata
    assert usage is not None and usage.cached_content_token_count == 1804


def test_gemini_expired_cached_content_is_gone(server: ProviderServer) -> None:
    clock = Clock()
    server.caches.clock = clock
    client = _genai(server)
    cache = _create(client, ttl="60s")
    clock.now += 61
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(
            model=GEMINI, contents="hi", config=types.GenerateContentConfig(cached_content=cache.name)
        )
    assert caught.value.code == 404
    assert server.caches.cached_contents == []
    with pytest.raises(errors.ClientError):
        client.caches.delete(name=cache.name)


def test_gemini_refuses_what_the_api_refuses(server: ProviderServer) -> None:
    client = _genai(server)
    with pytest.raises(errors.ClientError) as too_small:
        client.caches.create(
            model=GEMINI, config=types.CreateCachedContentConfig(system_instruction="Too short to cache.")
        )
    assert too_small.value.code == 400 and "too small" in str(too_small.value)
    cache = _create(client)
    with pytest.raises(errors.ClientError) as with_system:
        client.models.generate_content(
            model=GEMINI,
            contents="hi",
            config=types.GenerateContentConfig(cached_content=cache.name, system_instruction="Be terse."),
        )
    assert with_system.value.code == 400 and "system_instruction" in str(with_system.value)
    with pytest.raises(errors.ClientError) as other_model:
        client.models.generate_content(
            model="gemini-2.5-pro",
            contents="hi",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )
    assert other_model.value.code == 400


def test_gemini_scripted_fault_on_creation(server: ProviderServer) -> None:
    client = _genai(server)
    server.caches.fail_next(Fault(status=500))
    with pytest.raises(errors.ServerError) as caught:
        _create(client)
    assert caught.value.code == 500
    assert _create(client).name  # the next one succeeds


async def test_gemini_async_create_and_delete(server: ProviderServer) -> None:
    client = _genai(server)
    cache = await client.aio.caches.create(
        model=GEMINI, config=types.CreateCachedContentConfig(system_instruction=LONG, ttl="120s")
    )
    assert cache.name is not None
    await client.aio.caches.delete(name=cache.name)
    assert server.caches.deleted == [cache.name]


def test_gemini_cache_endpoints_check_the_key(server: ProviderServer) -> None:
    server.require_api_key = "the-right-key"
    client = _genai(server)
    with pytest.raises(errors.ClientError) as caught:
        _create(client)
    assert caught.value.code == 401
