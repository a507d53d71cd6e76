"""Real provider answers, recorded by LangChain's partner packages against the live APIs, replayed byte for
byte over HTTP through a ``get_llm()`` model and through ``modelforge.stream_events``.

Where the recordings come from: ``tests/README.md`` (the HTTP cassettes in the source
distributions of langchain-openai 1.8.1 and langchain-anthropic 1.7.10, extracted by
``scripts/import_recordings.py``). The test server sends each recorded body unchanged (``Recorded``), so
what is tested is the real wire format through the real SDKs, LangChain's parsers and ModelForge's
pipeline: the text and the token usage must be what the recording says, read here independently from the
raw body, and a stream must end as a finished stream (OpenAI's Responses API ends with
``response.completed``, not a ``finish_reason``).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, cast

import pytest

from modelforge.assistant.costs import CostTracker
from modelforge.registry import ModelForgeRegistry
from modelforge.streaming import StreamEnd, StreamError, stream_events
from modelforge.testing import ProviderServer, Recorded
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
FILES = ("langchain-openai-1.8.1.jsonl.gz", "langchain-anthropic-1.7.10.jsonl.gz")


@dataclass(frozen=True)
class Answer:
    """One recorded answer and what it says, read from its raw body."""

    cassette: str
    index: int
    kind: str
    model: str
    body: str
    request_keys: tuple[str, ...]

    @property
    def family(self) -> str:
        return "anthropic" if self.kind.startswith("anthropic") else "openai"

    @property
    def streamed(self) -> bool:
        return self.kind.endswith("-sse")

    def __str__(self) -> str:
        return f"{self.family}:{self.cassette}#{self.index}"


def _load() -> list[Answer]:
    answers = []
    for name in FILES:
        with gzip.open(RECORDINGS / name, "rt", encoding="utf-8") as handle:
            for line in handle:
                item = json.loads(line)
                answers.append(
                    Answer(
                        item["cassette"],
                        item["index"],
                        item["kind"],
                        item.get("model") or "",
                        item["body"],
                        tuple(item.get("request_keys") or ()),
                    )
                )
    return answers


ANSWERS = _load()


# --- what a recording says, read from the raw body (independently of LangChain and ModelForge) -----------


def _events(body: str) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """The (event name, data) pairs of a server-sent event stream; ``[DONE]`` and empty data skipped."""
    for block in body.split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        payload = "\n".join(data)
        if payload and payload != "[DONE]":
            yield name, json.loads(payload)


@dataclass
class Expected:
    text: str
    input_tokens: int  # LangChain's convention: cached and cache-write tokens included
    output_tokens: int
    reasoning_tokens: int = 0  # part of output_tokens (OpenAI's output_tokens_details)
    cache_read_tokens: int = 0  # part of input_tokens
    cache_write_tokens: int = 0  # part of input_tokens (Anthropic's cache_creation_input_tokens)


def _openai_details(usage: dict[str, Any]) -> dict[str, int]:
    inputs = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
    outputs = usage.get("output_tokens_details") or usage.get("completion_tokens_details") or {}
    return {
        "reasoning_tokens": int(outputs.get("reasoning_tokens") or 0),
        "cache_read_tokens": int(inputs.get("cached_tokens") or 0),
    }


def _anthropic_details(usage: dict[str, Any]) -> dict[str, int]:
    return {
        "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
        "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
    }


def expected(answer: Answer) -> Expected:
    if answer.kind == "responses-sse":
        text = "".join(
            e["delta"] for _, e in _events(answer.body) if e["type"] == "response.output_text.delta"
        )
        final = next(
            e["response"]
            for _, e in _events(answer.body)
            if e["type"] in ("response.completed", "response.incomplete")
        )
        usage = final["usage"]
        return Expected(text, usage["input_tokens"], usage["output_tokens"], **_openai_details(usage))
    if answer.kind == "responses-json":
        data = json.loads(answer.body)
        text = "".join(
            part.get("text", "")
            for item in data["output"]
            if item.get("type") == "message"
            for part in item.get("content") or []
            if part.get("type") == "output_text"
        )
        usage = data["usage"]
        return Expected(text, usage["input_tokens"], usage["output_tokens"], **_openai_details(usage))
    if answer.kind == "anthropic-sse":
        text, usage = "", {}
        for _, event in _events(answer.body):
            if event["type"] == "message_start":
                usage.update({k: v for k, v in event["message"]["usage"].items() if isinstance(v, int)})
            elif event["type"] == "content_block_delta" and event["delta"].get("type") == "text_delta":
                text += event["delta"]["text"]
            elif event["type"] == "message_delta":
                usage.update({k: v for k, v in (event.get("usage") or {}).items() if isinstance(v, int)})
        return Expected(text, _anthropic_input(usage), usage["output_tokens"], **_anthropic_details(usage))
    if answer.kind == "anthropic-json":
        data = json.loads(answer.body)
        text = "".join(block["text"] for block in data["content"] if block.get("type") == "text")
        usage = data["usage"]
        return Expected(text, _anthropic_input(usage), usage["output_tokens"], **_anthropic_details(usage))
    if answer.kind == "chat-sse":
        text, usage = "", {}
        for _, event in _events(answer.body):
            for choice in event.get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
            usage = event.get("usage") or usage
        return Expected(text, usage["prompt_tokens"], usage["completion_tokens"], **_openai_details(usage))
    data = json.loads(answer.body)  # chat-json
    text = data["choices"][0]["message"].get("content") or ""
    usage = data["usage"]
    return Expected(text, usage["prompt_tokens"], usage["completion_tokens"], **_openai_details(usage))


def _anthropic_input(usage: dict[str, Any]) -> int:
    """Anthropic reports uncached input apart from cache reads and writes; LangChain adds them up."""
    keys = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return sum(int(usage.get(key) or 0) for key in keys)


# --- the replay ---------------------------------------------------------------------------------------------


def model_for(server: ProviderServer, answer: Answer) -> Any:
    """The ``get_llm()`` model the recording's own test configured (as far as parsing the answer needs)."""
    llm = registry_for(server, answer).get_llm(answer.family, answer.model or "recorded-model")
    if answer.family == "anthropic" and "context_management" in answer.request_keys:
        # Recorded with a beta feature (context management, compaction): langchain-anthropic reads such
        # answers through the SDK's beta client, which it uses when the model has betas. Set as a user
        # would on the ChatAnthropic that get_llm() returns.
        llm.betas = ["context-management-2025-06-27"]
    return llm


