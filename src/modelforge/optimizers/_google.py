"""Optimizer for Gemini (``ChatGoogleGenerativeAI``): context caching and safety settings.

* Context caching: a call whose static prefix is long enough (the system instruction, plus everything up to
  the static part of the first message written with ``<<STATIC>>``/``<<DYNAMIC>>``) has that prefix put in a
  cached content (``POST /v1beta/cachedContents``, TTL ``context_caching.ttl``) and is sent with
  ``cached_content=<name>`` and only the rest of the messages (the Gemini API serves cached contents on
  ``v1beta``, not on ``v1``, the default of google-genai >= 3: a model whose client talks to ``v1`` makes,
  names and deletes its cached contents on ``v1beta``, and its other calls stay on ``v1``); later calls with
  the same prefix reuse it until it expires, then a new one is made. Cached contents are shared process-wide
  by every model of the same provider, base URL and credential (one per prefix, one creation in flight);
  they are deleted when the last model using them is closed or at exit (see ``_google_cache``). "Long
  enough" is ``context_caching.min_tokens``, by default Gemini's minimum: 1024 tokens, 4096 for Pro models.
  Calls with tools, a ``cached_content`` of their own, or a system message after the start are sent as they
  are (the API takes no system instruction or tools next to a cached content). If creating the cache fails,
  the call is sent without it and a WARNING says why; if the provider says a cached content in use is gone,
  the call is sent again without it.
* ``safety_settings``: the section's ``{HARM_CATEGORY_...: BLOCK_...}`` sent with every call as the SDK's
  enums, unless the call or the model sets its own. They live in the provider's ``optimizations:``
  section, so they apply only with ``enable_optimizations`` (``ModelForgeRegistry(enable_optimizations=
  True)`` or per ``get_llm``) and not with ``optimizations: {enabled: false}``; without it Gemini's
  defaults apply.
* The markers are removed from whatever is sent.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, SystemMessage

from modelforge.optimizers._base import (
    PreparedCall,
    RequestOptimizer,
    error_chain,
    estimate_tokens,
    logger,
    reason,
)
from modelforge.optimizers._google_cache import ContextCacheStore, CreationRefused, cache_key
from modelforge.optimizers._markers import split_message, strip_message_markers
from modelforge.sections.optimizations import OptimizationConfig

__all__ = [
    "CACHE_API_VERSION",
    "GoogleOptimizer",
    "cache_api_version",
    "min_cacheable_tokens",
    "static_prefix",
]

# Call arguments that rule a cached content out (the API refuses them next to one) or that bring their own.
_NO_CACHE_KEYS = ("cached_content", "tools", "functions", "tool_config", "tool_choice")
_GONE_HINTS = ("cachedcontent", "cached content", "cached_content")
# Where the Gemini API serves cachedContents: v1beta, not the GA version v1 (google-genai's own test suite
# forces v1beta for its caches replays: "The Gemini API only serves cachedContents on v1beta").
CACHE_API_VERSION = "v1beta"


def min_cacheable_tokens(model: str) -> int:
    """Gemini's smallest cached content for ``model``: 4096 tokens for Pro models, 1024 otherwise."""
    return 4096 if "pro" in model.lower() else 1024


def cache_api_version(leaf: BaseChatModel) -> str | None:
    """The API version to send cached-content calls of ``leaf`` to when its client's own version does not
    serve them: ``"v1beta"`` for a client on ``v1`` (the google-genai >= 3 default, or
    ``GOOGLE_GENAI_API_VERSION=v1``); None (the client's version) otherwise."""
    try:
        version = leaf.client._api_client._http_options.api_version  # type: ignore[attr-defined]
    except AttributeError:
        return None
    return CACHE_API_VERSION if version == "v1" else None


def _takes_request_http_options() -> bool:
    """Whether this langchain-google-genai sends a call's own ``http_options`` (newer 4.x releases merge it
    with the model's; older ones pass it on twice and fail)."""
    from langchain_google_genai import chat_models

    return hasattr(chat_models, "_merge_http_options")


@functools.cache
def _warn_cannot_reach(api_version: str) -> None:
    logger.warning(
        "google context_caching is off: this langchain-google-genai cannot send a call to %s, where Gemini"
        " serves cached contents; upgrade langchain-google-genai or set GOOGLE_GENAI_API_VERSION=%s",
        api_version,
        api_version,
    )


def static_prefix(messages: list[BaseMessage]) -> tuple[list[BaseMessage], list[BaseMessage]]:
    """``(static, rest)``: the leading system messages and, with markers, everything up to the static part
    of the first marked message; the rest is what changes from call to call."""
    for index, message in enumerate(messages):
        parts = split_message(message)
        if parts is None:
            continue
        static, dynamic = parts
        before = strip_message_markers(messages[:index])
        rest = strip_message_markers(messages[index + 1 :])
        return (
            before + ([static] if static is not None else []),
            ([dynamic] if dynamic is not None else []) + rest,
        )
    count = 0
    while count < len(messages) and isinstance(messages[count], SystemMessage):
        count += 1
    return list(messages[:count]), list(messages[count:])


@dataclass
class _Plan:
    key: str
    model: str
    config: Any
    rest: list[BaseMessage]
    api_version: str | None = None  # the version cached calls go to, when not the client's own


