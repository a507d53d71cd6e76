"""Provider-side prompt caches on the test server: Anthropic cache breakpoints, Gemini cached contents.

(Stub: filled in by the optimizer work.) ``cache_routes`` gives the pattern routes the router adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelforge.testing._http import PatternRoute

if TYPE_CHECKING:
    from modelforge.testing.server import ProviderServer

__all__ = ["ProviderCaches", "cache_routes"]


class ProviderCaches:
    """What the server remembers of cached prompt prefixes and cached contents."""


def cache_routes(server: ProviderServer) -> list[PatternRoute]:
    """``(method, path regex, handler)`` for the cached-content endpoints."""
    return []
