"""The provider retry policy, one budget, against every family's real wire protocol.

Transient failures (429 with any Retry-After form, 500/502/503, Anthropic 529, a reset connection, a
timeout) are retried and the call succeeds; 401 is not retried; a stream that fails after its first chunk
is not retried. Every retry reaches the callbacks as a ``modelforge.retry`` event, and the server sees
exactly the attempts ModelForge made (the SDKs' own retries are off).
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from modelforge import config
from modelforge.exceptions import InvalidApiKeyError, StreamInterruptedError
from modelforge.managed import RETRY_EVENT
from modelforge.policies.retry import RetryStep
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Disconnect, Fault, ProviderServer, Reply
from tests.providers.conftest import FamilyCase, provider_config

FAST_RETRY = {"max_attempts": 4, "initial_wait": 0.01, "max_wait": 0.05, "backoff_factor": 2.0}


class RetryEvents(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == RETRY_EVENT:
            self.events.append(data)


@pytest.fixture
def retrying(server: ProviderServer, case: FamilyCase) -> FamilyCase:
    """Every provider retried quickly (waits capped at 50 ms so tests do not sleep for long)."""
    data = provider_config(server)
    for provider in data["providers"].values():
        provider["retry"] = dict(FAST_RETRY)
        provider["timeout"] = 1.0
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    return case


def model_requests(server: ProviderServer) -> int:
    return len([r for r in server.requests if r.protocol != "github"])


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=429, retry_after="1"),
        Fault(status=429, retry_after_ms=20),
        Fault(status=429, retry_after=http_date(2)),
        Fault(status=500),
        Fault(status=502),
        Fault(status=503),
        Disconnect(),
    ],
    ids=["429-seconds", "429-ms", "429-http-date", "500", "502", "503", "reset"],
)
def test_transient_failures_are_retried(retrying: FamilyCase, server: ProviderServer, fault: Any) -> None:
    server.script(fault, Reply(text="recovered"))
    events = RetryEvents()
    llm = ModelForgeRegistry().get_llm(retrying.provider, retrying.model)
    assert llm.invoke("hi", config={"callbacks": [events]}).text == "recovered"
    assert model_requests(server) == 2, "one retry, no hidden SDK retries"
    assert len(events.events) == 1
    event = events.events[0]
    assert event["provider"] == retrying.provider and event["attempt"] == 1 and event["next_attempt"] == 2
    assert event["wait_seconds"] <= FAST_RETRY["max_wait"]
    if isinstance(fault, Fault) and fault.status == 429 and retrying.errors_carry_headers:
        assert "server asked to wait" in event["reason"], "Retry-After was read"


def test_anthropic_overloaded_529_is_retried(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ANTHROPIC_KEY

    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    data = provider_config(server)
    data["providers"]["anthropic"]["retry"] = dict(FAST_RETRY)
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    server.script(Fault(status=529, message="Overloaded"), Reply(text="back"))
    assert ModelForgeRegistry().get_llm("anthropic", "claude-sonnet-4-6").invoke("hi").text == "back"
    assert model_requests(server) == 2


def test_timeout_is_retried(retrying: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="too late", latency=1.5), Reply(text="in time"))
    assert ModelForgeRegistry().get_llm(retrying.provider, retrying.model).invoke("hi").text == "in time"


def test_401_is_not_retried(retrying: FamilyCase, server: ProviderServer) -> None:
    faults = [Fault(status=401)] * (
        2 if retrying.provider == "github_copilot" else 1
    )  # Copilot re-auths once
    server.script(*faults, Reply(text="never"))
    with pytest.raises(InvalidApiKeyError):
        ModelForgeRegistry().get_llm(retrying.provider, retrying.model).invoke("hi")
    assert model_requests(server) == len(faults)


def test_attempts_run_out_with_the_count_in_the_error(retrying: FamilyCase, server: ProviderServer) -> None:
    server.script(*[Fault(status=503)] * 4)
    with pytest.raises(Exception) as info:
        ModelForgeRegistry().get_llm(retrying.provider, retrying.model).invoke("hi")
    assert model_requests(server) == FAST_RETRY["max_attempts"]
    assert info.value.details["attempts"] == FAST_RETRY["max_attempts"]  # type: ignore[attr-defined]


def test_stream_retried_before_its_first_chunk(retrying: FamilyCase, server: ProviderServer) -> None:
    server.script(Fault(status=503), Reply(text="streamed after a retry"))
    llm = ModelForgeRegistry().get_llm(retrying.provider, retrying.model)
    assert "".join(chunk.text for chunk in llm.stream("hi")) == "streamed after a retry"
    assert model_requests(server) == 2


def test_stream_not_retried_after_its_first_chunk(retrying: FamilyCase, server: ProviderServer) -> None:
    server.script(Reply(text="one two three four", disconnect_after=2), Reply(text="never replayed"))
    llm = ModelForgeRegistry().get_llm(retrying.provider, retrying.model)
    received: list[str] = []
    with pytest.raises(StreamInterruptedError):
        for chunk in llm.stream("hi"):
            received.append(chunk.text)
    assert "".join(received) == "one two "
    assert model_requests(server) == 1


async def test_async_invoke_is_retried(retrying: FamilyCase, server: ProviderServer) -> None:
    server.script(Fault(status=500), Reply(text="async recovered"))
    message = await ModelForgeRegistry().get_llm(retrying.provider, retrying.model).ainvoke("hi")
    assert message.text == "async recovered"


@pytest.mark.parametrize(
    "wrapping",
    [{}, {"enhanced": True}, {"enable_optimizations": True}, {"enable_cache": True}],
    ids=["managed", "enhanced", "optimized", "cached"],
)
def test_batch_uses_its_own_override(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch, wrapping: dict[str, bool]
) -> None:
    # Whatever wraps the provider's model (metadata, optimizer, cache), a batch is retried as a batch.
    from tests.conftest import OPENAI_KEY

    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    data = provider_config(server)
    data["providers"]["openai"]["retry"] = {
        "max_attempts": 1,
        "batch": {"max_attempts": 3, "initial_wait": 0.01},
    }
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    llm = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini", **wrapping)
    server.script(Fault(status=503), Reply(text="batched"))
    assert [m.text for m in llm.batch(["one"])] == ["batched"], "batch retried per its override"
    server.script(Fault(status=503), Reply(text="unused"))
    with pytest.raises(Exception, match="503"):
        llm.invoke("two")  # invoke: one attempt


def test_retry_wrapper_retries_any_chat_model(server: ProviderServer) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    from modelforge.exceptions import ProviderServerError
    from modelforge.managed import RetryWrapper
    from modelforge.policies.retry import ProviderRetryConfig

    policy = ProviderRetryConfig(max_attempts=3, initial_wait=0.01)
    raw = ChatOpenAI(model="m", base_url=server.openai_base_url, api_key="sk-test-raw-key", max_retries=0)
    llm = RetryWrapper(wrapped_llm=raw, config=policy)
    server.script(Fault(status=500), Fault(status=429, retry_after="0"), Reply(text="third time"))
    assert llm.invoke("hi").text == "third time"
    assert len(server.requests) == 3

    claude = ChatAnthropic(  # type: ignore[call-arg]
        model="claude-sonnet-4-6", base_url=server.anthropic_base_url, api_key="sk-ant-raw-key", max_retries=0
    )
    server.script(Fault(status=503), Reply(text="after one retry"))
    assert RetryWrapper(wrapped_llm=claude, config=policy).invoke("hi").text == "after one retry"

    server.script(Fault(status=503), Fault(status=503), Fault(status=503))
    with pytest.raises(ProviderServerError) as exhausted:  # a ModelForge error, as get_llm's models raise
        llm.invoke("hi")
    assert exhausted.value.details["attempts"] == 3


def test_retries_show_in_telemetry(retrying: FamilyCase, server: ProviderServer) -> None:
    from modelforge.telemetry import TelemetryCallback

    telemetry = TelemetryCallback(retrying.provider, retrying.model)
    server.script(Fault(status=503), Fault(status=500), Reply(text="third"))
    llm = ModelForgeRegistry().get_llm(retrying.provider, retrying.model)
    assert llm.invoke("hi", config={"callbacks": [telemetry]}).text == "third"
    assert telemetry.metrics is not None and telemetry.metrics.metadata["retries"] == 2


def test_families_bring_sensible_defaults(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    data = provider_config(server)
    for provider in data["providers"].values():
        provider.pop("retry", None)
    data["providers"]["openai"]["retry"] = {"max_attempts": 6}
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    registry = ModelForgeRegistry()
    attempts = {
        name: registry.get_llm(name, alias).forge.pipeline.find(RetryStep)._policy("invoke").max_retries + 1  # type: ignore[attr-defined]
        for name, alias in [
            ("anthropic", "claude-sonnet-4-6"),
            ("ollama", "qwen3:1.7b"),
            ("openai", "gpt-4o-mini"),
        ]
    }
    assert attempts == {"anthropic": 4, "ollama": 2, "openai": 6}, "family defaults, the config wins"


def test_a_retry_wrapper_follows_its_settings_as_they_change(server: ProviderServer) -> None:
    from langchain_openai import ChatOpenAI

    from modelforge.policies.retry import ProviderRetryConfig, RetryWrapper
    from tests.conftest import OPENAI_KEY

    raw = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=server.openai_base_url,
        api_key=OPENAI_KEY,  # type: ignore[arg-type]
        max_retries=0,
    )
    wrapper = RetryWrapper(wrapped_llm=raw, config=ProviderRetryConfig(max_attempts=1))
    wrapper.config = ProviderRetryConfig(max_attempts=3, initial_wait=0.01, max_wait=0.02)
    server.script(Fault(status=503), Fault(status=503), Reply(text="third time"))
    assert wrapper.invoke("hi").text == "third time"
