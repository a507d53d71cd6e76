"""invoke / ainvoke / batch through a fallback chain over real HTTP: what moves on, what is raised at once,
one error carrying every failure, and the circuit breaker resting a failing provider."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage

from modelforge import exceptions
from modelforge.exceptions import (
    AllProvidersFailedError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    NetworkConnectionError,
    NetworkTimeoutError,
    ProviderOverloadedError,
    ProviderServerError,
    RateLimitError,
)
from modelforge.policies.circuit import CircuitBreakerRegistry, CircuitState
from modelforge.policies.fallback import FALLBACK_KEY, FallbackChatModel, should_fall_back, with_fallbacks_of
from modelforge.testing import Disconnect, Fault, ProviderServer, Reply
from tests.fallback.conftest import FakeClock, protocols

MODES = ["sync", "async"]


async def ask(llm: BaseChatModel, mode: str, prompt: str = "hi") -> AIMessage:
    if mode == "sync":
        message = await asyncio.to_thread(llm.invoke, prompt)
    else:
        message = await llm.ainvoke(prompt)
    assert isinstance(message, AIMessage)
    return message


# The primary's failure, and the ModelForge error it becomes.
MOVES_ON: list[Any] = [
    pytest.param(Fault(status=503), ProviderOverloadedError, id="503"),
    pytest.param(Fault(status=500), ProviderServerError, id="500"),
    pytest.param(Fault(status=529), ProviderServerError, id="529"),
    pytest.param(Fault(status=429, retry_after="1"), RateLimitError, id="429"),
    pytest.param(Reply(text="late", latency=3.0), NetworkTimeoutError, id="timeout"),
    pytest.param(Disconnect(), NetworkConnectionError, id="connection-reset"),
    pytest.param(Fault(status=401), AuthenticationError, id="401"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "error_type"), MOVES_ON)
async def test_failure_moves_on_to_the_next_provider(
    chain: FallbackChatModel, server: ProviderServer, mode: str, fault: Any, error_type: type[Exception]
) -> None:
    server.script(fault, Reply(text="from anthropic"))
    message = await ask(chain, mode)
    assert message.content == "from anthropic"
    assert protocols(server) == ["openai", "anthropic"]
    served = message.response_metadata[FALLBACK_KEY]
    assert served["provider"] == "anthropic/claude-sonnet-4-6"
    assert served["failed"][0]["provider"] == "openai/gpt-4o-mini"
    assert issubclass(getattr(exceptions, served["failed"][0]["error"]), error_type)


@pytest.mark.parametrize("mode", MODES)
async def test_first_model_answering_leaves_the_rest_alone(
    chain: FallbackChatModel, server: ProviderServer, mode: str
) -> None:
    server.script(Reply(text="from openai"))
    message = await ask(chain, mode)
    assert message.content == "from openai"
    assert FALLBACK_KEY not in message.response_metadata
    assert protocols(server) == ["openai"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [400, 422])
async def test_bad_request_is_raised_at_once(
    chain: FallbackChatModel, server: ProviderServer, mode: str, status: int
) -> None:
    server.script(Fault(status=status, message="messages: invalid"), Reply(text="never"))
    with pytest.raises(BadRequestError) as info:
        await ask(chain, mode)
    assert info.value.status_code == status
    assert protocols(server) == ["openai"]
    assert server.script_remaining == 1


async def test_a_bad_request_after_a_fallback_keeps_the_earlier_failures_as_a_note(
    chain: FallbackChatModel, server: ProviderServer
) -> None:
    server.script(Fault(status=503), Fault(status=400, message="bad"))
    with pytest.raises(BadRequestError) as info:
        await chain.ainvoke("hi")
    notes = getattr(info.value, "__notes__", [])
    assert any("openai/gpt-4o-mini" in note and "ProviderOverloadedError" in note for note in notes)


@pytest.mark.parametrize("mode", MODES)
async def test_all_failing_raises_one_error_carrying_every_failure(
    models: dict[str, BaseChatModel], breakers: CircuitBreakerRegistry, server: ProviderServer, mode: str
) -> None:
    chain = with_fallbacks_of(
        models["openai"], [models["anthropic"], models["ollama"]], circuit_breakers=breakers
    )
    server.script(Fault(status=503), Fault(status=429, retry_after="7"), Disconnect())
    with pytest.raises(AllProvidersFailedError) as info:
        await ask(chain, mode)
    err = info.value
    assert [type(e) for e in err.errors] == [ProviderOverloadedError, RateLimitError, NetworkConnectionError]
    assert err.providers == ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-6", "ollama/qwen3:1.7b"]
    assert err.exceptions == tuple(err.errors)  # a real ExceptionGroup
    assert isinstance(err, ExceptionGroup)
    assert err.retryable and err.retry_after == 7.0
    assert err.error_code == "ALL_PROVIDERS_FAILED"
    for name in err.providers:
        assert name in str(err)
    assert protocols(server) == ["openai", "anthropic", "ollama"]


@pytest.mark.parametrize("mode", MODES)
async def test_batch_falls_back_per_input(
    chain: FallbackChatModel, server: ProviderServer, mode: str
) -> None:
    server.default_reply = Reply(text="fine")
    server.script(Fault(status=503), Reply(text="rescued"))
    if mode == "sync":
        answers = await asyncio.to_thread(chain.batch, ["a"], {"max_concurrency": 1})
    else:
        answers = await chain.abatch(["a"])
    assert [a.content for a in answers] == ["rescued"]
    answers = (
        await asyncio.to_thread(chain.batch, ["b", "c"]) if mode == "sync" else await chain.abatch(["b", "c"])
    )
    assert [a.content for a in answers] == ["fine", "fine"]


@pytest.mark.parametrize("mode", MODES)
async def test_breaker_opens_rejects_fast_probes_and_closes(
    chain: FallbackChatModel,
    breakers: CircuitBreakerRegistry,
    clock: FakeClock,
    server: ProviderServer,
    mode: str,
) -> None:
    # Three 503s from openai (the threshold), each rescued by anthropic.
    for _ in range(3):
        server.script(Fault(status=503), Reply(text="rescued"))
        assert (await ask(chain, mode)).content == "rescued"
    assert breakers.get("openai").state is CircuitState.OPEN
    assert breakers.get("anthropic").state is CircuitState.CLOSED

    # Open: openai is skipped without a request.
    server.reset()
    server.script(Reply(text="straight to anthropic"))
    message = await ask(chain, mode)
    assert message.content == "straight to anthropic"
    assert protocols(server) == ["anthropic"]
    assert message.response_metadata[FALLBACK_KEY]["failed"] == [
        {"provider": "openai/gpt-4o-mini", "error": "CircuitOpenError"}
    ]

    # After the cooldown one probe goes to openai; it fails and the circuit re-opens.
    clock.advance(30.0)
    server.reset()
    server.script(Fault(status=502), Reply(text="rescued again"))
    assert (await ask(chain, mode)).content == "rescued again"
    assert protocols(server) == ["openai", "anthropic"]
    assert breakers.get("openai").state is CircuitState.OPEN

    # Next probe succeeds: closed, openai answers again.
    clock.advance(30.0)
    server.reset()
    server.script(Reply(text="openai is back"))
    assert (await ask(chain, mode)).content == "openai is back"
    assert breakers.get("openai").state is CircuitState.CLOSED
    assert protocols(server) == ["openai"]


async def test_every_circuit_open_fails_fast_without_a_request(
    chain: FallbackChatModel, breakers: CircuitBreakerRegistry, server: ProviderServer
) -> None:
    for name in ("openai", "anthropic"):
        for _ in range(3):
            breakers.get(name).acquire().failed(ProviderServerError("x", provider=name, status_code=503))
    with pytest.raises(AllProvidersFailedError) as info:
        await chain.ainvoke("hi")
    assert all(isinstance(e, CircuitOpenError) for e in info.value.errors)
    assert info.value.retry_after == pytest.approx(30.0)
    assert protocols(server) == []


async def test_client_errors_do_not_open_the_circuit(
    chain: FallbackChatModel, breakers: CircuitBreakerRegistry, server: ProviderServer
) -> None:
    for _ in range(5):
        server.script(Fault(status=401), Reply(text="rescued"))
        assert (await chain.ainvoke("hi")).content == "rescued"
    assert breakers.get("openai").state is CircuitState.CLOSED


async def test_process_wide_breakers_by_default(
    models: dict[str, BaseChatModel], server: ProviderServer
) -> None:
    from modelforge.policies.circuit import breaker_for

    chain = FallbackChatModel(models=[models["openai"], models["anthropic"]])
    server.script(Fault(status=503), Reply(text="rescued"))
    await chain.ainvoke("hi")
    assert breaker_for("openai").snapshot().consecutive_failures == 1
    off = chain.model_copy(update={"use_circuit_breakers": False})
    server.script(Fault(status=503), Reply(text="rescued"))
    await off.ainvoke("hi")
    assert breaker_for("openai").snapshot().consecutive_failures == 1


def test_decision_table() -> None:
    from modelforge.exceptions import ContextLengthExceededError, InvalidInputError, ModelNotFoundError

    assert should_fall_back(ProviderOverloadedError("x", status_code=529))
    assert should_fall_back(CircuitOpenError("p", 3.0))
    assert should_fall_back(ModelNotFoundError("p", "m", status_code=404))
    assert should_fall_back(ConnectionResetError())
    assert not should_fall_back(ContextLengthExceededError("too long", status_code=400))
    assert not should_fall_back(BadRequestError("bad"))
    assert not should_fall_back(InvalidInputError("empty prompt"))
    assert not should_fall_back(ValueError("a bug"))
    nested = AllProvidersFailedError([ProviderServerError("x", status_code=500)])
    assert should_fall_back(nested)


def test_reads_through_to_the_first_model(chain: FallbackChatModel) -> None:
    assert chain.provider_name == "openai"
    assert chain.model_name == "gpt-4o-mini"
    assert chain.labels == ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-6"]
    assert "openai/gpt-4o-mini" in repr(chain)
