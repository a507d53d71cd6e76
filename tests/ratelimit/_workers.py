"""What each process of the end-to-end tests runs (importable by ``multiprocessing`` spawn children).

A worker builds a real ``ChatOpenAI`` through ``ModelForgeRegistry`` against the test server (SDK and
ModelForge retries off, so a 429 surfaces), a ``RateLimiter`` on the shared Redis budget, and sends its
jobs through it a few at a time: reserve words-of-prompt + max_tokens (the server's own estimate), call,
settle with the usage the server reported, and on a 429 cancel the reservation and tighten from it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from modelforge.exceptions import RateLimitError
from modelforge.policies.ratelimit import RateLimitConfig, RateLimiter
from modelforge.registry import ModelForgeRegistry


def build_llm(base_url: str) -> Any:
    config = {
        "providers": {
            "limited": {
                "llm_type": "openai_compatible",
                "base_url": base_url,
                "models": {"limited-model": {}},
                "retry": {"max_attempts": 1},
            }
        },
        "current_model": {"provider": "limited", "model": "limited-model"},
    }
    path = Path(tempfile.mkdtemp()) / "config.json"
    path.write_text(json.dumps(config))
    return ModelForgeRegistry(config_path=path).get_llm()


def prompt_of(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


async def run_jobs(
    llm: Any, limiter: RateLimiter, jobs: list[tuple[int, int]], concurrency: int
) -> dict[str, int]:
    counts = {"ok": 0, "429": 0, "tokens": 0}
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def lane() -> None:
        while not queue.empty():
            words, max_tokens = queue.get_nowait()
            reservation = await limiter.acquire(tokens=words + max_tokens)
            try:
                answer = await llm.ainvoke(prompt_of(words), max_tokens=max_tokens)
            except RateLimitError as err:
                counts["429"] += 1
                await reservation.acancel()
                await limiter.aobserve(err.details.get("rate_limit", {}), retry_after=err.retry_after)
                continue
            used = answer.usage_metadata["total_tokens"]
            await reservation.asettle(used)
            counts["ok"] += 1
            counts["tokens"] += used

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return counts


def redis_worker(
    base_url: str, section: dict[str, Any], jobs: list[tuple[int, int]], barrier: Any, results: Any
) -> None:
    llm = build_llm(base_url)
    limiter = RateLimiter(RateLimitConfig.from_config(section))

    async def main() -> dict[str, int]:
        barrier.wait()
        counts = await run_jobs(llm, limiter, jobs, concurrency=3)
        counts["degraded"] = int(limiter.degraded)
        return counts

    results.put(asyncio.run(main()))
