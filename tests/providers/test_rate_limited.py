"""``rate_limit`` in the config: every family's calls wait for the shared budget instead of getting 429s."""

from __future__ import annotations

import asyncio
import json
import uuid

from modelforge import config
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply, ServerLimits
from tests.providers.conftest import FamilyCase, provider_config


def limited(server: ProviderServer, backend: str) -> None:
    data = provider_config(server)
    section = {"requests_per_minute": 4, "window_seconds": 1.0, "backend": backend}
    if backend == "redis":
        section.update(url="redis://127.0.0.1:6379/0", key=f"mf-test-{uuid.uuid4().hex}")
    for provider in data["providers"].values():
        provider["rate_limit"] = dict(section)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))


async def test_calls_wait_for_the_budget_instead_of_429(case: FamilyCase, server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=4, window=1.0)  # the server refuses a fifth request within a second
    server.default_reply = Reply(text="ok")
    limited(server, "local")
    llm = ModelForgeRegistry().get_llm(case.provider, case.model)
    started = asyncio.get_running_loop().time()
    answers = await asyncio.gather(*[llm.ainvoke(f"q{i}") for i in range(8)])
    assert [a.text for a in answers] == ["ok"] * 8, "no 429 reached the caller"
    assert asyncio.get_running_loop().time() - started >= 0.9, "the second four waited for the window"
    refused = [r for r in server.requests if r.protocol not in ("github",)]
    assert len(refused) == 8, "the server never had to refuse"


def test_sync_calls_share_a_redis_budget(case: FamilyCase, server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=4, window=1.0)
    server.default_reply = Reply(text="ok")
    limited(server, "redis")
    llm = ModelForgeRegistry().get_llm(case.provider, case.model)
    assert [llm.invoke(f"q{i}").text for i in range(6)] == ["ok"] * 6
