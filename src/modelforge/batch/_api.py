"""Running a batch through a provider's batch API: plan the parts, submit them, wait, collect.

``ApiJob`` drives one ModelForge job over a ``BatchBackend``. ``prepare`` turns every input into a
request line (an input that cannot become one gets its error at once) and splits the lines into parts
that respect the provider's per-job limits (requests, bytes, estimated input tokens), in input order.
``submit`` creates one provider job per part and saves the job file after each, so a process that dies
once a part is submitted leaves enough behind for ``resume_batch``. ``wait`` polls every unfinished part
each ``poll_interval`` (reporting progress after every round) until all have ended, then collects the
outcomes by ``custom_id``: every item gets its answer or an error — one the provider reported, "never
ran" (expired, cancelled, not submitted) or "no result reported" — and none is ever left out.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from modelforge.batch._backend import BatchBackend, Outcome, PartStatus, unanswered
from modelforge.batch._config import JobLimits
from modelforge.batch._jobs import JobPart, JobState, as_messages, decode_input, save_job
from modelforge.batch._results import BatchProgress, BatchResult, ProgressCallback, anotify
from modelforge.exceptions import InvalidInputError, ModelForgeError, ProviderError

__all__ = ["ApiJob", "plan_parts"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CUSTOM_ID_PREFIX = "mf-"


def plan_parts(sizes: list[tuple[int, int, int]], limits: JobLimits) -> list[list[int]]:
    """Split ``(index, bytes, tokens)`` items, in order, into parts within ``limits``.

    An item larger than a whole job on its own still gets a part of its own (the provider judges it).
    """
    parts: list[list[int]] = []
    current: list[int] = []
    size = tokens = 0
    for index, item_bytes, item_tokens in sizes:
        full = current and (
            len(current) >= limits.requests
            or size + item_bytes > limits.bytes
            or (limits.tokens is not None and tokens + item_tokens > limits.tokens)
        )
        if full:
            parts.append(current)
            current, size, tokens = [], 0, 0
        current.append(index)
        size += item_bytes
        tokens += item_tokens
    if current:
        parts.append(current)
    return parts


def _estimate_tokens(request: Mapping[str, Any]) -> int:
    """Input tokens of a request line, estimated as OpenAI's enqueued-token limit counts them (~4 chars)."""
    body = request.get("body") or request.get("params") or {}
    return (len(json.dumps(body.get("messages", ""), ensure_ascii=False)) + 3) // 4


