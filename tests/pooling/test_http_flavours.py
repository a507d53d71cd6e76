"""Each SDK sends through ModelForge's pooled transport of the httpx flavour it is built on: ``httpx``, or its
fork ``httpx2`` (openai >= 3, anthropic >= 2, and google-genai >= 3 by default). Pooling, the send-time
rate-limit stamps and error translation hold on both; a model whose SDK sends through a client of its own
is reported once, never silently.

Gemini is the family that can take either flavour (``GOOGLE_GENAI_HTTP_CLIENT``), so it is driven on both,
with the real google-genai SDK over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from modelforge import config, pooling
from modelforge.delegating import innermost
from modelforge.exceptions import NetworkConnectionError, RateLimitError
from modelforge.policies.admission import limiter_for
from modelforge.pooling import close_pools, pool_stats
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.conftest import GOOGLE_KEY, OPENAI_KEY
from tests.providers.conftest import provider_config
from tests.ratelimit.test_redis_fallback import free_port
from tests.ratelimit.test_send_marks import LATENCY, SettleSpy, rate_limited_config

GEMINI = "gemini-2.5-flash"


def flavour_of(client: object) -> str:
    """The httpx package an HTTP client class comes from (``httpx`` or ``httpx2``)."""
    return next(
        base.__module__.split(".")[0]
        for base in type(client).__mro__
        if base.__module__.split(".")[0] in ("httpx", "httpx2")
    )


@pytest.fixture(params=["httpx", "httpx2"])
def flavour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """google-genai's own switch between the two (unset, google-genai 3 takes httpx2); the flavour the SDK
    then sends through (google-genai 2 knows only httpx, whatever the variable says)."""
    from google.genai import _api_client

    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", request.param)
    monkeypatch.setenv("MODELFORGE_GOOGLE_API_KEY", GOOGLE_KEY)
    return str(request.param) if getattr(_api_client, "SyncHttpx2Client", None) is not None else "httpx"


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        running.default_reply = Reply(text="pong", latency=LATENCY)
        yield running
    close_pools()  # connections to this server are of no use to the next test


def gemini_models(count: int) -> list[Any]:
    return [ModelForgeRegistry().get_llm("google", GEMINI) for _ in range(count)]


def test_gemini_pools_and_stamps_its_sends_on_either_flavour(
    flavour: str, server: ProviderServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = rate_limited_config(server)
    spy = SettleSpy(monkeypatch, limiter_for("google", data["providers"]["google"]["rate_limit"]))
    first, second = gemini_models(2)
    # The SDK itself sends through a client of that flavour...
    assert flavour_of(innermost(first).client._api_client._httpx_client) == flavour
    with caplog.at_level(logging.WARNING, logger="modelforge.pooling"):
        for n in range(10):
            assert (first if n % 2 else second).invoke(f"question {n}").text == "pong"
        assert "".join(chunk.text for chunk in first.stream("stream it")) == "pong"
    # ... over the shared pool: eleven calls from two models, one connection ...
    assert server.connections_opened == 1
    assert pool_stats().open_sync_pools >= 1
    # ... and every attempt was stamped by our transport when it went out, not when it was answered.
    assert len(spy.marks) == 11 and all(mark.sent is not None for mark in spy.marks)
    assert all(ago is not None for ago in spy.sent_agos)
    assert not [r for r in caplog.records if r.name == "modelforge.pooling"]  # nothing bypassed the pool


async def test_gemini_async_calls_pool_and_stamp_on_either_flavour(
    flavour: str, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = rate_limited_config(server)
    spy = SettleSpy(monkeypatch, limiter_for("google", data["providers"]["google"]["rate_limit"]))
    first, second = gemini_models(2)
    for n in range(6):
        assert (await (first if n % 2 else second).ainvoke(f"question {n}")).text == "pong"
    assert "".join([chunk.text async for chunk in second.astream("stream it")]) == "pong"
    assert server.connections_opened == 1  # this event loop's pool
    assert len(spy.marks) == 7 and all(mark.sent is not None for mark in spy.marks)


def test_gemini_errors_are_translated_on_either_flavour(flavour: str, server: ProviderServer) -> None:
    data = rate_limited_config(server)
    (llm,) = gemini_models(1)
    server.script(Fault(status=429, message="Resource has been exhausted", retry_after="7"))
    with pytest.raises(RateLimitError) as limited:
        llm.invoke("too many")
    assert limited.value.provider == "google" and limited.value.retry_after == 7

    data["providers"]["google"]["base_url"] = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    (unreachable,) = gemini_models(1)
    with pytest.raises(NetworkConnectionError) as refused:
        unreachable.invoke("anyone?")
    assert refused.value.provider == "google"


def bypassing_models(server: ProviderServer, monkeypatch: pytest.MonkeyPatch, count: int) -> list[Any]:
    """OpenAI models (no rate limit: a bare send probe) whose SDK sends through HTTP clients of its own.

    Patched internals: what a future SDK release that ignores the ``http_client`` it is given would do. No
    released SDK does it today, so nothing real can stand in.
    """
    import httpx2

    monkeypatch.setattr(pooling, "_unpooled_reported", set())  # once per process: start this test afresh
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(provider_config(server)))
    models = [ModelForgeRegistry().get_llm("openai", "gpt-4o-mini") for _ in range(count)]
    for model in models:
        monkeypatch.setattr(innermost(model).root_client, "_client", httpx2.Client())
        monkeypatch.setattr(innermost(model).root_async_client, "_client", httpx2.AsyncClient())
    return models


def unpooled_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "modelforge.pooling"]


def test_a_model_whose_sdk_bypasses_the_pooled_transport_is_reported_once(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    models = bypassing_models(server, monkeypatch, 2)
    with caplog.at_level(logging.WARNING, logger="modelforge.pooling"):
        for model in models:
            assert model.invoke("one").text == "pong"  # the call itself still works
            assert "".join(chunk.text for chunk in model.stream("two")) == "pong"
    (warning,) = unpooled_warnings(caplog)
    release = f"langchain-openai {importlib.metadata.version('langchain-openai')}"
    assert (
        f"Provider 'openai': ChatOpenAI ({release}) answered without sending through ModelForge's" in warning
    )
    assert "connection pooling and send-time rate-limit accounting do not apply" in warning
    assert OPENAI_KEY not in warning
    assert server.connections_opened == 2  # each bypassing client opened its own connection


async def test_an_async_stream_that_bypasses_the_pool_is_reported(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (model,) = bypassing_models(server, monkeypatch, 1)
    with caplog.at_level(logging.WARNING, logger="modelforge.pooling"):
        assert "".join([chunk.text async for chunk in model.astream("one")]) == "pong"
    assert len(unpooled_warnings(caplog)) == 1


async def test_a_stream_cancelled_before_its_request_went_out_is_not_mistaken_for_a_bypass(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # asyncio.timeout around a stream cancels it; before the request is written, nothing was sent through
    # any transport, which says nothing about the pool. The model still checks its next full answer.
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(provider_config(server)))
    model = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    server.default_reply = Reply(text="slow", latency=5.0)
    with caplog.at_level(logging.WARNING, logger="modelforge.pooling"):
        for _ in range(3):
            task = asyncio.ensure_future(model.ainvoke("never answered"))
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

            async def first_chunk() -> None:
                async for _chunk in model.astream("cancelled"):
                    break

            stream = asyncio.ensure_future(first_chunk())
            await asyncio.sleep(0)
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream
    assert not unpooled_warnings(caplog)
    server.default_reply = Reply(text="pong")
    assert (await model.ainvoke("answered")).text == "pong"
    assert not unpooled_warnings(caplog)
