"""What each process of the end-to-end tests runs (importable by ``multiprocessing`` spawn children).

A worker builds a real ``ChatOpenAI`` through ``ModelForgeRegistry`` against the test server from a config
file whose provider has a ``rate_limit`` section on the shared Redis budget and whose model sets
``max_tokens`` (SDK and ModelForge retries off, so a 429 surfaces), and sends its jobs a few at a time with
plain ``ainvoke`` calls: the model itself reserves estimated input + ``max_tokens`` before each call, settles
with the usage the server reported, and on a 429 gives the reservation back and tightens the limiter.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from modelforge.exceptions import RateLimitError
from modelforge.policies.admission import limiter_for
from modelforge.registry import ModelForgeRegistry

PROVIDER = "limited"


def build_llm(
    base_url: str, *, rate_limit: dict[str, Any] | None = None, max_tokens: int | None = None
) -> Any:
    """The model ``get_llm`` builds from a config file: ``rate_limit`` under the provider, ``max_tokens``
    in the model's settings (both optional)."""
    model: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    provider: dict[str, Any] = {
        "llm_type": "openai_compatible",
        "base_url": base_url,
        "models": {"limited-model": model},
        "retry": {"max_attempts": 1},
    }
    if rate_limit is not None:
        provider["rate_limit"] = rate_limit
    config = {
        "providers": {PROVIDER: provider},
        "current_model": {"provider": PROVIDER, "model": "limited-model"},
    }
    path = Path(tempfile.mkdtemp()) / "config.json"
    path.write_text(json.dumps(config))
    return ModelForgeRegistry(config_path=path).get_llm()


def prompt_of(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


async def run_jobs(llm: Any, jobs: list[int], concurrency: int) -> dict[str, int]:
    """Send prompts of ``jobs`` words, ``concurrency`` at a time; count answers, 429s and tokens used."""
    counts = {"ok": 0, "429": 0, "tokens": 0}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def lane() -> None:
        while not queue.empty():
            words = queue.get_nowait()
            try:
                answer = await llm.ainvoke(prompt_of(words))
            except RateLimitError:
                counts["429"] += 1
                continue
            counts["ok"] += 1
            counts["tokens"] += answer.usage_metadata["total_tokens"]

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return counts


def redis_worker(
    base_url: str, section: dict[str, Any], max_tokens: int, jobs: list[int], barrier: Any, results: Any
) -> None:
    llm = build_llm(base_url, rate_limit=section, max_tokens=max_tokens)

    async def main() -> dict[str, int]:
        barrier.wait()
        counts = await run_jobs(llm, jobs, concurrency=3)
        # The provider's process-wide limiter, the one the model's calls went through.
        counts["degraded"] = int(limiter_for(PROVIDER, section).degraded)
        return counts

    results.put(asyncio.run(main()))