class GoogleOptimizer(RequestOptimizer):
    """Context caching of long static prefixes, and safety settings from the config."""

    family: ClassVar[str] = "google"

    def __init__(
        self, config: OptimizationConfig, *, provider_name: str, model_name: str, llm_type: str
    ) -> None:
        super().__init__(config, provider_name=provider_name, model_name=model_name, llm_type=llm_type)
        self.context_cache = ContextCacheStore(ttl=config.context_caching_ttl)

    def prepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        call = PreparedCall(messages, kwargs)
        self.step("safety_settings", call, lambda c: self._add_safety(leaf, c.kwargs))
        plan = self._plan_or_none(leaf, call)
        if plan is not None:
            try:
                name = self.context_cache.get_or_create(leaf, plan.key, plan.model, plan.config)
                self._use(call, plan, name)
                call.applied.append("context_caching")
            except Exception as err:
                self._cache_failed(err)
        call.messages = strip_message_markers(call.messages)
        return call

    async def aprepare(
        self, leaf: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any], stop: list[str] | None
    ) -> PreparedCall:
        call = PreparedCall(messages, kwargs)
        self.step("safety_settings", call, lambda c: self._add_safety(leaf, c.kwargs))
        plan = self._plan_or_none(leaf, call)
        if plan is not None:
            try:
                name = await self.context_cache.aget_or_create(leaf, plan.key, plan.model, plan.config)
                self._use(call, plan, name)
                call.applied.append("context_caching")
            except Exception as err:
                self._cache_failed(err)
        call.messages = strip_message_markers(call.messages)
        return call

    def cache_identity(self) -> dict[str, Any]:
        minimum = self.config.context_caching_min_tokens or min_cacheable_tokens(self.model_name)
        return {**super().cache_identity(), "context_caching_min_tokens": minimum}

    def retry_plain(self, call: PreparedCall, err: Exception) -> bool:
        if call.cached_content is None:
            return False
        text = " ".join(str(e) for e in error_chain(err)).lower()
        if not any(hint in text for hint in _GONE_HINTS):
            return False
        self.context_cache.forget(call.cached_content)
        return True

    def close(self) -> None:
        self.context_cache.close()

    async def aclose(self) -> None:
        await self.context_cache.aclose()

    # --- safety settings -----------------------------------------------------------------------------------

    def _add_safety(self, leaf: BaseChatModel, kwargs: dict[str, Any]) -> bool:
        if (
            not self.config.safety_settings
            or kwargs.get("safety_settings")
            or getattr(leaf, "safety_settings", None)
        ):
            return False
        from google.genai.types import HarmBlockThreshold, HarmCategory

        kwargs["safety_settings"] = {
            HarmCategory[category]: HarmBlockThreshold[threshold]
            for category, threshold in self.config.safety_settings.items()
        }
        return True

    # --- context caching -----------------------------------------------------------------------------------

    def _plan_or_none(self, leaf: BaseChatModel, call: PreparedCall) -> _Plan | None:
        if not self.config.context_caching:
            return None
        try:
            return self._plan(leaf, call)
        except Exception as err:
            self._cache_failed(err)
            return None

    def _plan(self, leaf: BaseChatModel, call: PreparedCall) -> _Plan | None:
        if any(call.kwargs.get(key) for key in _NO_CACHE_KEYS) or getattr(leaf, "cached_content", None):
            return None
        static, rest = static_prefix(call.messages)
        if not static or not rest or any(isinstance(m, SystemMessage) for m in rest):
            return None
        minimum = self.config.context_caching_min_tokens or min_cacheable_tokens(self.model_name)
        if estimate_tokens(static) < minimum:
            return None
        api_version = cache_api_version(leaf)
        if api_version is not None and not _takes_request_http_options():
            _warn_cannot_reach(api_version)
            return None
        from google.genai.types import CreateCachedContentConfig, HttpOptions

        prepared = leaf._prepare_request(static)  # type: ignore[attr-defined]
        system = prepared["config"].system_instruction
        contents = prepared["contents"] or None
        model = str(prepared["model"])
        digest = hashlib.sha256(model.encode())
        digest.update(json.dumps(system.model_dump(mode="json") if system else None, sort_keys=True).encode())
        for content in contents or []:
            digest.update(json.dumps(content.model_dump(mode="json"), sort_keys=True).encode())
        key = cache_key(self.provider_name, _base_url(leaf), _credential(leaf), model, digest.hexdigest())
        config = CreateCachedContentConfig(
            system_instruction=system,
            contents=contents,
            ttl=f"{int(self.context_cache.ttl)}s",
            display_name=f"modelforge {self.provider_name}/{self.model_name}"[:128],
            http_options=HttpOptions(api_version=api_version) if api_version else None,
        )
        return _Plan(key, model, config, rest, api_version)

    @staticmethod
    def _use(call: PreparedCall, plan: _Plan, name: str) -> bool:
        call.kwargs["cached_content"] = name
        if plan.api_version is not None:  # sent where the cached content lives
            own = call.kwargs.get("http_options")
            if own is None or isinstance(own, dict):
                call.kwargs["http_options"] = {**(own or {}), "api_version": plan.api_version}
            else:
                call.kwargs["http_options"] = own.model_copy(update={"api_version": plan.api_version})
        call.messages = plan.rest
        call.cached_content = name
        return True

    def _cache_failed(self, err: Exception) -> None:
        if isinstance(err, CreationRefused):  # refused before and logged then: quietly without the cache
            logger.debug(
                "google context_caching skipped for %s/%s: the provider refused this prefix (%s)",
                self.provider_name,
                self.model_name,
                err,
            )
            return
        logger.warning(
            "google optimization context_caching failed for %s/%s (%s); sending the request without it",
            self.provider_name,
            self.model_name,
            reason(err),
        )


def _base_url(leaf: BaseChatModel) -> str:
    value = getattr(leaf, "base_url", None)
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, sort_keys=True, default=str)


def _credential(leaf: BaseChatModel) -> str | None:
    key = getattr(leaf, "google_api_key", None)
    if key is None:
        return None
    secret = key.get_secret_value() if hasattr(key, "get_secret_value") else key
    return str(secret) if secret else None
