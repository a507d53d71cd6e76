"""URLs that may carry a password (``redis://:secret@host:6379/0``): shown masked, or stored without it."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

__all__ = ["redacted_url", "url_without_password"]


def _with_netloc(parts: SplitResult, password: str | None) -> str:
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if password is not None:
        return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def redacted_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***`` (safe to log or show)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        return url if parts.password is None else _with_netloc(parts, "***")
    except ValueError:
        return "<unparsable url>"


def url_without_password(url: str | None) -> str | None:
    """``url`` with its password left out (safe to store); None when it cannot be parsed."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        return url if parts.password is None else _with_netloc(parts, None)
    except ValueError:
        return None
