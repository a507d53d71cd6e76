"""EnhancedLLM: metadata, validated parameters that reach the wire, pickling, tools and structured output."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from modelforge.catalog import Catalog
from modelforge.enhanced_llm import EnhancedLLM, enhance
from modelforge.exceptions import InvalidInputError, ValidationError
from modelforge.telemetry import TelemetryCallback
from modelforge.testing import ProviderServer, Reply, ToolCall, Usage
from tests.conftest import ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY

from .conftest import model_entry

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Weather(BaseModel):
    city: str


def openai_llm(server: ProviderServer, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini", api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0, **kwargs
    )


def anthropic_llm(server: ProviderServer, **kwargs: Any) -> ChatAnthropic:
    return ChatAnthropic(
        model="claude-sonnet-4-6",
        api_key=ANTHROPIC_KEY,
        base_url=server.anthropic_base_url,
        max_retries=0,
        **kwargs,
    )


def last_body(server: ProviderServer) -> dict[str, Any]:
    body = server.requests[-1].json
    assert isinstance(body, dict)
    return body


# --- metadata --------------------------------------------------------------------------------------------


def test_enhance_reads_the_catalogue(server: ProviderServer) -> None:
    llm = enhance(openai_llm(server), "openai", "gpt-4o-mini")
    assert (llm.context_length, llm.max_output_tokens) == (128_000, 16_384)
    assert llm.supports_function_calling and llm.supports_vision
    assert llm.pricing_info == {
        "input_per_1m": 0.15,
        "output_per_1m": 0.6,
        "cache_read_per_1m": 0.075,
        "currency": "USD",
        "known": True,
        "snapshot_date": "2026-07-02",
    }
    assert llm.estimate_cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert llm.model_info["id"] == "gpt-4o-mini"
    llm.model_info["id"] = "changed"
    assert llm.model_info["id"] == "gpt-4o-mini"  # a copy
    assert llm.model_name == "gpt-4o-mini"  # read through to the wrapped model
    assert (llm.provider, llm.model_alias) == ("openai", "gpt-4o-mini")
    assert llm._llm_type == "openai-chat"


def test_enhance_uses_the_api_model_name_and_proxies() -> None:
    fake = GenericFakeChatModel(messages=iter(["x"]))
    aliased = enhance(fake, "anthropic", "my-claude", model_name="claude-sonnet-4-6")
    assert aliased.context_length == 1_000_000 and aliased.model_alias == "my-claude"
    proxied = enhance(fake, "corp_gateway", "gpt-4o-mini")  # a provider models.dev does not know
    assert proxied.pricing_info["input_per_1m"] == 0.15
    local = enhance(fake, "ollama", "gpt-4o-mini")  # local: never priced like a cloud model
    assert local.context_length == 0 and local.pricing_info["known"] is False
    custom = Catalog({"acme": {"models": {"acme-1": model_entry("acme-1", cost=(1.0, 3.0))}}})
    assert enhance(fake, "acme", "acme-1", catalog=custom).pricing_info["output_per_1m"] == 3.0


@pytest.mark.parametrize(
    "metadata",
    [
        # 2.3.0's shape
        {
            "context_length": 8_000,
            "max_tokens": 1_000,
            "capabilities": ["function_calling", "vision"],
            "pricing": {"input_per_1m_tokens": 2.0, "output_per_1m_tokens": 4.0},
        },
        # a raw models.dev entry
        {
            "limit": {"context": 8_000, "output": 1_000},
            "tool_call": True,
            "modalities": {"input": ["text", "image"]},
            "cost": {"input": 2.0, "output": 4.0},
        },
    ],
)
def test_metadata_shapes(metadata: dict[str, Any]) -> None:
    llm = EnhancedLLM(GenericFakeChatModel(messages=iter(["x"])), metadata, "acme", "acme-1")  # positional
    assert (llm.context_length, llm.max_output_tokens) == (8_000, 1_000)
    assert llm.supports_function_calling and llm.supports_vision
    assert (llm.pricing_info["input_per_1m"], llm.pricing_info["output_per_1m"]) == (2.0, 4.0)
    assert llm.estimate_cost(500_000, 250_000) == pytest.approx(2.0)


def test_unknown_metadata_reads_as_zero() -> None:
    llm = EnhancedLLM(GenericFakeChatModel(messages=iter(["x"])), {}, "acme", "mystery")
    assert (llm.context_length, llm.max_output_tokens) == (0, 0)
    assert not llm.supports_function_calling and not llm.supports_vision
    assert llm.pricing_info["input_per_1m"] == 0.0 and llm.pricing_info["known"] is False
    assert llm.estimate_cost(10, 10) == 0.0
    with pytest.raises(InvalidInputError):
        llm.estimate_cost(-1, 0)


# --- parameters ------------------------------------------------------------------------------------------


def test_parameters_reach_the_openai_request(server: ProviderServer) -> None:
    original = openai_llm(server, temperature=0.5)
    llm = enhance(original, "openai", "gpt-4o-mini")
    llm.temperature = 0.2
    llm.top_p = 0.9
    llm.max_tokens = 100
    assert (llm.temperature, llm.top_p, llm.max_tokens) == (0.2, 0.9, 100)
    llm.invoke("hi")
    body = last_body(server)
    assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (0.2, 0.9, 100)
    assert original.temperature == 0.5  # the model handed in is not mutated


def test_parameters_reach_the_anthropic_request(server: ProviderServer) -> None:
    llm = enhance(anthropic_llm(server), "anthropic", "claude-sonnet-4-6")
    llm.max_tokens = 256
    llm.top_k = 40
    llm.temperature = 1.5
    llm.invoke("hi")
    body = last_body(server)
    assert (body["max_tokens"], body["top_k"], body["temperature"]) == (256, 40, 1.5)


def test_parameters_reach_the_ollama_request(server: ProviderServer) -> None:
    llm = enhance(ChatOllama(model="qwen3:1.7b", base_url=server.ollama_base_url), "ollama", "qwen3:1.7b")
    llm.max_tokens = 64
    llm.top_k = 5
    assert llm.wrapped_llm.num_predict == 64
    llm.invoke("hi")
    options = last_body(server)["options"]
    assert (options["num_predict"], options["top_k"]) == (64, 5)


def test_max_tokens_maps_to_gemini_field() -> None:
    from langchain_google_genai import ChatGoogleGenerativeAI  # slow to import: only here

    gemini = ChatGoogleGenerativeAI(model="gemini-2.5-flash", api_key=GOOGLE_KEY)
    llm = enhance(gemini, "google", "gemini-2.5-flash")
    llm.max_tokens = 1_000
    assert llm.wrapped_llm.max_output_tokens == 1_000 and llm.max_tokens == 1_000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("temperature", "hot"),
        ("temperature", True),
        ("top_p", 1.01),
        ("top_p", -1),
        ("top_k", 0),
        ("top_k", 2.5),
        ("max_tokens", 0),
        ("max_tokens", 16_385),  # above gpt-4o-mini's output limit
        ("max_tokens", None),
        ("max_tokens", 10.0),
    ],
)
def test_invalid_values_are_rejected(server: ProviderServer, name: str, value: Any) -> None:
    llm = enhance(openai_llm(server, temperature=0.5), "openai", "gpt-4o-mini")
    with pytest.raises(InvalidInputError) as err:
        setattr(llm, name, value)
    assert isinstance(err.value, ValidationError) and name in err.value.message
    with pytest.raises(InvalidInputError):
        llm.validate_parameters({name: value})
    assert llm.wrapped_llm.temperature == 0.5  # nothing changed


def test_limit_message_names_the_limit(server: ProviderServer) -> None:
    llm = enhance(openai_llm(server), "openai", "gpt-4o-mini")
    with pytest.raises(InvalidInputError, match="16384"):
        llm.max_tokens = 50_000
    llm.validate_parameters({"temperature": 1.0, "top_p": 0.5, "max_tokens": 16_384, "seed": 7})
    llm.temperature = None  # back to the provider default
    assert llm.temperature is None


def test_a_parameter_the_model_lacks_is_stored_not_sent(server: ProviderServer) -> None:
    """As 2.3.0: top_k on an OpenAI model (which has no such setting) is kept and read back, never sent."""
    llm = enhance(openai_llm(server), "openai", "gpt-4o-mini")
    llm.top_k = 5
    assert llm.top_k == 5 and llm.custom_params == {"top_k": 5}
    llm.invoke("hi")
    assert "top_k" not in (server.requests[-1].json or {})
    with pytest.raises(InvalidInputError):  # still checked: a negative top_k is refused
        llm.top_k = -1


# --- pickling --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_pickle_round_trip_rebuilds_a_working_model(server: ProviderServer, family: str) -> None:
    if family == "openai":
        llm = enhance(openai_llm(server), "openai", "gpt-4o-mini")
    else:
        llm = enhance(anthropic_llm(server), "anthropic", "claude-sonnet-4-6")
    llm.temperature = 0.3
    llm.max_tokens = 123
    llm.invoke("warm up")  # the SDK clients (unpicklable) now exist
    restored = pickle.loads(pickle.dumps(llm))
    assert isinstance(restored, EnhancedLLM) and restored is not llm
    assert restored.model_metadata == llm.model_metadata
    assert (restored.provider, restored.model_alias) == (llm.provider, llm.model_alias)
    assert (restored.temperature, restored.max_tokens) == (0.3, 123)
    assert restored.context_length == llm.context_length
    assert restored.invoke("again").content == "Hello from the ModelForge test server."
    body = last_body(server)
    assert body["temperature"] == 0.3 and body.get("max_tokens", body.get("max_completion_tokens")) == 123
    key = OPENAI_KEY if family == "openai" else ANTHROPIC_KEY
    credential_sent = any(key in value for value in server.requests[-1].headers.values())
    assert credential_sent  # (a bare flag: a failure report must not print the key)


def test_pickle_keeps_nested_wrappers_and_tags(server: ProviderServer) -> None:
    inner = enhance(openai_llm(server), "openai", "gpt-4o-mini")
    outer = EnhancedLLM(inner, {"context_length": 42}, "openai", "outer", tags=["t1"])
    restored = pickle.loads(pickle.dumps(outer))
    assert restored.tags == ["t1"] and restored.context_length == 42
    assert isinstance(restored.wrapped_llm, EnhancedLLM) and restored.wrapped_llm.context_length == 128_000


# --- tools and structured output keep the wrapper --------------------------------------------------------


def test_bind_tools_keeps_the_enhanced_llm(server: ProviderServer) -> None:
    telemetry = TelemetryCallback("openai", "gpt-4o-mini")
    llm = EnhancedLLM(
        openai_llm(server),
        Catalog.bundled().model("openai", "gpt-4o-mini").to_dict(),  # type: ignore[union-attr]
        "openai",
        "gpt-4o-mini",
        callbacks=[telemetry],
    )
    bound = llm.bind_tools([WEATHER_TOOL])
    assert bound.bound is llm  # type: ignore[attr-defined]
    assert bound.bound.context_length == 128_000  # type: ignore[attr-defined]
    llm.temperature = 0.1  # changed after binding: the binding still sees it
    server.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})], usage=Usage(20, 5)))
    message = bound.invoke("Weather in Paris?")
    assert message.tool_calls[0]["args"] == {"city": "Paris"}  # type: ignore[attr-defined]
    body = last_body(server)
    assert body["tools"][0]["function"]["name"] == "get_weather" and body["temperature"] == 0.1
    # The EnhancedLLM's own callbacks ran: the call went through it, not around it.
    assert telemetry.metrics.token_usage.prompt_tokens == 20


def test_with_structured_output_keeps_the_enhanced_llm(server: ProviderServer) -> None:
    telemetry = TelemetryCallback("anthropic", "claude-sonnet-4-6")
    llm = enhance(anthropic_llm(server), "anthropic", "claude-sonnet-4-6")
    llm.callbacks = [telemetry]
    structured = llm.with_structured_output(Weather)
    server.script(Reply(tool_calls=[ToolCall("Weather", {"city": "Oslo"})], usage=Usage(12, 3)))
    result = structured.invoke("Weather in Oslo?")
    assert result == Weather(city="Oslo")
    assert telemetry.metrics.token_usage.prompt_tokens == 12
    assert telemetry.metrics.estimated_cost == pytest.approx((12 * 3.0 + 3 * 15.0) / 1_000_000)