def registry_for(server: ProviderServer, answer: Answer) -> ModelForgeRegistry:
    model = answer.model or "recorded-model"
    if answer.family == "anthropic":
        provider = {"llm_type": "anthropic", "base_url": server.anthropic_base_url, "models": {model: {}}}
        keys = {"anthropic": ANTHROPIC_KEY}
    else:
        settings = {"api": "responses"} if answer.kind.startswith("responses") else {"api": "chat"}
        provider = {"llm_type": "openai", "base_url": server.openai_base_url, "models": {model: settings}}
        keys = {"openai": OPENAI_KEY}
    config = {"providers": {answer.family: {**provider, "retry": {"max_attempts": 1}}}}
    return ModelForgeRegistry.from_config(config, api_keys=keys)


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


def test_the_recordings_cover_every_wire_format() -> None:
    kinds = {answer.kind for answer in ANSWERS}
    assert kinds == {
        "responses-sse",
        "responses-json",
        "anthropic-sse",
        "anthropic-json",
        "chat-sse",
        "chat-json",
    }
    assert len(ANSWERS) == 243


@pytest.mark.parametrize("answer", ANSWERS, ids=str)
def test_a_get_llm_model_reads_the_recorded_answer(server: ProviderServer, answer: Answer) -> None:
    want = expected(answer)
    llm = model_for(server, answer)
    server.script(Recorded(answer.body.encode("utf-8")))
    if answer.streamed:
        chunks = list(llm.stream("replayed"))
        message = chunks[0]
        for chunk in chunks[1:]:
            message = message + chunk
    else:
        message = llm.invoke("replayed")
    assert message.text == want.text
    usage = message.usage_metadata
    assert usage is not None
    assert (usage["input_tokens"], usage["output_tokens"]) == (want.input_tokens, want.output_tokens)
    inputs, outputs = usage.get("input_token_details") or {}, usage.get("output_token_details") or {}
    assert int(outputs.get("reasoning") or 0) == want.reasoning_tokens
    assert int(inputs.get("cache_read") or 0) == want.cache_read_tokens
    assert int(inputs.get("cache_creation") or 0) == want.cache_write_tokens


