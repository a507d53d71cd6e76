"""Submitting a batch API job exactly once: a create whose answer is lost makes one job, not two; a process
that stops between two parts (or between a create and saving it) leaves a job ``resume_batch`` completes;
a job too big for the provider's enqueued-token limit is split; a server without a batch API goes live
under ``"auto"``; the job's files; argument and fingerprint checks."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from modelforge.batch import BatchProgress, _api
from modelforge.batch._jobs import JobState, fingerprint, jobs_dir, prune_finished
from modelforge.exceptions import ConfigurationError, InvalidInputError, ProviderError
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Disconnect, Fault, ProviderServer
from tests.batch.conftest import batch_config, check_echoed, prompts, write_config
from tests.conftest import OPENAI_KEY

pytestmark = pytest.mark.usefixtures("configured")

PROVIDERS = ["openai", "anthropic"]


class _Crash(BaseException):
    """Stands for the process dying (nothing catches it)."""


def _crash_when(monkeypatch: pytest.MonkeyPatch, when: Callable[[JobState], bool], *, saved: bool) -> None:
    """Make the job file writer "kill the process" the first time ``when(state)`` holds, after writing the
    file (``saved``) or before it."""
    real = _api.save_job
    fired: list[bool] = []

    def save(state: JobState) -> None:
        if not fired and when(state):
            fired.append(True)
            if saved:
                real(state)
            raise _Crash
        real(state)

    monkeypatch.setattr(_api, "save_job", save)


@pytest.mark.parametrize("lost", [Disconnect(), Fault(500), Fault(503)], ids=["disconnect", "500", "503"])
async def test_an_openai_create_whose_answer_is_lost_makes_one_job(server: ProviderServer, lost: Any) -> None:
    data = batch_config(server)
    data["providers"]["openai"]["retry"] = {"max_attempts": 3}
    write_config(data)
    server.batches.lose_next_create(lost)  # the job is created, the client sees a failure
    results = await ModelForgeRegistry().batch_invoke(prompts(40), use_batch_api=True)
    check_echoed(results, 40)
    assert len(server.batches.jobs) == 1  # found by its metadata, not created (and billed) again


async def test_an_anthropic_create_whose_answer_is_lost_is_looked_up_on_resume(
    server: ProviderServer,
) -> None:
    data = batch_config(server)
    data["providers"]["anthropic"]["retry"] = {"max_attempts": 3}
    write_config(data)
    server.batches.lose_next_create(Disconnect())
    seen: list[BatchProgress] = []
    registry = ModelForgeRegistry()
    results = await registry.batch_invoke(
        prompts(40), provider_name="anthropic", use_batch_api=True, on_progress=seen.append
    )
    assert len(server.batches.jobs) == 1  # never created twice
    assert len(results) == 40
    assert all(isinstance(r.error, ProviderError) and r.error.error_code == "BATCH_UNKNOWN" for r in results)
    job_id = seen[0].job_id
    assert job_id is not None and f"resume_batch('{job_id}')" in (results[0].error.suggestion or "")  # type: ignore[union-attr]
    saved = json.loads((jobs_dir() / f"{job_id}.json").read_text())
    assert [p["status"] for p in saved["parts"]] == ["unknown"]
    check_echoed(await registry.resume_batch(job_id), 40)
    assert len(server.batches.jobs) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_process_stopped_after_the_first_of_two_parts_is_resumed(
    server: ProviderServer, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(batch_config(server, max_requests_per_job=10))
    _crash_when(
        monkeypatch,
        lambda s: (
            len(s.parts) == 2 and s.parts[0].status == "submitted" and s.parts[1].status == "unsubmitted"
        ),
        saved=True,
    )
    seen: list[BatchProgress] = []
    registry = ModelForgeRegistry()
    with pytest.raises(_Crash):
        await registry.batch_invoke(
            prompts(20), provider_name=provider, use_batch_api=True, on_progress=seen.append
        )
    assert seen[0].status == "submitting" and seen[0].job_id  # the id was reported before anything was sent
    assert len(server.batches.jobs) == 1
    check_echoed(await registry.resume_batch(seen[0].job_id), 20)
    assert [len(job.lines) for job in server.batches.jobs] == [10, 10]


def _crash_job_when_submitting(monkeypatch: pytest.MonkeyPatch, job_id: str) -> None:
    """Kill the process submitting ``job_id`` once its job file says "submitting" (before the create)."""
    _crash_when(monkeypatch, lambda s: s.job_id == job_id and s.parts[0].status == "submitting", saved=True)


def _other_prompts(n: int) -> list[str]:
    return [f"prompt {i}" for i in range(200, 200 + n)]  # none of them refused by ``echo``


async def test_a_resumed_anthropic_part_never_takes_an_earlier_jobs_batch_of_the_same_size(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelForgeRegistry()
    first = await registry.batch_invoke(prompts(10), provider_name="anthropic", use_batch_api=True)
    assert [r.content for r in first] == [f"echo: prompt {i}" for i in range(10)]
    _crash_job_when_submitting(monkeypatch, "job-b")
    with pytest.raises(_Crash):
        await registry.batch_invoke(
            _other_prompts(10), provider_name="anthropic", use_batch_api=True, job_id="job-b"
        )
    assert len(server.batches.jobs) == 1  # only job A's batch exists: B's create was never sent
    results = await registry.resume_batch("job-b")
    # A's batch was created before B's part was sent: not taken; B's part is sent and answered.
    assert [r.content for r in results] == [f"echo: {p}" for p in _other_prompts(10)]
    assert len(server.batches.jobs) == 2


async def test_a_resumed_anthropic_part_never_returns_another_jobs_answers(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelForgeRegistry()
    _crash_job_when_submitting(monkeypatch, "job-b")
    with pytest.raises(_Crash):
        await registry.batch_invoke(
            _other_prompts(10), provider_name="anthropic", use_batch_api=True, job_id="job-b"
        )
    # Job A, of the same size, is created after B's part was saved "submitting": the look-up takes it.
    first = await registry.batch_invoke(prompts(10), provider_name="anthropic", use_batch_api=True)
    assert [r.content for r in first] == [f"echo: prompt {i}" for i in range(10)]
    assert len(server.batches.jobs) == 1
    results = await registry.resume_batch("job-b")
    assert len(results) == 10
    assert not any(r.ok for r in results)  # never job A's answers
    for result in results:
        assert isinstance(result.error, ProviderError) and result.error.error_code == "BATCH_UNIDENTIFIED"
        assert "could not be identified" in str(result.error)
        assert "batch_invoke" in (result.error.suggestion or "")
    saved = json.loads((jobs_dir() / "job-b.json").read_text())
    assert [(p["status"], p["provider_job_id"]) for p in saved["parts"]] == [("unidentified", None)]
    again = await registry.resume_batch("job-b")  # the foreign batch is not taken again
    assert [r.error.error_code for r in again] == ["BATCH_UNIDENTIFIED"] * 10  # type: ignore[union-attr]


async def test_a_part_that_failed_to_submit_reports_its_own_error_after_parts_move() -> None:
    from modelforge.batch._jobs import JobPart

    class Refusing:
        name = "refusing"

        async def upload(self, lines: Any, **_: Any) -> None:
            return None

        async def create(self, lines: Any, *, part: str, **_: Any) -> str:
            raise ProviderError(f"refused part {part}", provider="openai")

    state = JobState(
        job_id="moving", provider="openai", model_alias="m", llm_type="openai", count=2, fingerprint=""
    )
    state.parts = [JobPart(items={"a": 0}, name="0"), JobPart(items={"b": 1}, name="1")]
    job = _api.ApiJob(Refusing(), state)  # type: ignore[arg-type]
    requests = {"a": {"custom_id": "a"}, "b": {"custom_id": "b"}}
    for part in list(state.parts):
        await job._submit_part(part, requests)
    state.parts.insert(0, JobPart(items={}, name="2", status="submitted"))  # positions shift, as in a split
    results = job._results({}, {})
    assert ["refused part 0" in str(r.error) for r in results] == [True, False]
    assert ["refused part 1" in str(r.error) for r in results] == [False, True]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_process_stopped_between_a_create_and_saving_it_is_resumed(
    server: ProviderServer, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(batch_config(server, max_requests_per_job=10))
    # The provider created part 0, but the file still says "submitting" when the process dies.
    _crash_when(monkeypatch, lambda s: s.parts[0].status == "submitted", saved=False)
    seen: list[BatchProgress] = []
    registry = ModelForgeRegistry()
    with pytest.raises(_Crash):
        await registry.batch_invoke(
            prompts(20), provider_name=provider, use_batch_api=True, on_progress=seen.append
        )
    job_id = seen[0].job_id
    assert job_id is not None
    saved = json.loads((jobs_dir() / f"{job_id}.json").read_text())
    assert [p["status"] for p in saved["parts"]] == ["submitting", "unsubmitted"]
    if provider == "openai":
        assert saved["parts"][0]["upload_id"] == server.batches.uploads[0].id
    check_echoed(await registry.resume_batch(job_id), 20)
    assert len(server.batches.jobs) == 2  # part 0 was found, part 1 submitted: nothing twice


async def test_a_process_stopped_before_a_create_reuses_its_upload(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(batch_config(server, max_requests_per_job=10))
    _crash_when(monkeypatch, lambda s: len(s.parts) == 2 and s.parts[1].status == "submitting", saved=True)
    seen: list[BatchProgress] = []
    registry = ModelForgeRegistry()
    with pytest.raises(_Crash):
        await registry.batch_invoke(prompts(20), use_batch_api=True, on_progress=seen.append)
    assert seen[0].job_id is not None
    check_echoed(await registry.resume_batch(seen[0].job_id), 20)
    assert len(server.batches.jobs) == 2 and len(server.batches.uploads) == 2


async def test_a_job_over_the_enqueued_token_limit_is_split_and_sent_again(server: ProviderServer) -> None:
    server.batches.max_enqueued_tokens = 50  # each prompt is ~9 estimated tokens: 20 of them are too many
    results = await ModelForgeRegistry().batch_invoke(prompts(20), use_batch_api=True)
    check_echoed(results, 20)
    jobs = server.batches.jobs
    refused = [job for job in jobs if job.status == "failed"]
    assert refused and all(e["code"] == "token_limit_exceeded" for job in refused for e in job.errors)
    answered = [job for job in jobs if job.status == "completed"]
    assert sorted(line.custom_id for job in answered for line in job.lines) == sorted(
        r.custom_id for r in results
    )


async def test_the_rate_limits_tokens_per_minute_bound_each_job(server: ProviderServer) -> None:
    server.batches.max_enqueued_tokens = 50
    data = batch_config(server)
    data["providers"]["openai"]["rate_limit"] = {"tokens_per_minute": 50}
    write_config(data)
    check_echoed(await ModelForgeRegistry().batch_invoke(prompts(20), use_batch_api=True), 20)
    assert len(server.batches.jobs) > 1
    assert all(job.status == "completed" for job in server.batches.jobs)  # none refused: split up front


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_auto_goes_live_on_a_server_without_a_batch_api(
    server: ProviderServer, provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.batches.enabled = False  # vLLM, OpenRouter: 404 at /v1/files and /v1/batches
    write_config(batch_config(server, use_batch_api="auto", min_batch_api_items=1))
    with caplog.at_level(logging.WARNING, logger="modelforge.batch"):
        results = await ModelForgeRegistry().batch_invoke(prompts(20), provider_name=provider)
    check_echoed(results, 20)
    assert any("no batch API" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert server.batches.jobs == []
    assert list(jobs_dir().glob("*")) == []  # no job left behind


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_use_batch_api_true_on_a_server_without_one_is_a_configuration_error(
    server: ProviderServer, provider: str
) -> None:
    server.batches.enabled = False
    with pytest.raises(ConfigurationError, match="no batch API") as caught:
        await ModelForgeRegistry().batch_invoke(prompts(3), provider_name=provider, use_batch_api=True)
    assert caught.value.error_code == "BATCH_API_UNAVAILABLE"


async def test_inputs_and_requests_are_written_once_beside_the_job_file(server: ProviderServer) -> None:
    seen: list[BatchProgress] = []
    await ModelForgeRegistry().batch_invoke(prompts(5), use_batch_api=True, on_progress=seen.append)
    job_id = seen[0].job_id
    inputs = jobs_dir() / f"{job_id}.inputs.json"
    assert json.loads(inputs.read_text()) == prompts(5)
    assert stat.S_IMODE(inputs.stat().st_mode) == 0o600
    assert "prompt 0" not in (jobs_dir() / f"{job_id}.json").read_text()
    assert not (jobs_dir() / f"{job_id}.requests.jsonl").exists()  # collected: no longer needed
    prune_finished(now=10**12)  # long after
    assert list(jobs_dir().glob(f"{job_id}*")) == []


async def test_a_failed_submission_saves_no_secret(server: ProviderServer) -> None:
    server.require_api_key = "sk-something-else"
    seen: list[BatchProgress] = []
    await ModelForgeRegistry().batch_invoke(prompts(3), use_batch_api=True, on_progress=seen.append)
    text = (jobs_dir() / f"{seen[0].job_id}.json").read_text()
    assert "submit_failed" in text and OPENAI_KEY not in text


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
async def test_max_concurrent_must_be_a_positive_whole_number(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="max_concurrent") as caught:
        await ModelForgeRegistry().batch_invoke(prompts(2), max_concurrent=bad)
    assert ">= 1" in str(caught.value)


def test_the_fingerprint_tells_schemas_of_the_same_name_apart() -> None:
    def answer_v1() -> type[BaseModel]:
        class Answer(BaseModel):
            text: str

        return Answer

    def answer_v2() -> type[BaseModel]:
        class Answer(BaseModel):
            text: str
            score: int

        return Answer

    one, two = answer_v1(), answer_v2()
    assert fingerprint(["x"], {"response_format": one}) != fingerprint(["x"], {"response_format": two})
    assert fingerprint(["x"], {"response_format": one}) == fingerprint(
        ["x"], {"response_format": answer_v1()}
    )
