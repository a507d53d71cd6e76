"""A batch API job outlives its process: submitted by a process killed with SIGKILL, collected whole and in
order by another; ``max_wait`` gives up waiting without giving up the job; the same ``job_id`` run again
collects the job instead of paying for it twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

import pytest

from modelforge.batch import BatchProgress
from modelforge.exceptions import InvalidApiKeyError, InvalidInputError, ProviderError
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer
from tests.batch.conftest import check_echoed, prompts

pytestmark = pytest.mark.usefixtures("configured")

# The process that submits a job, then keeps waiting for it (held by the server) until it is killed.
_SUBMITTER = textwrap.dedent(
    """
    import asyncio, sys
    from modelforge.registry import ModelForgeRegistry

    def progress(p):
        print("PROGRESS", p.job_id, p.status, flush=True)

    async def main():
        prompts = [f"prompt {i}" for i in range(1000)]
        await ModelForgeRegistry().batch_invoke(
            prompts, provider_name=sys.argv[1], use_batch_api=True, on_progress=progress, poll_interval=0.05
        )
        print("FINISHED", flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_job_survives_the_death_of_its_process(server: ProviderServer, provider: str) -> None:
    server.batches.hold()  # the provider keeps the job running until released
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SUBMITTER,
        provider,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=dict(os.environ),  # the isolated HOME (config, job files) and the test keys
    )
    try:
        assert child.stdout is not None
        # The first report names the job before anything is sent; the next comes once every part is
        # submitted and saved.
        line = (await asyncio.wait_for(child.stdout.readline(), 60)).decode()
        assert line.startswith("PROGRESS "), line
        _, job_id, status = line.split()
        assert status == "submitting"
        line = (await asyncio.wait_for(child.stdout.readline(), 60)).decode()
        assert line.split() == ["PROGRESS", job_id, "submitted"]
        child.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(child.wait(), 30) == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert len(server.batches.jobs) == 1
    server.batches.release()

    seen: list[BatchProgress] = []
    results = await ModelForgeRegistry().resume_batch(job_id, on_progress=seen.append)
    check_echoed(results, 1000)
    assert [r.input for r in results[:2]] == ["prompt 0", "prompt 1"]  # the inputs came back from the file
    assert len(server.batches.jobs) == 1  # collected, not submitted again
    assert seen[-1].job_id == job_id and seen[-1].done == 1000


async def test_max_wait_gives_up_waiting_but_not_the_job(server: ProviderServer) -> None:
    server.batches.hold()
    registry = ModelForgeRegistry()
    seen: list[BatchProgress] = []
    with pytest.raises(ProviderError) as caught:
        await registry.batch_invoke(prompts(50), use_batch_api=True, max_wait=0.001, on_progress=seen.append)
    assert caught.value.error_code == "BATCH_PENDING"
    job_id = caught.value.details["batch_job_id"]
    assert job_id == seen[0].job_id and job_id in (caught.value.suggestion or "")
    server.batches.release()
    check_echoed(await registry.resume_batch(job_id), 50)


async def test_the_same_job_id_collects_instead_of_paying_twice(server: ProviderServer) -> None:
    registry = ModelForgeRegistry()
    first = await registry.batch_invoke(prompts(30), use_batch_api=True, job_id="nightly-2024-05-01")
    again = await registry.batch_invoke(prompts(30), use_batch_api=True, job_id="nightly-2024-05-01")
    check_echoed(first, 30)
    check_echoed(again, 30)
    assert len(server.batches.jobs) == 1
    with pytest.raises(InvalidInputError, match="already used"):
        await registry.batch_invoke(prompts(31), use_batch_api=True, job_id="nightly-2024-05-01")


@pytest.mark.parametrize("job_id", ["no-such-job", "../../etc/passwd", ""])
async def test_an_unknown_or_malformed_job_id_is_a_clear_error(job_id: str) -> None:
    with pytest.raises(InvalidInputError):
        await ModelForgeRegistry().resume_batch(job_id)


async def test_a_failed_look_at_the_job_names_it_for_later(server: ProviderServer) -> None:
    server.batches.hold()
    seen: list[BatchProgress] = []

    def progress(p: BatchProgress) -> None:
        seen.append(p)
        if p.status == "submitted":
            server.require_api_key = "sk-rotated"  # from now on the provider refuses our key

    registry = ModelForgeRegistry()
    with pytest.raises(InvalidApiKeyError) as caught:
        await registry.batch_invoke(prompts(10), use_batch_api=True, on_progress=progress)
    assert caught.value.details["batch_job_id"] == seen[0].job_id
    server.require_api_key = None
    server.batches.release()
    check_echoed(await registry.resume_batch(seen[0].job_id), 10)
