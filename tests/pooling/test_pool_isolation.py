"""Models share connections, nothing else: each has its own clients (cookies, closing) over the pool.

Keys in use at once keep a pool each; a rotated-away key does not leave its pool behind: once enough newer
keys are used, the least recently used key's pool is closed and dropped.
"""

from __future__ import annotations

import uuid

import pytest

from modelforge import pooling
from modelforge.delegating import innermost
from modelforge.pooling import MAX_CREDENTIALS, pool_stats
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.conftest import OPENAI_KEY
from tests.pooling.conftest import WriteConfig, chat_connections
from tests.providers.conftest import CASES, FamilyCase

# How each SDK client a user can reach is closed: ``with llm.root_client: ...`` closes it too.
CLOSERS = {
    "openai": ("root_client", "root_async_client"),
    "anthropic": ("_client", "_async_client"),
}


@pytest.mark.parametrize("provider", sorted(CLOSERS))
async def test_closing_one_models_sdk_client_leaves_the_others_working(
    provider: str, monkeypatch: pytest.MonkeyPatch, write_config: WriteConfig, server: ProviderServer
) -> None:
    chosen = next(c for c in CASES if c.provider == provider)
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    write_config()
    first = ModelForgeRegistry().get_llm(provider, chosen.model)
    second = ModelForgeRegistry().get_llm(provider, chosen.model)
    first.invoke("one")
    await first.ainvoke("one, async")

    sync_name, async_name = CLOSERS[provider]
    with getattr(innermost(first), sync_name):  # the SDK closes its HTTP client on leaving
        pass
    await getattr(innermost(first), async_name).close()

    assert second.invoke("two").text
    assert (await second.ainvoke("two, async")).text
    assert second.invoke("three").text
    # The same two connections (one sync, one for the test's event loop) carried every call.
    assert server.connections_opened == 2


def test_cookies_set_for_one_model_are_not_sent_by_another(case: FamilyCase, server: ProviderServer) -> None:
    first = ModelForgeRegistry().get_llm(case.provider, case.model)
    second = ModelForgeRegistry().get_llm(case.provider, case.model)
    server.script(Reply(text="hello", headers={"set-cookie": "session=first-model; Path=/"}))
    first.invoke("log in")
    second.invoke("someone else")
    first.invoke("again")
    chats = [r for r in server.requests if r.protocol != "github"]
    assert "session=first-model" not in chats[1].headers.get("cookie", "")
    assert "session=first-model" in chats[2].headers.get("cookie", "")  # the model that got it keeps it
    assert chat_connections(server) == 1


def test_two_keys_in_use_at_once_keep_a_connection_each(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, server: ProviderServer
) -> None:
    write_config()
    models = []
    for key in (OPENAI_KEY, OPENAI_KEY + "-tenant-b"):
        monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", key)
        models.append(ModelForgeRegistry().get_llm("openai", "gpt-4o-mini"))
    for n in range(100):  # the tenants take turns: neither key's pool is retired by the other
        assert models[n % 2].invoke(f"call {n}").text
    assert server.connections_opened == 2
    authorizations = [r.headers["authorization"] for r in server.requests[-2:]]
    assert authorizations == [f"Bearer {OPENAI_KEY}", f"Bearer {OPENAI_KEY}-tenant-b"]


def test_a_rotated_away_key_closes_and_drops_its_pool_once_enough_newer_ones_are_used(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, server: ProviderServer
) -> None:
    write_config()
    # The table as a new process has it. Pool keys outlive servers: a server that got an earlier test's port
    # would find that test's credentials in its group, and they would count against the bound.
    monkeypatch.setattr(pooling, "_entries", {})
    keys_before = pool_stats().clients
    # Keys of this test only: pool keys outlive servers, and a later server may get an earlier one's port.
    first_key = f"{OPENAI_KEY}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", first_key)
    old = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    old.invoke("with the old key")
    assert pool_stats().clients == keys_before + 1
    open_before = pool_stats().open_sync_pools

    for n in range(MAX_CREDENTIALS - 1):  # newer keys: the old one keeps its pool next to theirs
        monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", f"{first_key}-rotated-{n}")
        ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
        assert pool_stats().clients == keys_before + 2 + n
    assert pool_stats().open_sync_pools == open_before  # the old key's pool is still open

    for n in range(MAX_CREDENTIALS, MAX_CREDENTIALS + 3):  # beyond the bound: the table does not grow
        monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", f"{first_key}-rotated-{n}")
        new = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
        assert new.invoke("with the new key").text
        assert pool_stats().clients == keys_before + MAX_CREDENTIALS
    # The old key was the least recently used when the ninth came: its idle pool was closed, and the three
    # newest keys' pools are open.
    assert pool_stats().open_sync_pools == open_before - 1 + 3
    assert server.connections_opened == 4  # one per key that sent

    # A model made before the rotation still answers (with its own key), on a connection of its own
    # that is closed once the answer is read.
    assert old.invoke("still here").text
    assert server.requests[-1].headers["authorization"] == f"Bearer {first_key}"
    assert pool_stats().open_sync_pools == open_before - 1 + 3
    assert new.invoke("and the new one").text
    assert server.connections_opened == 5


def test_a_rotation_does_not_cut_off_an_answer_being_read(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, server: ProviderServer
) -> None:
    write_config()
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    old = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    server.script(Reply(text="one two three four"), Reply(text="rotated"))
    chunks = old.stream("a long answer")
    first = next(chunks).text
    while not first:  # the role chunk comes before the text
        first = next(chunks).text
    open_before = pool_stats().open_sync_pools

    for n in range(MAX_CREDENTIALS - 1):  # enough newer keys that the old one is retired by the next
        monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", f"{OPENAI_KEY}-rotated-{n}")
        ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY + "-rotated")
    assert ModelForgeRegistry().get_llm("openai", "gpt-4o-mini").invoke("meanwhile").text == "rotated"
    assert pool_stats().open_sync_pools == open_before + 1  # the old pool is busy: still open

    assert first + "".join(c.text for c in chunks) == "one two three four"
    assert server.client_disconnects == 0
    assert pool_stats().open_sync_pools == open_before  # closed with its last answer
