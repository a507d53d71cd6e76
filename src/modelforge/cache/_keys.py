"""Cache keys: a SHA-256 over what decides an answer, and nothing else.

``cache_key(namespace, identity_digest(model, provider), messages, stop, kwargs)`` hashes one canonical
JSON document of:

* the model's identity (``model_identity``): the provider name, the class of the provider's own LangChain
  model and of the ModelForge wrappers around it, and that model's settings (model name, temperature,
  max tokens, ``default_headers`` such as ``anthropic-beta``, ...), plus the ``cache_identity()`` of
  every wrapper that has one (an optimizer's settings). Secrets (API keys, tokens, authorization and
  cookie headers: names matched by whole word), clients, callbacks and settings that do not change an
  answer (timeouts, retries, streaming) are left out; URLs lose any password;
* the messages (``normalized_messages``): type, role, name, content, the tool calls' names and arguments
  and a tool message's ``tool_call_id`` and ``status``; message ids and metadata are ignored (and so are
  the ``id``/``index`` artefacts of an AI message's content blocks, but never a user block's file id), so
  a prompt string and the same ``HumanMessage`` share a key;
* the call's options: ``stop`` and every keyword (tools, tool_choice, response_format, temperature, ...).

Values are reduced to plain data: bytes by their SHA-256, a function by its qualified name, signature,
tool schema and a hash of its source or code, a class by its name and JSON schema. A request holding a
value that cannot be reduced reliably raises ``UncacheableRequest``: that call is not cached at all,
rather than stored under a key another request could share.

Only the hash is stored, so neither the prompt nor any setting can be read back from a key.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import inspect
import json
import re
import types
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, ToolMessage
from pydantic import BaseModel, SecretBytes, SecretStr

from modelforge._urls import redacted_url
from modelforge.delegating import DelegatingChatModel

__all__ = [
    "UncacheableRequest",
    "cache_key",
    "canonical_json",
    "identity_digest",
    "model_identity",
    "normalized_messages",
]

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
# Words of a field or header name that say it holds a secret or a live connection, whatever the provider
# calls it: matched against whole words (``api_key``, ``x-api-key``, ``apiKey``, ``Authorization``), so
# ``author`` or ``max_tokens_key_hint`` words that merely contain them do not count.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "client",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "key",
        "passwd",
        "password",
        "pwd",
        "secret",
        "secrets",
        "session",
        "token",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Call keywords that do not change the answer (``stream``: invoke and stream share their entries).
_IGNORED_KWARGS = frozenset({"stream", "ls_structured_output_format", "structured_output_format"})
_SCALARS = frozenset({bool, int, float, str})
# Keys inside content blocks that are per-response artefacts.
_BLOCK_ARTEFACTS = frozenset({"id", "index"})


class _Skip(Exception):
    """A value that cannot be part of a key (a client, a callable): the field is left out."""


class UncacheableRequest(Exception):
    """A request holds a value that cannot be reduced to plain data reliably: it must not be cached."""


def _secret_name(name: str) -> bool:
    """Whether a setting or header name says it holds a secret or a live connection (by whole word)."""
    return any(word.lower() in _SECRET_WORDS for word in _WORD.findall(name))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _code_digest(code: types.CodeType) -> str:
    """A hash of a code object: its bytecode, constants (nested code too) and names."""
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        digest.update(
            _code_digest(const).encode() if isinstance(const, types.CodeType) else repr(const).encode()
        )
    digest.update(repr((code.co_names, code.co_varnames)).encode())
    return digest.hexdigest()


def _tool_schema(value: Any) -> Any:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    try:
        return convert_to_openai_tool(value)
    except Exception:
        return None


def _function(value: Any) -> dict[str, Any]:
    """A plain function (a tool, a response format) as its name, signature, schema and body."""
    fn = inspect.unwrap(value)
    if not isinstance(fn, types.FunctionType | types.MethodType):
        raise UncacheableRequest(f"a callable {type(value).__qualname__}")
    try:
        body = _sha256(inspect.getsource(fn).encode("utf-8"))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is None:
            raise UncacheableRequest(f"a function without source or code: {fn.__qualname__}") from None
        body = _code_digest(code)
    try:
        signature = str(inspect.signature(fn))
    except (TypeError, ValueError):
        signature = None
    return {
        "function": f"{fn.__module__}.{fn.__qualname__}",
        "signature": signature,
        "schema": _tool_schema(fn),
        "body": body,
    }


def _class(value: type) -> dict[str, Any]:
    """A class (a dataclass or TypedDict response format / tool) as its name and JSON schema."""
    schema = _tool_schema(value)
    if schema is None:
        raise UncacheableRequest(f"a class without a JSON schema: {value.__qualname__}")
    return {"class": f"{value.__module__}.{value.__qualname__}", "schema": schema}


def _plain(value: Any, settings: bool = False) -> Any:
    """``value`` as plain JSON data, or ``_Skip`` when it is a live object or a secret.

    ``settings``: a model's settings, where keys named like secrets are left out, URLs lose their
    password and live objects are left out (``_Skip``); in messages and call options every key and string
    counts, and a value that cannot be reduced raises ``UncacheableRequest``."""
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
            if settings and _secret_name(str(key)):
                continue
            try:
                out[str(key)] = _plain(item, settings)
            except _Skip:
                continue
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(item, settings) for item in value]
        return sorted(items, key=canonical_json) if isinstance(value, set | frozenset) else items
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes_sha256": _sha256(bytes(value))}
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | PurePath):
        return str(value)
    try:
        if isinstance(value, type) and issubclass(value, BaseModel):
            return {"schema": value.__module__ + "." + value.__qualname__, "json": value.model_json_schema()}
        if isinstance(value, BaseModel):
            return _plain(value.model_dump(mode="json"), settings)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _plain(dataclasses.asdict(value), settings)
        if settings:
            raise _Skip
        if isinstance(value, type):
            return _class(value)
        if callable(value):
            return _function(value)
    except (_Skip, UncacheableRequest):
        raise
    except Exception as err:  # a schema or dump that fails: not reducible
        if settings:
            raise _Skip from err
        raise UncacheableRequest(f"{type(value).__qualname__} ({type(err).__name__})") from err
    # A live object in a message or an option: never its repr (which may hold a secret), never its type
    # name alone (two different objects would share a key).
    raise UncacheableRequest(f"a {type(value).__qualname__} object")


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys (the form that is hashed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=256)
def _setting_names(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a chat model class that may change an answer (no secrets, clients or callbacks)."""
    return tuple(
        name for name in sorted(cls.model_fields) if name not in _IGNORED_FIELDS and not _secret_name(name)
    )


