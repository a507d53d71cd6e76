"""CPU that ModelForge adds to one call, with the network taken out: ``get_llm()``'s model against a bare
``ChatOpenAI``, both answered by the same in-memory HTTP transport.

Run: ``.venv/bin/python benchmarks/call_cpu.py`` (about half a minute; ``--quick``: fewer rounds,
``--json PATH``: the figures for ``benchmarks/run.py``). ``overhead.py`` measures the same two arms over
loopback HTTP, where the server and the scheduler of a 2-core machine move each call by +-0.2 ms; this
benchmark answers both arms from an ``httpx.MockTransport`` in the calling process (the same response bytes
the test server sends for a chat completion), so what differs between the arms is ModelForge's work alone:
its pipeline (stream integrity and metrics, retry and error translation) and LangChain's own machinery,
which both arms run. Both arms call ``ainvoke`` in alternating rounds; it prints the CPU time per call of
each arm (median over rounds) and the difference, which is what ModelForge adds to every call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from langchain_openai import ChatOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _records import Record, add_common_arguments, write_records

PROMPT = "What is the capital of France?"
BASE_URL = "http://bench.invalid/v1"
# A chat completion as the OpenAI API (and the project's test server) sends it.
COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1733529600,
    "model": "bench-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16},
}


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=COMPLETION, headers={"x-request-id": "req-bench"})


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(_answer), base_url=BASE_URL)


def modelforge_llm(folder: Path) -> Any:
    from modelforge.registry import ModelForgeRegistry

    config = {
        "providers": {
            "bench": {
                "llm_type": "openai_compatible",
                "base_url": BASE_URL,
                "models": {"bench-model": {}},
                # No pooled transport: the arms must share the one HTTP stack measured here.
                "connection_pool": {"enabled": False},
            }
        },
        "current_model": {"provider": "bench", "model": "bench-model"},
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    llm = ModelForgeRegistry(config_path=path).get_llm()
    llm.root_async_client._client = _client()  # type: ignore[attr-defined]
    return llm


def bare_llm() -> ChatOpenAI:
    return ChatOpenAI(
        model="bench-model",
        base_url=BASE_URL,
        api_key="sk-bench-not-a-secret",  # type: ignore[arg-type]
        max_retries=0,
        http_async_client=_client(),
    )


async def cpu_per_call(llm: Any, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        await llm.ainvoke(PROMPT)
    return (time.process_time() - start) / calls


async def measure(rounds: int, calls: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as folder:
        ours = modelforge_llm(Path(folder))
        bare = bare_llm()
        assert (await ours.ainvoke(PROMPT)).content == "Paris."
        assert (await bare.ainvoke(PROMPT)).content == "Paris."
        for llm in (ours, bare):  # warm-up
            await cpu_per_call(llm, calls)
        mf: list[float] = []
        lc: list[float] = []
        for index in range(rounds):
            order = [(ours, mf), (bare, lc)] if index % 2 == 0 else [(bare, lc), (ours, mf)]
            for llm, samples in order:
                samples.append(await cpu_per_call(llm, calls))
    return mf, lc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    rounds, calls = (10, 200) if args.quick else (20, 400)
    mf, lc = asyncio.run(measure(rounds, calls))
    ours, theirs = statistics.median(mf) * 1000, statistics.median(lc) * 1000
    added = statistics.median(a - b for a, b in zip(mf, lc, strict=True)) * 1000
    print(f"ModelForge get_llm() ainvoke: CPU {ours:.3f} ms per call (median of {rounds} rounds of {calls})")
    print(f"bare ChatOpenAI ainvoke:      CPU {theirs:.3f} ms per call")
    print(f"ModelForge adds {added:+.3f} ms CPU per call (median of the rounds' differences), no network")
    write_records(
        args.json,
        [
            Record("call cpu", "CPU per call, no network", ours, "bare ChatOpenAI", theirs, "ms"),
            Record(
                "call cpu",
                "added CPU per call, no network",
                added,
                "bare ChatOpenAI",
                unit="ms",
                target="not worse than before the pipeline",
                with_ratio=False,
            ),
        ],
    )


if __name__ == "__main__":
    main()