class ApiJob:
    """One ModelForge job on a provider's batch API."""

    def __init__(
        self,
        backend: BatchBackend,
        state: JobState,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.state = state
        self._sleep = sleep
        self._clock = clock
        self._requests: dict[int, dict[str, Any]] = {}
        self._errors: dict[int, Exception] = {}  # items that never became requests, this process
        self._submit_errors: dict[int, Exception] = {}  # part number -> why it was not submitted

    @property
    def provider(self) -> str:
        return self.state.provider

    # -- before submission ----------------------------------------------------------------------------

    def prepare(self, items: list[Any], kwargs: Mapping[str, Any], limits: JobLimits) -> None:
        """Build every request line and plan the parts (nothing is sent)."""
        sizes: list[tuple[int, int, int]] = []
        for index, item in enumerate(items):
            custom_id = f"{CUSTOM_ID_PREFIX}{index}"
            try:
                request = self.backend.request(custom_id, as_messages(item), kwargs)
                line = json.dumps(request, ensure_ascii=False).encode("utf-8")
            except Exception as err:
                error = err if isinstance(err, ModelForgeError) else _not_sendable(err)
                self._errors[index] = error
                self.state.local_errors[index] = (type(error).__name__, str(error))
                continue
            self._requests[index] = request
            sizes.append((index, len(line) + 1, _estimate_tokens(request)))
        self.state.parts = [
            JobPart(items={f"{CUSTOM_ID_PREFIX}{i}": i for i in part}) for part in plan_parts(sizes, limits)
        ]

    async def submit(self) -> None:
        """Create one provider job per part, saving the job file before and after each."""
        save_job(self.state)
        for number, part in enumerate(self.state.parts):
            requests = [self._requests[index] for index in part.items.values()]
            try:
                part.provider_job_id = await self.backend.submit(
                    requests, job_id=self.state.job_id, part=number
                )
            except Exception as err:
                part.status = "submit_failed"
                part.error = [type(err).__name__, str(err)]
                self._submit_errors[number] = err
                logger.warning(
                    "Batch job %s: part %d (%d requests) was not submitted: %s",
                    self.state.job_id,
                    number,
                    len(requests),
                    type(err).__name__,
                )
            else:
                part.status = "submitted"
                logger.info(
                    "Batch job %s: part %d submitted to %s as %s (%d requests)",
                    self.state.job_id,
                    number,
                    self.backend.name,
                    part.provider_job_id,
                    len(requests),
                )
            save_job(self.state)
        self._requests.clear()

    # -- waiting and collecting -----------------------------------------------------------------------

    async def wait(
        self, *, on_progress: ProgressCallback | None, poll_interval: float, max_wait: float | None
    ) -> list[BatchResult]:
        """Poll until every submitted part has ended, then collect: one result per item, in order."""
        started = self._clock()
        live = [(n, p) for n, p in enumerate(self.state.parts) if p.provider_job_id is not None]
        latest: dict[int, PartStatus] = {}
        await anotify(on_progress, self._progress(latest, started, "submitted"))
        while True:
            for number, part in live:
                if number in latest and latest[number].ended:
                    continue
                latest[number] = await self._poll(part)
                part.status = latest[number].status
            ended = all(latest[n].ended for n, _ in live)
            await anotify(on_progress, self._progress(latest, started, "ended" if ended else "in_progress"))
            if ended:
                break
            if max_wait is not None and self._clock() - started + poll_interval > max_wait:
                raise self._still_running(max_wait)
            await self._sleep(poll_interval)
        outcomes: dict[str, Outcome] = {}
        for number, part in live:
            assert part.provider_job_id is not None
            custom_ids = list(part.items)
            collected = self.backend.collect(part.provider_job_id, latest[number], custom_ids)
            outcomes.update(await self._guarded("collecting", part.provider_job_id, collected))
        results = self._results(outcomes, latest)
        self.state.finished_at = time.time()
        save_job(self.state)
        succeeded = sum(1 for r in results if r.ok)
        await anotify(
            on_progress,
            BatchProgress(
                total=self.state.count,
                done=len(results),
                succeeded=succeeded,
                failed=len(results) - succeeded,
                elapsed=self._clock() - started,
                job_id=self.state.job_id,
                status="collected",
            ),
        )
        return results

    async def _poll(self, part: JobPart) -> PartStatus:
        assert part.provider_job_id is not None
        return await self._guarded(
            "looking at", part.provider_job_id, self.backend.poll(part.provider_job_id)
        )

    async def _guarded(self, doing: str, provider_job_id: str, call: Awaitable[T]) -> T:
        """``await call``; a failure is logged with the job id (the job goes on at the provider)."""
        try:
            return await call
        except Exception as err:
            logger.warning(
                "Batch job %s: %s %s failed (%s); it goes on at the provider: collect it later with "
                "resume_batch(%r)",
                self.state.job_id,
                doing,
                provider_job_id,
                type(err).__name__,
                self.state.job_id,
            )
            if isinstance(err, ModelForgeError):
                err.details.setdefault("batch_job_id", self.state.job_id)
            raise

    def _progress(self, latest: Mapping[int, PartStatus], started: float, status: str) -> BatchProgress:
        local = len(self.state.local_errors) + sum(
            len(p.items) for p in self.state.parts if p.provider_job_id is None
        )
        succeeded = sum(s.succeeded for s in latest.values())
        failed = local + sum(s.failed for s in latest.values())
        return BatchProgress(
            total=self.state.count,
            done=succeeded + failed,
            succeeded=succeeded,
            failed=failed,
            elapsed=self._clock() - started,
            job_id=self.state.job_id,
            status=status,
        )

    def _still_running(self, max_wait: float) -> ProviderError:
        job_id = self.state.job_id
        return ProviderError(
            f"Batch job {job_id} is still running at provider '{self.provider}' after {max_wait:g}s",
            provider=self.provider,
            error_code="BATCH_PENDING",
            retryable=True,
            suggestion=f"It goes on at the provider: collect it with registry.resume_batch({job_id!r}).",
            details={"batch_job_id": job_id},
        )

    def _results(
        self, outcomes: Mapping[str, Outcome], latest: Mapping[int, PartStatus]
    ) -> list[BatchResult]:
        state = self.state
        where: dict[int, tuple[str | None, int]] = {}
        for number, part in enumerate(state.parts):
            for key, index in part.items.items():
                where[index] = (key, number)
        results: list[BatchResult] = []
        for index in range(state.count):
            item = decode_input(state.inputs[index]) if index < len(state.inputs) else None
            custom_id, number = where.get(index, (None, -1))
            outcome: Outcome
            if index in state.local_errors:
                outcome = self._errors.get(index) or _restored(state.local_errors[index])
            elif custom_id is None:
                outcome = unanswered(self.provider, "lost", "the item is missing from the job file")
            elif custom_id in outcomes:
                outcome = outcomes[custom_id]
            elif state.parts[number].provider_job_id is None:
                failure = self._submit_errors.get(number)
                outcome = (
                    _own_copy(failure)
                    if failure is not None
                    else unanswered(self.provider, "not_submitted", _why_not_submitted(state.parts[number]))
                )
            else:
                status = latest[number].status if number in latest else "unknown"
                outcome = unanswered(
                    self.provider, "missing", f"no result was reported (job status: {status})"
                )
            if isinstance(outcome, Exception):
                results.append(BatchResult(index, item, error=outcome, custom_id=custom_id))
            else:
                results.append(BatchResult(index, item, message=outcome, custom_id=custom_id))
        return results


def _own_copy(err: Exception) -> Exception:
    """A copy of ``err`` for one item (items of a part share one failure; each raises its own)."""
    try:
        copied = copy.copy(err)
    except Exception:
        return err
    copied.__cause__ = err.__cause__
    return copied


def _not_sendable(err: Exception) -> InvalidInputError:
    error = InvalidInputError(f"This input cannot be sent in a batch: {type(err).__name__}: {err}")
    error.__cause__ = err
    return error


def _restored(saved: tuple[str, str]) -> InvalidInputError:
    return InvalidInputError(f"This input could not be sent in the batch ({saved[0]}): {saved[1]}")


def _why_not_submitted(part: JobPart) -> str:
    if part.error:
        return f"its part of the job was not submitted ({part.error[0]}: {part.error[1]})"
    return "its part of the job was never submitted (the process stopped while submitting)"
