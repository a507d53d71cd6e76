"""Anthropic's Message Batches: ``/v1/messages/batches``, polled on ``processing_status``, results by id.

Each request's ``params`` are built by the provider's own ``ChatAnthropic`` (``_get_request_payload``), so
system prompts, tools, ``max_tokens`` and per-call options are those of a live call (then shaped by the
provider's optimizer when optimizations are on); the model's
``anthropic`` SDK client does the HTTP. Succeeded results become ``AIMessage``s through the model's own
``_format_output``; errored ones become ModelForge errors through the family's HTTP error mapping (the
error's ``type`` gives its status: ``rate_limit_error`` is a 429 and a ``RateLimitError``,
``overloaded_error`` a 529...); canceled and expired ones a retryable ``ProviderError``. Requests with
``betas`` are refused here (the beta batch endpoint is not used): send them live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from modelforge.batch._backend import ControlCalls, Outcome, PartStatus, Shape, unanswered
from modelforge.exceptions import InvalidInputError, MalformedResponseError
from modelforge.providers.errors import HttpFailure, error_from_http

__all__ = ["ERROR_STATUS", "AnthropicBatches"]

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

    async def submit(self, requests: list[dict[str, Any]], *, job_id: str, part: int) -> str:
        batch = await self._control.call(self._batches.create, requests=requests)
        return str(batch.id)

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
