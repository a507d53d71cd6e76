"""End to end: real LangChain chat models (built by ``ModelForgeRegistry``) over real HTTP against a
``ProviderServer`` that enforces the same requests and tokens per window as the limiter. No 429 reaches
the callers — from threads in one process, and from four processes sharing one Redis budget (there the
models come from a config file with a Redis ``rate_limit`` section, and the callers only ``ainvoke``).

These tests measure real time; the window is shortened to 1 s so each runs in a few seconds.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator

import pytest

from modelforge.exceptions import RateLimitError
from modelforge.policies.ratelimit import RateLimitConfig, RateLimiter
from modelforge.testing import ProviderServer, Reply, ServerLimits
from tests.ratelimit._workers import build_llm, prompt_of, redis_worker

REPLY_WORDS = 10


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as srv:
        srv.default_reply = Reply(text=" ".join(["word"] * REPLY_WORDS), latency=0.02)
        yield srv


def test_threads_in_one_process_get_no_429(server: ProviderServer) -> None:
    window, rpm, tpm = 1.0, 8, 400
    server.limits = ServerLimits(rpm=rpm, tpm=tpm, window=window)
    llm = build_llm(server.openai_base_url)
    limiter = RateLimiter(
        RateLimitConfig.from_config(
            {"requests_per_minute": rpm, "tokens_per_minute": tpm, "window_seconds": window}
        )
    )
    failures: list[BaseException] = []
    used: list[int] = []

    def caller(n: int) -> None:
        for i in range(3):
            words = 10 + 15 * ((n + i) % 4)
            reservation = limiter.acquire_sync(tokens=words + 16)
            try:
                answer = llm.invoke(prompt_of(words), max_tokens=16)
            except RateLimitError as err:
                failures.append(err)
                reservation.cancel()
                continue
            reservation.settle(answer.usage_metadata["total_tokens"])
            used.append(answer.usage_metadata["total_tokens"])

    start = time.monotonic()
    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - start
    assert failures == []
    assert len(used) == 24
    assert len(server.requests) == 24  # the server refused nothing
    assert elapsed >= 2 * window  # 24 requests at 8 per window: the limits really bound


def test_four_processes_sharing_redis_get_no_429(
    server: ProviderServer, redis_url: str, redis_key: str
) -> None:
    # The user-facing path: each process's model comes from a config file whose provider has this
    # ``rate_limit`` section (one Redis budget for all four) and whose model sets ``max_tokens``; the
    # workers only call ``llm.ainvoke(prompt)``, and get_llm's model reserves, settles and backs off.
    window, rpm, tpm, max_tokens = 1.0, 6, 300, 16
    server.limits = ServerLimits(rpm=rpm, tpm=tpm, window=window)
    section = {
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "window_seconds": window,
        "backend": "redis",
        "url": redis_url,
        "key": redis_key,
    }
    sizes = [10, 20, 30, 40, 50, 60]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(5)
    results = ctx.Queue()
    processes = []
    all_jobs: list[int] = []
    for n in range(4):
        jobs = [sizes[(n + i) % len(sizes)] for i in range(5)]
        all_jobs += jobs
        process = ctx.Process(
            target=redis_worker,
            args=(server.openai_base_url, section, max_tokens, jobs, barrier, results),
        )
        process.start()
        processes.append(process)
    barrier.wait(timeout=60)  # every process has built its model
    start = time.monotonic()
    counts = [results.get(timeout=60) for _ in processes]
    elapsed = time.monotonic() - start
    for process in processes:
        process.join(10)
        assert process.exitcode == 0
    assert [c["429"] for c in counts] == [0, 0, 0, 0]
    assert [c["degraded"] for c in counts] == [0, 0, 0, 0]
    assert sum(c["ok"] for c in counts) == 20
    assert len(server.requests) == 20  # the server refused nothing
    # max_tokens from the model config reaches the wire (ChatOpenAI sends it as max_completion_tokens)
    assert all(r.json["max_completion_tokens"] == max_tokens for r in server.requests)
    assert sum(c["tokens"] for c in counts) == sum(size + REPLY_WORDS for size in all_jobs)
    assert elapsed >= 3 * window  # 20 requests at 6 per window: the shared limits really bound
