"""The chat model ``get_llm`` hands back: the provider's LangChain model with ModelForge's guarantees.

``ManagedChatModel`` forwards every call to the provider's own LangChain model and raises
``modelforge.exceptions`` types instead of SDK errors, with ``provider``, ``status_code``, ``retry_after``
and ``retryable`` filled in, so callers can tell a 429 from a 401 whatever the provider. Settings of the
wrapped model read through (``llm.model_name``), and ``bind_tools`` / ``with_structured_output`` keep the
translation.

Pickling never carries credentials: a ``ManagedChatModel`` pickles as "provider, alias and sampling
settings" and is rebuilt on the other side through ``ModelForgeRegistry`` from that side's config and
credential store.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from modelforge.delegating import DelegatingChatModel, innermost, replace_innermost
from modelforge.providers import get_family

__all__ = ["ManagedChatModel"]

# Settings of the provider's model that survive pickling (everything else comes from the config).
_SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "max_tokens", "num_predict", "max_output_tokens")


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
