"""What observing every call costs: a provider with callbacks, a logger and OpenTelemetry spans against the
same provider unobserved.

Run: ``.venv/bin/python benchmarks/observability.py`` (about half a minute; ``--quick``: fewer rounds,
``--json PATH``: the figures for ``benchmarks/run.py``). Both arms are
``create_provider(ModelConfig(...))`` providers for the same OpenAI-compatible ``ProviderServer`` (in this
process, so both arms share its cost), sending the same short chat, one call after another:

1. plain: ``tracing=False``, no logger, no callbacks (nothing attached);
2. observed: a callback counting every event, a logger at INFO (to a handler that drops the lines) and an
   OpenTelemetry ``TracerProvider`` exporting spans to the SDK's in-memory exporter.

The arms run in alternating rounds (so drift in the machine's speed hits both) after a warm-up, and it prints
each arm's mean time per call, then the observed/plain ratio and the time observing adds to a call. The
loopback server answers in about 2 ms, far faster than any real provider, so the ratio is a worst case.
Target: observing adds under 0.3 ms per call.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelforge import ModelConfig, Provider, create_provider
from modelforge.assistant.provider import ChatProvider
from modelforge.testing import ProviderServer, Reply, Usage

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _records import Record, add_common_arguments, write_records

ROUNDS = 10
CALLS_PER_ROUND = 40
TARGET_ADDED_MS = 0.3


async def timed_calls(provider: ChatProvider, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        await provider.chat("What is the capital of France?")
        times.append(time.perf_counter() - start)
    return times


async def main(json_path: Path | None = None) -> None:
    os.environ["HOME"] = tempfile.mkdtemp(prefix="mf-bench-")
    os.environ["MODELFORGE_OPENAI_API_KEY"] = "sk-bench"
    with ProviderServer() as server:
        server.default_reply = Reply(text="Paris.", usage=Usage(14, 2))
        config = ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI, base_url=server.openai_base_url)
        events: list[Any] = []
        quiet = logging.getLogger("bench.observed")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        quiet.setLevel(logging.INFO)
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        arms = {
            "plain": create_provider(config, tracing=False),
            "observed": create_provider(
                config, logger=quiet, callbacks=[events.append], tracing=True, tracer_provider=tracer_provider
            ),
        }
        for provider in arms.values():
            await timed_calls(provider, 20)  # warm-up: connections, imports
        times: dict[str, list[float]] = {name: [] for name in arms}
        for round_index in range(ROUNDS):
            order = list(arms) if round_index % 2 == 0 else list(reversed(arms))
            for name in order:
                times[name] += await timed_calls(arms[name], CALLS_PER_ROUND)
        calls = ROUNDS * CALLS_PER_ROUND
        for name, values in times.items():
            print(
                f"{name:9s} {calls} calls: mean {statistics.mean(values) * 1000:6.2f} ms, "
                f"median {statistics.median(values) * 1000:6.2f} ms"
            )
        ratio = statistics.mean(times["observed"]) / statistics.mean(times["plain"])
        added_ms = (statistics.mean(times["observed"]) - statistics.mean(times["plain"])) * 1000
        spans = len(exporter.get_finished_spans())
        print(
            f"observed/plain: {ratio:.3f}x per call, +{added_ms:.2f} ms "
            f"({len(events)} events, {spans} spans recorded)"
        )
        verdict = "met" if added_ms < TARGET_ADDED_MS else "NOT met"
        print(f"target (observing adds < {TARGET_ADDED_MS:g} ms per call): {verdict}")
        observed, plain = statistics.mean(times["observed"]) * 1000, statistics.mean(times["plain"]) * 1000
        record = Record(
            "observability",
            "callbacks + logger + OTel spans, mean per call",
            observed,
            "same provider unobserved",
            plain,
            "ms",
            target=f"< {TARGET_ADDED_MS:g} ms added",
            met=added_ms < TARGET_ADDED_MS,
            note=f"added {added_ms:+.2f} ms, {calls} calls each",
        )
        write_records(json_path, [record])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        ROUNDS, CALLS_PER_ROUND = 10, 25
    asyncio.run(main(args.json))
