"""Streaming overhead: ``modelforge.stream`` against the raw ``llm.astream`` it wraps, in one run.

Run: ``.venv/bin/python benchmarks/streaming.py`` (about a minute; ``--quick``: fewer rounds and chunks,
``--json PATH``: the figures for ``benchmarks/run.py``). The OpenAI-compatible test server runs in a child
process, so the CPU time measured here is the client's alone. It prints three lines:

1. CPU time of ``modelforge.stream`` over a 20,000-chunk response divided by raw ``llm.astream`` over the
   same response (median of alternating runs; target <= 1.05);
2. time to first chunk added by ``modelforge.stream`` (median over many short requests; target < 1 ms);
3. peak RSS growth while ``stream_to_file`` writes a 10 MB response (target < 30 MB).

The model is the one ``ModelForgeRegistry().get_llm()`` builds for an ``openai_compatible`` provider, so
both sides include ModelForge's error translation; the ratio isolates the streaming helper.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import modelforge
from modelforge.registry import ModelForgeRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _records import Record, add_common_arguments, write_records

ROUNDS = 9  # alternating rounds; one round varies by +-8% on 2 cores, the median of 9 by about 1%
CHUNKS = 20_000
TTFC_RUNS = 200
FILE_BYTES = 10 * 1024 * 1024
FILE_CHUNK = 2048

_SERVER = """
import sys
from modelforge.testing import ProviderServer, Reply
chunks = int(sys.argv[1]); size = int(sys.argv[2])
piece = "x" * (size - 1) + " "
server = ProviderServer().start()
server.default_reply = Reply(text=piece * chunks, chunks=[piece] * chunks)
print(server.openai_base_url, flush=True)
sys.stdin.read()
"""


@contextmanager
def serve(chunks: int, chunk_size: int) -> Iterator[str]:
    """A ProviderServer in a child process whose every answer is ``chunks`` chunks of ``chunk_size``."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(chunks), str(chunk_size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def llm_for(base_url: str) -> Any:
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
    path = Path(tempfile.mkdtemp()) / "config.json"
    path.write_text(json.dumps(config))
    return ModelForgeRegistry(config_path=path).get_llm()


async def raw_text(llm: Any) -> str:
    parts = [chunk.content async for chunk in llm.astream("go")]
    return "".join(p for p in parts if isinstance(p, str))


async def modelforge_text(llm: Any) -> str:
    return "".join([piece async for piece in modelforge.stream(llm, "go")])


async def cpu_seconds(run: Any, llm: Any) -> tuple[float, str]:
    start = time.process_time()
    text = await run(llm)
    return time.process_time() - start, text


async def overhead_ratio(llm: Any) -> tuple[float, float, float]:
    await raw_text(llm)  # warm up connections, imports and the tokenizer-free path
    await modelforge_text(llm)
    raw: list[float] = []
    wrapped: list[float] = []
    for round_number in range(ROUNDS):
        texts = {}
        arms = [(raw_text, raw), (modelforge_text, wrapped)]
        for read, seconds_of in arms if round_number % 2 else reversed(arms):  # alternate who goes first
            gc.collect()  # each arm starts with no garbage of the other's to collect
            seconds, texts[read] = await cpu_seconds(read, llm)
            seconds_of.append(seconds)
        assert texts[raw_text] == texts[modelforge_text], "both paths must deliver the same text"
    raw_cpu, wrapped_cpu = statistics.median(raw), statistics.median(wrapped)
    return wrapped_cpu / raw_cpu, raw_cpu, wrapped_cpu


async def first_chunk_seconds(stream: Any) -> float:
    """Seconds to the first chunk; the (short) rest is read too, so the connection is reused."""
    start = time.perf_counter()
    elapsed = None
    async for _ in stream:
        if elapsed is None:
            elapsed = time.perf_counter() - start
    assert elapsed is not None
    return elapsed


async def ttfc_added(llm: Any) -> tuple[float, float, float]:
    raw: list[float] = []
    wrapped: list[float] = []
    for run in range(TTFC_RUNS):
        pair = [
            ("raw", lambda: llm.astream("go")),
            ("wrapped", lambda: modelforge.stream(llm, "go", buffer_size=1)),
        ]
        for name, make in pair if run % 2 else reversed(pair):  # alternate who goes first
            (raw if name == "raw" else wrapped).append(await first_chunk_seconds(make()))
    raw_ms, wrapped_ms = statistics.median(raw) * 1000, statistics.median(wrapped) * 1000
    return wrapped_ms - raw_ms, raw_ms, wrapped_ms


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> None:
    """Reset VmHWM (the peak RSS) to the current RSS (Linux ``clear_refs``; instant, off no disk)."""
    Path("/proc/self/clear_refs").write_text("5")


async def file_rss_growth(llm: Any) -> tuple[float, int]:
    target = Path(tempfile.mkdtemp()) / "answer.txt"
    await modelforge.stream_to_file(llm, "warm up", target)  # first-use allocations are not growth
    _reset_peak_rss()
    before = _status("VmRSS")
    await modelforge.stream_to_file(llm, "go", target)
    peak = _status("VmHWM")
    return (peak - before) / (1024 * 1024), target.stat().st_size


async def main(json_path: Path | None = None) -> None:
    os.environ.setdefault("MODELFORGE_OFFLINE", "1")
    with serve(CHUNKS, 8) as url:
        llm = llm_for(url)
        ratio, raw_cpu, wrapped_cpu = await overhead_ratio(llm)
    with serve(8, 8) as url:
        llm = llm_for(url)
        added_ms, raw_ms, wrapped_ms = await ttfc_added(llm)
    with serve(FILE_BYTES // FILE_CHUNK, FILE_CHUNK) as url:
        llm = llm_for(url)
        growth_mb, size = await file_rss_growth(llm)
    print(
        f"cpu ratio modelforge.stream / raw astream, {CHUNKS} chunks: {ratio:.3f} "
        f"(raw {raw_cpu:.2f}s, modelforge {wrapped_cpu:.2f}s; target <= 1.05)"
    )
    print(
        f"time to first chunk added: {added_ms:.3f} ms "
        f"(raw {raw_ms:.2f} ms, modelforge {wrapped_ms:.2f} ms, median of {TTFC_RUNS}; target < 1 ms)"
    )
    print(
        f"peak RSS growth during stream_to_file of {size / 1024 / 1024:.1f} MB: {growth_mb:.1f} MB "
        f"(target < 30 MB)"
    )
    peer = "raw llm.astream"
    write_records(
        json_path,
        [
            Record(
                "streaming",
                f"CPU, {CHUNKS:,} chunks",
                wrapped_cpu,
                peer,
                raw_cpu,
                "s",
                target="<= 1.05x",
                met=ratio <= 1.05,
            ),
            Record(
                "streaming",
                "time to first chunk",
                wrapped_ms,
                peer,
                raw_ms,
                "ms",
                target="< 1 ms added",
                met=added_ms < 1.0,
                note=f"added {added_ms:+.3f} ms",
            ),
            Record(
                "streaming",
                f"stream_to_file {size / 1024 / 1024:.0f} MB: peak RSS growth",
                growth_mb,
                unit="MB",
                target="< 30 MB",
                met=growth_mb < 30,
            ),
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        ROUNDS, CHUNKS, TTFC_RUNS = 9, 10_000, 100
    asyncio.run(main(args.json))
