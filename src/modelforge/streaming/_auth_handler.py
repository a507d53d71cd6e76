"""``StreamingAuthHandler``: 2.3.0's callback that refreshes an OAuth token while a long stream runs.

ModelForge refreshes device-flow tokens on its own before they expire (``modelforge.auth``), so a model
built by ``get_llm`` needs no handler. Code written for 2.3.0 that attaches one keeps working: on each new
token, at most once every ``check_interval`` seconds, it looks at the strategy's stored token and, when it
expires within ``token_refresh_threshold`` seconds, has the strategy refresh it (``get_credentials``) off
the event loop. A failed refresh is logged, never raised into the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from modelforge.auth.strategies import DeviceFlowAuth
from modelforge.auth.tokens import TokenRecord

__all__ = ["StreamingAuthHandler"]

logger = logging.getLogger("modelforge.streaming")

_pending: set[asyncio.Future[Any]] = set()


class StreamingAuthHandler(BaseCallbackHandler):
    """Refreshes ``auth_strategy``'s OAuth token during a stream when it is about to expire."""

    def __init__(self, provider_name: str, auth_strategy: Any, token_refresh_threshold: int = 300) -> None:
        super().__init__()
        self.provider_name = provider_name
        self.auth_strategy = auth_strategy
        self.token_refresh_threshold = token_refresh_threshold
        self.check_interval = 60.0  # seconds between two looks at the token
        self._last_check: float | None = None

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.check_token_validity()

    def check_token_validity(self) -> None:
        """Refresh the token (off the event loop) when it expires within ``token_refresh_threshold``."""
        if not isinstance(self.auth_strategy, DeviceFlowAuth):
            return
        now = time.monotonic()
        if self._last_check is not None and now - self._last_check < self.check_interval:
            return
        self._last_check = now
        info = self.auth_strategy.get_token_info()
        record = TokenRecord.from_auth_data(info) if info else None
        if record is None or record.expires_at is None:
            return
        if record.expires_at - time.time() > self.token_refresh_threshold:
            return
        logger.info("The token for %s expires soon; refreshing it during the stream", self.provider_name)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._refresh()
            return
        future = loop.run_in_executor(None, self._refresh)
        _pending.add(future)
        future.add_done_callback(_pending.discard)

    def _refresh(self) -> None:
        try:
            if self.auth_strategy.get_credentials() is None:
                logger.warning("Refreshing the token for %s during the stream failed", self.provider_name)
        except Exception as err:  # never break the stream over a refresh
            logger.warning(
                "Refreshing the token for %s during the stream failed: %s",
                self.provider_name,
                type(err).__name__,
            )
