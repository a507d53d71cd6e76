"""The chat model ``get_llm`` hands back: the provider's LangChain model with ModelForge's guarantees.

``ManagedChatModel`` forwards every call to the provider's own LangChain model and raises
``modelforge.exceptions`` types instead of SDK errors, with ``provider``, ``status_code``, ``retry_after``
and ``retryable`` filled in, so callers can tell a 429 from a 401 whatever the provider. Settings of the
wrapped model read through (``llm.model_name``), and ``bind_tools`` / ``with_structured_output`` keep the
translation.

Streams are held to their end: a stream that stops without the provider's finish reason (cut before its
terminator), or breaks after text arrived (a dropped connection, a malformed chunk), raises
``StreamInterruptedError`` carrying the text received so far; a timeout carries it as ``partial_text``.

Pickling never carries credentials: a ``ManagedChatModel`` pickles as "provider, alias and sampling
settings" and is rebuilt on the other side through ``ModelForgeRegistry`` from that side's config and
credential store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from modelforge._chunks import chunk_text, finish_reason_of
from modelforge.delegating import DelegatingChatModel, innermost, replace_innermost
from modelforge.exceptions import (
    MalformedResponseError,
    NetworkConnectionError,
    NetworkTimeoutError,
    StreamInterruptedError,
)
from modelforge.providers import get_family

__all__ = ["ManagedChatModel"]

# Settings of the provider's model that survive pickling (everything else comes from the config).
_SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "max_tokens", "num_predict", "max_output_tokens")


class _StreamWatch:
    """Follows one stream: the text so far and whether the provider said it finished."""

    __slots__ = ("finished", "parts", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.parts: list[str] = []
        self.finished = False

    def see(self, chunk: ChatGenerationChunk) -> None:
        text = chunk_text(chunk.message)
        if text:
            self.parts.append(text)
        if not self.finished and (
            # Inside _stream, SDK wrappers put the finish reason in generation_info (OpenAI) or in the
            # message's response_metadata (Anthropic, Ollama, Gemini); LangChain merges them later.
            finish_reason_of(chunk.generation_info or {}) is not None
            or finish_reason_of(chunk.message.response_metadata or {}) is not None
        ):
            self.finished = True

    def failed(self, err: Exception) -> Exception:
        """The error to raise for ``err`` in mid-stream, carrying the text that arrived."""
        partial = "".join(self.parts)
        if isinstance(err, NetworkTimeoutError):
            err.partial_text = err.partial_text or partial
            return err
        if partial and isinstance(err, NetworkConnectionError | MalformedResponseError):
            return StreamInterruptedError(self.provider, partial, reason=err.message)
        return err

    def check_end(self) -> None:
        if not self.finished:
            raise StreamInterruptedError(
                self.provider, "".join(self.parts), reason="it ended without a finish reason"
            )


class ManagedChatModel(DelegatingChatModel):
    """A provider's chat model whose failures are ModelForge errors."""

    provider_name: str
    model_alias: str
    llm_type_name: str

    @property
    def model_id(self) -> str | None:
        """The model id the provider is asked for."""
        for field in ("model_name", "model"):
            value = getattr(self.wrapped_llm, field, None)
            if isinstance(value, str):
                return value
        return None

    def _translate_error(self, err: Exception) -> Exception:
        family = get_family(self.llm_type_name, provider=self.provider_name)
        return family.translate_error(
            err, provider=self.provider_name, model=self.model_id or self.model_alias
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        watch = _StreamWatch(self.provider_name)
        try:
            for chunk in super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
                watch.see(chunk)
                yield chunk
        except Exception as err:
            raised = watch.failed(err)
            if raised is err:
                raise
            raise raised from err
        watch.check_end()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        watch = _StreamWatch(self.provider_name)
        try:
            async for chunk in super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs):
                watch.see(chunk)
                yield chunk
        except Exception as err:
            raised = watch.failed(err)
            if raised is err:
                raise
            raise raised from err
        watch.check_end()

    def _may_retry(self, err: Exception) -> bool:
        family = get_family(self.llm_type_name, provider=self.provider_name)
        return family.recover(err, provider=self.provider_name)

    def __repr__(self) -> str:
        return f"ManagedChatModel(provider={self.provider_name!r}, model={self.model_alias!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        leaf = innermost(self.wrapped_llm)
        settings = {
            name: getattr(leaf, name)
            for name in _SAMPLING_FIELDS
            if name in type(leaf).model_fields and name in leaf.model_fields_set
        }
        return (_rebuild_managed, (self.provider_name, self.model_alias, settings))


def _rebuild_managed(provider_name: str, model_alias: str, settings: dict[str, Any]) -> BaseChatModel:
    from modelforge.registry import ModelForgeRegistry

    llm = ModelForgeRegistry().get_llm(provider_name, model_alias, enhanced=False)
    if settings:
        llm = replace_innermost(llm, innermost(llm).model_copy(update=settings))
    return llm
