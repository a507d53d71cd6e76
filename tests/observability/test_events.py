"""The events a user's callbacks get for real calls: request, response (tokens, cost), error, retry,
fallback, cache hit, streams (finished, stopped early, broken), batches; sync and async."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessageChunk

from modelforge.catalog import Catalog
from modelforge.exceptions import BadRequestError
from modelforge.observability import observe
from modelforge.policies.fallback import FallbackChatModel
from modelforge.policies.fallback_config import no_fallbacks
from modelforge.registry import ModelForgeRegistry
from modelforge.telemetry import TelemetryCallback
from modelforge.testing import Fault, ProviderServer, Reply, Usage
from tests.observability.conftest import Recorder


def observed(llm: BaseChatModel, recorder: Recorder, provider: str = "openai") -> BaseChatModel:
    return observe(llm, provider=provider, model="gpt-4o-mini", callbacks=[recorder], tracing=False)


def catalogue_cost(input_tokens: int, output_tokens: int) -> float:
    """By hand from the bundled catalogue's per-million prices of openai/gpt-4o-mini."""
    info = Catalog.bundled().lookup("openai", ["gpt-4o-mini"])
    assert info is not None and info.input_per_1m and info.output_per_1m
    return (input_tokens * info.input_per_1m + output_tokens * info.output_per_1m) / 1_000_000


