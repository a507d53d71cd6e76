"""One arm of the per-call overhead benchmark, in whichever environment the arm's library lives in.

Run by ``benchmarks/overhead.py`` as ``<python> _overhead_worker.py ARM BASE_URL`` (never imports
ModelForge at module level: the LiteLLM and 2.3.0 arms run in their own virtual environments). ARM is

* ``modelforge`` / ``mf23`` / ``baseline``: ``ModelForgeRegistry().get_llm()`` from the config file in
  ``$HOME`` (the parent writes it; the key is in ``MODELFORGE_OPENAI_API_KEY``), then
  ``await llm.ainvoke(prompt)`` (``baseline``: an earlier ModelForge, for ``against_commit.py``);
* ``chatopenai``: a bare ``ChatOpenAI(model=..., base_url=..., api_key=...)``, ``await llm.ainvoke(prompt)``;
* ``litellm``: ``await litellm.acompletion(model="openai/gpt-4o-mini", messages=..., api_base=...,
  api_key=...)``.

It builds the model, makes one checked call, prints ``{"ready": ...}``, then for each line ``N`` on stdin
makes N calls one after another and prints one JSON line: each call's wall seconds and the round's CPU
seconds. An error is printed as ``{"error": ...}`` and ends the worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

MODEL = "gpt-4o-mini"
PROMPT = "What is the capital of France?"


def _text(answer: Any) -> str:
    if hasattr(answer, "choices"):  # LiteLLM's ModelResponse
        return str(answer.choices[0].message.content)
    return str(answer.content)


def make_call(arm: str, base_url: str) -> Callable[[], Awaitable[Any]]:
    key = os.environ.get("MODELFORGE_OPENAI_API_KEY", "sk-bench-not-a-secret")
    if arm in ("modelforge", "mf23", "baseline"):
        from modelforge.registry import ModelForgeRegistry

        with warnings.catch_warnings():  # 2.3.0's FutureWarning about its ``enhanced`` default
            warnings.simplefilter("ignore")
            llm = ModelForgeRegistry().get_llm()
        return lambda: llm.ainvoke(PROMPT)
    if arm == "chatopenai":
        from langchain_openai import ChatOpenAI

        bare = ChatOpenAI(model=MODEL, base_url=base_url, api_key=key)  # type: ignore[arg-type]
        return lambda: bare.ainvoke(PROMPT)
    if arm == "litellm":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.suppress_debug_info = True
        messages = [{"role": "user", "content": PROMPT}]
        return lambda: litellm.acompletion(
            model=f"openai/{MODEL}", messages=messages, api_base=base_url, api_key=key
        )
    raise SystemExit(f"unknown arm {arm!r}")


async def timed(call: Callable[[], Awaitable[Any]], count: int) -> dict[str, Any]:
    wall = []
    cpu_start = time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        await call()
        wall.append(time.perf_counter() - start)
    return {"wall": wall, "cpu": time.process_time() - cpu_start}


def main() -> None:
    arm, base_url = sys.argv[1], sys.argv[2]
    loop = asyncio.new_event_loop()
    try:
        call = make_call(arm, base_url)
        first = _text(loop.run_until_complete(call()))
        print(json.dumps({"ready": arm, "answer": first}), flush=True)
        for line in sys.stdin:
            print(json.dumps(loop.run_until_complete(timed(call, int(line)))), flush=True)
    except Exception as err:
        detail = traceback.format_exc(limit=-3).strip().splitlines()
        print(json.dumps({"error": f"{type(err).__name__}: {err}", "trace": detail[-6:]}), flush=True)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
