"""Rate limiting across processes: ModelForge's limiter on Redis vs LangChain's ``InMemoryRateLimiter``.

Run: ``.venv/bin/python benchmarks/ratelimit.py`` (about two minutes; needs Redis at 127.0.0.1:6379, or
``MODELFORGE_BENCH_REDIS_URL``; ``--quick``: 120 requests instead of 300, ``--json PATH``: the figures for
``benchmarks/run.py``). One run of each arm against a fresh ``ProviderServer`` that enforces
600 RPM and 40,000 TPM. A full minute per window would make the run long, so the window is scaled down
consistently: 6 s with 60 requests and 4,000 tokens per window (the same rates: 10 requests and ~667
tokens per second). The server counts each prompt's words when a request arrives and each answer's words
when it is produced, over a sliding window, and answers 429 with ``Retry-After`` when a limit would pass.

Both arms send the same 300 requests of mixed sizes (prompts of 20-150 words, answers of 10-40 words,
``max_tokens: 48`` in the model's config) from 4 processes (spawned), 8 at a time in each, with plain
``llm.ainvoke(prompt)`` on a real ``ChatOpenAI`` built by ``ModelForgeRegistry(config_path=...).get_llm()``
with retries off (``retry: {max_attempts: 1}``) so every 429 surfaces. A request refused with 429 is
counted, then sent again, so both arms finish the same work.

* ModelForge: the user-facing path — the provider's config has a ``rate_limit`` section on the shared
  Redis budget (600 RPM, 40,000 TPM as 60 requests and 4,000 tokens per 6 s window, a key of its own per
  run), and ``get_llm``'s model does the rest: before each call it reserves the estimated input tokens +
  ``max_tokens`` (``modelforge.policies.admission``), settles with the usage reported, and on a 429 gives
  the reservation back and tightens the limiter (so the resend simply waits in the limiter's line).
* LangChain: ``InMemoryRateLimiter(requests_per_second=600 / 60)`` set as the model's ``rate_limiter`` in
  each process, as a user would do (it counts requests only, and each process has its own); a 429 is
  resent after the server's Retry-After.

Printed for both: the number of 429s (and the requests sent), and the achieved token throughput as a
share of the TPM limit: tokens used per minute of the run / 40,000. Because a sliding window lets a run
burst a whole window at its start (and makes it wait a whole window for its last few requests), a strict
share is printed beside it: tokens used / the most the server's window admits in the elapsed time,
4,000 x (elapsed / 6 s + 1). Targets: ModelForge 0 429s and >= 85% of the TPM limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _records import Record, add_common_arguments, write_records

WINDOW = 6.0
RPM = 600
TPM = 40_000
REQUESTS_PER_WINDOW = round(RPM * WINDOW / 60)  # 60
TOKENS_PER_WINDOW = round(TPM * WINDOW / 60)  # 4,000
REQUESTS = 300
PROCESSES = 4
LANES = 8  # requests in flight per process
MAX_TOKENS = 48
LATENCY = 0.05  # the server's time to answer, seconds
PROVIDER = "bench"
REDIS_URL = os.environ.get("MODELFORGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def make_jobs(seed: int = 7) -> tuple[list[int], list[int]]:
    """Prompt sizes (words) of the 300 requests, and the answer sizes the server hands out in order."""
    rng = random.Random(seed)
    return [rng.randint(20, 150) for _ in range(REQUESTS)], [rng.randint(10, 40) for _ in range(REQUESTS)]


def rate_limit_section(key: str) -> dict[str, Any]:
    """The ModelForge arm's ``rate_limit`` section: the server's budgets, shared through Redis."""
    return {
        "requests_per_minute": REQUESTS_PER_WINDOW,
        "tokens_per_minute": TOKENS_PER_WINDOW,
        "window_seconds": WINDOW,
        "backend": "redis",
        "url": REDIS_URL,
        "key": key,
    }


def build_llm(base_url: str, rate_limit: dict[str, Any] | None = None) -> Any:
    """``get_llm()`` from a config file: ``max_tokens`` in the model's settings, ``rate_limit`` (if any)
    under the provider."""
    from modelforge.registry import ModelForgeRegistry

    provider: dict[str, Any] = {
        "llm_type": "openai_compatible",
        "base_url": base_url,
        "models": {"bench-model": {"max_tokens": MAX_TOKENS}},
        "retry": {"max_attempts": 1},
    }
    if rate_limit is not None:
        provider["rate_limit"] = rate_limit
    config = {
        "providers": {PROVIDER: provider},
        "current_model": {"provider": PROVIDER, "model": "bench-model"},
    }
    path = Path(tempfile.mkdtemp()) / "config.json"
    path.write_text(json.dumps(config))
    return ModelForgeRegistry(config_path=path).get_llm()


def prompt_of(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


async def drive(arm: str, llm: Any, prompts: list[int]) -> dict[str, float]:
    """Send every prompt, ``LANES`` at a time; a 429 is counted and sent again (by the LangChain arm after
    its Retry-After; ModelForge's model has already tightened its limiter, whose line the resend waits in)."""
    from modelforge.exceptions import RateLimitError

    counts: dict[str, float] = {"ok": 0, "429": 0, "tokens": 0}
    pending = list(reversed(prompts))

    async def lane() -> None:
        while pending:
            words = pending.pop()
            while True:
                try:
                    answer = await llm.ainvoke(prompt_of(words))
                except RateLimitError as err:
                    counts["429"] += 1
                    if arm != "modelforge":
                        await asyncio.sleep(err.retry_after or 1.0)
                    continue
                used = int(answer.usage_metadata["total_tokens"])
                counts["ok"] += 1
                counts["tokens"] += used
                break

    await asyncio.gather(*(lane() for _ in range(LANES)))
    return counts


def worker(arm: str, base_url: str, key: str, prompts: list[int], barrier: Any, results: Any) -> None:
    """One process of one arm."""
    section = rate_limit_section(key) if arm == "modelforge" else None
    llm = build_llm(base_url, section)
    if section is None:
        from langchain_core.rate_limiters import InMemoryRateLimiter

        llm.rate_limiter = InMemoryRateLimiter(requests_per_second=RPM / 60)

    async def main() -> dict[str, float]:
        barrier.wait()
        counts = await drive(arm, llm, prompts)
        if section is not None:
            from modelforge.policies.admission import limiter_for

            # The provider's process-wide limiter, the one the model's calls went through.
            counts["degraded"] = int(limiter_for(PROVIDER, section).degraded)
        else:
            counts["degraded"] = 0
        return counts

    results.put(asyncio.run(main()))


def run_arm(arm: str, prompts: list[int], answers: list[int]) -> dict[str, float]:
    from modelforge.testing import ProviderServer, Reply, ServerLimits

    key = f"bench-{uuid.uuid4().hex}"
    with ProviderServer() as server:
        server.limits = ServerLimits(rpm=REQUESTS_PER_WINDOW, tpm=TOKENS_PER_WINDOW, window=WINDOW)
        server.script(*(Reply(text=" ".join(["word"] * n), latency=LATENCY) for n in answers))
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES + 1)
        results = ctx.Queue()
        processes = [
            ctx.Process(
                target=worker,
                args=(arm, server.openai_base_url, key, prompts[n::PROCESSES], barrier, results),
            )
            for n in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        barrier.wait(timeout=120)
        start = time.monotonic()
        counts = [results.get(timeout=600) for _ in processes]
        elapsed = time.monotonic() - start
        for process in processes:
            process.join(30)
        refused = len(server.requests) - REQUESTS
    if arm == "modelforge":
        _forget(key)
    tokens = sum(c["tokens"] for c in counts)
    return {
        "429": sum(c["429"] for c in counts),
        "server_429": refused,
        "ok": sum(c["ok"] for c in counts),
        "tokens": tokens,
        "elapsed": elapsed,
        "sent": REQUESTS + refused,
        "per_minute": tokens / elapsed * 60,
        "share": tokens / elapsed * 60 / TPM,
        "strict": tokens / (TOKENS_PER_WINDOW * (elapsed / WINDOW + 1)),
        "degraded": sum(c["degraded"] for c in counts),
    }


def _forget(key: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"modelforge:ratelimit:{{{key}}}:*"):
        client.delete(name)
    client.close()


def main() -> int:
    import redis

    global REQUESTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        REQUESTS = 120

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as err:
        print(f"Redis is needed at {REDIS_URL} (set MODELFORGE_BENCH_REDIS_URL): {err}", file=sys.stderr)
        return 2
    prompts, answers = make_jobs()
    expected = sum(prompts) + sum(answers)
    print(
        f"Server limits: {RPM} RPM and {TPM:,} TPM, scaled to a {WINDOW:g} s sliding window "
        f"({REQUESTS_PER_WINDOW} requests and {TOKENS_PER_WINDOW:,} tokens per window)."
    )
    print(
        f"Work: {REQUESTS} requests (prompts 20-150 words, answers 10-40 words, max_tokens={MAX_TOKENS}; "
        f"{expected:,} tokens in all) from {PROCESSES} spawned processes, {LANES} in flight in each, "
        f"plain ainvoke on ChatOpenAI via ModelForgeRegistry with retries off; a 429 is counted and resent "
        f"(ModelForge: rate_limit section on Redis in the config; LangChain: after Retry-After)."
    )
    print(
        "Throughput = tokens per minute of the run / 40,000 TPM; strict = tokens / the most the window "
        "admits in the elapsed time, 4,000 x (elapsed / 6 s + 1)."
    )
    rows = [
        ("ModelForge RateLimiter, Redis (shared budget)", run_arm("modelforge", prompts, answers)),
        ("LangChain InMemoryRateLimiter (one per process)", run_arm("langchain", prompts, answers)),
    ]
    for name, r in rows:
        print(
            f"{name:<48} 429s: {r['429']:>4.0f} ({r['sent']:.0f} requests sent)   "
            f"tokens: {r['tokens']:,.0f} in {r['elapsed']:.1f} s = {r['per_minute']:,.0f}/min   "
            f"throughput: {r['share']:.1%} of the TPM limit (strict: {r['strict']:.1%})"
            + (f"   [degraded in {r['degraded']:.0f} processes]" if r["degraded"] else "")
        )
    ours = rows[0][1]
    met = ours["429"] == 0 and ours["share"] >= 0.85
    print(f"Target (ModelForge 0 429s and >= 85% of the TPM limit): {'met' if met else 'NOT met'}")
    theirs = rows[1][1]
    peer = "LangChain InMemoryRateLimiter"
    work = f"{REQUESTS} requests from {PROCESSES} processes"
    write_records(
        args.json,
        [
            Record(
                "rate limits",
                "429s from the server",
                ours["429"],
                peer,
                theirs["429"],
                "",
                with_ratio=False,
                target="0",
                met=ours["429"] == 0,
                note=work,
            ),
            Record(
                "rate limits",
                "throughput, share of the TPM limit",
                ours["share"] * 100,
                peer,
                theirs["share"] * 100,
                "%",
                target=">= 85%",
                met=ours["share"] >= 0.85,
                note=f"strict {ours['strict']:.0%} vs {theirs['strict']:.0%}",
            ),
        ],
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
