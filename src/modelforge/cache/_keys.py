"""Cache keys: a SHA-256 over what decides an answer, and nothing else.

``cache_key(namespace, identity_digest(model, provider), messages, stop, kwargs)`` hashes one canonical
JSON document of:

* the model's identity (``model_identity``): the provider name, the class of the provider's own LangChain
  model and of the ModelForge wrappers around it, and that model's settings (model name, temperature,
  max tokens, ...). Secrets (API keys, tokens, headers), clients, callbacks and settings that do not change
  an answer (timeouts, retries, streaming) are left out; URLs lose any password;
* the messages (``normalized_messages``): type, role, name, content, the tool calls' names and arguments
  and a tool message's ``tool_call_id``; message ids and metadata are ignored, so a prompt string and the
  same ``HumanMessage`` share a key;
* the call's options: ``stop`` and every keyword (tools, tool_choice, response_format, temperature, ...).

Only the hash is stored, so neither the prompt nor any setting can be read back from a key.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, ToolMessage
from pydantic import BaseModel, SecretBytes, SecretStr

from modelforge.delegating import DelegatingChatModel
from modelforge.policies._ratelimit_config import redacted_url

__all__ = ["cache_key", "canonical_json", "identity_digest", "model_identity", "normalized_messages"]

# Fields of a chat model that never change an answer (or must never be hashed: clients, callbacks).
_IGNORED_FIELDS = frozenset(
    {
        "cache",
        "callback_manager",
        "callbacks",
        "custom_get_token_ids",
        "default_request_timeout",
        "disable_streaming",
        "include_response_headers",
        "max_retries",
        "metadata",
        "rate_limiter",
        "request_timeout",
        "stream_usage",
        "streaming",
        "tags",
        "timeout",
        "verbose",
        "wrapped_llm",
    }
)
# Field names that hold secrets or live connections, whatever the provider calls them.
_SECRET_NAME = re.compile(
    r"(api_key|apikey|secret|password|passwd|token$|^token|credential|auth|header|cookie|client|session)",
    re.IGNORECASE,
)
# Call keywords that do not change the answer (``stream``: invoke and stream share their entries).
_IGNORED_KWARGS = frozenset({"stream", "ls_structured_output_format", "structured_output_format"})
_SCALARS = frozenset({bool, int, float, str})
# Keys inside content blocks that are per-response artefacts.
_BLOCK_ARTEFACTS = frozenset({"id", "index"})


class _Skip(Exception):
    """A value that cannot be part of a key (a client, a callable): the field is left out."""


def _plain(value: Any, settings: bool = False) -> Any:
    """``value`` as plain JSON data, or ``_Skip`` when it is a live object or a secret.

    ``settings``: a model's settings, where keys named like secrets are left out and URLs lose their
    password (in messages and call options every key and string counts)."""
    if value is None or isinstance(value, bool | int | float | str):
        if settings and isinstance(value, str) and "://" in value:
            return redacted_url(value)
        return value
    if isinstance(value, SecretStr | SecretBytes):
        if settings:
            raise _Skip
        return "<secret>"
    if isinstance(value, enum.Enum):
        return _plain(value.value, settings)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if settings and _SECRET_NAME.search(str(key)):
                continue
            try:
                out[str(key)] = _plain(item, settings)
            except _Skip:
                continue
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(item, settings) for item in value]
        return sorted(items, key=canonical_json) if isinstance(value, set | frozenset) else items
    if isinstance(value, type) and issubclass(value, BaseModel):
        return {"schema": value.__module__ + "." + value.__qualname__, "json": value.model_json_schema()}
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"), settings)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value), settings)
    if settings:
        raise _Skip
    # A live object in a message or an option (rare): its type, never its repr (which may hold a secret).
    return "<" + type(value).__qualname__ + ">"


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys (the form that is hashed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=256)
def _setting_names(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a chat model class that may change an answer (no secrets, clients or callbacks)."""
    return tuple(
        name
        for name in sorted(cls.model_fields)
        if name not in _IGNORED_FIELDS and not _SECRET_NAME.search(name)
    )


def _chain(model: BaseChatModel) -> tuple[list[str], BaseChatModel]:
    chain: list[str] = []
    leaf = model
    while isinstance(leaf, DelegatingChatModel):
        chain.append(type(leaf).__qualname__)
        leaf = leaf.wrapped_llm
    return chain, leaf


def _settings(leaf: BaseChatModel) -> dict[str, Any]:
    values: dict[str, Any] = {}
    state = leaf.__dict__
    for name in _setting_names(type(leaf)):
        value = state.get(name)
        if value is None or type(value) in _SCALARS:
            if type(value) is str and "://" in value:
                value = redacted_url(value)
            values[name] = value
            continue
        try:
            values[name] = _plain(value, settings=True)
        except _Skip:
            continue
    return values


def model_identity(model: BaseChatModel, provider: str) -> dict[str, Any]:
    """What identifies ``model`` (a wrapper chain down to the provider's model) for caching."""
    chain, leaf = _chain(model)
    cls = type(leaf)
    return {
        "provider": provider,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "wrappers": chain,
        "settings": _settings(leaf),
    }


_digests: dict[tuple[Any, ...], str] = {}
_DIGESTS_KEPT = 1024


def identity_digest(model: BaseChatModel, provider: str) -> str:
    """SHA-256 of ``model_identity`` (remembered per distinct identity: models are asked on every call)."""
    chain, leaf = _chain(model)
    settings = _settings(leaf)
    memo = (
        provider,
        type(leaf),
        tuple(chain),
        tuple(
            (name, value if value is None or type(value) in _SCALARS else canonical_json(value))
            for name, value in settings.items()
        ),
    )
    digest = _digests.get(memo)
    if digest is None:
        cls = type(leaf)
        identity = {
            "provider": provider,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "wrappers": chain,
            "settings": settings,
        }
        digest = hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()
        if len(_digests) >= _DIGESTS_KEPT:
            _digests.clear()
        _digests[memo] = digest
    return digest


def _content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        blocks: list[Any] = []
        for block in content:
            if isinstance(block, Mapping):
                block = {key: value for key, value in block.items() if key not in _BLOCK_ARTEFACTS}
            blocks.append(_plain(block))
        return blocks
    return str(content)


def normalized_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The parts of each message that decide an answer (no ids, no metadata)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"type": message.type, "content": _content(message.content)}
        if message.name:
            item["name"] = message.name
        if isinstance(message, ChatMessage):
            item["role"] = message.role
        if isinstance(message, AIMessage) and message.tool_calls:
            item["tool_calls"] = [
                {"name": call["name"], "args": _plain(call.get("args") or {})} for call in message.tool_calls
            ]
        if isinstance(message, ToolMessage):
            item["tool_call_id"] = message.tool_call_id
        out.append(item)
    return out


def _call_options(stop: list[str] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"stop": list(stop) if stop else None}
    for name in sorted(kwargs):
        if name not in _IGNORED_KWARGS:
            options[name] = _plain(kwargs[name])
    return options


def cache_key(
    namespace: str,
    identity: str,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
) -> str:
    """``namespace:<sha256 hex>`` for one request; ``identity`` is the model's ``identity_digest``."""
    document = {
        "v": 1,
        "model": identity,
        "messages": normalized_messages(messages),
        "options": _call_options(stop, kwargs),
    }
    digest = hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
    return f"{namespace}:{digest}"
