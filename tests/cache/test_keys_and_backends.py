"""What a key covers (and never holds), and the backends' own bookkeeping: LRU, size bounds, expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from modelforge.cache import MemoryBackend, SQLiteBackend
from modelforge.cache._keys import canonical_json, model_identity, normalized_messages
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.cache.conftest import FakeClock
from tests.conftest import TEST_SECRETS


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama", "google"])
def test_model_identity_has_the_settings_and_no_secret(
    provider: str, server: ProviderServer, configured: dict[str, Any]
) -> None:
    llm = ModelForgeRegistry().get_llm(provider)
    identity = model_identity(llm, provider)
    text = canonical_json(identity)
    for secret in TEST_SECRETS:
        assert secret not in text
    assert identity["provider"] == provider
    assert identity["wrappers"] == []  # the model is the SDK class itself, no wrapper
    assert identity["class"].rsplit(".", 1)[-1].startswith("ManagedChat")
    (model,) = configured["providers"][provider]["models"]
    assert model in text
    for operational in ("max_retries", "timeout", "streaming", "callbacks", "http_client"):
        assert operational not in identity["settings"]


def test_normalized_messages_ignore_ids_and_metadata() -> None:
    call = {"name": "lookup", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    first = [
        SystemMessage("Be brief.", id="s1"),
        HumanMessage("Weather?", id="h1", response_metadata={"x": 1}),
        AIMessage("", tool_calls=[call], id="a1", response_metadata={"model": "m"}),
        ToolMessage("18C", tool_call_id="call_1", id="t1"),
    ]
    second = [
        SystemMessage("Be brief."),
        HumanMessage("Weather?"),
        AIMessage("", tool_calls=[{**call, "id": "call_1"}], id="other"),
        ToolMessage("18C", tool_call_id="call_1"),
    ]
    assert normalized_messages(first) == normalized_messages(second)
    changed = [*second[:2], AIMessage("", tool_calls=[{**call, "args": {"city": "Lyon"}}]), second[3]]
    assert normalized_messages(changed) != normalized_messages(second)
    assert normalized_messages([HumanMessage("hi", name="ann")]) != normalized_messages([HumanMessage("hi")])
    assert normalized_messages([ToolMessage("x", tool_call_id="a")]) != normalized_messages(
        [ToolMessage("x", tool_call_id="b")]
    )


def test_tool_arguments_named_like_secrets_still_count() -> None:
    def asks(token: str) -> list[dict[str, Any]]:
        call = {"name": "login", "args": {"auth_token": token}, "id": "c", "type": "tool_call"}
        return normalized_messages([AIMessage("", tool_calls=[call])])

    assert asks("a") != asks("b")


def test_memory_backend_is_an_lru(clock: FakeClock) -> None:
    backend = MemoryBackend(max_entries=2, now=clock)
    backend.set("a", b"1", clock() + 10, clock() + 10)
    backend.set("b", b"2", clock() + 10, clock() + 10)
    assert backend.get("a") == b"1"  # a is now the most recently used
    backend.set("c", b"3", clock() + 10, clock() + 10)
    assert (backend.get("a"), backend.get("b"), backend.get("c")) == (b"1", None, b"3")
    clock.advance(10)
    assert backend.get("a") is None and len(backend) == 1


def test_sqlite_backend_bounds_and_expiry(tmp_path: Path, clock: FakeClock) -> None:
    backend = SQLiteBackend(tmp_path / "c.sqlite3", namespace="n", max_entries=3, now=clock)
    other = SQLiteBackend(tmp_path / "c.sqlite3", namespace="other", max_entries=3, now=clock)
    try:
        for index, key in enumerate("abcd"):
            backend.set(key, key.encode(), clock() + 100, clock() + 100 + index)
        other.set("a", b"other", clock() + 100, clock() + 100)
        assert backend.get("a") is None  # over max_entries: the one kept the shortest went first
        assert [backend.get(k) for k in "bcd"] == [b"b", b"c", b"d"]
        assert other.get("a") == b"other"  # namespaces are separate
        clock.advance(102)
        assert backend.get("b") is None and backend.get("c") is None and backend.get("d") == b"d"
        backend.clear()
        assert backend.get("d") is None and other.get("a") is None  # other's entry had expired too
    finally:
        backend.close()
        other.close()
