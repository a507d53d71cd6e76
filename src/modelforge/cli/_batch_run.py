"""Sending the lines of ``modelforge batch``: live calls, the provider's batch API, and the progress bar.

Live (``run_live``): one call of the registry's model per line, through ``BatchProcessor`` (so the
provider's rate limits and retry policy, with its ``retry.batch`` settings, apply to every call), at most
``concurrency`` at a time; each line's options go to its own call, and its record is appended to the
journal the moment the call ends.

Batch API (``run_api``): the lines are grouped by their options (a provider job has one set of call
options), each group is one ``registry.batch_invoke(..., use_batch_api=..., job_id=...)``, all groups at
once. The job ids are chosen here and written to the job file *before* anything is submitted, so a run
killed at any point leaves enough for ``collect_jobs`` (``registry.resume_batch``) to collect the jobs
instead of submitting them again. A job that is still running when the provider's ``batch.max_wait`` runs
out stays in the job file and its lines get an error record saying to run again with ``--resume``.

``Tracker`` adds up the ``BatchProgress`` of every source into one rich progress bar on stderr (done/total,
failed, rate, ETA), shown only when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelforge.batch import BatchProcessor, BatchProgress, BatchResult
from modelforge.cli._batch_io import JobEntry, Journal, Line, digest_of, error_record, ok_record, save_jobs
from modelforge.exceptions import ConfigurationError, InvalidInputError, ModelForgeError

__all__ = ["Records", "Tracker", "collect_jobs", "run_api", "run_live"]

Records = dict[int, dict[str, Any]]  # line number -> record


class Tracker:
    """The progress of the whole run: lines already settled plus every source's ``BatchProgress``."""

    def __init__(self, total: int, *, done: int, failed: int, show: bool) -> None:
        self.total = total
        self._base = (done, failed)
        self._sources: dict[str, tuple[int, int]] = {}
        self._progress: Any = None
        self._task: Any = None
        if show and total:
            self._start()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("batch", total=self.total, failed=self._base[1], rate="")
        self._progress.update(self._task, completed=self._base[0])
        self._progress.start()

    def source(self, name: str) -> Callable[[BatchProgress], None]:
        """The ``on_progress`` callback of one source (a live batch, a provider job)."""

        def update(progress: BatchProgress) -> None:
            self._sources[name] = (progress.done, progress.failed)
            self._refresh()

        return update

    def _refresh(self) -> None:
        if self._progress is None:
            return
        done = min(self.total, self._base[0] + sum(d for d, _ in self._sources.values()))
        failed = self._base[1] + sum(f for _, f in self._sources.values())
        self._progress.update(self._task, completed=done, failed=failed)
        speed = self._progress.tasks[0].speed
        self._progress.update(self._task, rate=f"{speed:.1f}/s" if speed else "")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# -- live -------------------------------------------------------------------------------------------------


async def run_live(
    llm: Any, lines: list[Line], *, model: str, concurrency: int, journal: Journal, tracker: Tracker
) -> Records:
    """Answer ``lines`` with concurrent calls of ``llm``; every record journaled as it is finished."""
    from langchain_core.runnables import RunnableLambda

    from modelforge.assistant.options import family_of, options_for

    records: Records = {}
    provider = str(getattr(llm, "provider_name", "") or "")
    family = family_of(llm) or ""

    def finish(record: dict[str, Any]) -> None:
        records[record["line"]] = record
        journal.append(record)

    async def call(line: Line) -> Any:
        try:
            # Each family takes the options where its SDK expects them (Ollama's inside ``options``...).
            target: Any
            target, kwargs = options_for(llm, provider, family, line.options)
            message = await target.ainvoke(line.payload, **kwargs)
        except Exception as err:
            finish(error_record(line, err))
            raise
        finish(ok_record(line, message, model))
        return message

    processor = BatchProcessor(
        RunnableLambda(call, name="modelforge-batch-line"),
        max_concurrent=concurrency,
        on_progress=tracker.source("live"),
    )
    results = await processor.run(lines)
    for line, result in zip(lines, results, strict=True):
        if line.line not in records:  # pragma: no cover - call() records every line it ends
            finish(_record(line, result, model))
    return records


def _record(line: Line, result: BatchResult, model: str) -> dict[str, Any]:
    if result.error is not None:
        return error_record(line, result.error)
    try:
        return ok_record(line, result.unwrap(), model)
    except TypeError as err:
        return error_record(line, err)


# -- batch API --------------------------------------------------------------------------------------------


def _groups(lines: list[Line]) -> list[list[Line]]:
    """``lines`` by their options, in order of first appearance (one provider job per group)."""
    groups: dict[str, list[Line]] = {}
    for line in lines:
        groups.setdefault(json.dumps(line.options, sort_keys=True), []).append(line)
    return list(groups.values())


def _pending_note(err: ModelForgeError) -> ModelForgeError:
    """The error for the lines of a job still running: it says how to collect it with this command."""
    err.message = f"{err.message}; run modelforge batch again with --resume to collect it"
    return err


