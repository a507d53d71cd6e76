"""OpenTelemetry spans of real calls, per the GenAI semantic conventions, read back from an in-memory
exporter; errors, retries and fallbacks on the span; tracing without OpenTelemetry installed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from modelforge.exceptions import BadRequestError, ConfigurationError
from modelforge.observability import observe
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply, Usage


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    yield found
    found.clear()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def traced(registry: ModelForgeRegistry, tracer_provider: TracerProvider, name: str = "openai") -> Any:
    llm = registry.get_llm(name, "gpt-4o-mini")
    return observe(llm, provider=name, model="gpt-4o-mini", tracer_provider=tracer_provider)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_a_call_is_one_client_span_with_genai_attributes(
    server: ProviderServer,
    registry: ModelForgeRegistry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
    mode: str,
) -> None:
    llm = traced(registry, tracer_provider)
    server.script(Reply(text="fine thanks", usage=Usage(12, 4)))
    options = {"max_tokens": 64, "temperature": 0.5, "top_p": 0.9}
    if mode == "invoke":
        llm.invoke("How are you?", **options)
    elif mode == "ainvoke":
        await llm.ainvoke("How are you?", **options)
    elif mode == "stream":
        list(llm.stream("How are you?", **options))
    else:
        [chunk async for chunk in llm.astream("How are you?", **options)]
    span = only_span(exporter)
    attributes = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini" and span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    host, port = server.openai_base_url.split("//")[1].split("/")[0].split(":")
    assert attributes == {
        **attributes,
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 4,
        "server.address": host,
        "server.port": int(port),
    }
    if not mode.endswith("stream"):  # LangChain's ChatOpenAI drops the id of streamed answers
        assert str(attributes["gen_ai.response.id"]).startswith("chatcmpl-")
    assert attributes.get("modelforge.streamed", False) is mode.endswith("stream")
    assert not any("How are you" in str(value) for value in attributes.values())


def test_a_failed_call_is_an_error_span(
    server: ProviderServer,
    registry: ModelForgeRegistry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    llm = traced(registry, tracer_provider)
    server.script(Fault(status=400, message="unsupported parameter"))
    with pytest.raises(BadRequestError):
        llm.invoke("hi")
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "BadRequestError"


def test_retries_and_fallbacks_are_span_events(
    server: ProviderServer,
    registry: ModelForgeRegistry,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    server.script(Fault(status=503), Reply())
    traced(registry, tracer_provider).invoke("hi")
    retry_span = only_span(exporter)
    assert [event.name for event in retry_span.events] == ["modelforge.retry"]
    assert (retry_span.events[0].attributes or {})["status_code"] == 503
    exporter.clear()
    server.script(Fault(status=503), Reply(text="from claude"))
    traced(registry, tracer_provider, "primary").invoke("hi")
    span = only_span(exporter)  # the attempts are not spans of their own
    assert [event.name for event in span.events] == ["modelforge.fallback"]
    attributes = span.attributes or {}
    assert attributes["gen_ai.provider.name"] == "anthropic"  # the provider that answered
    assert attributes["gen_ai.response.model"] == "claude-sonnet-4-6"
    assert attributes["modelforge.served_by"] == "anthropic/claude-sonnet-4-6"


def test_tracing_false_makes_no_span(
    registry: ModelForgeRegistry, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    llm = registry.get_llm("openai", "gpt-4o-mini")
    observe(
        llm, provider="openai", model="gpt-4o-mini", tracing=False, tracer_provider=tracer_provider
    ).invoke("hi")
    assert exporter.get_finished_spans() == ()


def test_tracing_true_without_opentelemetry_says_what_to_install(
    registry: ModelForgeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A test cannot uninstall a package: a None entry in sys.modules makes its import fail as if absent.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    llm = registry.get_llm("openai", "gpt-4o-mini")
    with pytest.raises(ConfigurationError) as raised:
        observe(llm, provider="openai", model="gpt-4o-mini", tracing=True)
    assert "model-forge-llm[otel]" in (raised.value.suggestion or "")
    events: list[Any] = []
    observe(llm, provider="openai", model="gpt-4o-mini", callbacks=[events.append]).invoke("hi")
    assert [event.kind for event in events] == ["request", "response"]  # tracing=None: events only


def test_modelforge_works_without_opentelemetry() -> None:
    # LangSmith imports OpenTelemetry when it is installed, so "not imported" cannot be observed here; a
    # child process where the import fails shows ModelForge itself never needs it.
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import modelforge.observability\n"
        "from modelforge.telemetry._otel import make_span_recorder\n"
        "print(make_span_recorder(None))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "None"
