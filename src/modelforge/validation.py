"""Checking what users type before ModelForge acts on it (the 2.3.0 ``InputValidator``).

Every check returns the cleaned value or raises ``InvalidInputError`` / ``FileValidationError`` with the
2.3.0 ``error_code`` and a message that says what is wrong and how to fix it (the fix is also in
``suggestion``). Secrets are never echoed: ``validate_api_key`` names the provider and the problem, never
the key, and a URL's ``user:password@`` part is dropped from every message.

Decisions that differ from 2.3.0 (all fixes of rejected-but-valid input):

* API keys: only obviously broken values are rejected (empty, whitespace or control characters inside,
  quotes, too short, the wrong family's prefix for a known provider). Modern OpenAI keys (``sk-proj-``,
  ``sk-svcacct-``), OpenRouter ``sk-or-v1-``, Anthropic ``sk-ant-`` and Google ``AIza`` keys are accepted;
  2.3.0 rejected every OpenAI key that was not ``sk-`` plus 48 alphanumerics.
* URLs: with ``require_https=True``, plain ``http`` is still accepted for loopback hosts (``localhost``,
  ``*.localhost``, ``127.0.0.0/8``, ``::1``): traffic to them never leaves the machine, and local servers
  (Ollama, vLLM, LM Studio) speak plain http.
* Model names may be up to 256 characters (fine-tuned and routed names exceed 2.3.0's 100).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from modelforge._secrets import register_secret
from modelforge.exceptions import FileValidationError, InvalidInputError

__all__ = ["InputValidator"]

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _invalid(problem: str, fix: str, code: str) -> InvalidInputError:
    """An ``InvalidInputError`` whose message names the problem and the fix."""
    return InvalidInputError(f"{problem}. {fix}", suggestion=fix, error_code=code)


_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#@\s]*@")


def _display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, safe to show in a message."""
    return _USERINFO.sub(lambda match: match.group(1) or "", url)


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class InputValidator:
    """Validates user input; every method is a classmethod returning the cleaned value."""

    PROVIDER_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")
    PROVIDER_NAME_MAX_LENGTH = 64
    MODEL_NAME_MAX_LENGTH = 100  # 2.3.0's limit
    URL_SCHEMES = frozenset({"http", "https"})
    MAX_DISPLAY_CHOICES = 8
    MIN_API_KEY_LENGTH = 8

    # provider -> (accepted prefixes, minimum length, human description). Providers not listed only get the
    # generic checks, so keys of custom OpenAI-compatible servers are never refused for their shape.
    API_KEY_RULES: dict[str, tuple[tuple[str, ...], int, str]] = {
        "openai": (("sk-",), 20, "OpenAI keys start with 'sk-' (e.g. 'sk-proj-...', 'sk-svcacct-...')"),
        "openrouter": (("sk-or-",), 20, "OpenRouter keys start with 'sk-or-v1-'"),
        "anthropic": (("sk-ant-",), 20, "Anthropic keys start with 'sk-ant-'"),
        "google": (("AIza",), 30, "Google AI Studio keys start with 'AIza'"),
        "google_genai": (("AIza",), 30, "Google AI Studio keys start with 'AIza'"),
        "gemini": (("AIza",), 30, "Google AI Studio keys start with 'AIza'"),
    }

    # 2.3.0's name: a pattern per provider a key must match. Built from API_KEY_RULES, so modern keys
    # ('sk-proj-...') match, where 2.3.0's patterns refused them.
    API_KEY_PATTERNS: ClassVar[dict[str, re.Pattern[str]]] = {}

    @classmethod
    def validate_provider_name(cls, provider: str | None) -> str:
        """Normalise a provider name: strip, lower-case, ``-`` to ``_``.

        ``" GitHub-Copilot "`` becomes ``"github_copilot"``; empty names and other characters are refused.
        """
        if provider is None or not str(provider).strip():
            raise _invalid(
                "Provider name is empty",
                "Give a provider name such as 'openai' or 'ollama'",
                "EMPTY_PROVIDER",
            )
        name = str(provider).strip().lower().replace("-", "_")
        if len(name) > cls.PROVIDER_NAME_MAX_LENGTH or not cls.PROVIDER_NAME_PATTERN.match(name):
            shown = name if len(name) <= cls.PROVIDER_NAME_MAX_LENGTH else name[:20] + "..."
            raise _invalid(
                f"Invalid provider name {shown!r}",
                "Use only letters, digits, '-' and '_', starting with a letter or digit, at most "
                f"{cls.PROVIDER_NAME_MAX_LENGTH} characters (e.g. 'openai', 'github-copilot')",
                "INVALID_PROVIDER_FORMAT",
            )
        return name

    @classmethod
    def validate_model_name(cls, model: str | None) -> str:
        """Strip a model name and check it is non-empty, not too long and free of control characters."""
        if not model:
            raise _invalid(
                "Model name is empty",
                "Give a model name such as 'gpt-4o-mini' or 'qwen3:1.7b'",
                "EMPTY_MODEL",
            )
        if not str(model).strip():  # 2.3.0's code for a name of blanks only
            raise _invalid(
                "Model name is only whitespace",
                "Give a model name such as 'gpt-4o-mini' or 'qwen3:1.7b'",
                "INVALID_MODEL_NAME",
            )
        name = str(model).strip()
        if len(name) > cls.MODEL_NAME_MAX_LENGTH:
            raise _invalid(
                f"Model name is too long ({len(name)} characters)",
                f"Use the provider's model id, at most {cls.MODEL_NAME_MAX_LENGTH} characters",
                "MODEL_NAME_TOO_LONG",
            )
        if _CONTROL_CHARS.search(name):
            raise _invalid(
                "Model name contains control characters (a newline or tab?)",
                "Remove them; copy the model id exactly as the provider lists it",
                "INVALID_MODEL_NAME",
            )
        return name

    @classmethod
    def validate_api_key(cls, api_key: str | None, provider: str) -> str:
        """Check an API key's shape and return it stripped; the key never appears in an error.

        Rejects only what cannot work: empty, whitespace or control characters inside, quotes, shorter than
        ``MIN_API_KEY_LENGTH`` (or the provider's minimum), or a known provider's key without its prefix.
        """
        who = str(provider).strip() or "this provider"
        reveal = getattr(api_key, "get_secret_value", None)  # a pydantic SecretStr
        if callable(reveal):
            api_key = reveal()
        if api_key is None or api_key == "":
            raise _invalid(
                f"The API key for {who} is empty", f"Paste the API key from {who}'s console", "EMPTY_API_KEY"
            )
        key = str(api_key).strip()
        if not key:
            raise _invalid(
                f"The API key for {who} is only whitespace",
                f"Paste the API key from {who}'s console",
                "INVALID_API_KEY",
            )

        def bad(problem: str, fix: str) -> InvalidInputError:
            return _invalid(f"The API key for {who} {problem}", fix, "INVALID_API_KEY_FORMAT")

        if key.lower().startswith("bearer "):
            raise bad("starts with 'Bearer '", "Paste only the key, without the 'Bearer ' prefix")
        if any(ch.isspace() for ch in key) or _CONTROL_CHARS.search(key):
            raise bad("contains whitespace or control characters", "Paste the key again as one unbroken line")
        if any(ch in "\"'`" for ch in key):
            raise bad("contains quote characters", "Paste the key without surrounding quotes")
        if not key.isascii():
            raise bad("contains non-ASCII characters", "Copy the key again from the provider's console")

        rule = cls.API_KEY_RULES.get(who.lower().replace("-", "_"))
        prefixes, min_length, description = rule if rule else ((), cls.MIN_API_KEY_LENGTH, "")
        if prefixes and not key.startswith(prefixes):
            raise bad("does not look like one of its keys", f"{description}; check you copied the right key")
        if len(key) < min_length:
            raise bad(
                f"is too short ({len(key)} characters, expected at least {min_length})",
                "Copy the whole key; it may have been cut off",
            )
        register_secret(key)
        return key

    @classmethod
    def validate_file_path(
        cls,
        file_path: str | os.PathLike[str] | None,
        must_exist: bool = False,
        must_be_writable: bool = False,
    ) -> Path:
        """Expand ``~`` and resolve ``file_path``; optionally require that it exists and/or can be written.

        With ``must_be_writable`` and a file that does not exist yet, the nearest existing ancestor directory
        must be writable (missing directories can then be created by the caller).
        """
        if file_path is None or not str(file_path).strip():
            raise FileValidationError("(empty)", "file path is empty", suggestion="Give a file path")
        raw = str(file_path)
        if "\x00" in raw:
            raise FileValidationError(
                raw.replace("\x00", "\\0"), "file path contains a NUL byte", suggestion="Remove the NUL byte"
            )
        try:
            path = Path(raw).expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as err:
            raise FileValidationError(
                raw, f"invalid file path ({err})", suggestion="Check the path's syntax"
            ) from err

        if must_exist and not path.exists():
            raise FileValidationError(
                str(path), "does not exist", suggestion="Check the path, or create the file first"
            )
        if must_be_writable:
            cls._check_writable(path)
        return path

    @staticmethod
    def _check_writable(path: Path) -> None:
        if path.is_dir():
            raise FileValidationError(
                str(path), "is a directory, not a file", suggestion="Give a file name inside that directory"
            )
        if path.exists():
            if not os.access(path, os.W_OK):
                raise FileValidationError(
                    str(path), "is not writable", suggestion="Change its permissions or choose another file"
                )
            return
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise FileValidationError(
                str(path), f"{ancestor} is a file, not a directory", suggestion="Choose another location"
            )
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise FileValidationError(
                str(path),
                f"directory {ancestor} is not writable",
                suggestion="Change the directory's permissions or choose another location",
            )

    @classmethod
    def validate_url(cls, url: str | None, require_https: bool = True) -> str:
        """Check ``url`` is an absolute http(s) URL with a host; return it stripped.

        With ``require_https`` (the default), ``http`` is refused except for loopback hosts.
        """
        if url is None or not str(url).strip():
            raise _invalid("URL is empty", "Give a URL such as 'https://api.openai.com/v1'", "EMPTY_URL")
        text = str(url).strip()
        shown = _display_url(text)
        if any(ch.isspace() for ch in text) or _CONTROL_CHARS.search(text):
            raise _invalid(
                f"URL {shown!r} contains whitespace", "Remove the spaces or line breaks", "INVALID_URL_FORMAT"
            )
        try:
            parts = urlsplit(text)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError as err:
            raise _invalid(
                f"URL {shown!r} cannot be parsed ({err})", "Check the host and port", "INVALID_URL_FORMAT"
            ) from None
        scheme = parts.scheme.lower()
        if not scheme or "://" not in text:
            raise _invalid(
                f"URL {shown!r} has no scheme",
                f"Start it with https:// (e.g. 'https://{shown}')",
                "URL_MISSING_SCHEME",
            )
        if scheme not in cls.URL_SCHEMES:
            raise _invalid(
                f"URL scheme {scheme!r} is not supported",
                "Use an http:// or https:// URL",
                "INVALID_URL_SCHEME",
            )
        if not host:
            raise _invalid(
                f"URL {shown!r} has no host",
                "Include the host name, e.g. 'https://api.example.com'",
                "URL_MISSING_DOMAIN",
            )
        if require_https and scheme == "http" and not _is_loopback(host):
            raise _invalid(
                f"URL {shown!r} must use HTTPS (plain http is allowed only for localhost)",
                f"Use '{'https' + shown[len(scheme) :]}'",
                "HTTPS_REQUIRED",
            )
        return text

    @classmethod
    def validate_positive_integer(
        cls, value: int | str | float | None, name: str, min_value: int = 1, max_value: int | None = None
    ) -> int:
        """Convert ``value`` (an int, a numeric string or a whole float) to ``int`` within the bounds."""
        if value is None:
            raise _invalid(
                f"{name} is missing", f"Give a whole number >= {min_value} for {name}", "NULL_VALUE"
            )
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float):
            number = int(value) if math.isfinite(value) and value.is_integer() else None
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if number is None:
            raise _invalid(
                f"{name} must be a whole number, got {str(value)[:40]!r}",
                f"Give a whole number for {name}, e.g. {min_value}",
                "INVALID_INTEGER",
            )
        if number < min_value:
            raise _invalid(
                f"{name} is {number}, below the minimum", f"Use {name} >= {min_value}", "VALUE_TOO_SMALL"
            )
        if max_value is not None and number > max_value:
            raise _invalid(
                f"{name} is {number}, above the maximum", f"Use {name} <= {max_value}", "VALUE_TOO_LARGE"
            )
        return number

    @classmethod
    def validate_positive_number(cls, value: float | int | str | None, name: str) -> float:
        """Convert ``value`` to a finite ``float`` > 0 (durations such as timeouts). Not in 2.3.0."""
        number: float | None = None
        if value is not None and not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        if number is None or math.isnan(number) or number <= 0:
            raise _invalid(
                f"{name} must be a number greater than 0, got {str(value)[:40]!r}",
                f"Give {name} in seconds, e.g. 30",
                "INVALID_NUMBER",
            )
        return number

    @classmethod
    def validate_choice(
        cls, value: str | None, choices: Iterable[str], name: str, case_sensitive: bool = False
    ) -> str:
        """Return the member of ``choices`` that ``value`` names (in the spelling of ``choices``)."""
        options = list(choices)
        listed = ", ".join(sorted(options)[: cls.MAX_DISPLAY_CHOICES])
        if len(options) > cls.MAX_DISPLAY_CHOICES:
            listed += f" (and {len(options) - cls.MAX_DISPLAY_CHOICES} more)"
        if value is None or not str(value).strip():
            raise _invalid(f"{name} is empty", f"Choose one of: {listed}", "EMPTY_CHOICE")
        text = str(value).strip()
        if case_sensitive:
            if text in options:
                return text
        else:
            folded = {option.casefold(): option for option in options}
            if text.casefold() in folded:
                return folded[text.casefold()]
        raise _invalid(f"Invalid {name} {text[:60]!r}", f"Choose one of: {listed}", "INVALID_CHOICE")


