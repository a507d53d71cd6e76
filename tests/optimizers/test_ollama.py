"""The Ollama optimizer through the registry: ``keep_alive`` and a ``num_ctx`` that fits the prompt."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from modelforge.optimizers._ollama import context_size
from modelforge.testing import ProviderServer
from tests.optimizers.conftest import LlmFactory

MODEL = "qwen3:1.7b"


def _body(server: ProviderServer) -> dict[str, Any]:
    return server.requests_for("ollama")[-1].json  # type: ignore[no-any-return]


def test_short_prompt_gets_the_smallest_context_and_keep_alive(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    make_llm("ollama").invoke("Hello")
    body = _body(server)
    assert body["options"]["num_ctx"] == 2048
    assert body["keep_alive"] == "10m"


def test_long_prompt_gets_a_context_that_fits(make_llm: LlmFactory, server: ProviderServer) -> None:
    document = "word " * 12000  # 60,000 characters: ~15,000 tokens
    make_llm("ollama").invoke([SystemMessage("Summarise."), HumanMessage(document)])
    assert _body(server)["options"]["num_ctx"] == 16384


def test_context_is_capped_by_max_num_ctx_with_a_warning(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make_llm("ollama", optimizations={"max_num_ctx": 8192})
    llm.invoke("word " * 12000)
    assert _body(server)["options"]["num_ctx"] == 8192
    assert any(r.levelname == "WARNING" and "max_num_ctx" in r.getMessage() for r in caplog.records)


def test_output_limit_and_model_options_are_kept(make_llm: LlmFactory, server: ProviderServer) -> None:
    models = {MODEL: {"max_tokens": 3000, "temperature": 0.3}}
    make_llm("ollama", models=models).invoke("Hello", stop=["END"])
    options = _body(server)["options"]
    assert options["num_ctx"] == 4096  # a few prompt tokens + 3000 for the answer
    assert (options["num_predict"], options["temperature"], options["stop"]) == (3000, 0.3, ["END"])


def test_configured_values(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("ollama", optimizations={"keep_alive": "1h", "num_ctx": 6000}).invoke("Hello")
    body = _body(server)
    assert (body["keep_alive"], body["options"]["num_ctx"]) == ("1h", 6000)


def test_switches_off(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("ollama", optimizations={"keep_alive": False, "num_ctx": False}).invoke("<<STATIC>>Hello")
    body = _body(server)
    assert "keep_alive" not in body or body["keep_alive"] is None
    assert "num_ctx" not in (body.get("options") or {})
    assert body["messages"][0]["content"] == "Hello"


def test_the_models_own_settings_win(make_llm: LlmFactory, server: ProviderServer) -> None:
    models = {MODEL: {"model_kwargs": {"num_ctx": 1024, "keep_alive": "2m"}}}
    make_llm("ollama", models=models).invoke("Hello")
    body = _body(server)
    assert (body["keep_alive"], body["options"]["num_ctx"]) == ("2m", 1024)


def test_stream_and_async(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("ollama")
    assert "".join(str(c.content) for c in llm.stream("word " * 3000))
    assert _body(server)["options"]["num_ctx"] == 8192


async def test_async_invoke_and_stream(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("ollama")
    await llm.ainvoke("Hello")
    assert _body(server)["options"]["num_ctx"] == 2048
    _ = [c async for c in llm.astream("word " * 3000)]
    body = _body(server)
    assert (body["options"]["num_ctx"], body["keep_alive"]) == (8192, "10m")


@pytest.mark.parametrize(
    ("needed", "maximum", "size"),
    [
        (1, 32768, 2048),
        (2048, 32768, 2048),
        (2049, 32768, 4096),
        (20000, 32768, 32768),
        (90000, 32768, 32768),
    ],
)
def test_context_size_rounds_to_powers_of_two(needed: int, maximum: int, size: int) -> None:
    assert context_size(needed, maximum) == size


def test_disabled_sends_requests_untouched(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("ollama", enable=False).invoke("<<STATIC>>Hello")
    body = _body(server)
    assert body.get("keep_alive") is None
    assert "num_ctx" not in (body.get("options") or {})
    assert body["messages"][0]["content"] == "<<STATIC>>Hello"
