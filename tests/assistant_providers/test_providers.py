"""Provider objects: configs from code and from files, credentials, retries, validation, fallback."""

from __future__ import annotations

import json
import re

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from modelforge import (
    FallbackProvider,
    ModelConfig,
    Provider,
    RetryConfig,
    ValidationConfig,
    config,
    create_provider,
)
from modelforge.assistant import StructuredOutputError
from modelforge.exceptions import InvalidInputError, ProviderError
from modelforge.policies.circuit import CircuitBreakerRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.assistant_providers.conftest import FAST_RETRY, chat_bodies
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import provider_config

EXPLICIT_KEY = "sk-proj-MFTESTSECRETexplicit00000000000000000009"


class City(BaseModel):
    name: str
    population: int


def test_model_config_hides_its_key_and_checks_its_fields() -> None:
    chosen = ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI, api_key=EXPLICIT_KEY)
    assert EXPLICIT_KEY not in repr(chosen)
    with pytest.raises(InvalidInputError, match="not a well-known provider") as caught:
        ModelConfig(name="m", provider="my-server")
    assert "llm_type" in str(caught.value.suggestion)
    with pytest.raises(InvalidInputError, match="Unknown llm_type 'grpc'"):
        ModelConfig(name="m", provider="my-server", llm_type="grpc")
    with pytest.raises(InvalidInputError, match="max_attempts must be a whole number >= 1"):
        RetryConfig(max_attempts=0)
    with pytest.raises(InvalidInputError, match="retry_config must be a RetryConfig"):
        ModelConfig(name="m", provider=Provider.OPENAI, retry_config={"max_attempts": 2})  # type: ignore[arg-type]


async def test_a_key_given_in_code_wins_over_the_environment(server: ProviderServer) -> None:
    provider = create_provider(
        ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI, api_key=EXPLICIT_KEY)
    )
    server.script(Reply(text="ok"))
    await provider.chat("Hi")
    [request] = server.requests_for("openai")
    assert request.headers["authorization"] == f"Bearer {EXPLICIT_KEY}"
    assert EXPLICIT_KEY not in repr(provider) and EXPLICIT_KEY not in repr(provider.llm)


async def test_any_openai_compatible_server_by_name(server: ProviderServer) -> None:
    local = ModelConfig(
        name="qwen2.5-coder",
        provider="my-vllm",
        llm_type="openai_compatible",
        base_url=server.openai_base_url,
        api_key="not-needed",
    )
    provider = create_provider(local)
    server.script(Reply(text="from vllm"))
    assert (await provider.chat("Hi")).content == "from vllm"
    assert provider.name == "my-vllm/qwen2.5-coder"
    assert chat_bodies(server)[0]["model"] == "qwen2.5-coder"


async def test_retry_config_is_the_providers_transport_retry(server: ProviderServer) -> None:
    retry = RetryConfig(max_attempts=3, backoff_factor=2.0, initial_wait=0.001, max_wait=0.001)
    provider = create_provider(ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI, retry_config=retry))
    server.script(Fault(status=503), Fault(status=503), Reply(text="third time"))
    assert (await provider.chat("Hi")).content == "third time"
    server.script(Fault(status=503), Fault(status=503), Fault(status=503))
    with pytest.raises(ProviderError):
        await provider.chat("Hi")
    assert len(chat_bodies(server)) == 6


async def test_providers_from_the_config_file(server: ProviderServer) -> None:
    data = provider_config(server)
    data["current_model"] = {"provider": "anthropic", "model": "claude-sonnet-4-6"}
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    server.script(Reply(text="from openai"), Reply(text="from anthropic"))

    assert (await create_provider("openai/gpt-4o-mini").chat("Hi")).content == "from openai"
    current = create_provider()
    assert current.name == "anthropic/claude-sonnet-4-6" and current.llm_type == "anthropic"
    assert (await current.chat("Hi")).content == "from anthropic"
    with pytest.raises(InvalidInputError, match="takes a ModelConfig"):
        create_provider(42)  # type: ignore[arg-type]


async def test_validation_gives_up_with_every_attempts_problem(server: ProviderServer) -> None:
    provider = create_provider(ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI))
    server.script(
        Reply(text="Paris is big"),
        Reply(text='{"name": "Paris"}'),
        Reply(text='{"name": "Paris", "population": "many"}'),
    )
    with pytest.raises(StructuredOutputError) as caught:
        await provider.chat("Paris?", response_format=City, validation=ValidationConfig(max_retries=2))
    message = str(caught.value)
    assert "after 3 attempts" in message
    assert "attempt 1: the answer is not valid JSON" in message
    assert "attempt 2: population: Field required" in message
    assert "attempt 3: population: Input should be a valid integer" in message
    assert len(caught.value.attempts) == 3
    with pytest.raises(InvalidInputError, match="needs a response_format"):
        await provider.chat("Hi", validation=ValidationConfig())


async def test_fallback_provider_sends_each_member_its_own_options(server: ProviderServer) -> None:
    primary = create_provider(
        ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI, retry_config=RetryConfig(**FAST_RETRY))
    )
    fallback = create_provider(ModelConfig(name="qwen3:1.7b", provider=Provider.OLLAMA))
    provider = FallbackProvider(primary=primary, fallback=fallback, circuit_breakers=CircuitBreakerRegistry())
    server.script(Fault(status=503), Fault(status=503), Fault(status=503), Reply(text="ollama answers"))

    reply = await provider.chat("Hi", seed=3, num_ctx=4096)

    assert reply.content == "ollama answers"
    assert all(body["seed"] == 3 and "num_ctx" not in body for body in chat_bodies(server))
    [ollama] = chat_bodies(server, "ollama")
    assert ollama["options"]["num_ctx"] == 4096 and ollama["options"]["seed"] == 3
    with pytest.raises(
        InvalidInputError, match=re.escape("none of openai/gpt-4o-mini -> ollama/qwen3:1.7b takes it")
    ):
        await provider.chat("Hi", candidate_count=2)
    assert repr(provider) == "FallbackProvider(openai/gpt-4o-mini -> ollama/qwen3:1.7b)"


async def test_fallback_provider_streams_from_the_fallback(server: ProviderServer) -> None:
    primary = create_provider(ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI))
    fallback = create_provider(ModelConfig(name="claude-sonnet-4-6", provider=Provider.ANTHROPIC))
    provider = FallbackProvider(primary, fallback, circuit_breakers=CircuitBreakerRegistry())
    server.script(
        Fault(status=500),
        Fault(status=500),
        Fault(status=500),
        Reply(text="streamed", chunks=["str", "eamed"]),
    )
    text = "".join([str(chunk.content) async for chunk in provider.stream([HumanMessage("Hi")])])
    assert text == "streamed"
    with pytest.raises(InvalidInputError, match="at least one fallback"):
        FallbackProvider(primary, [])
    with pytest.raises(InvalidInputError, match="takes providers"):
        FallbackProvider(primary, primary.llm)  # type: ignore[arg-type]


def test_secret_of_the_environment_stays_out_of_reprs(server: ProviderServer) -> None:
    provider = create_provider(ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI))
    assert OPENAI_KEY not in repr(provider) and OPENAI_KEY not in repr(provider.llm)


def test_a_bad_section_of_a_model_config_names_the_field(server: ProviderServer) -> None:
    with pytest.raises(
        InvalidInputError, match=re.escape("The ModelConfig is invalid: providers.openai.rate_limit")
    ) as caught:
        create_provider(ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI, rate_limit={"bogus": 1}))
    assert "unknown key rate_limit.bogus" in str(caught.value)
    assert "config show" not in str(caught.value.suggestion)  # no file is involved
