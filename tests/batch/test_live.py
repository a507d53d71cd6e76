"""Live batches: 1,000 prompts with 5% failures come back whole and in order, sync and async; progress;
rate limits respected; one item's failure never costs another; cancellation is not swallowed."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI

from modelforge.batch import BatchProcessor, BatchProgress
from modelforge.exceptions import (
    MalformedResponseError,
    NetworkConnectionError,
    ProviderServerError,
    RateLimitError,
)
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Disconnect, Fault, ProviderServer, RecordedRequest, Reply, ServerLimits
from modelforge.testing.script import ScriptItem
from tests.batch.conftest import batch_config, check_echoed, echo, prompt_text, prompts, write_config

pytestmark = pytest.mark.usefixtures("configured")


async def test_a_thousand_prompts_async_in_order(server: ProviderServer) -> None:
    seen: list[BatchProgress] = []
    results = await ModelForgeRegistry().batch_invoke(
        prompts(1000), max_concurrent=16, on_progress=seen.append
    )
    check_echoed(results, 1000)
    assert len(server.requests_for("openai")) == 1000  # each prompt sent once, none lost or repeated
    assert len(seen) == 1000  # after every item
    assert [p.done for p in seen] == list(range(1, 1001))
    assert (seen[-1].succeeded, seen[-1].failed, seen[-1].total) == (950, 50, 1000)
    assert all(p.job_id is None and p.status == "live" for p in seen)


def test_a_thousand_prompts_sync_in_order(server: ProviderServer) -> None:
    llm = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    seen: list[BatchProgress] = []
    results = BatchProcessor(llm, max_concurrent=8, on_progress=seen.append).run_sync(prompts(1000))
    check_echoed(results, 1000)
    assert seen[-1].done == 1000 and seen[-1].failed == 50


async def test_the_user_story_with_optimizations(server: ProviderServer) -> None:
    registry = ModelForgeRegistry(enable_optimizations=True)
    responses = await registry.batch_invoke(prompts(40))
    assert responses[0].content == "echo: prompt 0"
    check_echoed(responses, 40)


async def test_any_langchain_chat_model_and_an_async_progress_callback(server: ProviderServer) -> None:
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-none", max_retries=0)
    seen: list[int] = []

    async def progress(p: BatchProgress) -> None:
        await asyncio.sleep(0)
        seen.append(p.done)

    results = await BatchProcessor(llm, max_concurrent=4, on_progress=progress).run(prompts(60))
    check_echoed(results, 60, error_type=openai.BadRequestError)  # a raw model's own errors
    assert sorted(seen) == list(range(1, 61))


async def test_every_kind_of_failure_stays_with_its_own_item(server: ProviderServer) -> None:
    def respond(request: RecordedRequest) -> ScriptItem | None:
        n = int(prompt_text(request).split()[-1])
        return {
            3: Fault(500, "boom"),
            5: Disconnect(),
            7: Fault(429, "slow down", retry_after="1"),
            9: Reply(malformed_after=0),
        }.get(n) or echo(request)

    server.responder = respond
    kinds: dict[int, type[Exception]] = {
        3: ProviderServerError,
        5: NetworkConnectionError,
        7: RateLimitError,
        9: MalformedResponseError,
    }
    results = await ModelForgeRegistry().batch_invoke(prompts(12), max_concurrent=12)
    assert [r.index for r in results] == list(range(12))
    for i, result in enumerate(results):
        if i in kinds:
            assert isinstance(result.error, kinds[i]), (i, result.error)
            with pytest.raises(kinds[i]):
                _ = result.content  # a failure is never read as an empty answer
        else:
            assert result.content == f"echo: prompt {i}"


async def test_a_failing_progress_callback_costs_no_answer(server: ProviderServer) -> None:
    def progress(p: BatchProgress) -> None:
        raise RuntimeError("the progress bar broke")

    results = await ModelForgeRegistry().batch_invoke(prompts(40), on_progress=progress)
    check_echoed(results, 40)


async def test_cancellation_is_not_swallowed(server: ProviderServer) -> None:
    server.responder = lambda request: Reply(stall_after=0)  # every call hangs until the client leaves
    registry = ModelForgeRegistry()
    task = asyncio.ensure_future(registry.batch_invoke(prompts(20), max_concurrent=4))
    for _ in range(500):  # until the four calls reached the server (a condition, not a fixed wait)
        if len(server.requests_for("openai")) == 4:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(server.requests_for("openai")) == 4  # nothing more was started after the cancel


async def test_rate_limits_hold_and_no_429_reaches_an_item(server: ProviderServer) -> None:
    # The server allows 10 requests per 0.5 s window; the provider's rate_limit section says the same and
    # retries are off, so a single 429 would show up as an item's error.
    server.limits = ServerLimits(rpm=10, window=0.5)
    data = batch_config(server)
    data["providers"]["openai"]["rate_limit"] = {"requests_per_minute": 10, "window_seconds": 0.5}
    write_config(data)
    results = await ModelForgeRegistry().batch_invoke(prompts(40), max_concurrent=8)
    check_echoed(results, 40)
    assert not any(isinstance(r.error, RateLimitError) for r in results)
    assert len(server.requests_for("openai")) == 40  # the server refused nothing


def test_run_sync_refuses_a_coroutine_progress_callback(server: ProviderServer) -> None:
    async def progress(p: BatchProgress) -> None:
        return None

    llm = ModelForgeRegistry().get_llm()
    with pytest.raises(TypeError, match="plain function"):
        BatchProcessor(llm, on_progress=progress).run_sync(prompts(2))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_max_concurrent_must_be_a_positive_whole_number(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        BatchProcessor(ModelForgeRegistry().get_llm(), max_concurrent=bad)
