"""Running a batch through a provider's batch API: plan the parts, submit them, wait, collect.

``ApiJob`` drives one ModelForge job over a ``BatchBackend``. ``prepare`` turns every input into a
request line (an input that cannot become one gets its error at once) and splits the lines into parts
that respect the provider's per-job limits (requests, bytes, estimated input tokens), in input order.
``submit`` reports a first progress event with the job id, writes the inputs and the request lines once
beside the job file, then creates one provider job per part, saving the job file before each create (the
part "submitting", with its uploaded file's id) and after it, so a process that dies anywhere leaves enough
behind for ``resume_batch``: ``wait`` first completes the submission (a part "submitting" or "unknown" is
looked up at the provider before it is created again; a part never sent is sent from the saved request
lines). ``wait`` then polls every unfinished part each ``poll_interval`` (reporting progress after every
round) until all have ended; a part refused for holding too many tokens is split in halves and sent again
(at most ``MAX_SPLITS`` times over). It then collects the outcomes by ``custom_id``: every item gets its
answer or an error — one the provider reported, "never ran" (expired, cancelled, not submitted), "maybe
submitted" (look again with ``resume_batch``), "part not identified" (a provider job found for it held
other requests: their results are ignored) or "no result reported" — and none is ever left out. Item
``custom_id``s are unique to the job (``custom_id``). Job files are written in a thread
(``asyncio.to_thread``), never on the event loop. A job's first complete collection is counted in
``modelforge.telemetry.metrics`` (items, cost at the batch price and at the live price).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from modelforge._token_estimate import tokens_for_chars
from modelforge.batch._backend import (
    BatchBackend,
    CreateUnknown,
    NoBatchApi,
    Outcome,
    PartStatus,
    unanswered,
)
from modelforge.batch._jobs import (
    JobPart,
    JobState,
    as_messages,
    decode_input,
    drop_requests,
    load_requests,
    masked,
    save_inputs,
    save_job,
    save_requests,
)
from modelforge.batch._results import BatchProgress, BatchResult, ProgressCallback, anotify
from modelforge.exceptions import InvalidInputError, ModelForgeError, ProviderError
from modelforge.sections.batch import JobLimits
from modelforge.telemetry import metrics

__all__ = ["ApiJob", "plan_parts"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CUSTOM_ID_PREFIX = "mf-"
# How many times over a part refused for its token count is halved.
MAX_SPLITS = 6
# Part states whose provider job may still have to be found or created.
_PENDING = ("unsubmitted", "submitting", "unknown")


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


def custom_id(job_id: str, index: int) -> str:
    """The ``custom_id`` of item ``index`` of ``job_id``: ``mf-<8 hex of the job id's digest>-<index>``.

    Unique per job, so the result lines of another job's provider batch never match this job's items (job
    files written before kept ``mf-<index>``: they carry their own map and are read as they are).
    """
    digest = hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:8]
    return f"{CUSTOM_ID_PREFIX}{digest}-{index}"


def _estimate_tokens(request: Mapping[str, Any]) -> int:
    """Input tokens of a request line, estimated as OpenAI's enqueued-token limit counts them (~4 chars)."""
    body = request.get("body") or request.get("params") or {}
    return tokens_for_chars(len(json.dumps(body.get("messages", ""), ensure_ascii=False)))


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
        self._submit_errors: dict[str, Exception] = {}  # part name -> why it was not submitted

    @property
    def provider(self) -> str:
        return self.state.provider

    # -- before submission ----------------------------------------------------------------------------

    def prepare(self, items: list[Any], kwargs: Mapping[str, Any], limits: JobLimits) -> None:
        """Build every request line and plan the parts (nothing is sent)."""
        sizes: list[tuple[int, int, int]] = []
        for index, item in enumerate(items):
            try:
                request = self.backend.request(custom_id(self.state.job_id, index), as_messages(item), kwargs)
                line = json.dumps(request, ensure_ascii=False).encode("utf-8")
            except Exception as err:
                error = err if isinstance(err, ModelForgeError) else _not_sendable(err)
                self._errors[index] = error
                kind, message = masked(error)
                self.state.local_errors[index] = (kind, message)
                continue
            self._requests[index] = request
            sizes.append((index, len(line) + 1, _estimate_tokens(request)))
        job_id = self.state.job_id
        self.state.parts = [
            JobPart(items={custom_id(job_id, i): i for i in part}) for part in plan_parts(sizes, limits)
        ]

    async def submit(self, on_progress: ProgressCallback | None = None) -> None:
        """Report the job id, save the job's files, then create one provider job per part."""
        for number, part in enumerate(self.state.parts):
            part.name = part.name or str(number)
        local = len(self.state.local_errors)
        first = BatchProgress(
            total=self.state.count,
            done=local,
            succeeded=0,
            failed=local,
            elapsed=0.0,
            job_id=self.state.job_id,
            status="submitting",
        )
        await anotify(on_progress, first)
        requests = [self._requests[i] for part in self.state.parts for i in part.items.values()]
        await asyncio.to_thread(self._save_all, requests)
        for part in self.state.parts:
            await self._submit_part(part, self._by_custom_id())
        self._requests.clear()

    def _save_all(self, requests: list[dict[str, Any]]) -> None:
        save_inputs(self.state)
        save_requests(self.state.job_id, requests)
        save_job(self.state)

    def _by_custom_id(self) -> dict[str, dict[str, Any]]:
        """This process's request lines by the ``custom_id`` the parts give them."""
        return {
            key: self._requests[index]
            for part in self.state.parts
            for key, index in part.items.items()
            if index in self._requests
        }

    async def _save(self) -> None:
        await asyncio.to_thread(save_job, self.state)

    async def _submit_part(self, part: JobPart, requests: Mapping[str, dict[str, Any]]) -> None:
        """Create the provider job of ``part`` (saved as "submitting" first, and again after)."""
        number = self.state.parts.index(part)
        lines = [requests[key] for key in part.items]
        job_id = self.state.job_id
        try:
            if part.upload_id is None:
                part.upload_id = await self.backend.upload(lines, job_id=job_id, part=part.name)
            part.status = "submitting"
            part.since = part.since or time.time()
            await self._save()
            part.provider_job_id = await self.backend.create(
                lines, upload_id=part.upload_id, job_id=job_id, part=part.name, since=part.since
            )
        except CreateUnknown as err:
            part.status = "unknown"
            part.error = masked(err)
            logger.warning(
                "Batch job %s: part %d (%d requests) may or may not have been created (%s); "
                "resume_batch(%r) looks it up",
                job_id,
                number,
                len(lines),
                type(err.__cause__ or err).__name__,
                job_id,
            )
        except Exception as err:
            if isinstance(err, NoBatchApi) and not any(p.provider_job_id for p in self.state.parts):
                part.status = "unsubmitted"
                raise  # nothing was created: the caller may send the batch live
            part.status = "submit_failed"
            part.error = masked(err)
            self._submit_errors[part.name] = err
            logger.warning(
                "Batch job %s: part %d (%d requests) was not submitted: %s",
                job_id,
                number,
                len(lines),
                type(err).__name__,
            )
        else:
            part.status = "submitted"
            part.error = None
            logger.info(
                "Batch job %s: part %d submitted to %s as %s (%d requests)",
                job_id,
                number,
                self.backend.name,
                part.provider_job_id,
                len(lines),
            )
        await self._save()

    async def resume_submission(self) -> None:
        """Finish a submission a stopped process left: find or create every part not known to exist."""
        pending = [p for p in self.state.parts if p.provider_job_id is None and p.status in _PENDING]
        if not pending:
            return
        requests = self._by_custom_id() or await asyncio.to_thread(load_requests, self.state.job_id)
        for number, part in enumerate(self.state.parts):
            part.name = part.name or str(number)
        for part in pending:
            if part.status in ("submitting", "unknown"):
                taken = {p.provider_job_id for p in self.state.parts if p.provider_job_id}
                found = await self.backend.find(
                    job_id=self.state.job_id,
                    part=part.name,
                    count=len(part.items),
                    since=part.since or self.state.created_at,
                    exclude=taken,
                )
                if found is not None:
                    part.provider_job_id, part.status, part.error = found, "submitted", None
                    logger.info(
                        "Batch job %s: found part %s at the provider as %s",
                        self.state.job_id,
                        part.name,
                        found,
                    )
                    await self._save()
                    continue
            if all(key in requests for key in part.items):
                await self._submit_part(part, requests)

    # -- waiting and collecting -----------------------------------------------------------------------

    async def wait(
        self, *, on_progress: ProgressCallback | None, poll_interval: float, max_wait: float | None
    ) -> list[BatchResult]:
        """Poll until every submitted part has ended, then collect: one result per item, in order."""
        started = self._clock()
        latest: dict[str, PartStatus] = {}
        await anotify(on_progress, self._progress(latest, started, "submitted"))
        while True:
            for part in [p for p in self.state.parts if p.provider_job_id is not None]:
                assert part.provider_job_id is not None
                if part.provider_job_id in latest and latest[part.provider_job_id].ended:
                    continue
                status = await self._poll(part)
                latest[part.provider_job_id] = status
                part.status = status.status
                if status.ended and self.backend.too_big(status):
                    await self._split(part)
            live = [p.provider_job_id for p in self.state.parts if p.provider_job_id is not None]
            ended = all(key in latest and latest[key].ended for key in live)
            await anotify(on_progress, self._progress(latest, started, "ended" if ended else "in_progress"))
            if ended:
                break
            if max_wait is not None and self._clock() - started + poll_interval > max_wait:
                raise self._still_running(max_wait)
            await self._sleep(poll_interval)
        outcomes: dict[str, Outcome] = {}
        for part in self.state.parts:
            if part.provider_job_id is None:
                continue
            custom_ids = list(part.items)
            collected = self.backend.collect(part.provider_job_id, latest[part.provider_job_id], custom_ids)
            reported = await self._guarded("collecting", part.provider_job_id, collected)
            ours = {key: outcome for key, outcome in reported.items() if key in part.items}
            if reported and not ours:
                self._unidentified(part, len(reported))
            outcomes.update(ours)  # lines of other requests are never taken for this job's items
        results = self._results(outcomes, latest)
        if not any(p.status == "unknown" for p in self.state.parts):
            if self.state.finished_at is None:  # first collection: counted once
                self._count(results)
            self.state.finished_at = time.time()
            await asyncio.to_thread(drop_requests, self.state.job_id)
        await self._save()
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

    def _count(self, results: list[BatchResult]) -> None:
        control = getattr(self.backend, "_control", None)
        model = getattr(control, "model", None) or self.state.model_alias
        answers = [result.message for result in results if result.message is not None]
        try:
            metrics.record_batch_api(self.provider, model, len(results), answers)
        except Exception as err:  # counting must never cost the answers
            logger.debug("Could not count batch job %s in the metrics: %s", self.state.job_id, err)

    def _unidentified(self, part: JobPart, lines: int) -> None:
        """``part`` was matched to a provider job holding none of its requests: drop that job from it."""
        foreign = part.provider_job_id
        logger.warning(
            "Batch job %s: provider job %s, taken for part %s, holds none of its requests (%d other result "
            "lines, ignored): the part could not be identified at the provider",
            self.state.job_id,
            foreign,
            part.name,
            lines,
        )
        part.provider_job_id = None
        part.status = "unidentified"
        part.error = ["BatchUnidentified", f"provider job {foreign} holds none of its requests"]

    async def _split(self, part: JobPart) -> None:
        """Send ``part``, refused for its token count, again as two halves (when it can be halved)."""
        depth = part.name.count(".")
        if len(part.items) < 2 or depth >= MAX_SPLITS:
            return
        requests = self._by_custom_id() or await asyncio.to_thread(load_requests, self.state.job_id)
        if not all(key in requests for key in part.items):
            return
        keys = list(part.items)
        middle = len(keys) // 2
        halves = [
            JobPart(items={k: part.items[k] for k in chunk}, name=f"{part.name}.{n}")
            for n, chunk in enumerate((keys[:middle], keys[middle:]))
        ]
        logger.info(
            "Batch job %s: part %s (%d requests) holds too many tokens for the provider; sending it again "
            "in two halves",
            self.state.job_id,
            part.name,
            len(keys),
        )
        at = self.state.parts.index(part)
        self.state.parts[at : at + 1] = halves
        for half in halves:
            await self._submit_part(half, requests)

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

    def _progress(self, latest: Mapping[str, PartStatus], started: float, status: str) -> BatchProgress:
        local = len(self.state.local_errors) + sum(
            len(p.items) for p in self.state.parts if p.provider_job_id is None
        )
        current = [
            latest[p.provider_job_id]
            for p in self.state.parts
            if p.provider_job_id and p.provider_job_id in latest
        ]
        succeeded = sum(s.succeeded for s in current)
        failed = local + sum(s.failed for s in current)
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
        self, outcomes: Mapping[str, Outcome], latest: Mapping[str, PartStatus]
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
            elif state.parts[number].status == "unknown":
                outcome = _maybe_submitted(self.provider, state.job_id)
            elif state.parts[number].status == "unidentified":
                outcome = _unidentified(self.provider, state.job_id)
            elif state.parts[number].provider_job_id is None:
                failure = self._submit_errors.get(state.parts[number].name)
                outcome = (
                    _own_copy(failure)
                    if failure is not None
                    else unanswered(self.provider, "not_submitted", _why_not_submitted(state.parts[number]))
                )
            else:
                key = state.parts[number].provider_job_id or ""
                status = latest[key].status if key in latest else "unknown"
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


def _maybe_submitted(provider: str, job_id: str) -> ProviderError:
    return ProviderError(
        f"Provider '{provider}' may or may not have received this batch request (the answer to creating "
        "its part of the job was lost)",
        provider=provider,
        error_code="BATCH_UNKNOWN",
        retryable=True,
        suggestion=f"registry.resume_batch({job_id!r}) looks the job up at the provider and collects it.",
        details={"batch_job_id": job_id},
    )


def _unidentified(provider: str, job_id: str) -> ProviderError:
    return ProviderError(
        f"The part of batch job {job_id} holding this item could not be identified at provider "
        f"'{provider}': the provider job found for it holds other requests, whose results were ignored",
        provider=provider,
        error_code="BATCH_UNIDENTIFIED",
        retryable=True,
        suggestion=(
            "Send this input again in a new job: registry.batch_invoke([...]) without "
            f"job_id={job_id!r} (that id names this job, whose other items keep their results)."
        ),
        details={"batch_job_id": job_id},
    )


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
