"""Through the providers' batch APIs: 1,000 prompts with 5% failures come back whole and in order from
OpenAI's Batch API and Anthropic's Message Batches; large batches split within the per-job limits; items the
provider never ran are errors, not gaps; ``"auto"`` and ``urgent``; a family without a batch API."""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest

from modelforge.batch import BatchProgress
from modelforge.batch._api import custom_id
from modelforge.batch._jobs import jobs_dir
from modelforge.exceptions import ConfigurationError, InvalidInputError, ProviderError, RateLimitError
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, RecordedRequest
from modelforge.testing.script import ScriptItem
from tests.batch.conftest import batch_config, check_echoed, echo, prompt_text, prompts, write_config
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

pytestmark = pytest.mark.usefixtures("configured")

PROVIDERS = ["openai", "anthropic"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_thousand_prompts_through_the_batch_api(server: ProviderServer, provider: str) -> None:
    seen: list[BatchProgress] = []
    results = await ModelForgeRegistry().batch_invoke(
        prompts(1000), provider_name=provider, use_batch_api=True, on_progress=seen.append
    )
    check_echoed(results, 1000)
    assert [job.protocol for job in server.batches.jobs] == [provider]
    assert len(server.batches.jobs[0].lines) == 1000
    assert not [
        r for r in server.requests if r.path in ("/v1/chat/completions", "/v1/messages")
    ]  # no live call
    assert [r.custom_id for r in results] == [custom_id(str(seen[0].job_id), i) for i in range(1000)]
    # Progress before the first submit, after submitting, after every poll, and once collected; the job id
    # in each.
    job_id = seen[0].job_id
    assert job_id and all(p.job_id == job_id for p in seen)
    assert [p.status for p in seen[:2]] == ["submitting", "submitted"] and seen[-1].status == "collected"
    assert seen[0].done == 0 and seen[0].total == 1000
    assert len(seen) >= 4
    assert (seen[-1].done, seen[-1].succeeded, seen[-1].failed) == (1000, 950, 50)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_requests_are_built_by_the_providers_own_model(server: ProviderServer, provider: str) -> None:
    await ModelForgeRegistry().batch_invoke(
        [[("system", "Be brief."), ("user", "prompt 0")]],
        provider_name=provider,
        use_batch_api=True,
        stop=["END"],
        job_id=f"built-{provider}",
    )
    line = server.batches.jobs[0].lines[0]
    body = line.body
    if provider == "openai":
        assert body["model"] == "gpt-4o-mini" and body["stop"] == ["END"]
        assert body["max_completion_tokens"] == 64  # ChatOpenAI's own name for the model's max_tokens
        assert body["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "prompt 0"},
        ]
        assert "stream" not in body
        upload = server.batches.uploads[0]
        row = json.loads(upload.content.splitlines()[0])
        assert (row["method"], row["url"], row["custom_id"]) == (
            "POST",
            "/v1/chat/completions",
            custom_id("built-openai", 0),
        )
    else:
        assert body["model"] == "claude-sonnet-4-6" and body["max_tokens"] == 64
        assert body["system"] == "Be brief." and body["stop_sequences"] == ["END"]
        assert body["messages"] == [{"role": "user", "content": "prompt 0"}]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failed_line_becomes_the_familys_error(server: ProviderServer, provider: str) -> None:
    server.script(Fault(429, "too many"), Fault(500, "boom"))
    results = await ModelForgeRegistry().batch_invoke(prompts(3), provider_name=provider, use_batch_api=True)
    assert isinstance(results[0].error, RateLimitError) and results[0].error.provider == provider
    assert results[1].error is not None and results[1].error.status_code == 500  # type: ignore[attr-defined]
    assert results[2].content == "echo: prompt 2"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_big_batch_is_split_within_the_per_job_limit(server: ProviderServer, provider: str) -> None:
    server.batches.max_requests_per_job = 300  # the provider refuses bigger jobs
    write_config(batch_config(server, max_requests_per_job=300))
    results = await ModelForgeRegistry().batch_invoke(
        prompts(1000), provider_name=provider, use_batch_api=True, job_id=f"big-{provider}"
    )
    check_echoed(results, 1000)
    assert [len(job.lines) for job in server.batches.jobs] == [300, 300, 300, 100]
    # The parts hold the prompts in order, each once.
    custom_ids = [line.custom_id for job in server.batches.jobs for line in job.lines]
    assert custom_ids == [custom_id(f"big-{provider}", i) for i in range(1000)]


async def test_a_batch_is_split_by_estimated_tokens_too(server: ProviderServer) -> None:
    write_config(batch_config(server, max_tokens_per_job=40))  # each prompt is ~9 estimated tokens
    results = await ModelForgeRegistry().batch_invoke(prompts(20), use_batch_api=True)
    check_echoed(results, 20)
    assert len(server.batches.jobs) > 1
    assert sum(len(job.lines) for job in server.batches.jobs) == 20


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_items_the_provider_never_ran_are_errors_not_gaps(
    server: ProviderServer, provider: str
) -> None:
    server.batches.expire_after = 90  # the job expires with 90 of its 100 requests answered
    results = await ModelForgeRegistry().batch_invoke(
        prompts(100), provider_name=provider, use_batch_api=True
    )
    assert len(results) == 100
    expired = [
        r for r in results if isinstance(r.error, ProviderError) and r.error.error_code == "BATCH_EXPIRED"
    ]
    assert [r.index for r in expired] == list(range(90, 100))
    assert all(r.error.retryable for r in expired)  # type: ignore[union-attr]
    check_echoed(results[:90], 90)


async def test_an_input_that_cannot_be_sent_fails_alone(server: ProviderServer) -> None:
    items: list[Any] = ["prompt 0", 12345, "prompt 2"]
    results = await ModelForgeRegistry().batch_invoke(items, use_batch_api=True)
    assert results[0].content == "echo: prompt 0" and results[2].content == "echo: prompt 2"
    assert isinstance(results[1].error, InvalidInputError)
    assert len(server.batches.jobs[0].lines) == 2


async def test_auto_goes_live_for_small_or_urgent_batches(server: ProviderServer) -> None:
    write_config(batch_config(server, use_batch_api="auto", min_batch_api_items=50))
    registry = ModelForgeRegistry()
    check_echoed(await registry.batch_invoke(prompts(20)), 20)
    assert server.batches.jobs == [] and len(server.requests_for("openai")) == 20
    check_echoed(await registry.batch_invoke(prompts(60), urgent=True), 60)
    assert server.batches.jobs == []
    check_echoed(await registry.batch_invoke(prompts(60)), 60)
    assert len(server.batches.jobs) == 1


async def test_the_config_decides_when_the_call_does_not(server: ProviderServer) -> None:
    write_config(batch_config(server, use_batch_api=True))
    registry = ModelForgeRegistry()
    check_echoed(await registry.batch_invoke(prompts(5)), 5)
    assert len(server.batches.jobs) == 1
    check_echoed(await registry.batch_invoke(prompts(5), use_batch_api=False), 5)
    assert len(server.batches.jobs) == 1


async def test_a_family_without_a_batch_api_is_a_clear_error(server: ProviderServer) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await ModelForgeRegistry().batch_invoke(prompts(3), provider_name="ollama", use_batch_api=True)
    message = f"{caught.value} {caught.value.suggestion}"
    assert "ollama" in message and "openai_compatible" in message and "anthropic" in message
    assert caught.value.error_code == "BATCH_API_UNAVAILABLE"
    # "auto" simply goes live there.
    results = await ModelForgeRegistry().batch_invoke(
        prompts(3), provider_name="ollama", use_batch_api="auto"
    )
    assert [r.content for r in results[:2]] == ["echo: prompt 0", "echo: prompt 1"]


async def test_the_job_file_is_private_and_names_the_provider_jobs(server: ProviderServer) -> None:
    server.batches.max_requests_per_job = 10
    write_config(batch_config(server, max_requests_per_job=10))
    seen: list[BatchProgress] = []
    await ModelForgeRegistry().batch_invoke(prompts(25), use_batch_api=True, on_progress=seen.append)
    path = jobs_dir() / f"{seen[0].job_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["provider"] == "openai" and saved["count"] == 25
    assert [p["provider_job_id"] for p in saved["parts"]] == [job.id for job in server.batches.jobs]
    assert saved["parts"][2]["items"] == {custom_id(str(seen[0].job_id), i): i for i in range(20, 25)}
    text = path.read_text()
    assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text


async def test_a_job_the_provider_refuses_gives_each_item_the_familys_error(server: ProviderServer) -> None:
    server.require_api_key = "sk-something-else"  # the upload is answered 401
    results = await ModelForgeRegistry().batch_invoke(prompts(3), use_batch_api=True)
    assert [type(r.error).__name__ for r in results] == ["InvalidApiKeyError"] * 3
    assert server.batches.jobs == []


async def test_the_responder_sees_each_line_as_a_chat_request(server: ProviderServer) -> None:
    seen: list[RecordedRequest] = []

    def respond(request: RecordedRequest) -> ScriptItem | None:
        seen.append(request)
        return echo(request)

    server.responder = respond
    await ModelForgeRegistry().batch_invoke(prompts(3), provider_name="anthropic", use_batch_api=True)
    assert sorted(prompt_text(r) for r in seen) == ["prompt 0", "prompt 1", "prompt 2"]
    assert {r.path for r in seen} == {"/v1/messages"}


async def test_batch_bodies_get_the_optimizations_live_calls_get(server: ProviderServer) -> None:
    registry = ModelForgeRegistry(enable_optimizations=True)
    await registry.batch_invoke(["prompt 0"], use_batch_api=False)
    live = server.requests_for("openai")[-1].json
    await registry.batch_invoke(["prompt 0"], use_batch_api=True)
    batched = server.batches.jobs[0].lines[0].body
    assert "seed" in live and batched["seed"] == live["seed"]
    assert batched["messages"] == live["messages"]


@pytest.mark.parametrize("use_batch_api", [True, False])
async def test_an_empty_batch_is_an_empty_list(server: ProviderServer, use_batch_api: bool) -> None:
    assert await ModelForgeRegistry().batch_invoke([], use_batch_api=use_batch_api) == []
    assert server.batches.jobs == [] and server.requests_for("openai") == []


async def test_a_model_with_fallbacks_batches_live(server: ProviderServer) -> None:
    data = batch_config(server, use_batch_api="auto", min_batch_api_items=1)
    data["providers"]["openai"]["fallbacks"] = ["anthropic"]
    write_config(data)
    registry = ModelForgeRegistry()
    check_echoed(await registry.batch_invoke(prompts(20)), 20)  # "auto", but no single provider: live
    assert server.batches.jobs == []
    with pytest.raises(ConfigurationError, match="fallbacks"):
        await registry.batch_invoke(prompts(2), use_batch_api=True)
