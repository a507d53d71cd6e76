"""Anthropic's Message Batches: ``/v1/messages/batches``, polled on ``processing_status``, results by id.

Each request's ``params`` are built by the provider's own ``ChatAnthropic`` (``_get_request_payload``), so
system prompts, tools, ``max_tokens`` and per-call options are those of a live call (then shaped by the
provider's optimizer when optimizations are on); the model's
``anthropic`` SDK client does the HTTP. Succeeded results become ``AIMessage``s through the model's own
``_format_output``; errored ones become ModelForge errors through the family's HTTP error mapping (the
error's ``type`` gives its status: ``rate_limit_error`` is a 429 and a ``RateLimitError``,
``overloaded_error`` a 529...); canceled and expired ones a retryable ``ProviderError``. Requests with
``betas`` are refused here (the beta batch endpoint is not used): send them live.

Message Batches carry no metadata, so a create that fails without an answer is never tried again
(``CreateUnknown``: the part is recorded as "unknown"); ``find`` looks such a job up among the recent
batches by its request count and creation time (never before the part was sent). That is a guess: a
batch of another job taken by mistake holds other ``custom_id``s (they are unique to each job), so its
results are ignored and the part's items end as errors saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from modelforge.batch._backend import ControlCalls, Outcome, PartStatus, Shape, unanswered
from modelforge.exceptions import InvalidInputError, MalformedResponseError
from modelforge.providers.errors import HttpFailure, error_from_http

__all__ = ["ERROR_STATUS", "AnthropicBatches"]

# How many recent batches a look-up reads.
_LOOKUP_LIMIT = 1000

# The HTTP status each Anthropic error type stands for.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatches:
    """Anthropic Message Batches through a ``ChatAnthropic``."""

    name = "Anthropic Message Batches"

    def __init__(self, model: Any, control: ControlCalls, *, shape: Shape = dict) -> None:
        self._model = model
        self._control = control
        self._shape = shape

    @property
    def _batches(self) -> Any:
        return self._model._async_client.messages.batches

    def request(
        self, custom_id: str, messages: list[BaseMessage], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        payload = self._model._get_request_payload(messages, **kwargs)
        if payload.get("betas"):
            raise InvalidInputError(
                "Requests with Anthropic beta features are not sent through Message Batches here",
                suggestion="Send them live (use_batch_api=False).",
            )
        payload.pop("betas", None)
        payload.pop("stream", None)
        params = self._shape({k: v for k, v in payload.items() if v is not None})
        return {"custom_id": custom_id, "params": params}

    async def upload(self, requests: list[dict[str, Any]], *, job_id: str, part: str) -> str | None:
        return None

    async def create(
        self, requests: list[dict[str, Any]], *, upload_id: str | None, job_id: str, part: str, since: float
    ) -> str:
        async def create() -> str:
            batch = await self._batches.create(requests=requests)
            return str(batch.id)

        return await self._control.create(create, find=None, what="POST /v1/messages/batches")

    async def find(
        self, *, job_id: str, part: str, count: int, since: float, exclude: set[str]
    ) -> str | None:
        """The earliest batch created from ``since`` holding ``count`` requests and not ``exclude``d.

        A guess (Message Batches carry no metadata): another job's batch of the same size may be taken. Its
        ``custom_id``s are not this job's, so its results are never read as this job's (see ``ApiJob.wait``).
        """
        candidates: list[tuple[float, str]] = []
        seen = 0
        async for batch in self._batches.list(limit=100):
            seen += 1
            created = batch.created_at.timestamp()
            counts = batch.request_counts
            total = int(
                counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            )
            if created < since or seen > _LOOKUP_LIMIT:
                break  # listed newest first: the rest were created before this part was sent
            if total == count and batch.id not in exclude:
                candidates.append((created, str(batch.id)))
        return min(candidates)[1] if candidates else None

    def too_big(self, status: PartStatus) -> bool:
        return False

    async def poll(self, provider_job_id: str) -> PartStatus:
        batch = await self._control.call(self._batches.retrieve, provider_job_id)
        counts = batch.request_counts
        failed = int(counts.errored + counts.canceled + counts.expired)
        return PartStatus(
            status=str(batch.processing_status),
            ended=batch.processing_status == "ended",
            succeeded=int(counts.succeeded),
            failed=failed,
            total=int(counts.processing + counts.succeeded + failed),
            raw=batch,
        )

    async def collect(
        self, provider_job_id: str, status: PartStatus, custom_ids: list[str]
    ) -> dict[str, Outcome]:
        entries = await self._control.call(self._results, provider_job_id)
        outcomes: dict[str, Outcome] = {}
        for entry in entries:
            outcomes[str(entry.custom_id)] = self._outcome(entry.result)
        return outcomes

    async def _results(self, provider_job_id: str) -> list[Any]:
        decoder = await self._batches.results(provider_job_id)
        return [entry async for entry in decoder]

    def _outcome(self, result: Any) -> Outcome:
        provider = self._control.provider
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            try:
                message = self._model._format_output(result.message).generations[0].message
            except Exception as err:
                return MalformedResponseError(provider, f"{type(err).__name__}: {err}")
            if isinstance(message, AIMessage):
                return message
            return MalformedResponseError(provider, "the batch answer is not an assistant message")
        if kind == "errored":
            response = result.error
            detail = getattr(response, "error", None)
            error_type = str(getattr(detail, "type", "") or "api_error")
            failure = HttpFailure(
                status=ERROR_STATUS.get(error_type, 500),
                message=str(getattr(detail, "message", "") or ""),
                error_type=error_type,
                request_id=getattr(response, "request_id", None),
            )
            return error_from_http(failure, provider=provider, model=self._control.model)
        if kind in ("canceled", "expired"):
            reason = "the batch was canceled" if kind == "canceled" else "the batch expired before it ran"
            return unanswered(provider, kind, reason)
        return MalformedResponseError(provider, f"unknown batch result type {kind!r}")
