"""The files of ``modelforge batch``: the input lines, the output records and the job file beside them.

Input (``IN.jsonl``): one JSON value per line — a string (the prompt), or an object with ``prompt`` (a
string) or ``messages`` (a list of ``{"role", "content"}``), an optional ``id`` (a string or a whole
number; default: the line number) and optional per-line options (``LINE_OPTIONS``). Blank lines are
skipped. A line that cannot be read becomes a ``Line`` with a ``problem`` (an error record in the output,
never a stop); duplicate ids stop everything before anything is sent (``check_unique_ids``).

Output (``OUT.jsonl``): one record per input line (``ok_record`` / ``error_record``). ``Journal`` appends
each record as it is finished and flushes it, so a killed run loses nothing finished; ``write_output``
rewrites the whole file atomically in input order at the end (owner-only, through ``modelforge._files``);
``read_output`` reads back the records of an earlier run for ``--resume``.

Job file (``OUT.jsonl.job``): the provider batch jobs submitted and not yet collected (``JobEntry``), so
``--resume`` collects them instead of paying for them twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from modelforge._secrets import mask_secrets
from modelforge.exceptions import FileValidationError, InvalidInputError

__all__ = [
    "LINE_OPTIONS",
    "JobEntry",
    "Journal",
    "Line",
    "check_unique_ids",
    "error_record",
    "job_file",
    "load_jobs",
    "ok_record",
    "read_lines",
    "read_output",
    "save_jobs",
    "write_output",
]

# The per-line options a line may carry (also given to every call: see ``Line.options``).
LINE_OPTIONS = ("max_tokens", "temperature", "stop")
_KEYS = ("prompt", "messages", "id", *LINE_OPTIONS)
_ROLES = ("system", "user", "assistant")
_JOB_FILE_VERSION = 1


@dataclass
class Line:
    """One non-blank input line: what to send (``payload`` with ``options``), or why it cannot be sent."""

    line: int
    id: str | int
    payload: str | list[dict[str, Any]] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    problem_code: str = "INVALID_LINE"

    @property
    def key(self) -> str:
        """The id as a key (``1`` and ``"1"`` are different ids)."""
        return id_key(self.id)


def id_key(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- input ------------------------------------------------------------------------------------------------


def read_lines(path: Path, *, system: str | None = None, max_tokens: int | None = None) -> list[Line]:
    """Every non-blank line of ``path``; ``system`` and ``max_tokens`` apply where the line sets neither."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FileValidationError(str(path), "is not UTF-8 text", suggestion="Save it as UTF-8.") from err
    lines: list[Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            lines.append(_parse(number, raw, system=system, max_tokens=max_tokens))
    return lines


def _parse(number: int, raw: str, *, system: str | None, max_tokens: int | None) -> Line:
    try:
        value = json.loads(raw)
    except ValueError as err:
        return Line(
            number, number, problem=f"line {number} is not valid JSON ({err})", problem_code="INVALID_JSON"
        )
    defaults: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    if isinstance(value, str):
        if not value.strip():
            return Line(number, number, problem=f"line {number}: the prompt is empty")
        payload: str | list[dict[str, Any]] = value
        if system:
            payload = [{"role": "system", "content": system}, {"role": "user", "content": value}]
        return Line(number, number, payload, defaults)
    if not isinstance(value, dict):
        return Line(
            number,
            number,
            problem=f"line {number} is a JSON {type(value).__name__}, not a prompt string or an object "
            'with "prompt" or "messages"',
        )
    line_id = value.get("id", number)
    if isinstance(line_id, bool) or not isinstance(line_id, str | int):
        return Line(number, number, problem=f'line {number}: "id" must be a string or a whole number')
    try:
        payload = _payload(value, system)
        options = {**defaults, **_options(value)}
    except ValueError as err:
        return Line(number, line_id, problem=f"line {number}: {err}")
    return Line(number, line_id, payload, options)


def _payload(value: Mapping[str, Any], system: str | None) -> str | list[dict[str, Any]]:
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise ValueError(f'unknown key "{unknown[0]}"; accepted keys: {", ".join(_KEYS)}')
    if ("prompt" in value) == ("messages" in value):
        raise ValueError('give either "prompt" (a string) or "messages" (a list of {"role", "content"})')
    if "prompt" in value:
        prompt = value["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError('"prompt" must be a non-empty string')
        messages = [{"role": "user", "content": prompt}]
        if not system:
            return prompt
    else:
        messages = _messages(value["messages"])
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ValueError('"messages" must be a non-empty list of {"role", "content"} objects')
    messages: list[dict[str, Any]] = []
    for number, message in enumerate(value, start=1):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ValueError(f'message {number} must be an object with exactly "role" and "content"')
        if message["role"] not in _ROLES:
            raise ValueError(f'message {number}: "role" must be one of {", ".join(_ROLES)}')
        if not isinstance(message["content"], str | list):
            raise ValueError(f'message {number}: "content" must be a string (or a list of content blocks)')
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _options(value: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "max_tokens" in value:
        tokens = value["max_tokens"]
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValueError('"max_tokens" must be a whole number >= 1')
        options["max_tokens"] = tokens
    if "temperature" in value:
        temperature = value["temperature"]
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not math.isfinite(temperature)
            or temperature < 0
        ):
            raise ValueError('"temperature" must be a number >= 0')
        options["temperature"] = temperature
    if "stop" in value:
        stop = value["stop"]
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not stops or not all(isinstance(s, str) and s for s in stops):
            raise ValueError('"stop" must be a non-empty string or a list of them')
        options["stop"] = stops
    return options


def check_unique_ids(lines: Iterable[Line], source: Path) -> None:
    """``InvalidInputError`` naming the lines of every id used more than once."""
    seen: dict[str, list[Line]] = {}
    for line in lines:
        seen.setdefault(line.key, []).append(line)
    repeated = [group for group in seen.values() if len(group) > 1]
    if not repeated:
        return
    named = "; ".join(
        f"id {group[0].key} on lines {', '.join(str(line.line) for line in group)}" for group in repeated[:5]
    )
    more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
    raise InvalidInputError(
        f"{source} has duplicate ids: {named}{more}",
        suggestion="Give every line its own id (a line without one gets its line number). Nothing was sent.",
        error_code="DUPLICATE_IDS",
    )


# -- output -----------------------------------------------------------------------------------------------


def ok_record(line: Line, message: Any, model: str) -> dict[str, Any]:
    """The record of an answered line (``message`` is the model's ``AIMessage``)."""
    usage = getattr(message, "usage_metadata", None) or {}
    metadata = getattr(message, "response_metadata", None) or {}
    return {
        "id": line.id,
        "line": line.line,
        "ok": True,
        "content": str(message.text),
        "usage": {"input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens")},
        "model": str(metadata.get("model_name") or metadata.get("model") or model),
        "prompt_digest": prompt_digest(line),
    }


def prompt_digest(line: Line) -> str:
    """What a line asked (its messages and options): ``--resume`` keeps an answer only for the same ask."""
    blob = json.dumps([line.payload, line.options], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def error_record(line: Line, error: BaseException | None = None) -> dict[str, Any]:
    """The record of a line that failed (``error``) or could not be read (``line.problem``)."""
    if error is None:
        kind, code, message = "InvalidInputError", line.problem_code, line.problem or "cannot be sent"
    else:
        kind = type(error).__name__
        code = str(getattr(error, "error_code", None) or kind)
        message = str(error) or kind
    return {
        "id": line.id,
        "line": line.line,
        "ok": False,
        "error": {"type": kind, "code": code, "message": mask_secrets(message)},
    }


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


class Journal:
    """Appends finished records to the output file, flushed one by one (the file is owner-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._handle: IO[str] = os.fdopen(fd, "a", encoding="utf-8")

    def append(self, record: Mapping[str, Any]) -> None:
        self._handle.write(_dumps(record))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def write_output(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``records`` (atomically, owner-only)."""
    from modelforge._files import atomic_write_text

    atomic_write_text(path, "".join(_dumps(record) for record in records), mode=0o600)


def read_output(path: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """The records of an earlier run by id key (an ok record wins over a failure), and how many lines of
    ``path`` were not records (a run killed mid-write leaves at most one)."""
    records: dict[str, dict[str, Any]] = {}
    unreadable = 0
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            unreadable += 1
            continue
        if not isinstance(record, dict) or "id" not in record or not isinstance(record.get("ok"), bool):
            unreadable += 1
            continue
        key = id_key(record["id"])
        if record["ok"] or not records.get(key, {}).get("ok"):
            records[key] = record
    return records, unreadable


# -- the job file -----------------------------------------------------------------------------------------


@dataclass
class JobEntry:
    """A provider batch job of this output: its id, its lines (in job order) and their digest."""

    job_id: str
    lines: list[int]
    digest: str


def job_file(output: Path) -> Path:
    return output.with_name(output.name + ".job")


def digest_of(lines: Iterable[Line]) -> str:
    """What a job was submitted with (line numbers, ids, payloads, options), to tell an edited input."""
    blob = json.dumps(
        [[x.line, x.id, x.payload, x.options] for x in lines], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_jobs(path: Path) -> list[JobEntry]:
    """The jobs listed in ``path`` (none when it does not exist)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            JobEntry(str(j["job_id"]), [int(n) for n in j["lines"]], str(j["digest"])) for j in data["jobs"]
        ]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidInputError(
            f"The job file {path} cannot be read ({type(err).__name__})",
            suggestion=f"Remove {path} to send its lines again (its jobs are then not collected).",
        ) from err


def save_jobs(path: Path, jobs: list[JobEntry]) -> None:
    """Write the job file (atomically, owner-only), or remove it when no job is left."""
    if not jobs:
        path.unlink(missing_ok=True)
        return
    from modelforge._files import atomic_write_text

    data = {
        "version": _JOB_FILE_VERSION,
        "jobs": [{"job_id": j.job_id, "lines": j.lines, "digest": j.digest} for j in jobs],
    }
    atomic_write_text(path, json.dumps(data, indent=1), mode=0o600)
