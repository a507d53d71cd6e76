"""Keeping secrets out of messages, reprs and logs.

Every secret ModelForge loads (API keys, OAuth and Copilot tokens) is registered here with
``register_secret``; ``mask_secrets`` replaces each registered value, and anything shaped like a well-known
key format, before text reaches an exception, a repr or a log line. ``mask`` gives the short display form
used by ``config show`` and ``auth status``.
"""

from __future__ import annotations

import re
import threading

__all__ = ["mask", "mask_secrets", "register_secret"]

_MIN_SECRET_LENGTH = 8
_known: set[str] = set()
_lock = threading.Lock()

# Shapes of keys and tokens that must never be shown even when nobody registered them.
_PATTERNS = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic
    r"|sk-(?:proj-|or-v1-|svcacct-)?[A-Za-z0-9_\-]{16,}"  # OpenAI, OpenRouter
    r"|gh[opusr]_[A-Za-z0-9]{16,}"  # GitHub OAuth / PAT / user tokens
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|tid=[A-Za-z0-9;:=_\-.]{16,}"  # GitHub Copilot session tokens
    r"|(?<=Bearer )[A-Za-z0-9._\-]{8,})"
)


def register_secret(value: str | None) -> None:
    """Remember a secret so it is masked wherever it might appear later."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _known.add(value)


def mask(value: str | None) -> str:
    """The display form of a secret: its last four characters at most, never the whole value."""
    if not value:
        return "(not set)"
    if len(value) < 12:
        return "****"
    return "****" + value[-4:]


def mask_secrets(text: str) -> str:
    """``text`` with every known secret and every key-shaped string replaced by its masked form."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, mask(secret))
    return _PATTERNS.sub(lambda m: mask(m.group(0)), text)
