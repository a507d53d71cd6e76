"""Anthropic's Messages API through the native ``langchain_anthropic.ChatAnthropic`` (new in ModelForge).

Always needs a key. ``max_tokens`` is required by the Messages API; when the model config sets none,
``DEFAULT_MAX_TOKENS`` is sent. Overloaded answers (HTTP 529) become ``ProviderOverloadedError``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from modelforge.providers.base import ModelRequest, ProviderFamily
from modelforge.providers.errors import HttpFailure
from modelforge.providers.openai_compatible import read_stainless_failure

__all__ = ["AnthropicFamily"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096


class AnthropicFamily(ProviderFamily):
    """Claude models over the Anthropic Messages API."""

    llm_type = "anthropic"
    pip_package = "langchain-anthropic"
    default_base_url = ANTHROPIC_BASE_URL
    # Anthropic answers 529 when overloaded, often for a few seconds: more patience than the default.
    retry_defaults: ClassVar[dict[str, Any]] = {"max_attempts": 4, "initial_wait": 1.0, "max_wait": 30.0}

    def build(self, request: ModelRequest) -> BaseChatModel:
        from langchain_anthropic import ChatAnthropic

        key = request.require_api_key()
        extra: dict[str, Any] = {}
        if request.model.model_kwargs:
            extra["model_kwargs"] = dict(request.model.model_kwargs)
        sampling = request.sampling()
        sampling.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        return ChatAnthropic(  # type: ignore[call-arg]
            model=request.model_name,
            api_key=SecretStr(key),
            base_url=request.provider.base_url or self.default_base_url,
            default_headers=dict(request.provider.headers) or None,
            timeout=request.timeout,
            max_retries=request.max_retries,
            stream_usage=True,
            **sampling,
            **extra,
        )

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        return read_stainless_failure(err, "anthropic")
