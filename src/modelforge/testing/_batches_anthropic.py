"""The Anthropic side of the test server's batch APIs: Message Batches (``/v1/messages/batches``).

See ``_batches`` for what the endpoints do; this module renders them in Anthropic's shapes.
"""

from __future__ import annotations

import json
import random
import re
import time
from typing import TYPE_CHECKING, Any

from modelforge.testing._common import dumps, new_id
from modelforge.testing._http import Exchange

if TYPE_CHECKING:
    pass

from modelforge.testing._batches import (
    CUSTOM_ID_PATTERN,
    DAY_SECONDS,
    BatchEndpoints,
    BatchJob,
    BatchLine,
    page_of_jobs,
    stamp,
)

__all__ = ["AnthropicBatches"]


class AnthropicBatches(BatchEndpoints):
    """Anthropic's Message Batches endpoints."""

    protocol_name = "anthropic"

    async def create(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        try:
            data = json.loads(ex.body or b"{}")
        except ValueError:
            data = None
        requests = data.get("requests") if isinstance(data, dict) else None
        if not isinstance(requests, list) or not requests:
            await self._error(ex, 400, "requests: Field required (at least one request)")
            return
        limit = self._service._limit(100_000)
        if len(requests) > limit:
            await self._error(ex, 400, f"requests: at most {limit} requests per batch, got {len(requests)}")
            return
        lines: list[BatchLine] = []
        seen: set[str] = set()
        for n, request in enumerate(requests):
            problem = _check_request(request, seen)
            if problem is not None:
                await self._error(ex, 400, f"requests.{n}.{problem}")
                return
            seen.add(request["custom_id"])
            lines.append(BatchLine(request["custom_id"], request["params"]))
        job = BatchJob(
            id=new_id("msgbatch_01", 22),
            protocol="anthropic",
            lines=lines,
            created_at=time.time(),
            status="in_progress",
        )
        self._service._register(job)
        await self._service.answer_create(ex, self._proto, self._describe(job))

    async def list_jobs(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        page, has_more = page_of_jobs(
            self._service, "anthropic", ex.query.get("after_id"), ex.query.get("limit")
        )
        body = {
            "data": [self._describe(job) for job in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }
        await ex.respond(200, dumps(body))

    async def retrieve(self, ex: Exchange, match: re.Match[str]) -> None:
        job = await self._job(ex, match)
        if job is None:
            return
        job.polls += 1
        if job.status in ("in_progress", "canceling") and self._service._ready(job):
            self._end(job, ex)
        await ex.respond(200, dumps(self._describe(job)))

    async def results(self, ex: Exchange, match: re.Match[str]) -> None:
        job = await self._job(ex, match)
        if job is None:
            return
        if job.status != "ended":
            await self._error(ex, 400, f"Message Batch {job.id} has not finished processing.")
            return
        content = b"".join(dumps(entry) + b"\n" for entry in job.results)
        await ex.respond(200, content, content_type="application/binary")

    async def cancel(self, ex: Exchange, match: re.Match[str]) -> None:
        job = await self._job(ex, match)
        if job is None:
            return
        if job.status == "in_progress":
            job.status = "canceling"
            job.cancel_requested_at = time.time()
        await ex.respond(200, dumps(self._describe(job)))

    async def _job(self, ex: Exchange, match: re.Match[str]) -> BatchJob | None:
        if await self._denied(ex):
            return None
        job = self._service._find(match["id"], "anthropic")
        if job is None:
            await self._error(ex, 404, f"Message Batch not found: {match['id']}")
        return job

    def _end(self, job: BatchJob, ex: Exchange) -> None:
        cancelled = job.status == "canceling"
        run = 0 if cancelled else len(job.lines)
        if not cancelled and self._service.expire_after is not None:
            run = min(run, self._service.expire_after)
        results: list[dict[str, Any]] = []
        for number, line in enumerate(job.lines):
            result: dict[str, Any]
            if number < run:
                status, body = self._service.answer(self._proto, ex, job, line.body)
                if status == 200:
                    result = {"type": "succeeded", "message": body}
                    job.succeeded += 1
                else:
                    result = {"type": "errored", "error": body}
                    job.failed += 1
            else:
                result = {"type": "canceled" if cancelled else "expired"}
            results.append({"custom_id": line.custom_id, "result": result})
        random.Random(job.id).shuffle(results)
        job.results = results
        job.status = "ended"
        job.ended_at = time.time()

    def _describe(self, job: BatchJob) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if job.status == "ended":
            for entry in job.results:
                kind = entry["result"]["type"]
                counts["succeeded" if kind == "succeeded" else "errored" if kind == "errored" else kind] += 1
        else:
            counts["processing"] = len(job.lines)
        results_url = None
        if job.status == "ended":
            results_url = f"{self._server.base_url}/v1/messages/batches/{job.id}/results"
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": job.status,
            "request_counts": counts,
            "ended_at": stamp(job.ended_at),
            "created_at": stamp(job.created_at),
            "expires_at": stamp(job.created_at + DAY_SECONDS),
            "archived_at": None,
            "cancel_initiated_at": stamp(job.cancel_requested_at),
            "results_url": results_url,
        }


def _check_request(request: Any, seen: set[str]) -> str | None:
    """What is wrong with one Message Batches request, or None."""
    if not isinstance(request, dict):
        return "request: must be an object"
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.match(custom_id):
        return "custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    if custom_id in seen:
        return f"custom_id: '{custom_id}' is used by more than one request"
    params = request.get("params")
    if not isinstance(params, dict):
        return "params: Field required"
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            return f"params.{name}: Field required"
    if params.get("stream"):
        return "params.stream: streaming is not supported in batches"
    return None
