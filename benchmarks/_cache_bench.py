"""Cache-hit latency: ModelForge's memory cache against LangChain's ``InMemoryCache``, on the same server.

Run alone: ``.venv/bin/python benchmarks/_cache_bench.py [ITERATIONS]`` (a few seconds; ``--quick``: 1,000
hits each instead of 2,000, ``--json PATH``: the figures for ``benchmarks/run.py``), or import
``cache_hit_latency`` (``benchmarks/batch.py`` prints it with the other batch figures). Both sides answer
the same question from a warm cache, ``iterations`` times each in alternating rounds, through the full
``invoke`` path a user calls:

* ModelForge: ``ModelForgeRegistry().get_llm(enable_cache=True)`` for an ``openai_compatible`` provider
  (key hashing, entry decoding, error translation and retries wrapped around ``ChatOpenAI``);
* LangChain: ``ChatOpenAI(cache=InMemoryCache())`` against the same ``ProviderServer``.

It returns printable lines: the median and p95 per call in microseconds for each, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _records import Record, add_common_arguments, write_records

ROUNDS = 10
PROMPT = "What is the capital of France?"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _timed(call: Callable[[], Any], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def _modelforge_llm(base_url: str, folder: Path) -> Any:
    from modelforge.registry import ModelForgeRegistry

    config = {
        "providers": {
            "bench": {
                "llm_type": "openai_compatible",
                "base_url": base_url,
                "models": {"bench-model": {}},
                "retry": {"max_attempts": 1},
            }
        },
        "current_model": {"provider": "bench", "model": "bench-model"},
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return ModelForgeRegistry(config_path=path).get_llm(enable_cache=True)


def cache_hit_latency(iterations: int = 2000) -> list[str]:
    """Median and p95 latency of a cache hit for ModelForge's memory cache and LangChain's InMemoryCache."""
    return lines(*measure(iterations))


def measure(iterations: int) -> tuple[list[float], list[float]]:
    """Microseconds per cache hit: ModelForge's, LangChain's."""
    from langchain_core.caches import InMemoryCache
    from langchain_openai import ChatOpenAI

    from modelforge.cache import close_caches
    from modelforge.testing import ProviderServer

    with ProviderServer() as server, tempfile.TemporaryDirectory() as folder:
        ours = _modelforge_llm(server.openai_base_url, Path(folder))
        theirs = ChatOpenAI(
            model="bench-model",
            base_url=server.openai_base_url,
            api_key="sk-bench-not-a-real-key",  # type: ignore[arg-type]
            max_retries=0,
            cache=InMemoryCache(),
        )
        try:
            for llm in (ours, theirs):  # the one miss each: fills the cache, warms imports and connections
                llm.invoke(PROMPT)
                llm.invoke(PROMPT)
            before = len(server.requests)
            per_round = max(1, iterations // ROUNDS)
            mf: list[float] = []
            lc: list[float] = []
            for _ in range(ROUNDS):
                mf += _timed(lambda: ours.invoke(PROMPT), per_round)
                lc += _timed(lambda: theirs.invoke(PROMPT), per_round)
            assert len(server.requests) == before, "every timed call must be a cache hit"
            assert ours.cache_stats.hits >= len(mf)
        finally:
            close_caches()
    return mf, lc


def lines(mf: list[float], lc: list[float]) -> list[str]:
    mf_median, lc_median = statistics.median(mf), statistics.median(lc)
    mf_p95, lc_p95 = _percentile(mf, 0.95), _percentile(lc, 0.95)
    return [
        f"cache hit, ModelForge memory cache (get_llm):  median {mf_median:7.0f} µs   p95 {mf_p95:7.0f} µs",
        f"cache hit, LangChain InMemoryCache (ChatOpenAI): median {lc_median:7.0f} µs   p95 {lc_p95:7.0f} µs",
        f"ratio ModelForge / LangChain:                   median {mf_median / lc_median:7.2f}x     "
        f"p95 {mf_p95 / lc_p95:7.2f}x   ({len(mf)} hits each)",
    ]


def records(mf: list[float], lc: list[float]) -> list[Record]:
    peer = "LangChain InMemoryCache"
    note = f"{len(mf)} hits each"
    median, p95 = statistics.median, _percentile
    return [
        Record(
            "cache",
            "cache hit, median",
            median(mf),
            peer,
            median(lc),
            "µs",
            target="<= 1.0x",
            met=median(mf) <= median(lc),
            note=note,
        ),
        Record("cache", "cache hit, p95", p95(mf, 0.95), peer, p95(lc, 0.95), "µs", note=note),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", type=int, nargs="?", default=None, help="hits per side (default 2,000)")
    add_common_arguments(parser)
    args = parser.parse_args()
    iterations = args.iterations or (1000 if args.quick else 2000)
    mf, lc = measure(iterations)
    for line in lines(mf, lc):
        print(line)
    write_records(args.json, records(mf, lc))


if __name__ == "__main__":
    main()
