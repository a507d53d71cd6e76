"""``modelforge batch IN.jsonl -o OUT.jsonl``: answer every line of a JSONL file, resumably.

Each input line is one prompt (see ``_batch_io`` for the line shapes and per-line options); each gets
exactly one output record, in input order. Lines go live through the registry's model (its rate limits and
retry policy apply to every call) or, with ``--batch-api``, through the provider's batch API. Records are
appended to the output as they are finished (a killed run loses nothing finished) and the file is
rewritten atomically in input order at the end; ``--resume`` keeps the answered lines of an earlier run,
collects the provider jobs it submitted (``OUT.jsonl.job``) and sends only what is missing or failed.

Progress (a rich bar) and the summary line go to stderr; stdout stays empty. Exit codes: 0 every line
answered, 1 a line failed (or the run could not start), 2 a usage error.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelforge.cli._errors import set_verbose
from modelforge.cli._output import note
from modelforge.exceptions import InvalidInputError

if TYPE_CHECKING:
    from modelforge.cli._batch_io import JobEntry, Line
    from modelforge.cli._batch_run import Records

__all__ = ["batch_command"]


def _refuse_existing(output: Path, job_path: Path) -> None:
    """Without ``--resume``, an earlier run's output or job file is never written over."""
    has_output = output.exists() and output.stat().st_size > 0
    if has_output or job_path.exists():
        what = f"{output} already exists and is not empty" if has_output else f"{job_path} exists"
        raise InvalidInputError(
            f"{what} (an earlier run's answers)",
            suggestion="Pass --resume to keep its answers and send only the missing and failed lines, or "
            f"remove {output} (and {job_path.name}, if any) to start over.",
            error_code="OUTPUT_EXISTS",
        )


def _kept(output: Path, lines: list[Line]) -> Records:
    """The answered lines of an earlier run's output, by line number (``--resume``)."""
    from modelforge.cli._batch_io import prompt_digest, read_output

    if not output.exists():
        return {}
    found, unreadable = read_output(output)
    by_key = {line.key: line for line in lines}
    strangers = [key for key, record in found.items() if record["ok"] and key not in by_key]
    if strangers:
        raise InvalidInputError(
            f"{output} holds answers for ids that are not in the input (id {strangers[0]}"
            f"{f' and {len(strangers) - 1} more' if len(strangers) > 1 else ''})",
            suggestion="Resume with the input file this output was made from, or choose another -o.",
            error_code="OUTPUT_MISMATCH",
        )
    if unreadable and not found:
        raise InvalidInputError(
            f"{output} is not the output of modelforge batch ({unreadable} lines are not its records)",
            suggestion="Choose another -o, or remove the file.",
            error_code="OUTPUT_MISMATCH",
        )
    if unreadable:
        note(f"Ignoring {unreadable} unreadable line(s) of {output} (a run stopped while writing).")
    kept: Records = {}
    changed = 0
    for key, record in found.items():
        line = by_key.get(key)
        if record["ok"] and line is not None and line.problem is None:
            if record.get("prompt_digest") != prompt_digest(line):
                changed += 1  # the line now asks something else (edited, or lines moved under default ids)
                continue
            kept[line.line] = {**record, "id": line.id, "line": line.line}
    if changed:
        note(f"{changed} answered line(s) ask something else now; sending them again.")
    return kept


def _settings(registry: Any, provider: str | None) -> Any:
    from modelforge.batch import batch_settings

    return batch_settings(registry, provider)


async def _send(
    registry: Any,
    llm: Any,
    lines: list[Line],
    records: Records,
    jobs: list[JobEntry],
    *,
    options: dict[str, Any],
    paths: tuple[Path, Path],
    journal: Any,
    tracker: Any,
) -> None:
    """Collect the earlier run's jobs, then send every line that still has no record."""
    from modelforge.cli._batch_run import collect_jobs, run_api, run_live

    source, job_path = paths  # the input file, the job file
    current = {line.line: line for line in lines}
    try:
        if jobs:
            wanted = {line.line for line in lines if line.line not in records}
            records.update(
                await collect_jobs(
                    registry,
                    jobs,
                    current,
                    wanted,
                    model=options["model"],
                    poll_interval=options["poll_interval"],
                    source=source,
                    job_path=job_path,
                    journal=journal,
                    tracker=tracker,
                )
            )
        todo = [line for line in lines if line.line not in records]
        if not todo:
            return
        if options["use_batch_api"] is False:
            records.update(
                await run_live(
                    llm,
                    todo,
                    model=options["model"],
                    concurrency=options["concurrency"],
                    journal=journal,
                    tracker=tracker,
                )
            )
        else:
            records.update(
                await run_api(
                    registry,
                    todo,
                    provider=options["provider"],
                    model_alias=options["model_alias"],
                    model=options["model"],
                    use_batch_api=options["use_batch_api"],
                    concurrency=options["concurrency"],
                    poll_interval=options["poll_interval"],
                    jobs=jobs,
                    job_path=job_path,
                    journal=journal,
                    tracker=tracker,
                )
            )
    finally:
        await registry.aclose()


