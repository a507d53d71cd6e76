"""Provider batch APIs on the test server: OpenAI Files + Batches, Anthropic Message Batches.

(Stub: filled in by the batch work.) ``batch_routes`` gives the pattern routes the router adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelforge.testing._http import PatternRoute

if TYPE_CHECKING:
    from modelforge.testing.server import ProviderServer

__all__ = ["BatchService", "batch_routes"]


class BatchService:
    """The batch jobs and uploaded files of one server."""

    def __init__(self, server: ProviderServer) -> None:
        self._server = server


def batch_routes(server: ProviderServer) -> list[PatternRoute]:
    """``(method, path regex, handler)`` for the batch endpoints."""
    return []
