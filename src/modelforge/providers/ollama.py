"""Ollama through ``ManagedChatOllama``, a ``langchain_ollama.ChatOllama``.

The server URL comes from the provider's ``base_url``, else ``OLLAMA_HOST``; with neither the registry
raises ``ConfigurationError`` (``OLLAMA_URL_MISSING``) as 2.3.0 did. ``api_model_name`` is honoured (2.3.0
sent the alias). Ollama needs no key and its errors carry a status but no headers: those of an error answer
are read from ModelForge's pooled transport (``modelforge._failed_answers``), so a 429's ``Retry-After``
is honoured.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatResult
from langchain_ollama import ChatOllama

from modelforge import _failed_answers
from modelforge._pipeline import Call
from modelforge.exceptions import ConfigurationError, StreamInterruptedError
from modelforge.providers._managed import ManagedChatModel
from modelforge.providers.base import ModelRequest, ProviderFamily
from modelforge.providers.errors import HttpFailure, status_of_stream_error

__all__ = ["OLLAMA_OPTION_FIELDS", "ManagedChatOllama", "OllamaFamily", "ollama_base_url"]


class ManagedChatOllama(ManagedChatModel, ChatOllama):
    """``ChatOllama`` with ModelForge's pipeline inside its calls (``modelforge.providers._managed``).

    langchain-ollama answers ``invoke`` by reading Ollama's stream to its end; a stream cut before its
    ``done: true`` line would come back as a short answer, so such an answer raises
    ``StreamInterruptedError`` (with the text that arrived), as the same cut does on ``stream``.
    """

    def _sdk_generate(self, call: Call) -> ChatResult:
        return self._finished(super()._sdk_generate(call))

    async def _sdk_agenerate(self, call: Call) -> ChatResult:
        return self._finished(await super()._sdk_agenerate(call))

    def _finished(self, result: ChatResult) -> ChatResult:
        """``result`` when Ollama's stream behind it reached ``done: true``; else StreamInterruptedError."""
        for generation in result.generations:
            info = generation.generation_info or {}
            if info.get("done") is True or generation.message.response_metadata.get("done") is True:
                return result
        text = "".join(generation.text for generation in result.generations)
        forge = self.forge_or_none()
        provider = forge.provider_name if forge is not None else "ollama"
        raise StreamInterruptedError(provider, text, reason="its answer ended before Ollama's done line")


DEFAULT_OLLAMA_URL = "http://localhost:11434"

# ChatOllama fields that langchain-ollama sends inside the request's ``options`` dict.
OLLAMA_OPTION_FIELDS = (
    "mirostat",
    "mirostat_eta",
    "mirostat_tau",
    "num_ctx",
    "num_gpu",
    "num_thread",
    "num_predict",
    "repeat_last_n",
    "repeat_penalty",
    "temperature",
    "seed",
    "tfs_z",
    "top_k",
    "top_p",
)


def ollama_base_url(request: ModelRequest) -> str:
    """The provider's ``base_url``, else ``OLLAMA_HOST`` (with a scheme added when it has none)."""
    url = request.provider.base_url or os.environ.get("OLLAMA_HOST", "").strip()
    if not url:
        raise ConfigurationError(
            f"Provider '{request.provider_name}' (ollama) has no base_url and OLLAMA_HOST is not set",
            error_code="OLLAMA_URL_MISSING",
            suggestion=f"Set base_url (usually {DEFAULT_OLLAMA_URL}) in the config, or export OLLAMA_HOST.",
            provider=request.provider_name,
        )
    return url if "://" in url else f"http://{url}"


class OllamaFamily(ProviderFamily):
    """Models served by an Ollama server."""

    llm_type = "ollama"
    pip_package = "langchain-ollama"
    # A local Ollama that fails is rarely helped by waiting: one retry, soon.
    retry_defaults: ClassVar[dict[str, Any]] = {"max_attempts": 2, "initial_wait": 0.2, "max_wait": 2.0}
    default_base_url = DEFAULT_OLLAMA_URL

    def build(self, request: ModelRequest) -> BaseChatModel:
        base_url = ollama_base_url(request)
        client_kwargs: dict[str, Any] = {"timeout": request.timeout}
        if request.provider.headers:
            client_kwargs["headers"] = dict(request.provider.headers)
        # ollama.Client / AsyncClient pass extra kwargs to their httpx clients: one shared transport (sync
        # and async at once) puts every model of this server on one connection pool (modelforge.pooling).
        pooled = request.http_clients(base_url, flavor="httpx")
        if pooled is not None:
            client_kwargs["transport"] = pooled.transport
        extra = dict(request.model.model_kwargs)
        return ManagedChatOllama(
            model=request.model_name,
            base_url=base_url,
            client_kwargs=client_kwargs,
            **request.sampling(max_tokens_field="num_predict"),
            **extra,
        )

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        if type(err).__name__ != "ResponseError" or not type(err).__module__.startswith("ollama"):
            return None
        status = int(getattr(err, "status_code", -1))
        message = str(getattr(err, "error", err))
        if status < 0:  # an {"error": ...} line in a stream that answered 200: the server failed mid-answer
            return HttpFailure(status=status_of_stream_error(None), message=message)
        # The SDK's error has no headers: ModelForge's transport kept them (Retry-After, x-ratelimit-*).
        return HttpFailure(status=status, headers=_failed_answers.take(status), message=message)