def _chain(model: BaseChatModel) -> tuple[list[str], list[Any], BaseChatModel]:
    """The wrappers' names, the ``cache_identity()`` of those that have one, and the provider's model."""
    chain: list[str] = []
    identities: list[Any] = []
    leaf = model
    while isinstance(leaf, DelegatingChatModel):
        chain.append(type(leaf).__qualname__)
        # On the class: a wrapper reads unknown attributes through to the model it wraps.
        describe = getattr(type(leaf), "cache_identity", None)
        if callable(describe):
            try:
                identities.append({"wrapper": type(leaf).__qualname__, "identity": _plain(describe(leaf))})
            except UncacheableRequest:
                raise
            except Exception as err:
                raise UncacheableRequest(f"{type(leaf).__qualname__}.cache_identity() failed") from err
        leaf = leaf.wrapped_llm
    # A get_llm model: the steps of its pipeline that shape its requests (the optimizer) describe themselves.
    forge = getattr(leaf, "forge", None)
    for step in getattr(getattr(forge, "pipeline", None), "steps", ()):
        describe = getattr(step, "cache_identity", None)
        if callable(describe):
            name = type(step).__qualname__
            try:
                identities.append({"wrapper": name, "identity": _plain(describe())})
            except UncacheableRequest:
                raise
            except Exception as err:
                raise UncacheableRequest(f"{name}.cache_identity() failed") from err
    return chain, identities, leaf


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


