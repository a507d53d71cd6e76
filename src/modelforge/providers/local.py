"""The local model family: a GGUF model served by llama.cpp behind the OpenAI-compatible interface.

With no ``base_url`` the bundled SmolLM2-135M-Instruct is started on a free 127.0.0.1 port on first use
(see ``modelforge.local_model``); a ``base_url`` points at an already running llama.cpp (or any
OpenAI-compatible) server instead. No key, no network. This is the model a new user gets when nothing is
configured.
"""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel

from modelforge.providers.base import ModelRequest, ProviderFamily
from modelforge.providers.errors import HttpFailure
from modelforge.providers.openai_compatible import (
    NO_KEY_PLACEHOLDER,
    build_chat_openai,
    read_stainless_failure,
)

__all__ = ["LocalFamily"]

# SmolLM2 has a small context; keep answers short unless the model config says otherwise.
DEFAULT_MAX_TOKENS = 256


class LocalFamily(ProviderFamily):
    """SmolLM2 (or another GGUF model) on this machine."""

    llm_type = "local"
    pip_package = "xllamacpp"
    # A server on this machine that fails is rarely helped by waiting: one retry, soon.
    retry_defaults: ClassVar[dict[str, Any]] = {"max_attempts": 2, "initial_wait": 0.2, "max_wait": 2.0}
    default_base_url = None

    def build(self, request: ModelRequest) -> BaseChatModel:
        if request.provider.base_url:
            base_url = request.provider.base_url
        else:
            from modelforge.local_model import local_model_server

            base_url = local_model_server().url() + "/v1"
        return build_chat_openai(
            request, base_url=base_url, api_key=NO_KEY_PLACEHOLDER, default_max_tokens=DEFAULT_MAX_TOKENS
        )

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        return read_stainless_failure(err, "openai")