STREAMED = [answer for answer in ANSWERS if answer.streamed]


def replayed_events(server: ProviderServer, answer: Answer, llm: Any) -> list[Any]:
    """The ``stream_events`` of ``llm`` answering with the recorded stream."""
    server.script(Recorded(answer.body.encode("utf-8")))

    async def run() -> list[Any]:
        return [event async for event in stream_events(llm, "replayed")]

    return asyncio.run(run())


@pytest.mark.parametrize("answer", STREAMED, ids=str)
def test_stream_events_ends_the_recorded_stream_with_its_text_and_usage(
    server: ProviderServer, answer: Answer
) -> None:
    want = expected(answer)
    events = replayed_events(server, answer, model_for(server, answer))
    errors = [event for event in events if isinstance(event, StreamError)]
    assert not errors, errors[0].error
    (end,) = [event for event in events if isinstance(event, StreamEnd)]
    assert end.text == want.text
    assert end.usage is not None
    assert (end.usage.input_tokens, end.usage.output_tokens) == (want.input_tokens, want.output_tokens)


# --- the price of each recorded answer ----------------------------------------------------------------------


def _catalogue() -> dict[str, Any]:
    """The bundled models.dev snapshot, read raw (not through ModelForge's catalogue code)."""
    raw = resources.files("modelforge.data").joinpath("models_dev.json.gz").read_bytes()
    return cast(dict[str, Any], json.loads(gzip.decompress(raw))["providers"])


CATALOGUE = _catalogue()


def catalogue_cost(answer: Answer, want: Expected, reported: str | None) -> float | None:
    """Usage times the catalogue's prices for the requested model, else for the id the answer reported."""
    models = CATALOGUE[answer.family]["models"]
    entry = models.get(answer.model) or models.get(reported or "")
    prices = (entry or {}).get("cost") or {}
    if "input" not in prices or "output" not in prices:
        return None
    read = prices.get("cache_read", prices["input"])
    write = prices.get("cache_write", prices["input"])
    plain = want.input_tokens - want.cache_read_tokens - want.cache_write_tokens
    dollars = (
        plain * prices["input"]
        + want.cache_read_tokens * read
        + want.cache_write_tokens * write
        + want.output_tokens * prices["output"]
    )
    return dollars / 1_000_000


@pytest.mark.parametrize("answer", STREAMED, ids=str)
def test_the_cost_of_a_recorded_stream_is_the_catalogue_price_everywhere(
    server: ProviderServer, answer: Answer
) -> None:
    """StreamEnd.cost, CostTracker and the catalogue computed here agree to the cent-millionth."""
    want = expected(answer)
    llm = model_for(server, answer)
    (end,) = [event for event in replayed_events(server, answer, llm) if isinstance(event, StreamEnd)]
    server.script(Recorded(answer.body.encode("utf-8")))
    chunks = list(llm.stream("replayed"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    tracked = CostTracker(llm).record(merged)
    reported = merged.response_metadata.get("model_name") or merged.response_metadata.get("model")
    independent = catalogue_cost(answer, want, reported)
    if independent is None:
        assert end.cost is None and not tracked.priced
        return
    assert end.cost == pytest.approx(independent, abs=1e-8)
    assert tracked.cost == pytest.approx(independent, abs=1e-8)
