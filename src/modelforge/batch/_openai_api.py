"""OpenAI's Batch API: a JSONL file uploaded to ``/v1/files``, a job at ``/v1/batches``, results mapped back.

Each request body is built by the provider's own ``ChatOpenAI`` (``_get_request_payload``), so messages,
tools, sampling settings and per-call options are exactly those of a live call, then shaped by the
provider's optimizer as live calls are (seed, JSON mode: ``modelforge.optimizers.prepare_batch_body``,
when optimizations are on); the model's SDK client
(``root_async_client``) does the HTTP. Lines of the output file become ``AIMessage``s through the model's own
result builder (``_create_chat_result``); lines of the error file become ModelForge errors through the
family's HTTP error mapping (a 429 line is a ``RateLimitError``, a 400 a ``BadRequestError``...), and lines
the job never ran (``batch_expired``, ``batch_cancelled``) a retryable ``ProviderError``. A job that failed
validation gives each item the error of its line, or the job's errors.

A create is sent at most once per answer: after a failure that may have created the job (no answer, a 5xx)
the job is looked up by its metadata (``modelforge_job``, ``modelforge_part``) in the list of recent batches
before any new try. A job refused with ``token_limit_exceeded`` is ``too_big`` (the caller splits it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from modelforge.batch._backend import ControlCalls, Outcome, PartStatus, Shape, unanswered
from modelforge.exceptions import BadRequestError, InvalidInputError, MalformedResponseError
from modelforge.providers.errors import HttpFailure, error_from_http

__all__ = ["ENDPOINT", "OpenAIBatches"]

ENDPOINT = "/v1/chat/completions"
_ENDED = ("completed", "failed", "expired", "cancelled")
# How many recent batches a look-up reads, and how long before ``since`` a match may have been created.
_LOOKUP_LIMIT = 1000
_CLOCK_SLACK = 600.0


class OpenAIBatches:
    """The OpenAI Batch API through a ``ChatOpenAI``."""

    name = "OpenAI Batch API"

    def __init__(
        self, model: Any, control: ControlCalls, *, completion_window: str = "24h", shape: Shape = dict
    ) -> None:
        self._model = model
        self._control = control
        self._window = completion_window
        self._shape = shape

    @property
    def _client(self) -> Any:
        return self._model.root_async_client

    def request(
        self, custom_id: str, messages: list[BaseMessage], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        payload = self._model._get_request_payload(messages, **kwargs)
        if self._model._use_responses_api(payload):
            raise InvalidInputError(
                "This request needs OpenAI's Responses API, which the batch path does not send",
                suggestion="Send it live (use_batch_api=False), or drop the Responses-only options.",
            )
        payload.pop("stream", None)
        payload.pop("stream_options", None)
        response_format = payload.get("response_format")
        if isinstance(response_format, type):  # a pydantic class: the JSON schema the API expects
            from openai.lib._parsing._completions import type_to_response_format_param

            payload["response_format"] = type_to_response_format_param(response_format)
        return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": self._shape(payload)}

    async def upload(self, requests: list[dict[str, Any]], *, job_id: str, part: str) -> str | None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests).encode("utf-8")
        uploaded = await self._control.first(
            self._client.files.create,
            file=(f"{job_id}-{part}.jsonl", data, "application/jsonl"),
            purpose="batch",
            what="POST /v1/files",
        )
        return str(uploaded.id)

    async def create(
        self, requests: list[dict[str, Any]], *, upload_id: str | None, job_id: str, part: str, since: float
    ) -> str:
        if upload_id is None:
            upload_id = await self.upload(requests, job_id=job_id, part=part)

        async def create() -> str:
            batch = await self._client.batches.create(
                input_file_id=upload_id,
                endpoint=ENDPOINT,
                completion_window=self._window,
                metadata={"modelforge_job": job_id, "modelforge_part": part},
            )
            return str(batch.id)

        async def find() -> str | None:
            return await self.find(job_id=job_id, part=part, count=len(requests), since=since, exclude=set())

        return await self._control.create(create, find=find, what="POST /v1/batches")

    async def find(
        self, *, job_id: str, part: str, count: int, since: float, exclude: set[str]
    ) -> str | None:
        """The newest batch whose metadata names this job and part (OpenAI lists newest first)."""
        seen = 0
        async for batch in self._client.batches.list(limit=100):
            seen += 1
            metadata = batch.metadata or {}
            if (
                metadata.get("modelforge_job") == job_id
                and metadata.get("modelforge_part") == part
                and batch.id not in exclude
            ):
                return str(batch.id)
            if seen >= _LOOKUP_LIMIT or float(batch.created_at) < since - _CLOCK_SLACK:
                break
        return None

    def too_big(self, status: PartStatus) -> bool:
        batch = status.raw
        if batch is None or batch.status != "failed":
            return False
        errors = list(getattr(batch.errors, "data", None) or [])
        return any(getattr(e, "code", None) == "token_limit_exceeded" for e in errors)

    async def poll(self, provider_job_id: str) -> PartStatus:
        batch = await self._control.call(self._client.batches.retrieve, provider_job_id)
        counts = batch.request_counts
        return PartStatus(
            status=str(batch.status),
            ended=batch.status in _ENDED,
            succeeded=int(counts.completed) if counts else 0,
            failed=int(counts.failed) if counts else 0,
            total=int(counts.total) if counts else 0,
            raw=batch,
        )

    async def collect(
        self, provider_job_id: str, status: PartStatus, custom_ids: list[str]
    ) -> dict[str, Outcome]:
        batch = status.raw
        outcomes: dict[str, Outcome] = {}
        if batch.status == "failed":
            return self._refused(batch, custom_ids)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                text = await self._control.call(self._download, file_id)
                for row in text.splitlines():
                    if row.strip():
                        self._read_line(row, outcomes)
        return outcomes

    async def _download(self, file_id: str) -> str:
        content = await self._client.files.content(file_id)
        return str(content.text)

    def _read_line(self, row: str, outcomes: dict[str, Outcome]) -> None:
        provider = self._control.provider
        try:
            line = json.loads(row)
            custom_id = str(line["custom_id"])
        except (ValueError, KeyError, TypeError):
            return  # a line we cannot attribute; its item is reported as missing
        response = line.get("response")
        error = line.get("error")
        if isinstance(response, dict) and response.get("status_code") == 200:
            outcomes[custom_id] = self._answer(response.get("body"))
        elif isinstance(response, dict):
            outcomes[custom_id] = self._failure(response)
        elif isinstance(error, dict):
            code = str(error.get("code") or "failed")
            outcomes[custom_id] = unanswered(provider, code, str(error.get("message") or code))
        else:
            outcomes[custom_id] = MalformedResponseError(provider, "a batch result line with no response")

    def _answer(self, body: Any) -> Outcome:
        try:
            message = self._model._create_chat_result(body).generations[0].message
        except Exception as err:
            return MalformedResponseError(self._control.provider, f"{type(err).__name__}: {err}")
        if not isinstance(message, AIMessage):
            return MalformedResponseError(
                self._control.provider, "the batch answer is not an assistant message"
            )
        return message

    def _failure(self, response: dict[str, Any]) -> Exception:
        body = response.get("body")
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        failure = HttpFailure(
            status=int(response.get("status_code") or 500),
            message=str(detail.get("message") or ""),
            error_type=detail.get("code") or detail.get("type"),
            request_id=response.get("request_id"),
        )
        return error_from_http(failure, provider=self._control.provider, model=self._control.model)

    def _refused(self, batch: Any, custom_ids: list[str]) -> dict[str, Outcome]:
        """A job that failed validation: each item gets its line's error, or the job's."""
        provider = self._control.provider
        errors = list(getattr(batch.errors, "data", None) or [])
        by_line = {int(e.line): e for e in errors if getattr(e, "line", None)}
        summary = "; ".join(f"{e.code}: {e.message}" for e in errors[:3]) or "no reason given"
        outcomes: dict[str, Outcome] = {}
        for number, custom_id in enumerate(custom_ids, start=1):
            own = by_line.get(number)
            reason = f"{own.code}: {own.message}" if own else f"the batch job was refused ({summary})"
            outcomes[custom_id] = BadRequestError(
                f"Provider '{provider}' refused the batch request: {reason}",
                provider=provider,
                error_code="BATCH_REFUSED",
                details={"batch_errors": [e.model_dump() for e in errors[:20]]},
            )
        return outcomes
