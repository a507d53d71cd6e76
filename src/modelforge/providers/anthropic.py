"""Anthropic's Messages API through the native ``langchain_anthropic.ChatAnthropic`` (new in ModelForge).

Always needs a key. ``max_tokens`` is required by the Messages API; when the model config sets none,
``DEFAULT_MAX_TOKENS`` is sent. Overloaded answers (HTTP 529) become ``ProviderOverloadedError``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from modelforge.providers._managed import ManagedChatModel
from modelforge.providers.base import ModelRequest, ProviderFamily
from modelforge.providers.errors import HttpFailure, read_stainless_failure

if TYPE_CHECKING:
    from modelforge.pooling import PooledClients

__all__ = ["AnthropicFamily", "ManagedChatAnthropic"]

logger = logging.getLogger(__name__)

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096


class ManagedChatAnthropic(ManagedChatModel, ChatAnthropic):
    """``ChatAnthropic`` with ModelForge's pipeline inside its calls (``modelforge.providers._managed``)."""


class AnthropicFamily(ProviderFamily):
    """Claude models over the Anthropic Messages API."""

    llm_type = "anthropic"
    pip_package = "langchain-anthropic"
    default_base_url = ANTHROPIC_BASE_URL
    # Anthropic answers 529 when overloaded, often for a few seconds: more patience than the default.
    retry_defaults: ClassVar[dict[str, Any]] = {"max_attempts": 4, "initial_wait": 1.0, "max_wait": 30.0}

    def build(self, request: ModelRequest) -> BaseChatModel:
        key = request.require_api_key()
        extra: dict[str, Any] = {}
        if request.model.model_kwargs:
            extra["model_kwargs"] = dict(request.model.model_kwargs)
        sampling = request.sampling()
        sampling.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        base_url = request.provider.base_url or self.default_base_url
        llm = ManagedChatAnthropic(  # type: ignore[call-arg]
            model=request.model_name,
            api_key=SecretStr(key),
            base_url=base_url,
            default_headers=dict(request.provider.headers) or None,
            timeout=request.timeout,
            max_retries=request.max_retries,
            stream_usage=True,
            **sampling,
            **extra,
        )
        import anthropic

        from modelforge.pooling import httpx_flavor_of

        pooled = request.http_clients(
            base_url,
            key,
            flavor=httpx_flavor_of(anthropic.DefaultHttpxClient),
            proxy=llm.anthropic_proxy,  # ANTHROPIC_PROXY, which ChatAnthropic's own clients would use
        )
        if pooled is not None:
            _use_pooled_clients(llm, pooled)
        return llm

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        return read_stainless_failure(err, "anthropic")


def _use_pooled_clients(llm: BaseChatModel, pooled: PooledClients) -> None:
    """Make ``llm`` (a ``ChatAnthropic``) send through the pooled HTTP clients.

    The one private hook of the provider families, kept here alone. ChatAnthropic (langchain-anthropic 1.7)
    has no public field for an HTTP client: it builds ``anthropic.Client`` / ``anthropic.AsyncClient``
    lazily, in the ``functools.cached_property``s ``_client`` and ``_async_client``, from its
    ``_client_params`` and an lru-cached httpx client of its own (whose async side fails once the event loop
    that used it is closed). Filling those two caches with SDK clients made from the same
    ``_client_params`` (so the key, base URL, timeout, retries and headers are the ones ChatAnthropic chose)
    and our pooled clients is the least intrusive way in. Should a later version change that layout, the
    model keeps its own clients (unpooled) and still works.
    """
    import anthropic

    names = ("_client", "_async_client", "_client_params")
    hooks = [inspect.getattr_static(type(llm), name, None) for name in names]
    if not all(isinstance(hook, functools.cached_property) for hook in hooks):
        logger.debug("ChatAnthropic builds its clients differently here: its own HTTP clients are used")
        return
    params: dict[str, Any] = dict(llm._client_params)  # type: ignore[attr-defined]
    llm.__dict__["_client"] = anthropic.Client(**params, http_client=pooled.client)
    llm.__dict__["_async_client"] = anthropic.AsyncClient(**params, http_client=pooled.async_client)
