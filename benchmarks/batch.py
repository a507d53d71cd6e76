"""Batch throughput under a provider's rate limit: ``registry.batch_invoke`` against the theoretical minimum,
LangChain's ``abatch`` and LiteLLM's ``batch_completion``; then the cache-hit latency lines.

Run: ``.venv/bin/python benchmarks/batch.py`` (one to two minutes; ``--quick``: 300 prompts instead of 500,
``--json PATH``: the figures for ``benchmarks/run.py``, ``--no-cache``: leave out the cache lines). One run
of each arm against a fresh ``ProviderServer`` in a child process (so the client's CPU is its own) that
answers every request after 200 ms and enforces 1,200 requests per minute as an even rate, the way providers
apply a per-minute limit over short windows: ``ServerLimits(rpm=20, window=1.0)``, 20 requests in any 1-s
sliding window. A request over the limit is answered 429 with ``Retry-After`` / ``retry-after-ms`` and the
``x-ratelimit-*`` headers.

Every arm sends the same 500 prompts with the same concurrency (8 in flight) and its library's own retry
behaviour, and counts the answers it got, the items that ended in an error, and the 429s the server sent:

* ModelForge, two ways a user can tell it the provider's limit (``ModelForgeRegistry(config_path=...)
  .batch_invoke(prompts, max_concurrent=8)``):
  - ``rate_limit: {requests_per_minute: 20, window_seconds: 1}`` (the server's even rate): the limiter
    never lets a request over the limit go, so the server refuses nothing. A request's slot comes back one
    window after the request was *sent* (stamped at ModelForge's transport, plus a 50 ms allowance for its
    way to the provider), not after its answer, so the model's latency does not cost throughput;
  - no ``rate_limit``, ``retry: {batch: {max_attempts: 8}}``: requests over the limit are refused and
    sent again after exactly the server's ``retry-after-ms`` (the retry policy's ``batch`` settings apply
    to batch items);
* LangChain: ``ChatOpenAI(...).abatch(prompts, config={"max_concurrency": 8}, return_exceptions=True)``
  (the OpenAI SDK's default 2 retries, which honour Retry-After); and the same with LangChain's
  ``InMemoryRateLimiter(requests_per_second=20)`` set as the model's ``rate_limiter``;
* LiteLLM (not a dependency): ``litellm.batch_completion(..., max_workers=8)``, run in LiteLLM's own
  environment (``benchmarks/.peers/litellm``, which ``benchmarks/run.py`` installs, or ``--peer
  litellm=PYTHON``) against the same server, else in this process when ``litellm`` is importable here.

The theoretical minimum is 500 requests / 20 per second = 25 s. Printed: each arm's wall time as a ratio of
that minimum, and ModelForge's wall times as ratios of each peer's. Target: ModelForge within 15% of the
minimum with every prompt answered (printed for both ModelForge arms). Then the cache-hit latency lines of
``benchmarks/_cache_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _peers import peer_arguments, resolve_peers
from _records import NOT_INSTALLED, Record, add_common_arguments, write_records

PROMPTS = 500
RPM = 1200
WINDOW = 1.0
PER_WINDOW = round(RPM * WINDOW / 60)  # 20
LATENCY = 0.2
CONCURRENCY = 8
MINIMUM = PROMPTS / (RPM / 60)  # 25 s
TARGET = 1.15
KEY = "sk-bench-not-a-secret"

_SERVER = """
import sys
from modelforge.testing import ProviderServer, Reply, ServerLimits
server = ProviderServer().start()
server.default_reply = Reply(text="ok", latency=float(sys.argv[1]))
server.limits = ServerLimits(rpm=int(sys.argv[2]), window=float(sys.argv[3]))
print(server.openai_base_url, flush=True)
for line in sys.stdin:
    refused = len(server.requests_for("openai")) - int(line)
    print(refused, flush=True)
"""


@contextmanager
def serve() -> Iterator[tuple[str, Callable[[int], int]]]:
    """A rate-limited ProviderServer in a child process: its OpenAI base URL, and a function that says how
    many requests it refused given how many were answered."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(LATENCY), str(PER_WINDOW), str(WINDOW)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    def refused(answered: int) -> int:
        stdin.write(f"{answered}\n")
        stdin.flush()
        return int(stdout.readline())

    try:
        yield stdout.readline().strip(), refused
    finally:
        stdin.close()
        child.wait(10)


def prompts() -> list[str]:
    return [f"Summarise item {i} in one word." for i in range(PROMPTS)]