def chat_requests(server: ProviderServer) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_request_and_response_carry_tokens_and_cost(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder, mode: str
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini"), recorder)
    server.script(Reply(text="Hello!", usage=Usage(input_tokens=1200, output_tokens=300)))
    if mode == "sync":
        answer = llm.invoke("Say hello", max_tokens=50, temperature=0.2)
    else:
        answer = await llm.ainvoke("Say hello", max_tokens=50, temperature=0.2)
    assert answer.content == "Hello!"
    assert recorder.kinds == ["request", "response"]
    request, response = recorder.events
    assert (request.provider, request.model) == ("openai", "gpt-4o-mini")
    assert request.details == {"messages": 1, "max_tokens": 50, "temperature": 0.2}
    assert request.run_id == response.run_id and not response.streamed
    assert (response.input_tokens, response.output_tokens) == (1200, 300)
    assert response.cost == pytest.approx(catalogue_cost(1200, 300))
    assert response.duration_ms is not None and response.duration_ms >= 0
    assert response.details["finish_reason"] == "stop"
    assert "Say hello" not in str(request) + str(response)


@pytest.mark.parametrize("as_manager", [False, True])
def test_model_keeps_its_own_callbacks(
    registry: ModelForgeRegistry, recorder: Recorder, as_manager: bool
) -> None:
    telemetry = TelemetryCallback("openai", "gpt-4o-mini")
    own: Any = CallbackManager([telemetry]) if as_manager else [telemetry]
    llm = observed(registry.get_llm("openai", "gpt-4o-mini", callbacks=own), recorder)
    llm.invoke("hi")
    assert recorder.kinds == ["request", "response"]
    assert len(telemetry.history) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_error_event_on_a_rejected_request(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder, mode: str
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini"), recorder)
    server.script(Fault(status=400, message="bad temperature"))
    with pytest.raises(BadRequestError):
        if mode == "sync":
            llm.invoke("hi")
        else:
            await llm.ainvoke("hi")
    assert recorder.kinds == ["request", "error"]
    error = recorder.only("error")
    assert isinstance(error.error, BadRequestError)
    assert error.details["status_code"] == 400 and error.duration_ms is not None
    assert "BadRequestError" in str(error)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_retry_event_before_the_second_attempt(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder, mode: str
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini"), recorder)
    server.script(Fault(status=503), Reply(text="ok", usage=Usage(10, 2)))
    if mode == "sync":
        llm.invoke("hi")
    else:
        await llm.ainvoke("hi")
    assert recorder.kinds == ["request", "retry", "response"]
    retry = recorder.only("retry")
    assert retry.details["status_code"] == 503
    assert (retry.details["attempt"], retry.details["next_attempt"]) == (1, 2)
    assert retry.details["wait_seconds"] >= 0 and retry.details["reason"]
    assert recorder.only("response").output_tokens == 2  # one call, counted once
    assert chat_requests(server) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fallback_from_the_config_is_reported_once(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder, mode: str
) -> None:
    chain = registry.get_llm("primary", "gpt-4o-mini")
    assert isinstance(chain, FallbackChatModel)
    llm = observed(chain, recorder, provider="primary")
    server.script(Fault(status=503), Reply(text="from claude", usage=Usage(100, 20)))
    answer = llm.invoke("hi") if mode == "sync" else await llm.ainvoke("hi")
    assert answer.content == "from claude"
    assert recorder.kinds == ["request", "fallback", "response"]  # the attempts (child runs) not again
    fallback = recorder.only("fallback")
    assert fallback.details["served_by"] == "anthropic/claude-sonnet-4-6"
    assert fallback.details["failed"] == [
        {"provider": "primary/gpt-4o-mini", "error": "ProviderOverloadedError"}
    ]
    response = recorder.only("response")
    assert response.details["served_by"] == "anthropic/claude-sonnet-4-6"
    info = Catalog.bundled().lookup("anthropic", ["claude-sonnet-4-6"])
    assert info is not None
    assert response.cost == pytest.approx(info.cost(100, 20))  # priced as the model that answered


def test_retries_of_fallback_members_reach_the_outer_run(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder
) -> None:
    with no_fallbacks():
        members = [
            registry.get_llm("openai", "gpt-4o-mini"),
            registry.get_llm("anthropic", "claude-sonnet-4-6"),
        ]
    chain = FallbackChatModel(models=members, use_circuit_breakers=False)
    llm = observed(chain, recorder)
    server.script(Fault(status=503), Fault(status=503), Fault(status=503), Reply(text="ok"))
    llm.invoke("hi")
    assert recorder.kinds == ["request", "retry", "retry", "fallback", "response"]
    assert {event.details["member"] for event in recorder.events if event.kind == "retry"} == {
        "openai/gpt-4o-mini"
    }
    assert chain.models[0].callbacks is None  # observe left the original members alone


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_cache_hit_then_response_at_no_cost(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder, mode: str
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini", enable_cache=True), recorder)
    server.script(Reply(text="cached", usage=Usage(40, 10)))
    for _ in range(2):
        llm.invoke("same question") if mode == "sync" else await llm.ainvoke("same question")
    assert chat_requests(server) == 1
    assert recorder.kinds == ["request", "response", "request", "cache_hit", "response"]
    first, hit, second = recorder.events[1], recorder.events[3], recorder.events[4]
    assert first.cost == pytest.approx(catalogue_cost(40, 10))
    assert (hit.cost, second.cost) == (0.0, 0.0)
    assert (hit.input_tokens, hit.output_tokens) == (40, 10)
    assert second.details["cache"] == "hit"


def test_stream_sends_the_same_events_marked_streamed(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini"), recorder)
    server.script(Reply(text="one two three", usage=Usage(30, 3)))
    text = "".join(str(chunk.content) for chunk in llm.stream("count"))
    assert text == "one two three"
    assert recorder.kinds == ["request", "response"]
    assert all(event.streamed for event in recorder.events)
    response = recorder.only("response")
    assert (response.input_tokens, response.output_tokens) == (30, 3)
    assert response.cost == pytest.approx(catalogue_cost(30, 3))
    assert "time_to_first_token_ms" in response.details


async def test_astream_and_a_stream_stopped_early(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini"), recorder)
    server.script(Reply(text="a b c", usage=Usage(5, 3)))
    chunks = [chunk async for chunk in llm.astream("go")]
    assert chunks
    server.script(Reply(text="first second third fourth", chunks=["first ", "second ", "third ", "fourth"]))
    stream = cast(AsyncGenerator[BaseMessageChunk, None], llm.astream("go on"))
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            if chunk.content:
                break  # the caller stops reading: not a provider failure
    assert recorder.kinds == ["request", "response", "request", "response"]
    assert all(event.streamed for event in recorder.events)
    stopped = recorder.events[3]
    assert stopped.details.get("aborted") is True and stopped.error is None
    assert "stopped early" in str(stopped)


def test_a_stream_that_breaks_sends_an_error(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini"), recorder)
    server.script(Reply(text="partial answer here", chunks=["partial ", "answer ", "here"], cut_after=1))
    with pytest.raises(Exception) as raised:
        list(llm.stream("go"))
    assert recorder.kinds == ["request", "error"]
    error = recorder.only("error")
    assert error.streamed and error.error is raised.value


def test_stream_restarted_on_a_fallback_reports_the_fallback(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder
) -> None:
    llm = observed(registry.get_llm("primary", "gpt-4o-mini"), recorder, provider="primary")
    server.script(
        Reply(text="one two three", chunks=["one ", "two ", "three"], disconnect_after=1),
        Reply(text="from claude", usage=Usage(8, 2)),
    )
    list(llm.stream("go"))
    assert recorder.kinds == ["request", "fallback", "response"]
    fallback = recorder.only("fallback")
    assert fallback.details["restarted"] is True
    assert fallback.details["served_by"] == "anthropic/claude-sonnet-4-6"
    assert fallback.details["failed"][0]["provider"] == "primary/gpt-4o-mini"


def test_stream_that_moves_on_before_any_text_reports_the_fallback(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder
) -> None:
    llm = observed(registry.get_llm("primary", "gpt-4o-mini"), recorder, provider="primary")
    server.script(Fault(status=503), Reply(text="from claude", usage=Usage(8, 2)))
    assert "".join(str(chunk.content) for chunk in llm.stream("go")) == "from claude"
    assert recorder.kinds == ["request", "fallback", "response"]
    fallback = recorder.only("fallback")
    assert fallback.details["served_by"] == "anthropic/claude-sonnet-4-6"
    assert fallback.details["failed"][0]["provider"] == "primary/gpt-4o-mini"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_gives_one_request_and_response_per_input(
    server: ProviderServer, registry: ModelForgeRegistry, recorder: Recorder, mode: str
) -> None:
    llm = observed(registry.get_llm("openai", "gpt-4o-mini"), recorder)
    server.responder = lambda request: Reply(text="ok", usage=Usage(3, 1))
    inputs: list[LanguageModelInput] = ["a", "b", "c"]
    answers = llm.batch(inputs) if mode == "sync" else await llm.abatch(inputs)
    assert len(answers) == 3
    assert sorted(recorder.kinds) == ["request"] * 3 + ["response"] * 3
    assert len({event.run_id for event in recorder.events}) == 3
