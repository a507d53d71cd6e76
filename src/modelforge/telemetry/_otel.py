"""OpenTelemetry spans for provider calls, per the GenAI semantic conventions (no prompt or answer content).

Each chat call becomes one CLIENT span named ``chat {model}`` with ``gen_ai.operation.name = "chat"``,
``gen_ai.provider.name`` (and the older ``gen_ai.system``), the request's model, ``max_tokens``,
``temperature`` and ``top_p`` when known, the response's model, id and finish reasons, the token usage, and
``server.address`` / ``server.port``. A failure sets ``error.type`` and the ERROR status; retries and
fallbacks are span events (``modelforge.retry``, ``modelforge.fallback``). ModelForge's own figures carry the
``modelforge.`` prefix (cost in USD, cache, streamed, aborted).

``gen_ai.provider.name`` uses the conventions' well-known values where one exists (``openai``,
``anthropic``, ``gcp.gemini``, ``azure.ai.openai``, ``aws.bedrock``, ``groq``, ``deepseek``,
``mistral_ai``, ``perplexity``, ``x_ai``...); other providers (Ollama, GitHub Copilot, an OpenAI-compatible
proxy) get their own name, as the conventions allow.

OpenTelemetry is imported only here, and only when a span recorder is made: importing ModelForge never
imports it. ``tracing=True`` without it installed raises ``ConfigurationError`` (install
``model-forge-llm[otel]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from langchain_core.language_models import BaseChatModel

from modelforge.delegating import innermost
from modelforge.exceptions import ConfigurationError

__all__ = [
    "SpanRecorder",
    "Target",
    "make_span_recorder",
    "response_attributes",
    "semconv_provider",
    "target_of",
]

# Provider (config) names and LangChain families -> gen_ai.provider.name well-known values.
_WELL_KNOWN = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
    "mistral_ai": "mistral_ai",
    "mistralai": "mistral_ai",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "x_ai": "x_ai",
    "grok": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
# A family whose provider is known whatever the config calls it.
_FAMILIES = {"anthropic": "anthropic", "google_genai": "gcp.gemini", "ollama": "ollama"}


def semconv_provider(provider: str, family: str | None) -> str:
    """The ``gen_ai.provider.name`` for a configured provider name and its ModelForge family (llm_type)."""
    if family in _FAMILIES:
        return _FAMILIES[family]
    key = provider.strip().lower().replace("-", "_")
    return _WELL_KNOWN.get(key, provider)


@dataclass
class Target:
    """What the spans say about a model that may answer: its semconv provider name and its server."""

    system: str
    server: tuple[str, int | None] | None


def _server_of(model: BaseChatModel) -> tuple[str, int | None] | None:
    leaf = innermost(model)
    for name in ("openai_api_base", "anthropic_api_url", "base_url"):
        url = getattr(leaf, name, None)
        if isinstance(url, str) and url:
            parts = urlsplit(url if "//" in url else f"http://{url}")
            if parts.hostname:
                try:
                    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
                except ValueError:
                    port = None
                return parts.hostname, port
    return None


def _family_of(model: BaseChatModel) -> str | None:
    forge = getattr(model, "forge", None)  # a get_llm model (through wrappers, which read through)
    llm_type = getattr(forge, "llm_type", None)
    return llm_type if isinstance(llm_type, str) else None


def target_of(provider: str, model: BaseChatModel) -> Target:
    return Target(semconv_provider(provider, _family_of(model)), _server_of(model))


def response_attributes(
    metadata: Mapping[str, Any],
    response_id: str | None,
    actual_model: str | None,
    measures: Mapping[str, Any],
    details: Mapping[str, Any],
    answered_by: Target | None,
) -> dict[str, Any]:
    """The span attributes of an answer; ``answered_by``: the fallback member that gave it, if any."""
    raw_finish = next(
        (metadata[k] for k in ("finish_reason", "stop_reason", "done_reason") if metadata.get(k)), None
    )
    attributes: dict[str, Any] = {
        "gen_ai.response.model": actual_model,
        "gen_ai.response.id": metadata.get("id") or response_id,
        "gen_ai.response.finish_reasons": [str(raw_finish)] if raw_finish else None,
        "gen_ai.usage.input_tokens": measures.get("input_tokens"),
        "gen_ai.usage.output_tokens": measures.get("output_tokens"),
        "modelforge.cost_usd": measures.get("cost"),
        "modelforge.cache": details.get("cache"),
        "modelforge.aborted": details.get("aborted"),
        "modelforge.served_by": details.get("served_by"),
    }
    if answered_by is not None:  # its provider and server, not the first model's
        attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = answered_by.system
        if answered_by.server is not None:
            attributes["server.address"], attributes["server.port"] = answered_by.server
    return attributes


def make_span_recorder(tracing: bool | None, tracer_provider: Any = None) -> SpanRecorder | None:
    """A recorder when tracing is on (``None``: when OpenTelemetry is installed), else None."""
    if tracing is False:
        return None
    try:
        from opentelemetry import trace
    except ImportError as err:
        if tracing:
            raise ConfigurationError(
                "Tracing was asked for, but OpenTelemetry is not installed",
                error_code="OTEL_NOT_INSTALLED",
                suggestion=(
                    "Install it with: pip install 'model-forge-llm[otel]' (or pass tracing=None / False)"
                ),
            ) from err
        return None
    from modelforge import __version__

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    return SpanRecorder(provider.get_tracer("modelforge", __version__))


# A request option (as ``request_options`` names it) -> its span attribute.
_REQUEST_OPTIONS = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts: no None, sequences as lists of str/int/float/bool."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[key] = value
        elif isinstance(value, Sequence):
            items = [v if isinstance(v, str | bool | int | float) else str(v) for v in value if v is not None]
            if items:
                out[key] = items
        else:
            out[key] = str(value)
    return out


class SpanRecorder:
    """Starts, annotates and ends the spans of chat calls (one ``tracer`` per observed model).

    What never changes between the calls of one model (its name, provider and server) is cleaned once, in
    ``base_attributes``; a call adds only its own options.
    """

    __slots__ = ("kind", "tracer")

    def __init__(self, tracer: Any) -> None:
        from opentelemetry.trace import SpanKind

        self.tracer = tracer
        self.kind = SpanKind.CLIENT

    @staticmethod
    def base_attributes(
        *, model: str, provider_name: str, provider: str, server: tuple[str, int | None] | None
    ) -> dict[str, Any]:
        """The attributes every span of one model starts with."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider_name,
            "gen_ai.system": provider_name,
            "gen_ai.request.model": model,
            "modelforge.provider": provider,
        }
        if server is not None:
            attributes["server.address"], attributes["server.port"] = server
        return _clean(attributes)

    def start(self, name: str, base: Mapping[str, Any], request: Mapping[str, Any], streamed: bool) -> Any:
        """A started CLIENT span (a child of the caller's current span); it is not made current.

        ``base``: from ``base_attributes``; ``request``: the call's options (``request_options``).
        """
        attributes = dict(base)
        for option, key in _REQUEST_OPTIONS:
            value = request.get(option)
            if isinstance(value, int | float):
                attributes[key] = value
        if streamed:
            attributes["modelforge.streamed"] = True
        return self.tracer.start_span(name, kind=self.kind, attributes=attributes)

    @staticmethod
    def add_event(span: Any, name: str, attributes: Mapping[str, Any]) -> None:
        span.add_event(name, attributes=_clean(attributes))

    @staticmethod
    def succeed(span: Any, attributes: Mapping[str, Any]) -> None:
        span.set_attributes(_clean(attributes))
        span.end()

    @staticmethod
    def fail(span: Any, error: BaseException, description: str, attributes: Mapping[str, Any]) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attributes(_clean({**attributes, "error.type": type(error).__name__}))
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()
