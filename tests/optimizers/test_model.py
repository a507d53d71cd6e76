"""``optimize`` and ``OptimizedChatModel`` as a whole: when a model is wrapped, what a failing optimizer
does, callbacks, pickling, and the plain path with optimizations off."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from modelforge.exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationValidationError,
    ModelNotFoundError,
    RateLimitError,
)
from modelforge.managed import ManagedChatModel
from modelforge.optimizers import (
    OptimizationConfig,
    OptimizedChatModel,
    OptimizeStep,
    RequestOptimizer,
    optimizer_of,
)
from modelforge.optimizers._base import PreparedCall
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.conftest import OPENAI_KEY
from tests.optimizers.conftest import MODELS, ConfigWriter, LlmFactory


class Broken(RequestOptimizer):
    """An optimizer whose every prepare fails (as a bug or an outage in one would)."""

    family = "broken"

    def prepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        raise RuntimeError(f"cannot reach the cache service with key {OPENAI_KEY}")


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_every_family_gets_an_optimizer(make_llm: LlmFactory, provider: str) -> None:
    llm = make_llm(provider)
    assert isinstance(llm, ManagedChatModel)  # still the SDK's class: the optimizer is a step of its pipeline
    step = llm.forge.pipeline.find(OptimizeStep)
    assert step is not None and optimizer_of(llm) is step.optimizer


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_off_by_default_and_by_config(make_llm: LlmFactory, provider: str) -> None:
    assert optimizer_of(make_llm(provider, enable=False)) is None
    assert optimizer_of(make_llm(provider, optimizations={"enabled": False})) is None


def test_registry_setting_and_per_model_override(write_config: ConfigWriter) -> None:
    write_config()
    registry = ModelForgeRegistry(enable_optimizations=True)
    assert optimizer_of(registry.get_llm("openai", "gpt-4o-mini")) is not None
    assert optimizer_of(registry.get_llm("openai", "gpt-4o-mini", enable_optimizations=False)) is None


def test_a_bad_section_is_a_clear_error(make_llm: LlmFactory) -> None:
    # The config file is checked when it is loaded: the error names the file, the key and what is allowed.
    with pytest.raises(ConfigurationValidationError, match=r"optimizations\.num_ctx must be \"auto\""):
        make_llm("ollama", optimizations={"num_ctx": "huge"})


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_failing_optimizer_falls_back_to_the_plain_request(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    managed = make_llm("openai", enable=False)
    broken = Broken(OptimizationConfig(), provider_name="openai", model_name="gpt-4o-mini", llm_type="x")
    llm = OptimizedChatModel(wrapped_llm=managed, optimizer=broken)
    server.script(Reply(text="still answered"))
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        if mode == "invoke":
            text = llm.invoke("<<STATIC>>hi").content
        else:
            text = "".join(str(c.content) for c in llm.stream("<<STATIC>>hi"))
    assert text == "still answered"
    body = server.requests_for("openai")[-1].json
    assert body["messages"][0]["content"] == "hi"  # plain, but never with the markers
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "optimizer failed" in warning.getMessage() and "RuntimeError" in warning.getMessage()
    assert OPENAI_KEY not in warning.getMessage()


async def test_a_failing_optimizer_falls_back_async(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Broken(OptimizationConfig(), provider_name="openai", model_name="gpt-4o-mini", llm_type="x")
    llm = OptimizedChatModel(wrapped_llm=make_llm("openai", enable=False), optimizer=broken)
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        assert (await llm.ainvoke("hi")).content
        assert [c async for c in llm.astream("hi")]
    assert len([r for r in caplog.records if "optimizer failed" in r.getMessage()]) == 2


def test_callbacks_given_to_get_llm_still_fire(write_config: ConfigWriter, server: ProviderServer) -> None:
    class Seen(BaseCallbackHandler):
        def __init__(self) -> None:
            self.ends = 0

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            self.ends += 1

    write_config()
    seen = Seen()
    llm = ModelForgeRegistry(enable_optimizations=True).get_llm("openai", "gpt-4o-mini", callbacks=[seen])
    llm.invoke("hi")
    assert seen.ends == 1


def test_pickles_without_secrets_and_stays_optimized(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("openai", optimizations={"seed": 77})
    data = pickle.dumps(llm)
    assert OPENAI_KEY.encode() not in data
    restored = pickle.loads(data)
    assert type(restored) is type(llm) and optimizer_of(restored) is not None
    restored.invoke("hi")
    assert server.requests_for("openai")[-1].json["seed"] == 77


SEED_REFUSED = "Unrecognized request argument supplied: seed"


def _refused_then_answered(server: ProviderServer) -> None:
    server.script(Fault(400, SEED_REFUSED), Reply(text="plain answer"))


def _sent(server: ProviderServer) -> list[dict[str, Any]]:
    return [r.json for r in server.requests_for("openai")]


def _assert_refused_then_plain(server: ProviderServer, caplog: pytest.LogCaptureFixture) -> None:
    optimized, plain = _sent(server)
    assert optimized["seed"] and optimized["response_format"] == {"type": "json_object"}
    assert "seed" not in plain and "response_format" not in plain
    assert plain["messages"][0]["content"] == "Reply in JSON: the capital of France?"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "dropped: seed, json_mode" in warning and "seed" in warning
    assert OPENAI_KEY not in warning


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_refused_optimization_falls_back_to_the_plain_request(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    llm = make_llm("openai")
    _refused_then_answered(server)
    prompt = "<<STATIC>>Reply in JSON: the capital of France?"
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        if mode == "invoke":
            text = llm.invoke(prompt).content
        else:
            text = "".join(str(c.content) for c in llm.stream(prompt))
    assert text == "plain answer"
    _assert_refused_then_plain(server, caplog)


@pytest.mark.parametrize("mode", ["ainvoke", "astream"])
async def test_a_refused_optimization_falls_back_async(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    llm = make_llm("openai")
    _refused_then_answered(server)
    prompt = "<<STATIC>>Reply in JSON: the capital of France?"
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        if mode == "ainvoke":
            text = (await llm.ainvoke(prompt)).content
        else:
            text = "".join([str(c.content) async for c in llm.astream(prompt)])
    assert text == "plain answer"
    _assert_refused_then_plain(server, caplog)


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (404, ModelNotFoundError), (429, RateLimitError)],
)
def test_other_refusals_are_not_retried_plain(
    make_llm: LlmFactory,
    server: ProviderServer,
    caplog: pytest.LogCaptureFixture,
    status: int,
    error: type[Exception],
) -> None:
    llm = make_llm("openai")  # the test config retries nothing
    server.script(Fault(status, "no"), Reply(text="never sent"))
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"), pytest.raises(error):
        llm.invoke("Reply in JSON.")
    (request,) = _sent(server)
    assert request["seed"]
    assert not any("refused the optimized request" in r.getMessage() for r in caplog.records)


def test_a_plain_request_refused_is_not_sent_twice(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("openai", optimizations={"seed": False, "json_mode": False})
    server.script(Fault(400, "bad messages"), Reply(text="never sent"))
    with pytest.raises(BadRequestError):
        llm.invoke("hi")
    assert len(_sent(server)) == 1


def test_cache_identity_tells_optimizer_settings_apart(make_llm: LlmFactory) -> None:
    import json

    def identity(provider: str, optimizations: dict[str, Any] | None = None) -> dict[str, Any]:
        llm = make_llm(provider, optimizations=optimizations)
        optimizer = optimizer_of(llm)
        assert optimizer is not None
        data = optimizer.cache_identity()
        assert json.loads(json.dumps(data)) == data  # plain JSON data
        return data

    default = identity("openai")
    assert (default["seed"], default["json_mode"]) == (42, True)
    assert identity("openai") == default
    others = [
        identity("openai", {"seed": 7}),
        identity("openai", {"seed": False}),
        identity("openai", {"json_mode": False}),
        identity("anthropic"),
        identity("anthropic", {"prompt_caching": {"min_tokens": 4096}}),
        identity("google", {"safety_settings": {"HARM_CATEGORY_HARASSMENT": "BLOCK_NONE"}}),
        identity("ollama", {"keep_alive": "1h"}),
    ]
    texts = [json.dumps(d, sort_keys=True) for d in [default, *others]]
    assert len(set(texts)) == len(texts)
    assert identity("anthropic")["prompt_caching_min_tokens"] == 1024
    assert not any(OPENAI_KEY in text for text in texts)