def _tally(name: str, elapsed: float, outcomes: list[bool], refused: Callable[[int], int]) -> dict[str, Any]:
    answered = sum(outcomes)
    return {
        "name": name,
        "elapsed": elapsed,
        "answered": answered,
        "errors": len(outcomes) - answered,
        "refused": refused(answered),
    }


def run_modelforge(pacing: str) -> dict[str, Any]:
    """``batch_invoke`` with the provider's limit in the config (``limiter``) or paced by the server's
    Retry-After through the retry policy's ``batch`` settings (``retry-after``)."""
    from modelforge.registry import ModelForgeRegistry

    with serve() as (base_url, refused):
        provider: dict[str, Any] = {
            "llm_type": "openai_compatible",
            "base_url": base_url,
            "models": {"bench-model": {"max_tokens": 16}},
        }
        if pacing == "limiter":
            provider["rate_limit"] = {"requests_per_minute": PER_WINDOW, "window_seconds": WINDOW}
            name = f"ModelForge batch_invoke, rate_limit {PER_WINDOW}/{WINDOW:g}s"
        else:
            provider["retry"] = {"batch": {"max_attempts": 8}}
            name = "ModelForge batch_invoke, Retry-After pacing"
        config = {
            "providers": {"bench": provider},
            "current_model": {"provider": "bench", "model": "bench-model"},
        }
        path = Path(tempfile.mkdtemp()) / "config.json"
        path.write_text(json.dumps(config))
        registry = ModelForgeRegistry(config_path=path)

        async def main() -> tuple[float, list[bool]]:
            start = time.monotonic()
            results = await registry.batch_invoke(prompts(), max_concurrent=CONCURRENCY)
            return time.monotonic() - start, [r.ok for r in results]

        elapsed, outcomes = asyncio.run(main())
        return _tally(name, elapsed, outcomes, refused)


def run_langchain(with_limiter: bool) -> dict[str, Any]:
    from langchain_core.rate_limiters import InMemoryRateLimiter
    from langchain_openai import ChatOpenAI

    with serve() as (base_url, refused):
        llm = ChatOpenAI(model="bench-model", base_url=base_url, api_key=KEY, max_tokens=16)  # type: ignore[arg-type, call-arg]
        if with_limiter:
            llm.rate_limiter = InMemoryRateLimiter(requests_per_second=RPM / 60, check_every_n_seconds=0.01)

        async def main() -> tuple[float, list[bool]]:
            start = time.monotonic()
            inputs: list[Any] = list(prompts())
            config: Any = {"max_concurrency": CONCURRENCY}
            answers = await llm.abatch(inputs, config=config, return_exceptions=True)
            return time.monotonic() - start, [not isinstance(a, Exception) for a in answers]

        elapsed, outcomes = asyncio.run(main())
        name = "LangChain abatch + InMemoryRateLimiter" if with_limiter else "LangChain abatch"
        return _tally(name, elapsed, outcomes, refused)


# LiteLLM's arm in its own environment: the same call, timed there, answering with JSON on stdout.
_LITELLM = """
import json, os, sys, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm
litellm.suppress_debug_info = True
base_url, key, prompts, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
messages = [[{"role": "user", "content": f"Summarise item {i} in one word."}] for i in range(prompts)]
start = time.monotonic()
answers = litellm.batch_completion(
    model="openai/bench-model", messages=messages, api_base=base_url, api_key=key, max_tokens=16,
    max_workers=workers,
)
elapsed = time.monotonic() - start
print(json.dumps({"elapsed": elapsed, "outcomes": [not isinstance(a, Exception) for a in answers]}))
"""


