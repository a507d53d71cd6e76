"""What every provider batch API does for ModelForge, and the pieces they share.

``BatchBackend`` is the interface of one provider's batch API (``_openai_api``, ``_anthropic_api``): turn
one input into a request line, submit a list of them as one provider job, look at a job, and collect its
outcomes by ``custom_id`` (an ``AIMessage`` or a ModelForge error per item). ``ControlCalls`` runs the
control-plane calls (upload, create, retrieve, download) under the provider's retry policy (the ``retry``
section's ``batch`` settings) and turns SDK errors into ModelForge errors through the provider family.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from langchain_core.messages import AIMessage, BaseMessage

from modelforge.exceptions import ModelForgeError, ProviderError
from modelforge.policies.retry import ProviderRetryConfig
from modelforge.providers.base import ProviderFamily

__all__ = ["BatchBackend", "ControlCalls", "Outcome", "PartStatus", "Shape", "unanswered"]

Outcome = AIMessage | Exception
# Shapes a request body as the model's live calls are shaped (the provider optimizer's batch step).
Shape = Callable[[dict[str, Any]], dict[str, Any]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PartStatus:
    """One look at a provider job: its status word, whether it ended, and its item counts so far."""

    status: str
    ended: bool
    succeeded: int
    failed: int
    total: int
    raw: Any = None  # the SDK's job object, for ``collect``


class BatchBackend(Protocol):
    """One provider's batch API."""

    name: str

    def request(
        self, custom_id: str, messages: list[BaseMessage], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The request line for one input (raises when the input cannot be sent this way)."""
        ...

    async def submit(self, requests: list[dict[str, Any]], *, job_id: str, part: int) -> str:
        """Create one provider job holding ``requests``; its provider id."""
        ...

    async def poll(self, provider_job_id: str) -> PartStatus: ...

    async def collect(
        self, provider_job_id: str, status: PartStatus, custom_ids: list[str]
    ) -> dict[str, Outcome]:
        """The outcome of every item the provider reported on, by ``custom_id`` (``custom_ids``: the job's
        items in submission order)."""
        ...


def unanswered(provider: str, code: str, message: str) -> ProviderError:
    """The error of an item the provider never ran (expired, cancelled, not submitted, not reported).

    ``code`` is the provider's word (``batch_expired``, ``expired``...); ``error_code`` is ``BATCH_EXPIRED``.
    """
    word = code.lower().removeprefix("batch_")
    return ProviderError(
        f"Provider '{provider}' did not answer this batch request: {message}",
        provider=provider,
        error_code=f"BATCH_{word.upper()}",
        retryable=True,
        suggestion="Send it again (live calls go at once: use_batch_api=False).",
    )


class ControlCalls:
    """Runs a provider's batch control calls with its retry policy and error translation."""

    def __init__(
        self,
        family: ProviderFamily,
        *,
        provider: str,
        model: str | None,
        retry: Mapping[str, Any] | None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._family = family
        self.provider = provider
        self.model = model
        self._policy = ProviderRetryConfig.from_config(retry, "batch").policy()
        self._sleep = sleep

    def translate(self, err: Exception) -> Exception:
        return self._family.translate_error(err, provider=self.provider, model=self.model)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, tried again while the provider's retry policy says so."""
        started = time.monotonic()
        retries = 0
        while True:
            try:
                return await fn(*args, **kwargs)
            except Exception as err:
                translated = self.translate(err)
                decision = self._policy.decide_at(
                    translated, retries, time.monotonic() - started, random.random()
                )
                if not decision.retry:
                    if translated is err:
                        raise
                    if isinstance(translated, ModelForgeError) and retries:
                        translated.details.setdefault("attempts", retries + 1)
                    raise translated from err
            retries += 1
            await self._sleep(decision.wait)