InputValidator.API_KEY_PATTERNS.update(
    {
        provider: re.compile(
            "^(?:"
            + "|".join(re.escape(prefix) for prefix in prefixes)
            + r")[^\s\x00-\x1f]{"
            + str(max(length - min(len(p) for p in prefixes), 1))
            + ",}$"
        )
        for provider, (prefixes, length, _) in InputValidator.API_KEY_RULES.items()
    }
)


def split_model_spec(spec: str) -> tuple[str, str | None]:
    """``"provider:model"`` or ``"provider/model"`` as ``(provider, model)``; a bare name is a provider.

    The first ``:`` or ``/`` separates them (provider names have neither), so the model keeps the rest:
    ``"ollama:qwen3:1.7b"`` is ``("ollama", "qwen3:1.7b")`` and ``"openrouter:anthropic/claude-sonnet-4"``
    is ``("openrouter", "anthropic/claude-sonnet-4")``. ``provider:model`` is the convention of LangChain's
    ``init_chat_model`` and most libraries; ``provider/model`` is ModelForge's own.
    """
    text = spec.strip()
    cut = min((i for i in (text.find(":"), text.find("/")) if i >= 0), default=-1)
    if cut < 0:
        return text, None
    provider, model = text[:cut].strip(), text[cut + 1 :].strip()
    if not provider:
        raise InvalidInputError(
            f"{spec!r} names no provider",
            suggestion='Write it as "provider:model" or "provider/model", e.g. "openai:gpt-4o-mini"',
            error_code="INVALID_MODEL_SPEC",
        )
    return provider, model or None
