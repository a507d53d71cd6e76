"""OpenAI and every server that speaks its chat-completions protocol (OpenRouter, vLLM, llama.cpp, ...).

A model's ``api: responses`` (or ``use_responses_api: true``) sends its calls to OpenAI's Responses API
instead; unset, langchain-openai picks it for the models and features that need it.

Built as ``ManagedChatOpenAI``, a ``langchain_openai.ChatOpenAI``. A key is required only when the
provider's ``auth_strategy`` is ``api_key`` (the default for api.openai.com and OpenRouter); a self-hosted
server with no auth strategy gets a placeholder key, because the OpenAI SDK refuses to start without one.
Streams ask for the final usage chunk (``stream_usage=True``) so token counts are known for streamed calls
too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from modelforge.providers._managed import ManagedChatModel
from modelforge.providers.base import ModelRequest, ProviderFamily
from modelforge.providers.errors import HttpFailure, read_stainless_failure, status_of_stream_error

__all__ = [
    "ManagedChatOpenAI",
    "OpenAICompatibleFamily",
    "read_responses_stream_failure",
    "read_stainless_failure",
]

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Sent when a server needs no key: the SDK insists on a non-empty value.
NO_KEY_PLACEHOLDER = "modelforge-no-key"

ApiKey = str | Callable[[], str] | Callable[[], Awaitable[str]]


class ManagedChatOpenAI(ManagedChatModel, ChatOpenAI):
    """``ChatOpenAI`` with ModelForge's pipeline inside its calls (``modelforge.providers._managed``)."""


def build_chat_openai(
    request: ModelRequest,
    *,
    base_url: str | None,
    api_key: ApiKey,
    default_headers: Mapping[str, str] | None = None,
    default_max_tokens: int | None = None,
) -> BaseChatModel:
    """A ``ChatOpenAI`` for ``request`` against ``base_url`` (shared by the Copilot and local families)."""
    import openai

    from modelforge.pooling import httpx_flavor_of

    extra: dict[str, Any] = {}
    if request.model.model_kwargs:
        extra["model_kwargs"] = dict(request.model.model_kwargs)
    responses_api = request.model.responses_api()
    if responses_api is not None:
        extra["use_responses_api"] = responses_api
    pooled = request.http_clients(
        base_url or OPENAI_BASE_URL,
        api_key,
        flavor=httpx_flavor_of(openai.DefaultHttpxClient),
        proxy=os.environ.get("OPENAI_PROXY") or None,
    )
    if pooled is not None:  # one connection pool per provider, base URL and key (modelforge.pooling)
        extra["http_client"] = pooled.client
        extra["http_async_client"] = pooled.async_client
        extra["openai_proxy"] = None  # the pool applies OPENAI_PROXY; ChatOpenAI refuses both at once
    headers = {**(default_headers or {}), **request.provider.headers}  # the user's headers win
    sampling = request.sampling()
    if default_max_tokens is not None:
        sampling.setdefault("max_tokens", default_max_tokens)
    return ManagedChatOpenAI(
        model=request.model_name,
        base_url=base_url,
        api_key=api_key,  # type: ignore[arg-type]
        default_headers=headers or None,
        timeout=request.timeout,
        max_retries=request.max_retries,
        stream_usage=True,
        # x-ratelimit-* of successful answers feed the rate limiter; only asked for when one is configured,
        # since langchain-openai warns about headers on every structured-output call.
        include_response_headers=bool(request.provider.rate_limit),
        **sampling,
        **extra,
    )


# langchain-openai turns the Responses API's in-stream ``error`` event into ValueError("<code>: <message>")
# and ``response.failed`` into ValueError(str(response.error)), i.e. "code='server_error' message='...'".
_RESPONSES_STREAM_READER = "_convert_responses_chunk_to_generation_chunk"
_FAILED_CODE = re.compile(r"code='([A-Za-z_]+)'")
_ERROR_EVENT = re.compile(r"^([A-Za-z_]+): (.*)$", re.DOTALL)


def read_responses_stream_failure(err: BaseException) -> HttpFailure | None:
    """The failure in a ValueError that langchain-openai raised for a Responses API error event, else None.

    Only a ValueError raised by langchain-openai's Responses stream reader itself counts (its traceback ends
    there); any other ValueError is left alone.
    """
    if type(err) is not ValueError or err.__traceback__ is None:
        return None
    frame = err.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    code = frame.tb_frame.f_code
    if code.co_name != _RESPONSES_STREAM_READER or "langchain_openai" not in code.co_filename:
        return None
    text = str(err)
    failed = _FAILED_CODE.search(text)
    event = _ERROR_EVENT.match(text)
    error_type = failed.group(1) if failed else event.group(1) if event else None
    message = text if failed or event is None else event.group(2)
    return HttpFailure(status=status_of_stream_error(error_type), message=message, error_type=error_type)


class OpenAICompatibleFamily(ProviderFamily):
    """OpenAI's chat-completions protocol, against any base URL."""

    speaks_openai = True
    llm_type = "openai_compatible"
    pip_package = "langchain-openai"
    default_base_url = OPENAI_BASE_URL

    def build(self, request: ModelRequest) -> BaseChatModel:
        needs_key = request.provider.auth_strategy == "api_key"
        key = request.require_api_key() if needs_key else request.optional_api_key() or NO_KEY_PLACEHOLDER
        return build_chat_openai(
            request, base_url=request.provider.base_url or self.default_base_url, api_key=key
        )

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        return read_stainless_failure(err, "openai") or read_responses_stream_failure(err)
