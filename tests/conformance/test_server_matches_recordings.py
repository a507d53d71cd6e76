"""Our test server's streams, event by event, against the real APIs' recorded streams (``tests/README.md``
says where the recordings come from): the same event names in the same order, the same fields on each event
(a few optional ones named below), and the usage where the real API puts it.

The recordings are read here, not our server's code: when a provider changes its stream and a new release
of its LangChain package records it, importing the new recordings makes this test name what our server no
longer matches.
"""

from __future__ import annotations

import collections
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelforge.testing import ProviderServer, Reply, ToolCall, Usage
from tests.conformance.test_recorded_answers import FILES as RECORDING_FILES
from tests.conformance.test_recorded_answers import RECORDINGS, _events

# Fields the real APIs send that a client never needs and our server leaves out: OpenAI's random-length
# ``obfuscation`` padding, its ``service_tier``, and Anthropic's beta ``context_management`` report.
OPTIONAL = {"obfuscation", "service_tier", "context_management"}


def recorded_streams(kind: str) -> list[list[tuple[str, dict[str, Any]]]]:
    streams = []
    for name in RECORDING_FILES:
        with gzip.open(Path(RECORDINGS) / name, "rt", encoding="utf-8") as handle:
            for line in handle:
                item = json.loads(line)
                if item["kind"] == kind:
                    streams.append(
                        [(event or data.get("object", "data"), data) for event, data in _events(item["body"])]
                    )
    return streams


def names(stream: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The event names in order, a run of the same name counted once (one delta or many)."""
    out: list[str] = []
    for name, _ in stream:
        if not out or out[-1] != name:
            out.append(name)
    return out


def recorded_fields(kind: str) -> dict[str, tuple[set[str], set[str]]]:
    """For each event name: the fields every recorded event of that name has, and those any of them has."""
    every: dict[str, set[str]] = {}
    some: dict[str, set[str]] = collections.defaultdict(set)
    for stream in recorded_streams(kind):
        for name, data in stream:
            every[name] = every[name] & set(data) if name in every else set(data)
            some[name] |= set(data)
    return {name: (every[name], some[name]) for name in every}


def served(
    server: ProviderServer, path: str, body: dict[str, Any], headers: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    response = httpx.post(server.base_url + path, json=body, headers=headers, timeout=10)
    response.raise_for_status()
    return [(event or data.get("object", "data"), data) for event, data in _events(response.text)]


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


def assert_same_fields(ours: list[tuple[str, dict[str, Any]]], kind: str) -> None:
    real = recorded_fields(kind)
    for name, data in ours:
        assert name in real, f"{name}: no recorded {kind} stream has this event"
        required, allowed = real[name]
        missing = required - set(data) - OPTIONAL
        extra = set(data) - allowed - OPTIONAL
        assert not missing and not extra, (
            f"{name}: fields missing {sorted(missing)}, not in the API {sorted(extra)}"
        )


def assert_same_nested_fields(
    ours: list[tuple[str, dict[str, Any]]], kind: str, event: str, key: str, optional: set[str]
) -> None:
    """The object under ``key`` of ``event`` (a response, a message, a usage) has the recorded fields."""
    recorded = [data[key] for stream in recorded_streams(kind) for name, data in stream if name == event]
    required = set.intersection(*(set(item) for item in recorded))
    allowed = set.union(*(set(item) for item in recorded))
    mine = [data[key] for name, data in ours if name == event][-1]
    missing, extra = required - set(mine) - optional, set(mine) - allowed
    assert not missing and not extra, (
        f"{event}.{key}: missing {sorted(missing)}, not in the API {sorted(extra)}"
    )


def most_common_sequence(kind: str, having: str | None = None) -> list[str]:
    sequences = collections.Counter(
        tuple(names(stream)) for stream in recorded_streams(kind) if having is None or having in names(stream)
    )
    return list(sequences.most_common(1)[0][0])


def test_a_responses_api_text_stream_is_the_recorded_sequence(server: ProviderServer) -> None:
    server.script(Reply(text="Hello there friend", usage=Usage(12, 4)))
    ours = served(server, "/v1/responses", {"model": "gpt-5.5", "input": "hi", "stream": True}, {})
    assert names(ours) == most_common_sequence("responses-sse")
    assert_same_fields(ours, "responses-sse")
    final = ours[-1][1]["response"]
    assert final["status"] == "completed"
    usage = final["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (12, 4)
    assert {"input_tokens_details", "output_tokens_details"} <= set(usage)
    # Settings echoed back that no client reads: OpenAI's prompt-cache, safety and moderation settings.
    echoed = {
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "tool_usage",
        "top_logprobs",
        "max_tool_calls",
        "moderation",
        "presence_penalty",
        "frequency_penalty",
    }
    assert_same_nested_fields(ours, "responses-sse", "response.completed", "response", echoed)
    assert_same_nested_fields(ours, "responses-sse", "response.created", "response", echoed)


def test_a_responses_api_tool_call_stream_is_the_recorded_sequence(server: ProviderServer) -> None:
    server.script(Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    ours = served(server, "/v1/responses", {"model": "gpt-5.5", "input": "weather?", "stream": True}, {})
    assert names(ours) == most_common_sequence(
        "responses-sse", having="response.function_call_arguments.delta"
    )
    assert_same_fields(ours, "responses-sse")


def test_an_anthropic_stream_is_the_recorded_sequence(server: ProviderServer) -> None:
    server.script(Reply(text="Hello there friend", usage=Usage(12, 4)))
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    ours = served(server, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert names(ours) == most_common_sequence("anthropic-sse")
    assert_same_fields(ours, "anthropic-sse")
    assert_same_nested_fields(ours, "anthropic-sse", "message_start", "message", set())
    assert_same_nested_fields(ours, "anthropic-sse", "message_delta", "usage", set())
    start = ours[0][1]["message"]["usage"]
    delta = next(data for name, data in ours if name == "message_delta")["usage"]
    assert start["input_tokens"] == 12 and delta["output_tokens"] == 4


def test_a_chat_completions_stream_is_the_recorded_sequence(server: ProviderServer) -> None:
    server.script(Reply(text="Hello there friend", usage=Usage(12, 4)))
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    ours = served(server, "/v1/chat/completions", body, {})
    assert_same_fields(ours, "chat-sse")
    last = ours[-1][1]
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 12
    recorded_last = recorded_streams("chat-sse")[0][-1][1]
    assert recorded_last["choices"] == [] and "prompt_tokens" in recorded_last["usage"]