def run_litellm(python: Path | None) -> dict[str, Any] | None:
    """LiteLLM's ``batch_completion`` in its environment (``python``), else in this process when
    ``litellm`` is importable here; None when neither is possible."""
    if python is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError:
            return None
        litellm.suppress_debug_info = True
    with serve() as (base_url, refused):
        if python is not None:
            done = subprocess.run(
                [str(python), "-c", _LITELLM, base_url, KEY, str(PROMPTS), str(CONCURRENCY)],
                capture_output=True,
                text=True,
                timeout=600,
                env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            )
            if done.returncode != 0:
                tail = " | ".join(done.stderr.strip().splitlines()[-3:])
                raise RuntimeError(f"LiteLLM's batch_completion failed in {python}: {tail}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            return _tally("LiteLLM batch_completion", result["elapsed"], result["outcomes"], refused)
        messages = [[{"role": "user", "content": p}] for p in prompts()]
        start = time.monotonic()
        answers = litellm.batch_completion(
            model="openai/bench-model",
            messages=messages,
            api_base=base_url,
            api_key=KEY,
            max_tokens=16,
            max_workers=CONCURRENCY,
        )
        elapsed = time.monotonic() - start
        outcomes = [not isinstance(a, Exception) for a in answers]
        return _tally("LiteLLM batch_completion", elapsed, outcomes, refused)


def cache_lines() -> list[str]:
    from _cache_bench import cache_hit_latency  # a sibling module, on sys.path (see the imports)

    return cache_hit_latency()


def main() -> int:
    global PROMPTS, MINIMUM
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    peer_arguments(parser)
    parser.add_argument("--no-cache", action="store_true", help="leave out the cache-hit latency lines")
    args = parser.parse_args()
    if args.quick:
        PROMPTS = 300
        MINIMUM = PROMPTS / (RPM / 60)
    litellm_python, litellm_reason = resolve_peers(args)["litellm"]
    print(
        f"Server: {RPM:,} RPM enforced as an even rate, ServerLimits(rpm={PER_WINDOW}, window={WINDOW:g}): "
        f"{PER_WINDOW} requests per {WINDOW:g}-s sliding window (429 + Retry-After beyond); "
        f"{LATENCY * 1000:.0f} ms per answer."
    )
    print(
        f"Work: {PROMPTS} prompts, {CONCURRENCY} in flight, one run per arm. Theoretical minimum: "
        f"{PROMPTS} / {PER_WINDOW / WINDOW:g} per s = {MINIMUM:.1f} s."
    )
    ours = [run_modelforge("limiter"), run_modelforge("retry-after")]
    peers = [run_langchain(False), run_langchain(True)]
    litellm_row = run_litellm(litellm_python)
    if litellm_row is not None:
        peers.append(litellm_row)
    for row in ours + peers:
        print(
            f"{row['name']:<46} wall {row['elapsed']:5.1f} s = {row['elapsed'] / MINIMUM:.2f}x the minimum   "
            f"answered {row['answered']}/{PROMPTS}, errors {row['errors']}, "
            f"429s from the server {row['refused']}"
        )
    if litellm_row is None:
        print(f"LiteLLM batch_completion: skipped (litellm is not installed: {litellm_reason})")
    print("ModelForge wall time / each peer's (below 1: ModelForge finished first):")
    for peer in peers:
        ratios = ", ".join(
            f"{row['name'].split(', ')[1]} {row['elapsed'] / peer['elapsed']:.2f}x" for row in ours
        )
        print(f"  vs {peer['name']:<42} {ratios}")
    met_all = True  # the target holds for both ways of telling ModelForge the limit, as run.py judges it
    for row in ours:
        met = row["elapsed"] <= MINIMUM * TARGET and row["answered"] == PROMPTS
        met_all = met_all and met
        print(
            f"Target ({row['name'].split(', ')[1]}: within {TARGET - 1:.0%} of the theoretical minimum, "
            f"every prompt answered): {'met' if met else 'NOT met'}"
        )
    write_records(args.json, batch_records(ours, peers, litellm_row is None, litellm_reason))
    if not args.no_cache:
        print("Cache-hit latency:")
        for line in cache_lines():
            print(f"  {line}")
    return 0 if met_all else 1


def batch_records(
    ours: list[dict[str, Any]], peers: list[dict[str, Any]], litellm_missing: bool, reason: str
) -> list[Record]:
    """Each ModelForge arm against the theoretical minimum; the ``rate_limit`` arm against each peer."""
    out = []
    for row in ours:
        how = row["name"].split(", ")[1]
        out.append(
            Record(
                "batch",
                f"wall, {how}",
                row["elapsed"],
                "theoretical minimum",
                MINIMUM,
                "s",
                target=f"<= {TARGET:.2f}x, all answered",
                met=row["elapsed"] <= MINIMUM * TARGET and row["answered"] == PROMPTS,
                note=f"{PROMPTS} prompts; answered {row['answered']}, 429s {row['refused']}",
            )
        )
    limiter = ours[0]
    metric = "wall, rate_limit in config"
    for peer in peers:
        out.append(
            Record(
                "batch",
                metric,
                limiter["elapsed"],
                peer["name"],
                peer["elapsed"],
                "s",
                note=f"peer answered {peer['answered']}/{PROMPTS}, errors {peer['errors']}, "
                f"429s {peer['refused']}",
            )
        )
    if litellm_missing:
        out.append(
            Record(
                "batch",
                metric,
                limiter["elapsed"],
                "LiteLLM batch_completion",
                unit="s",
                status=NOT_INSTALLED,
                note=reason,
            )
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
