"""Google Gemini through ``ManagedChatGoogleGenerativeAI``, a ``ChatGoogleGenerativeAI`` (google-genai SDK).

Needs an API key. ``base_url`` points the SDK at another endpoint (a proxy or the test server).
``GOOGLE_GENAI_API_VERSION`` (``v1``, ``v1beta``, or ``beta`` for ``v1beta``) chooses the API version, with
every google-genai release (google-genai 2 does not read it; 3 does, and defaults to ``v1``). The
wrapper's ``ChatGoogleGenerativeAIError`` keeps the SDK's ``google.genai.errors.APIError`` as its cause,
which carries the HTTP status and response.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_google_genai import ChatGoogleGenerativeAI

from modelforge.exceptions import ConfigurationError
from modelforge.providers._managed import ManagedChatModel
from modelforge.providers.base import ModelRequest, ProviderFamily, header_dict
from modelforge.providers.errors import HttpFailure

__all__ = [
    "API_VERSIONS",
    "GoogleGenAIFamily",
    "ManagedChatGoogleGenerativeAI",
    "chosen_api_version",
    "google_genai_httpx_flavor",
]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/"


class ManagedChatGoogleGenerativeAI(ManagedChatModel, ChatGoogleGenerativeAI):
    """``ChatGoogleGenerativeAI`` with ModelForge's pipeline inside its calls
    (``modelforge.providers._managed``)."""


def google_genai_httpx_flavor() -> str:
    """The httpx package google-genai would build its clients on, so the shared transport is of that kind.

    google-genai 2 builds on ``httpx`` only. Since 3 it also builds on ``httpx2`` (its default when
    installed): ``GOOGLE_GENAI_HTTP_CLIENT=httpx`` / ``httpx2`` chooses, and otherwise its own default
    applies, or the other package when that one is missing.
    """
    from google.genai import _api_client

    # Its httpx2 client classes: None before google-genai 3 (2 only reads httpx2's types), or without httpx2.
    if getattr(_api_client, "SyncHttpx2Client", None) is None:
        return "httpx"
    choice = os.environ.get("GOOGLE_GENAI_HTTP_CLIENT", "").strip().lower()
    if choice in ("httpx", "httpx2"):
        return choice
    default = str(getattr(_api_client, "_DEFAULT_HTTP_CLIENT_BACKEND", "httpx"))
    if default == "httpx2" or importlib.util.find_spec("httpx") is None:
        return "httpx2"
    return "httpx"


# The versions of the Gemini API (Generative Language API); ``beta`` is google-genai's name for v1beta.
API_VERSIONS = ("v1", "v1beta", "v1alpha")


def chosen_api_version(provider: str | None = None) -> str | None:
    """The API version ``GOOGLE_GENAI_API_VERSION`` names (``beta`` meaning ``v1beta``, as google-genai 3
    reads it), or None to leave the SDK's default; ``ConfigurationError`` for a version Gemini has not."""
    chosen = os.environ.get("GOOGLE_GENAI_API_VERSION", "").strip()
    if not chosen:
        return None
    version = "v1beta" if chosen == "beta" else chosen
    if version not in API_VERSIONS:
        raise ConfigurationError(
            f"GOOGLE_GENAI_API_VERSION is {chosen!r}, which is not a Gemini API version",
            error_code="GEMINI_API_VERSION_INVALID",
            provider=provider,
            suggestion=f"Set it to {', '.join(API_VERSIONS)} or beta, or unset it for the SDK's default.",
        )
    return version


class GoogleGenAIFamily(ProviderFamily):
    """Gemini models over the Generative Language API."""

    llm_type = "google_genai"
    pip_package = "langchain-google-genai"
    default_base_url = None

    def build(self, request: ModelRequest) -> BaseChatModel:
        key = request.require_api_key()
        extra: dict[str, Any] = {}
        if request.provider.base_url:
            extra["base_url"] = request.provider.base_url
        version = chosen_api_version(request.provider_name)
        if version and "api_version" in ChatGoogleGenerativeAI.model_fields:
            extra["api_version"] = version
        # ``client_args`` reach both the sync and the async httpx client of google-genai; the shared
        # transport serves both sides, so every model of this provider shares one pool (modelforge.pooling).
        # A transport also keeps google-genai on httpx for async calls (not aiohttp).
        pooled = request.http_clients(
            request.provider.base_url or GEMINI_BASE_URL, key, flavor=google_genai_httpx_flavor()
        )
        if pooled is not None:
            extra["client_args"] = {"transport": pooled.transport}
        if request.provider.headers:
            extra["additional_headers"] = dict(request.provider.headers)
        if request.model.model_kwargs:
            extra["model_kwargs"] = dict(request.model.model_kwargs)
        return ManagedChatGoogleGenerativeAI(  # type: ignore[call-arg]
            model=request.model_name,
            google_api_key=key,
            timeout=request.timeout,
            max_retries=request.max_retries,
            **request.sampling(max_tokens_field="max_output_tokens"),
            **extra,
        )

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        if not type(err).__module__.startswith("google.genai") or not isinstance(
            getattr(err, "code", None), int
        ):
            return None
        response = getattr(err, "response", None)
        return HttpFailure(
            status=int(err.code),  # type: ignore[attr-defined]
            headers=header_dict(getattr(response, "headers", None)),
            message=str(getattr(err, "message", "") or err),
            error_type=getattr(err, "status", None),
        )
