"""The OpenAI side of the test server's batch APIs: Files (``/v1/files``) and Batches (``/v1/batches``).

See ``_batches`` for what the endpoints do; this module renders them in OpenAI's shapes.
"""

from __future__ import annotations

import email.parser
import email.policy
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
    CHAT_URL,
    DAY_SECONDS,
    BatchEndpoints,
    BatchJob,
    BatchLine,
    page_of_jobs,
)

__all__ = ["OpenAIBatches"]


class OpenAIBatches(BatchEndpoints):
    """OpenAI's Files and Batches endpoints."""

    protocol_name = "openai"

    async def _error(self, ex: Exchange, status: int, message: str, param: str | None = None) -> None:
        body = json.loads(self._proto.error_body(status, message))
        body["error"]["param"] = param
        await ex.respond(status, dumps(body))

    async def upload(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        fields = _multipart(ex.headers.get("content-type", ""), ex.body)
        if "file" not in fields:
            await self._error(ex, 400, "Missing required parameter: 'file'.", "file")
            return
        purpose = fields.get("purpose", ("", b""))[1].decode()
        if purpose not in ("batch", "fine-tune", "assistants", "vision", "user_data"):
            await self._error(ex, 400, f"Invalid value for 'purpose': {purpose!r}.", "purpose")
            return
        filename, content = fields["file"]
        stored = self._service._add_file(filename or "upload", purpose, content)
        await ex.respond(200, dumps(stored.describe()))

    async def file(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        stored = self._service._file(match["id"])
        if stored is None:
            await self._error(ex, 404, f"No such File object: {match['id']}", "id")
        elif match["content"]:
            await ex.respond(200, stored.content, content_type="application/octet-stream")
        else:
            await ex.respond(200, dumps(stored.describe()))

    async def create(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        try:
            data = json.loads(ex.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            await self._error(ex, 400, "The request body is not valid JSON.")
            return
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not data.get(name):
                await self._error(ex, 400, f"Missing required parameter: '{name}'.", name)
                return
        if data["endpoint"] != CHAT_URL:
            await self._error(ex, 400, f"The test server runs batches for {CHAT_URL} only.", "endpoint")
            return
        if data["completion_window"] != "24h":
            await self._error(ex, 400, "Invalid value for 'completion_window': only '24h' is supported.")
            return
        source = self._service._file(str(data["input_file_id"]))
        if source is None or source.purpose != "batch":
            await self._error(
                ex, 400, f"Invalid 'input_file_id': '{data['input_file_id']}'.", "input_file_id"
            )
            return
        lines, errors = self._parse(source.content, data["endpoint"])
        job = BatchJob(
            id=new_id("batch_", 24),
            protocol="openai",
            lines=lines,
            created_at=time.time(),
            status="validating",
            input_file_id=source.id,
            metadata=data.get("metadata"),
            errors=errors,
        )
        limit = self._service.max_enqueued_tokens
        tokens = sum(_estimated_tokens(line.body) for line in lines)
        if limit is not None and tokens > limit and not errors:
            job.errors = [
                {
                    "code": "token_limit_exceeded",
                    "line": None,
                    "message": f"Enqueued token limit reached for {lines[0].body.get('model')} in "
                    f"organization org-test. Limit: {limit} enqueued tokens. Please try again once some "
                    "in_progress batches have been completed.",
                    "param": None,
                }
            ]
        self._service._register(job)
        await self._service.answer_create(ex, self._proto, self._describe(job))

    async def list_jobs(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        page, has_more = page_of_jobs(self._service, "openai", ex.query.get("after"), ex.query.get("limit"))
        body = {
            "object": "list",
            "data": [self._describe(job) for job in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": has_more,
        }
        await ex.respond(200, dumps(body))

    def _parse(self, content: bytes, endpoint: str) -> tuple[list[BatchLine], list[dict[str, Any]]]:
        lines: list[BatchLine] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()

        def fail(number: int, code: str, message: str, param: str | None = None) -> None:
            errors.append({"code": code, "line": number, "message": message, "param": param})

        rows = [row for row in content.decode("utf-8", "replace").splitlines() if row.strip()]
        for number, row in enumerate(rows, start=1):
            try:
                line = json.loads(row)
            except ValueError:
                fail(number, "invalid_json_line", "This line is not parseable as valid JSON.")
                continue
            custom_id = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(custom_id, str) or not custom_id:
                fail(number, "missing_required_parameter", "Missing required parameter: 'custom_id'.")
            elif custom_id in seen:
                fail(
                    number, "duplicate_custom_id", f"The custom_id '{custom_id}' is not unique.", "custom_id"
                )
            elif line.get("method") != "POST" or line.get("url") != endpoint:
                fail(number, "mismatched_endpoint", f"The line's url must be {endpoint} with POST.", "url")
            elif not isinstance(line.get("body"), dict):
                fail(number, "missing_required_parameter", "Missing required parameter: 'body'.", "body")
            else:
                seen.add(custom_id)
                models.add(str(line["body"].get("model")))
                lines.append(BatchLine(custom_id, line["body"]))
        if len(models) > 1:
            fail(0, "mismatched_model", "All requests in a batch must use the same model.", "body.model")
        if not rows:
            fail(0, "empty_file", "The input file is empty.")
        limit = self._service._limit(50_000)
        if len(rows) > limit:
            fail(0, "too_many_requests", f"A batch may hold at most {limit} requests, got {len(rows)}.")
        return lines, errors

    async def retrieve(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        job = self._service._find(match["id"], "openai")
        if job is None:
            await self._error(ex, 404, f"No batch found with id '{match['id']}'.", "batch_id")
            return
        job.polls += 1
        self._advance(job, ex)
        await ex.respond(200, dumps(self._describe(job)))

    async def cancel(self, ex: Exchange, match: re.Match[str]) -> None:
        if await self._denied(ex):
            return
        job = self._service._find(match["id"], "openai")
        if job is None:
            await self._error(ex, 404, f"No batch found with id '{match['id']}'.", "batch_id")
            return
        if job.status in ("validating", "in_progress"):
            job.status = "cancelling"
            job.cancel_requested_at = time.time()
            job.times["cancelling_at"] = job.cancel_requested_at
        await ex.respond(200, dumps(self._describe(job)))

    def _advance(self, job: BatchJob, ex: Exchange) -> None:
        if job.status == "validating":
            if job.errors:
                job.status = "failed"
                job.times["failed_at"] = time.time()
                return
            job.status = "in_progress"
            job.times["in_progress_at"] = time.time()
        if job.status not in ("in_progress", "cancelling") or not self._service._ready(job):
            return
        cancelled = job.status == "cancelling"
        run = 0 if cancelled else len(job.lines)
        if not cancelled and self._service.expire_after is not None:
            run = min(run, self._service.expire_after)
        outputs: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for number, line in enumerate(job.lines):
            entry: dict[str, Any] = {"id": new_id("batch_req_", 24), "custom_id": line.custom_id}
            if number < run:
                status, body = self._service.answer(self._proto, ex, job, line.body)
                entry["response"] = {"status_code": status, "request_id": new_id("", 32), "body": body}
                entry["error"] = None
                (outputs if status == 200 else failures).append(entry)
            else:
                code = "batch_cancelled" if cancelled else "batch_expired"
                message = (
                    "This request was cancelled."
                    if cancelled
                    else "This request could not be executed before the completion window expired."
                )
                entry["response"] = None
                entry["error"] = {"code": code, "message": message}
                failures.append(entry)
        order = random.Random(job.id)
        order.shuffle(outputs)
        order.shuffle(failures)
        if outputs:
            job.output_file_id = self._write(job, "output", outputs)
        if failures:
            job.error_file_id = self._write(job, "error", failures)
        job.succeeded = len(outputs)
        job.failed = len(failures)
        now = time.time()
        job.status = "cancelled" if cancelled else ("expired" if run < len(job.lines) else "completed")
        job.ended_at = now
        job.times["finalizing_at"] = now
        job.times[f"{job.status}_at"] = now

    def _write(self, job: BatchJob, kind: str, entries: list[dict[str, Any]]) -> str:
        content = b"".join(dumps(entry) + b"\n" for entry in entries)
        return self._service._add_file(f"{job.id}_{kind}.jsonl", "batch_output", content).id

    def _describe(self, job: BatchJob) -> dict[str, Any]:
        usage = None
        if job.ended_at is not None:
            usage = {
                "input_tokens": job.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": job.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": job.input_tokens + job.output_tokens,
            }
        model = job.lines[0].body.get("model") if job.lines else None
        times = {k: int(v) for k, v in job.times.items()}
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": job.endpoint,
            "model": model,
            "errors": {"object": "list", "data": job.errors} if job.status == "failed" else None,
            "input_file_id": job.input_file_id,
            "completion_window": "24h",
            "status": job.status,
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "created_at": int(job.created_at),
            "in_progress_at": times.get("in_progress_at"),
            "expires_at": int(job.created_at) + DAY_SECONDS,
            "finalizing_at": times.get("finalizing_at"),
            "completed_at": times.get("completed_at"),
            "failed_at": times.get("failed_at"),
            "expired_at": times.get("expired_at"),
            "cancelling_at": times.get("cancelling_at"),
            "cancelled_at": times.get("cancelled_at"),
            "request_counts": {
                "total": len(job.lines),
                "completed": job.succeeded,
                "failed": job.failed,
            },
            "usage": usage,
            "metadata": job.metadata,
        }


def _estimated_tokens(body: dict[str, Any]) -> int:
    """The input tokens of one line as the enqueued-token limit counts them (about 4 characters each)."""
    return (len(json.dumps(body.get("messages", ""), ensure_ascii=False)) + 3) // 4


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, bytes)."""
    if not content_type.lower().startswith("multipart/form-data"):
        return {}
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


# -- Anthropic -------------------------------------------------------------------------------------
