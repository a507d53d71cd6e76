"""Retries under transient failures: no retry, the OpenAI SDK's default retries, and ModelForge's policy.

Run: ``.venv/bin/python benchmarks/retry.py`` (about two minutes; ``--quick``: 200 requests instead of 500,
``--json PATH``: the figures for ``benchmarks/run.py``). Each arm sends the same 500 requests,
one after another, through a real LangChain ``ChatOpenAI`` to an OpenAI-compatible ``ProviderServer``
running in a child process (so its work does not share the client's interpreter and skew wall times):

1. no retry: built by ``ModelForgeRegistry`` with ``retry: {max_attempts: 1}``;
2. the SDK's default retries: a plain ``ChatOpenAI(base_url=..., api_key=..., max_retries=2)`` built
   directly, i.e. what a user gets without ModelForge (up to 3 attempts, the openai client's backoff);
3. ModelForge's policy: built by ``ModelForgeRegistry`` with ``retry: {max_attempts: 5, backoff_factor:
   2.0, initial_wait: 0.05, max_wait: 2.0, respect_retry_after: true}`` (the SDK's retries turned off).

The failure pattern comes from a seeded RNG and is the same for every arm: 150 of the 500 logical
requests (30%, chosen at random) fail first, with a mix of 429 + ``Retry-After`` (0 or 1 s), 429 +
``retry-after-ms`` (50-500 ms), 503 and connection resets (the server accepts the request, then drops the
connection). A failed request's next attempt fails again with probability 10% (and so on, up to 5 faults
in a row: a short outage), else it gets the answer. Before each logical request the server's queue is
reset and loaded with exactly that request's items: its faults, then the reply. An arm that gives up
early leaves the rest unused and they are discarded, so every arm sees the same per-request pattern. An
unscripted request would get a 500, never a free success.

It prints one line per arm (success rate, failures, attempts the server saw, wall time), then whether
ModelForge reaches the targets: >= 99.5% success, and failures cut by far more than 50% versus no retry.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelforge.registry import ModelForgeRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper modules
from _records import Record, add_common_arguments, write_records

REQUESTS = 500
FAILURE_RATE = 0.30
AGAIN_RATE = 0.10  # chance that the next attempt of a failing request fails too
MAX_FAULTS = 5  # per logical request
SEED = 7
KINDS = {"429 Retry-After": 0.25, "429 retry-after-ms": 0.25, "503": 0.25, "connection reset": 0.25}
SUCCESS_TARGET = 0.995
NO_RETRY = {"max_attempts": 1}
MODELFORGE_RETRY = {
    "max_attempts": 5,
    "backoff_factor": 2.0,
    "initial_wait": 0.05,
    "max_wait": 2.0,
    "respect_retry_after": True,
}

# The child reads one JSON line per logical request (the items to script), answers how many requests the
# server saw since the previous line and how many scripted items were left unused, then resets and
# scripts the new items. A request that finds the queue empty gets a 500.
_SERVER = """
import json, sys
from modelforge.testing import Disconnect, Fault, ProviderServer, Reply
server = ProviderServer().start()
server.default_reply = Fault(status=500, message="unscripted request")
print(server.openai_base_url, flush=True)
def item(spec):
    kind = spec[0]
    if kind == "reply":
        return Reply(text="ok")
    if kind == "429 Retry-After":
        return Fault(status=429, message="Rate limit reached.", retry_after=spec[1])
    if kind == "429 retry-after-ms":
        return Fault(status=429, message="Rate limit reached.", retry_after_ms=spec[1])
    if kind == "503":
        return Fault(status=503, message="The server is overloaded.")
    return Disconnect()
for line in sys.stdin:
    seen, left = len(server.requests), server.script_remaining
    server.reset()
    server.script(*(item(spec) for spec in json.loads(line)))
    print(seen, left, flush=True)
server.stop()
"""


def make_plan(seed: int = SEED) -> list[list[list[Any]]]:
    """For each logical request, the items it may consume: zero or more faults, then the reply."""
    rng = random.Random(seed)
    names, weights = list(KINDS), list(KINDS.values())

    def fault() -> list[Any]:
        kind = rng.choices(names, weights)[0]
        if kind == "429 Retry-After":
            return [kind, rng.choice(["0", "1"])]
        if kind == "429 retry-after-ms":
            return [kind, rng.randrange(50, 501, 10)]
        return [kind]

    failing = set(rng.sample(range(REQUESTS), round(REQUESTS * FAILURE_RATE)))
    plan = []
    for n in range(REQUESTS):
        items = []
        if n in failing:
            items.append(fault())
            while len(items) < MAX_FAULTS and rng.random() < AGAIN_RATE:
                items.append(fault())
        plan.append([*items, ["reply"]])
    return plan


class Server:
    """The child-process server and its per-request script channel."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self._child = child
        assert child.stdout is not None
        self.base_url = child.stdout.readline().strip()

    def load(self, items: list[list[Any]]) -> tuple[int, int]:
        """Reset and script ``items``; returns (requests seen, items left) since the previous load."""
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(json.dumps(items) + "\n")
        self._child.stdin.flush()
        seen, left = self._child.stdout.readline().split()
        return int(seen), int(left)


