"""What every provider batch API does for ModelForge, and the pieces they share.

``BatchBackend`` is the interface of one provider's batch API (``_openai_api``, ``_anthropic_api``): turn
one input into a request line, submit a list of them as one provider job, look at a job, and collect its
outcomes by ``custom_id`` (an ``AIMessage`` or a ModelForge error per item). ``ControlCalls`` runs the
control-plane calls (upload, create, retrieve, download) under the provider's retry policy (the ``retry``
section's ``batch`` settings) and turns SDK errors into ModelForge errors through the provider family.

Creating a job is not idempotent: a create whose answer was lost (a timeout, a dropped connection, a 5xx)
may have created the job, and trying it again would create (and bill) it twice. ``ControlCalls.create``
therefore tries a create again only after a failure that surely created nothing (a 4xx such as 429), or
after ``find`` (a look-up by the job's metadata) found no job; with no ``find`` (Anthropic has no metadata)
an ambiguous failure is ``CreateUnknown``: the part is recorded as "unknown" and ``resume_batch`` looks it
up. A 404/405/501 from the batch endpoints means the server has no batch API: ``NoBatchApi``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from langchain_core.messages import AIMessage, BaseMessage

from modelforge.exceptions import ConfigurationError, ModelForgeError, ProviderError
from modelforge.policies.retry import ProviderRetryConfig, ProviderRetryPolicy
from modelforge.providers.base import ProviderFamily

__all__ = [
    "BatchBackend",
    "ControlCalls",
    "CreateUnknown",
    "NoBatchApi",
    "Outcome",
    "PartStatus",
    "Shape",
    "ambiguous",
    "status_of",
    "unanswered",
]

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


class NoBatchApi(ConfigurationError):
    """The server answered 404/405/501 at its batch endpoints: it has no batch API (vLLM, OpenRouter...)."""

    default_code = "BATCH_API_UNAVAILABLE"


class CreateUnknown(ProviderError):
    """A create failed in a way that may have created the job anyway, and it cannot be looked up now."""

    default_code = "BATCH_UNKNOWN"


def status_of(err: BaseException) -> int | None:
    """The HTTP status of an SDK or ModelForge error (or of its cause); ``None`` when there was none."""
    current: BaseException | None = err
    while current is not None:
        status = getattr(current, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
        current = current.__cause__
    return None


def ambiguous(err: BaseException) -> bool:
    """Whether a failed create may have created the job (no answer, a timeout or a server error)."""
    status = status_of(err)
    return status is None or status >= 500 or status == 408


class BatchBackend(Protocol):
    """One provider's batch API."""

    name: str

    def request(
        self, custom_id: str, messages: list[BaseMessage], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The request line for one input (raises when the input cannot be sent this way)."""
        ...

    async def upload(self, requests: list[dict[str, Any]], *, job_id: str, part: str) -> str | None:
        """What must exist before the create (OpenAI: the input file, its id); ``None`` when nothing."""
        ...

    async def create(
        self, requests: list[dict[str, Any]], *, upload_id: str | None, job_id: str, part: str, since: float
    ) -> str:
        """Create one provider job holding ``requests``, at most once; its provider id."""
        ...

    async def find(
        self, *, job_id: str, part: str, count: int, since: float, exclude: set[str]
    ) -> str | None:
        """The provider id of a job this part may have created already (from ``since``), or ``None``."""
        ...

    def too_big(self, status: PartStatus) -> bool:
        """Whether the job failed because it holds too many tokens (worth splitting)."""
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
        self._policy = ProviderRetryPolicy.from_config(ProviderRetryConfig.from_config(retry, "batch"))
        self._sleep = sleep

    def translate(self, err: Exception) -> Exception:
        return self._family.translate_error(err, provider=self.provider, model=self.model)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, tried again while the provider's retry policy says so."""
        return await self._run(fn, args, kwargs, None)

    async def first(self, fn: Callable[..., Awaitable[T]], *args: Any, what: str, **kwargs: Any) -> T:
        """``call``, where a 404/405/501 means the server has no batch API (``NoBatchApi``)."""
        return await self._run(fn, args, kwargs, what)

    async def _run(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        no_api: str | None,
    ) -> T:
        started = time.monotonic()
        retries = 0
        while True:
            try:
                return await fn(*args, **kwargs)
            except Exception as err:
                if no_api is not None:
                    self._no_api(err, no_api)
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

    async def create(
        self,
        fn: Callable[[], Awaitable[str]],
        *,
        find: Callable[[], Awaitable[str | None]] | None,
        what: str,
    ) -> str:
        """``await fn()`` (a create), tried again only when no job can have come of the failed try."""
        started = time.monotonic()
        retries = 0
        while True:
            try:
                return await fn()
            except Exception as err:
                self._no_api(err, what)
                translated = self.translate(err)
                if ambiguous(err):
                    if find is None:
                        raise CreateUnknown(
                            f"Creating {what} at provider '{self.provider}' failed without an answer "
                            f"({type(translated).__name__}); the job may exist at the provider",
                            provider=self.provider,
                            retryable=True,
                            suggestion="resume_batch(job_id) looks the job up instead of creating it again.",
                        ) from err
                    found = await self.call(find)
                    if found is not None:
                        return found
                decision = self._policy.decide_at(
                    translated, retries, time.monotonic() - started, random.random()
                )
                if not decision.retry:
                    if translated is err:
                        raise
                    raise translated from err
            retries += 1
            await self._sleep(decision.wait)

    def _no_api(self, err: Exception, what: str) -> None:
        if status_of(err) in (404, 405, 501):
            raise NoBatchApi(
                f"The server of provider '{self.provider}' has no batch API (it answered {status_of(err)} "
                f"to {what})",
                provider=self.provider,
                suggestion="Send the batch live (use_batch_api=False or 'auto').",
            ) from err
