"""``EnhancedLLM``: a chat model that also knows its own limits, capabilities and prices.

It wraps any LangChain chat model (through ``DelegatingChatModel``, so ``bind_tools`` and
``with_structured_output`` keep the wrapper, unlike 2.3.0) and adds the 2.3.0 surface: read-only
``context_length``, ``max_output_tokens``, ``supports_function_calling``, ``supports_vision``, ``model_info``,
``pricing_info``; validated ``temperature``, ``top_p``, ``top_k`` and ``max_tokens`` that really change what
the wrapped model sends (its own field is set: ``max_tokens`` is ``max_output_tokens`` on Gemini and
``num_predict`` on Ollama); ``validate_parameters`` and ``estimate_cost``. Unknown attributes are read from
the wrapped model (``llm.model_name``).

``model_metadata`` may be a ``ModelsDevClient`` model dict, a 2.3.0 metadata dict or a raw models.dev entry;
``enhance()`` builds one from the catalogue. Limits and prices that are unknown read as ``0``.

An ``EnhancedLLM`` pickles. A model from ``ModelForgeRegistry`` pickles without credentials and is rebuilt
from the config on the other side; any other wrapped model is rebuilt from its class and the fields it was
given (HTTP clients are recreated, a custom ``http_client`` is not carried over), and that pickle holds the
model's API key, so treat it as a secret.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

from modelforge.catalog import Catalog
from modelforge.delegating import DelegatingChatModel, innermost, replace_innermost
from modelforge.exceptions import InvalidInputError

__all__ = ["EnhancedLLM", "enhance"]

# Parameter -> the field that carries it on each LangChain model family, first match wins.
_PARAMETER_FIELDS: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "max_tokens": ("max_tokens", "max_output_tokens", "num_predict"),
}
# Fields holding live connections: recreated by the model itself when it is rebuilt after unpickling.
_CONNECTION_FIELDS = frozenset(
    {"client", "async_client", "root_client", "root_async_client", "http_client", "http_async_client"}
)
logger = logging.getLogger(__name__)

_OWN_FIELDS = frozenset({"wrapped_llm", "model_metadata", "provider", "model_alias", "custom_params"})


class EnhancedLLM(DelegatingChatModel):
    """A chat model carrying models.dev metadata, with validated generation parameters."""

    model_metadata: dict[str, Any] = Field(default_factory=dict)
    provider: str = ""
    model_alias: str = ""
    # Parameters set on this wrapper that the provider's model class has no field for (2.3.0 stored them
    # rather than refusing them); kept here and read back, not sent.
    custom_params: dict[str, Any] = Field(default_factory=dict)

    def __init__(
        self,
        wrapped_llm: BaseChatModel,
        model_metadata: Mapping[str, Any] | None = None,
        provider: str = "",
        model_alias: str = "",
        **kwargs: Any,
    ) -> None:
        if getattr(wrapped_llm, "callbacks", None) and "callbacks" not in kwargs:
            kwargs["callbacks"] = wrapped_llm.callbacks
        kwargs.update(model_metadata=dict(model_metadata or {}), provider=provider, model_alias=model_alias)
        super().__init__(wrapped_llm=wrapped_llm, **kwargs)

    def __repr__(self) -> str:
        return (
            f"EnhancedLLM(provider={self.provider!r}, model={self.model_alias!r}, "
            f"context_length={self.context_length}, wrapped={type(self.wrapped_llm).__name__})"
        )

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            **self.wrapped_llm._identifying_params,
            "enhanced": True,
            "provider": self.provider,
            "model_alias": self.model_alias,
        }

    # --- metadata ----------------------------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        """The context window in tokens (0 when unknown)."""
        return _int(self._meta("context_length", ("limit", "context")))

    @property
    def max_output_tokens(self) -> int:
        """The most tokens the model can generate in one answer (0 when unknown)."""
        return _int(self._meta("max_output_tokens", "max_tokens", ("limit", "output")))

    @property
    def supports_function_calling(self) -> bool:
        """Whether models.dev says the model can call tools (False when it does not know the model)."""
        return self._capable("function_calling", "tool_call")

    @property
    def supports_vision(self) -> bool:
        """Whether the model takes images, per models.dev's capability flag or its input modalities."""
        if self._capable("vision", "supports_vision"):
            return True
        inputs = self._meta(("modalities", "input")) or ()
        return "image" in inputs

    @property
    def model_info(self) -> dict[str, Any]:
        """A copy of the full metadata."""
        raw = self.model_metadata.get("raw_info")
        return dict(raw if isinstance(raw, Mapping) else self.model_metadata)

    @property
    def pricing_info(self) -> dict[str, Any]:
        """Prices in USD per million tokens (0.0 when unknown; ``known`` tells which)."""
        price_in = self._meta(
            ("pricing", "input_per_1m"), ("pricing", "input_per_1m_tokens"), ("cost", "input")
        )
        price_out = self._meta(
            ("pricing", "output_per_1m"), ("pricing", "output_per_1m_tokens"), ("cost", "output")
        )
        cached = self._meta(("pricing", "cache_read_per_1m"), ("cost", "cache_read"))
        return {
            "input_per_1m": _float(price_in),
            "output_per_1m": _float(price_out),
            "cache_read_per_1m": _float(cached) if cached is not None else None,
            "currency": "USD",
            "known": price_in is not None and price_out is not None,
            "snapshot_date": self.model_metadata.get("snapshot_date"),
        }

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a call with these token counts (0.0 when the price is unknown)."""
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be a whole number of tokens >= 0, got {value!r}")
        pricing = self.pricing_info
        return (input_tokens * pricing["input_per_1m"] + output_tokens * pricing["output_per_1m"]) / 1_000_000

    def _meta(self, *paths: str | tuple[str, ...]) -> Any:
        """The first value found in the metadata along ``paths`` (a key, or a tuple of nested keys)."""
        for path in paths:
            value: Any = self.model_metadata
            for key in (path,) if isinstance(path, str) else path:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                return value
        return None

    def _capable(self, capability: str, flag: str) -> bool:
        explicit = self._meta(f"supports_{capability}", flag)
        if explicit is not None:
            return bool(explicit)
        return capability in (self.model_metadata.get("capabilities") or ())

    # --- generation parameters ---------------------------------------------------------------------------

    @property
    def temperature(self) -> float | None:
        """Randomness, 0 to 2."""
        return self._get_parameter("temperature")

    @temperature.setter
    def temperature(self, value: float | None) -> None:
        self._set_parameter("temperature", value)

    @property
    def top_p(self) -> float | None:
        """Nucleus sampling, 0 to 1."""
        return self._get_parameter("top_p")

    @top_p.setter
    def top_p(self, value: float | None) -> None:
        self._set_parameter("top_p", value)

    @property
    def top_k(self) -> int | None:
        """Sample from the ``top_k`` likeliest tokens (1 or more)."""
        return self._get_parameter("top_k")

    @top_k.setter
    def top_k(self, value: int | None) -> None:
        self._set_parameter("top_k", value)

    @property
    def max_tokens(self) -> int | None:
        """The most tokens to generate (1 up to ``max_output_tokens``)."""
        return self._get_parameter("max_tokens")

    @max_tokens.setter
    def max_tokens(self, value: int) -> None:
        self._set_parameter("max_tokens", value)

    def validate_parameters(self, params: Mapping[str, Any]) -> None:
        """Raise ``InvalidInputError`` for any of ``temperature``, ``top_p``, ``top_k``, ``max_tokens``
        that is out of range for this model; other keys are not checked."""
        for name, value in params.items():
            if name in _PARAMETER_FIELDS:
                _check(name, value, self.max_output_tokens)

    def _field_for(self, name: str) -> str | None:
        fields = type(innermost(self.wrapped_llm)).model_fields
        return next((f for f in _PARAMETER_FIELDS[name] if f in fields), None)

    def _get_parameter(self, name: str) -> Any:
        field = self._field_for(name)
        return getattr(innermost(self.wrapped_llm), field) if field else self.custom_params.get(name)

    def _set_parameter(self, name: str, value: Any) -> None:
        _check(name, value, self.max_output_tokens)
        field = self._field_for(name)
        if field is None:  # as 2.3.0: stored and read back, not sent (the model has no such setting)
            logger.debug(
                "%s has no '%s' setting: the value is kept on the EnhancedLLM only",
                type(innermost(self.wrapped_llm)).__name__,
                name,
            )
            self.custom_params = {**self.custom_params, name: value}
            return
        # A copy, not a mutation: the original model may be shared; bound runnables point at ``self``.
        # The setting lives on the provider's model, below any other ModelForge wrapper.
        leaf = innermost(self.wrapped_llm)
        self.wrapped_llm = replace_innermost(self.wrapped_llm, leaf.model_copy(update={field: value}))

    # --- pickling ----------------------------------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        extra = {
            name: value
            for name in self.model_fields_set - _OWN_FIELDS
            if _picklable(value := getattr(self, name))
        }
        return (
            _rebuild_enhanced,
            (_recipe(self.wrapped_llm), dict(self.model_metadata), self.provider, self.model_alias, extra),
        )


def _check(name: str, value: Any, output_limit: int) -> None:
    if value is None and name != "max_tokens":
        return  # back to the provider's default
    whole = name in ("top_k", "max_tokens")
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
        kind = "a whole number" if whole else "a number"
        raise InvalidInputError(f"{name} must be {kind}, got {value!r}", details={"parameter": name})
    low, high = {"temperature": (0, 2), "top_p": (0, 1), "top_k": (1, None), "max_tokens": (1, None)}[name]
    if name == "max_tokens" and output_limit > 0:
        high = output_limit
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high}" if high is not None else f"at least {low}"
        why = " (the model's output limit)" if name == "max_tokens" and high is not None else ""
        raise InvalidInputError(
            f"{name} must be {allowed}{why}, got {value}",
            details={"parameter": name, "value": value, "min": low, "max": high},
        )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


class _Recipe:
    """How to rebuild a pydantic model: its class and the fields it was given (nested models as recipes)."""

    def __init__(self, cls: type[BaseModel], fields: dict[str, Any]) -> None:
        self.cls = cls
        self.fields = fields

    def build(self) -> Any:
        kwargs = {
            key: value.build() if isinstance(value, _Recipe) else value for key, value in self.fields.items()
        }
        return self.cls(**kwargs)


def _recipe(model: BaseModel) -> _Recipe | BaseModel:
    if type(model).__reduce__ is not object.__reduce__ and _picklable(model):
        return model  # the class knows how to pickle itself
    fields: dict[str, Any] = {}
    model_fields = type(model).model_fields
    for name in model.model_fields_set:
        if name in _CONNECTION_FIELDS or name not in model_fields:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseChatModel):
            value = _recipe(value)
        elif not _picklable(value):
            continue
        info = model_fields[name]
        key = info.validation_alias if isinstance(info.validation_alias, str) else (info.alias or name)
        fields[key] = value
    return _Recipe(type(model), fields)


def _rebuild_enhanced(
    wrapped: _Recipe | BaseChatModel,
    metadata: dict[str, Any],
    provider: str,
    model_alias: str,
    extra: dict[str, Any],
) -> EnhancedLLM:
    llm = wrapped.build() if isinstance(wrapped, _Recipe) else wrapped
    return EnhancedLLM(llm, metadata, provider, model_alias, **extra)


def enhance(
    llm: BaseChatModel,
    provider: str,
    model_alias: str,
    *,
    catalog: Catalog | None = None,
    model_name: str | None = None,
) -> EnhancedLLM:
    """Wrap ``llm`` in an ``EnhancedLLM`` with the catalogue's metadata (bundled snapshot by default).

    Tries ``model_name`` (the provider's model id), ``model_alias`` and the model id ``llm`` reports, in that
    order, exactly; a provider the catalogue does not know (an OpenAI-compatible proxy) is matched by model
    id across providers. Nothing found gives empty metadata (limits and prices read as 0).
    """
    catalog = catalog or Catalog.bundled()
    reported = getattr(llm, "model_name", None) or getattr(llm, "model", None)
    names = [n for n in dict.fromkeys((model_name, model_alias, reported)) if isinstance(n, str) and n]
    info = catalog.lookup(provider, names)
    metadata = info.to_dict() if info else {"id": names[0] if names else model_alias, "provider": provider}
    return EnhancedLLM(llm, metadata, provider, model_alias)