@contextmanager
def serve() -> Iterator[Server]:
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield Server(child)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def modelforge_llm(base_url: str, retry: dict[str, Any]) -> Any:
    config = {
        "providers": {
            "bench": {
                "llm_type": "openai_compatible",
                "base_url": base_url,
                "models": {"bench-model": {}},
                "retry": retry,
            }
        },
        "current_model": {"provider": "bench", "model": "bench-model"},
    }
    path = Path(tempfile.mkdtemp()) / "config.json"
    path.write_text(json.dumps(config))
    return ModelForgeRegistry(config_path=path).get_llm()


def sdk_llm(base_url: str) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="bench-model", base_url=base_url, api_key="x", max_retries=2)  # type: ignore[arg-type]


@dataclass
class Result:
    ok: int
    failed: int
    attempts: int
    seconds: float
    errors: Counter[str]


def run_arm(make_llm: Any, plan: list[list[list[Any]]]) -> Result:
    with serve() as server:
        llm = make_llm(server.base_url)
        server.load([["reply"]])
        llm.invoke("warm up")  # first-use imports and the connection are not part of the run
        ok = failed = attempts = 0
        errors: Counter[str] = Counter()
        start = time.perf_counter()
        server.load(plan[0])
        for n in range(REQUESTS):
            try:
                llm.invoke(f"request {n}")
                ok += 1
            except Exception as err:
                failed += 1
                errors[type(err).__name__] += 1
            seen, _ = server.load(plan[n + 1] if n + 1 < REQUESTS else [])
            attempts += seen
        seconds = time.perf_counter() - start
    return Result(ok, failed, attempts, seconds, errors)


def main() -> int:
    global REQUESTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        REQUESTS = 200
    os.environ.setdefault("MODELFORGE_OFFLINE", "1")
    plan = make_plan()
    faulty = [items[:-1] for items in plan if len(items) > 1]
    kinds = Counter(spec[0] for items in faulty for spec in items)
    streaks = Counter(len(items) for items in faulty)
    print(
        f"Work: {REQUESTS} requests, sequential; {len(faulty)} ({len(faulty) / REQUESTS:.1%}) fail first "
        f"(seed {SEED}); {sum(kinds.values())} faults in all: "
        + ", ".join(f"{kinds[k]} {k}" for k in KINDS)
        + "; failures in a row: "
        + ", ".join(f"{streaks[k]} x {k}" for k in sorted(streaks))
        + "."
    )
    arms = [
        ("no retry (ModelForge, max_attempts 1)", lambda url: modelforge_llm(url, NO_RETRY)),
        ("SDK default retries (ChatOpenAI max_retries=2)", sdk_llm),
        ("ModelForge policy (max_attempts 5)", lambda url: modelforge_llm(url, MODELFORGE_RETRY)),
    ]
    results = []
    for name, make in arms:
        r = run_arm(make, plan)
        results.append(r)
        errors = ", ".join(f"{count} {kind}" for kind, count in r.errors.most_common())
        print(
            f"{name:<47} success: {r.ok / REQUESTS:6.1%}   failures: {r.failed:>3}   "
            f"attempts seen by server: {r.attempts:>3}   wall time: {r.seconds:5.1f} s"
            + (f"   ({errors})" if errors else "")
        )
    none, sdk, ours = results
    rate = ours.ok / REQUESTS
    cut = 1 - ours.failed / none.failed if none.failed else 0.0
    sdk_cut = 1 - sdk.failed / none.failed if none.failed else 0.0
    met = rate >= SUCCESS_TARGET and cut > 0.5
    print(
        f"ModelForge: {rate:.1%} success (target >= {SUCCESS_TARGET:.1%}); failures cut by {cut:.1%} "
        f"versus no retry ({none.failed} -> {ours.failed}; target: far more than 50%); "
        f"SDK default retries cut them by {sdk_cut:.1%} ({none.failed} -> {sdk.failed}). "
        f"Targets {'met' if met else 'NOT met'}."
    )
    peer = "SDK default retries"
    write_records(
        args.json,
        [
            Record(
                "retry",
                "success rate",
                rate * 100,
                peer,
                sdk.ok / REQUESTS * 100,
                "%",
                target=f">= {SUCCESS_TARGET:.1%}",
                met=rate >= SUCCESS_TARGET,
                note=f"{REQUESTS} requests, {none.ok / REQUESTS:.1%} without retries",
            ),
            Record(
                "retry",
                "failures cut vs no retry",
                cut * 100,
                peer,
                sdk_cut * 100,
                "%",
                target="> 50%",
                met=cut > 0.5,
                note=f"failures {none.failed} -> {ours.failed} (SDK {sdk.failed})",
            ),
            Record(
                "retry",
                "wall time",
                ours.seconds,
                peer,
                sdk.seconds,
                "s",
                note=f"no retry {none.seconds:.1f} s",
            ),
        ],
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