async def run_api(
    registry: Any,
    lines: list[Line],
    *,
    provider: str | None,
    model_alias: str | None,
    model: str,
    use_batch_api: bool | str,
    concurrency: int | None,
    poll_interval: float | None = None,
    jobs: list[JobEntry],
    job_path: Path,
    journal: Journal,
    tracker: Tracker,
) -> Records:
    """Send ``lines`` as provider batch jobs (one per set of options); ``jobs`` is updated in place."""
    groups = _groups(lines)
    entries = [JobEntry(f"mfcli-{uuid.uuid4().hex[:20]}", [x.line for x in g], digest_of(g)) for g in groups]
    jobs.extend(entries)
    save_jobs(job_path, jobs)  # before anything is submitted: a killed run can always be collected
    records: Records = {}
    unusable: list[ConfigurationError] = []

    async def one(entry: JobEntry, group: list[Line]) -> None:
        try:
            results = await registry.batch_invoke(
                [line.payload for line in group],
                provider_name=provider,
                model_alias=model_alias,
                max_concurrent=concurrency,
                use_batch_api=use_batch_api,
                on_progress=tracker.source(entry.job_id),
                job_id=entry.job_id,
                poll_interval=poll_interval,
                **group[0].options,
            )
        except ConfigurationError as err:  # no batch API here, a bad batch section: nothing was sent
            jobs.remove(entry)
            unusable.append(err)
            return
        except ModelForgeError as err:
            _fail(entry, group, err, jobs, records, journal)
            return
        if not _maybe_submitted(results):
            jobs.remove(entry)
        _settle(group, results, model, records, journal)

    async with asyncio.TaskGroup() as tasks:
        for entry, group in zip(entries, groups, strict=True):
            tasks.create_task(one(entry, group))
    save_jobs(job_path, jobs)
    if unusable:
        err = unusable[0]
        if err.error_code == "BATCH_API_UNAVAILABLE":
            err.suggestion = (
                f"{err.suggestion or ''} Here: run without --batch-api, or with --no-batch-api.".strip()
            )
        raise err
    return records


def _fail(
    entry: JobEntry,
    group: list[Line],
    err: ModelForgeError,
    jobs: list[JobEntry],
    records: Records,
    journal: Journal,
) -> None:
    """Every line of a job that ended in ``err``; the job stays listed when it lives on at the provider."""
    if err.details.get("batch_job_id"):
        err = _pending_note(err)
    elif entry in jobs:
        jobs.remove(entry)
    for line in group:
        record = error_record(line, err)
        records[line.line] = record
        journal.append(record)


def _maybe_submitted(results: list[BatchResult]) -> bool:
    """Whether a part of the job may exist at the provider unseen (``BATCH_UNKNOWN``): keep it listed, so
    ``--resume`` looks it up again rather than paying for its lines twice."""
    return any(getattr(r.error, "error_code", None) == "BATCH_UNKNOWN" for r in results)


def _settle(
    group: list[Line], results: list[BatchResult], model: str, records: Records, journal: Journal
) -> None:
    for line, result in zip(group, results, strict=True):
        record = _record(line, result, model)
        records[line.line] = record
        journal.append(record)


async def collect_jobs(
    registry: Any,
    jobs: list[JobEntry],
    current: dict[int, Line],
    wanted: set[int],
    *,
    model: str,
    poll_interval: float | None = None,
    source: Path,
    job_path: Path,
    journal: Journal,
    tracker: Tracker,
) -> Records:
    """Collect the jobs of an earlier run for the ``wanted`` line numbers (``registry.resume_batch``).

    ``current`` is every line of the input by number: a job whose lines changed since it was submitted is
    an error (its answers would be given to other prompts). A job this machine has no record of was never
    submitted (the job file is written before anything is sent): its lines stay to be sent again. ``jobs``
    is updated in place and saved.
    """
    from modelforge.cli._output import note

    records: Records = {}
    for entry in list(jobs):
        if not wanted.intersection(entry.lines):
            jobs.remove(entry)  # every line of it is answered already
            continue
        group = [current.get(number) for number in entry.lines]
        if any(line is None for line in group) or digest_of([x for x in group if x]) != entry.digest:
            raise InvalidInputError(
                f"{source} changed since batch job {entry.job_id} was submitted for its lines "
                f"{entry.lines[0]}-{entry.lines[-1]}",
                suggestion=f"Restore the input to collect that job, or remove {job_path} to send its lines "
                "again (the submitted job is then not collected).",
                error_code="INPUT_CHANGED",
            )
        note(f"Collecting batch job {entry.job_id} ({len(entry.lines)} lines) submitted by an earlier run...")
        try:
            results = await registry.resume_batch(
                entry.job_id, on_progress=tracker.source(entry.job_id), poll_interval=poll_interval
            )
        except InvalidInputError:
            note(f"Batch job {entry.job_id} was never submitted; its lines are sent again.")
            jobs.remove(entry)
            continue
        except ModelForgeError as err:
            _fail(entry, [current[n] for n in entry.lines if n in wanted], err, jobs, records, journal)
            continue
        if not _maybe_submitted(results):
            jobs.remove(entry)
        if len(results) != len(entry.lines):  # pragma: no cover - resume_batch answers every item
            raise InvalidInputError(
                f"Batch job {entry.job_id} returned {len(results)} results for {len(entry.lines)} lines"
            )
        pairs = [(current[n], r) for n, r in zip(entry.lines, results, strict=True) if n in wanted]
        _settle([p[0] for p in pairs], [p[1] for p in pairs], model, records, journal)
    save_jobs(job_path, jobs)
    return records