def _identity(provider: str, chain: list[str], identities: list[Any], leaf: BaseChatModel) -> dict[str, Any]:
    cls = type(leaf)
    identity: dict[str, Any] = {
        "provider": provider,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "wrappers": chain,
        "settings": _settings(leaf),
    }
    if identities:
        identity["wrapper_settings"] = identities
    return identity


def model_identity(model: BaseChatModel, provider: str) -> dict[str, Any]:
    """What identifies ``model`` (a wrapper chain down to the provider's model) for caching.

    Raises ``UncacheableRequest`` when a wrapper's ``cache_identity()`` cannot be reduced to plain data."""
    chain, identities, leaf = _chain(model)
    return _identity(provider, chain, identities, leaf)


_digests: dict[tuple[Any, ...], str] = {}
_DIGESTS_KEPT = 1024


# A model without wrappers (every get_llm model) asked again: its settings as they were (containers deep
# copied) and the digest, reused while its settings compare equal and its pipeline is the same object.
_by_model: dict[tuple[int, str], tuple[weakref.ref[BaseChatModel], Any, tuple[Any, ...], str]] = {}
_MODELS_KEPT = 256


def identity_digest(model: BaseChatModel, provider: str) -> str:
    """SHA-256 of ``model_identity`` (remembered per distinct identity: models are asked on every call)."""
    if isinstance(model, DelegatingChatModel):
        return _identity_digest(model, provider)
    state = model.__dict__
    values = tuple(map(state.get, _setting_names(type(model))))
    pipeline = getattr(getattr(model, "_forge", None), "pipeline", None)
    kept = _by_model.get((id(model), provider))
    if kept is not None and kept[0]() is model and kept[1] is pipeline and kept[2] == values:
        return kept[3]
    digest = _identity_digest(model, provider)
    try:
        # Deep copies: a setting changed in place (``llm.model_kwargs["seed"] = 2``) no longer compares equal.
        remembered = (weakref.ref(model), pipeline, copy.deepcopy(values), digest)
    except Exception:  # a setting that cannot be copied (or a model without weak references): not kept
        return digest
    if len(_by_model) >= _MODELS_KEPT:
        _by_model.clear()
    _by_model[(id(model), provider)] = remembered
    return digest


def _identity_digest(model: BaseChatModel, provider: str) -> str:
    chain, identities, leaf = _chain(model)
    settings = _settings(leaf)
    memo = (
        provider,
        type(leaf),
        tuple(chain),
        canonical_json(identities),
        tuple(
            (name, value if value is None or type(value) in _SCALARS else canonical_json(value))
            for name, value in settings.items()
        ),
    )
    digest = _digests.get(memo)
    if digest is None:
        identity = _identity(provider, chain, identities, leaf)
        digest = hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()
        if len(_digests) >= _DIGESTS_KEPT:
            _digests.clear()
        _digests[memo] = digest
    return digest


def _content(content: Any, answer: bool) -> Any:
    """Content as plain data; ``answer``: an AI message's, whose blocks' ``id``/``index`` are artefacts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        blocks: list[Any] = []
        for block in content:
            if answer and isinstance(block, Mapping):
                block = {key: value for key, value in block.items() if key not in _BLOCK_ARTEFACTS}
            blocks.append(_plain(block))
        return blocks
    return _plain(content)


def normalized_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The parts of each message that decide an answer (no ids, no metadata).

    Raises ``UncacheableRequest`` when a message holds a value that cannot be reduced to plain data."""
    out: list[dict[str, Any]] = []
    for message in messages:
        answer = isinstance(message, AIMessage)
        item: dict[str, Any] = {"type": message.type, "content": _content(message.content, answer)}
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
            item["status"] = message.status
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
    """``namespace:<sha256 hex>`` for one request; ``identity`` is the model's ``identity_digest``.

    Raises ``UncacheableRequest`` when the request holds a value that cannot be reduced reliably."""
    document = {
        "v": 2,
        "model": identity,
        "messages": normalized_messages(messages),
        "options": _call_options(stop, kwargs),
    }
    digest = hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
    return f"{namespace}:{digest}"