@click.command(name="batch")
@click.argument(
    "input_file", metavar="IN.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    "output_file",
    metavar="OUT.jsonl",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the answers go (one JSON record per input line, in input order).",
)
@click.option("--provider", help="Provider to use (default: the current model's).")
@click.option("--model", help="Model alias to use (default: the current model).")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Calls in flight at once (default: the provider's batch setting).",
)
@click.option(
    "--batch-api/--no-batch-api",
    default=None,
    help="Through the provider's batch API (OpenAI, Anthropic), or live (default: the provider's setting).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between two looks at a batch-API job (default: the provider's batch setting, 30).",
)
@click.option(
    "--resume", is_flag=True, help="Keep the answers in OUT.jsonl; send only missing and failed lines."
)
@click.option("--max-tokens", type=click.IntRange(min=1), help="max_tokens of every line that sets none.")
@click.option("--system", help="A system message for every line that has none.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is only shown on a terminal anyway).")
@click.option("--verbose", is_flag=True, callback=set_verbose, help="Show tracebacks of errors.")
@click.pass_context
def batch_command(
    ctx: click.Context,
    input_file: Path,
    output_file: Path,
    provider: str | None,
    model: str | None,
    concurrency: int | None,
    batch_api: bool | None,
    poll_interval: float | None,
    resume: bool,
    max_tokens: int | None,
    system: str | None,
    no_progress: bool,
    verbose: bool,
) -> None:
    """Answer every line of IN.jsonl; one record per line in OUT.jsonl, in input order.

    \b
    A line is a prompt string, or an object: {"prompt": "..."} or {"messages": [{"role", "content"}...]},
    with an optional "id" (default: the line number) and options "max_tokens", "temperature", "stop".
    A record: {"id", "line", "ok": true, "content", "usage", "model"} or {"id", "line", "ok": false,
    "error": {"type", "code", "message"}}. A line that cannot be read becomes an error record.

    \b
    Exit codes: 0 every line answered; 1 some line failed (run again with --resume to retry only those)
    or the batch could not start; 2 a usage error.
    """
    from modelforge.cli._batch_io import (
        Journal,
        check_unique_ids,
        error_record,
        job_file,
        load_jobs,
        read_lines,
        write_output,
    )
    from modelforge.cli._batch_run import Tracker
    from modelforge.registry import ModelForgeRegistry

    if input_file.resolve() == output_file.resolve():
        raise click.UsageError("The output file must not be the input file.")
    lines = read_lines(input_file, system=system, max_tokens=max_tokens)
    check_unique_ids(lines, input_file)
    job_path = job_file(output_file)
    if not resume:
        _refuse_existing(output_file, job_path)
    records = _kept(output_file, lines) if resume else {}
    jobs = load_jobs(job_path) if resume else []

    registry = ModelForgeRegistry(verbose=verbose)
    llm = registry.get_llm(provider, model)
    provider_name = str(getattr(llm, "provider_name", "") or provider or "")
    alias = str(getattr(llm, "model_alias", "") or model or "")
    settings = _settings(registry, provider_name)
    options = {
        "provider": provider,
        "model_alias": model,
        "model": alias,
        "use_batch_api": settings.use_batch_api if batch_api is None else batch_api,
        "concurrency": concurrency or settings.max_concurrent,
        "poll_interval": poll_interval,
    }

    if resume and output_file.exists():
        write_output(output_file, [records[line.line] for line in lines if line.line in records])
    journal = Journal(output_file)
    try:
        for line in lines:
            if line.problem is not None:
                records[line.line] = error_record(line)
                journal.append(records[line.line])
        settled = len(records)
        tracker = Tracker(
            len(lines),
            done=settled,
            failed=sum(1 for r in records.values() if not r["ok"]),
            show=not no_progress and _stderr_is_tty(),
        )
        if resume and settled:
            note(f"Resuming: {settled} of {len(lines)} lines need no call.")
        try:
            asyncio.run(
                _send(
                    registry,
                    llm,
                    lines,
                    records,
                    jobs,
                    options=options,
                    paths=(input_file, job_path),
                    journal=journal,
                    tracker=tracker,
                )
            )
        finally:
            tracker.stop()
    except KeyboardInterrupt:
        note(f"Stopped. Finished answers are in {output_file}: run again with --resume to finish.")
        raise
    finally:
        journal.close()
    missing = [line for line in lines if line.line not in records]
    for line in missing:  # pragma: no cover - every line sent gets a record
        records[line.line] = error_record(line, RuntimeError("no result was recorded for this line"))
    write_output(output_file, [records[line.line] for line in lines])
    failed = sum(1 for line in lines if not records[line.line]["ok"])
    if jobs:
        note(
            f"Batch job(s) {', '.join(j.job_id for j in jobs)} not collected yet (still running at the "
            "provider): run the same command with --resume to collect them."
        )
    note(f"{len(lines)} lines: {len(lines) - failed} ok, {failed} failed -> {output_file}")
    if failed:
        ctx.exit(1)


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):
        return False
