"""Google Gemini through ``langchain_google_genai.ChatGoogleGenerativeAI`` (the google-genai SDK).

Needs an API key. ``base_url`` points the SDK at another endpoint (a proxy or the test server). The
wrapper's ``ChatGoogleGenerativeAIError`` keeps the SDK's ``google.genai.errors.APIError`` as its cause,
which carries the HTTP status and response.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from modelforge.providers.base import ModelRequest, ProviderFamily, header_dict
from modelforge.providers.errors import HttpFailure

__all__ = ["GoogleGenAIFamily"]


class GoogleGenAIFamily(ProviderFamily):
    """Gemini models over the Generative Language API."""

    llm_type = "google_genai"
    pip_package = "langchain-google-genai"
    default_base_url = None

    def build(self, request: ModelRequest) -> BaseChatModel:
        from langchain_google_genai import ChatGoogleGenerativeAI

        key = request.require_api_key()
        extra: dict[str, Any] = {}
        if request.provider.base_url:
            extra["base_url"] = request.provider.base_url
        if request.provider.headers:
            extra["additional_headers"] = dict(request.provider.headers)
        if request.model.model_kwargs:
            extra["model_kwargs"] = dict(request.model.model_kwargs)
        return ChatGoogleGenerativeAI(
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
