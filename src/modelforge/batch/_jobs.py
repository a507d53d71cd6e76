"""Provider batch jobs on disk, so a job outlives the process that submitted it.

One JSON file per job, ``~/.cache/model-forge/batches/<job_id>.json`` (owner-only, written atomically
through ``modelforge._files``; the home directory is read at call time): the provider and model alias it
runs on, how many items it has, and its parts — one per provider job when the batch was split — each with
its state (``unsubmitted``, ``submitting`` with the uploaded file's id, ``unknown`` after a create that
may or may not have happened, ``submitted`` or the provider's status word, ``submit_failed``), the
provider's job id once known and the ``custom_id -> index`` map of its items. Items that could not even be
turned into a request are kept with their error (secrets masked). This file is rewritten as the job moves;
two files beside it are written once: ``<job_id>.inputs.json`` (the inputs, to hand them back in the
results) and ``<job_id>.requests.jsonl`` (the request lines, so parts not yet submitted can be submitted by
``resume_batch``; removed once the job is collected). Files of jobs collected more than
``KEEP_FINISHED_DAYS`` ago are removed when a new job starts. These functions do blocking file I/O: async
code runs them in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    convert_to_messages,
    messages_from_dict,
    messages_to_dict,
)
from langchain_core.prompt_values import PromptValue

from modelforge._files import atomic_write_text, ensure_private_dir
from modelforge._secrets import mask_secrets
from modelforge.exceptions import InvalidInputError

__all__ = [
    "KEEP_FINISHED_DAYS",
    "JobPart",
    "JobState",
    "as_messages",
    "check_job_id",
    "decode_input",
    "drop_job",
    "drop_requests",
    "encode_input",
    "fingerprint",
    "jobs_dir",
    "load_job",
    "load_requests",
    "masked",
    "new_job_id",
    "prune_finished",
    "save_inputs",
    "save_job",
    "save_requests",
]

KEEP_FINISHED_DAYS = 30
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FORMAT = 2
_INPUTS = ".inputs.json"
_REQUESTS = ".requests.jsonl"


def jobs_dir() -> Path:
    """Where job files live (under the current user's home)."""
    return Path.home() / ".cache" / "model-forge" / "batches"


def new_job_id() -> str:
    return f"mfbatch_{uuid.uuid4().hex[:20]}"


def check_job_id(job_id: str) -> str:
    """``job_id`` if it can name a job file, else ``InvalidInputError``."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise InvalidInputError(
            f"Invalid batch job id {job_id!r}",
            suggestion="Use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit.",
        )
    return job_id


@dataclass
class JobPart:
    """One provider batch job of a ModelForge job: its id once submitted, its items by ``custom_id``."""

    items: dict[str, int]
    provider_job_id: str | None = None
    status: str = "unsubmitted"
    # Why the submission failed: [error type, message (secrets masked)].
    error: list[str] | None = None
    # Its name in the provider job's metadata ("0", "1"; halves of "1": "1.0", "1.1").
    name: str = ""
    # The uploaded input file (OpenAI), and when the create was first sent (time.time()).
    upload_id: str | None = None
    since: float | None = None


@dataclass
class JobState:
    """Everything needed to collect a job's results, from any process."""

    job_id: str
    provider: str
    model_alias: str
    llm_type: str
    count: int
    fingerprint: str
    parts: list[JobPart] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    # Items that never became a request: index -> (error type, message).
    local_errors: dict[int, tuple[str, str]] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("inputs")  # written once, beside the job file
        data["format"] = _FORMAT
        data["local_errors"] = {str(k): list(v) for k, v in self.local_errors.items()}
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> JobState:
        data = json.loads(text)
        data.pop("format", None)
        data["parts"] = [JobPart(**part) for part in data.get("parts", [])]
        data["local_errors"] = {int(k): (v[0], v[1]) for k, v in data.get("local_errors", {}).items()}
        return cls(**data)


def masked(err: BaseException) -> list[str]:
    """``[error type, message]`` of an error, to save: secrets in the message masked."""
    return [type(err).__name__, mask_secrets(str(err))]


def fingerprint(encoded_inputs: list[Any], kwargs: dict[str, Any]) -> str:
    """A digest of a batch's inputs and call options, to recognise the same batch run again."""
    blob = json.dumps([encoded_inputs, kwargs], sort_keys=True, default=_stable, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _stable(value: Any) -> str:
    """A name for a value JSON cannot hold that stays the same from one run to the next (no addresses).

    Its qualified name, with a digest of what it is where that can be read: a pydantic model's JSON schema,
    a function's or class's source (so two tools or schemas of the same name are told apart).
    """
    name = str(getattr(value, "__qualname__", None) or type(value).__qualname__)
    content: str | None = None
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):
        with contextlib.suppress(Exception):
            content = json.dumps(schema(), sort_keys=True, default=str)
    if content is None and (inspect.isfunction(value) or inspect.isclass(value) or inspect.ismethod(value)):
        with contextlib.suppress(OSError, TypeError):
            content = inspect.getsource(value)
    if content is None:
        return name
    return f"{name}:{hashlib.sha256(content.encode('utf-8')).hexdigest()[:16]}"


def encode_input(item: Any) -> Any:
    """A JSON form of one input (a string, or its messages); ``None`` when it has none."""
    if isinstance(item, str):
        return item
    try:
        encoded = {"messages": messages_to_dict(as_messages(item))}
        json.dumps(encoded)
    except Exception:
        return None
    return encoded


def as_messages(item: Any) -> list[BaseMessage]:
    """The messages of one chat-model input (a string, a prompt value or a list of messages/tuples)."""
    if isinstance(item, str):
        return [HumanMessage(content=item)]
    if isinstance(item, PromptValue):
        return item.to_messages()
    if isinstance(item, BaseMessage):
        return [item]
    if isinstance(item, Sequence):
        return convert_to_messages(item)
    raise InvalidInputError(
        f"A batch input must be a string, a prompt value or a list of messages, not {type(item).__name__}"
    )


def decode_input(data: Any) -> Any:
    """The input as ``encode_input`` stored it (messages come back as message objects)."""
    if isinstance(data, dict) and "messages" in data:
        restored: list[BaseMessage] = messages_from_dict(data["messages"])
        return restored
    return data


def _path(job_id: str, suffix: str = ".json") -> Path:
    return jobs_dir() / f"{check_job_id(job_id)}{suffix}"


def save_job(state: JobState) -> None:
    """Write ``state`` without its inputs (atomically, mode 0600)."""
    directory = jobs_dir()
    ensure_private_dir(directory)
    atomic_write_text(_path(state.job_id), state.to_json(), mode=0o600)


def save_inputs(state: JobState) -> None:
    """Write the job's inputs beside its file, once (atomically, mode 0600)."""
    ensure_private_dir(jobs_dir())
    text = json.dumps(state.inputs, ensure_ascii=False)
    atomic_write_text(_path(state.job_id, _INPUTS), text, mode=0o600)


def save_requests(job_id: str, requests: Sequence[dict[str, Any]]) -> None:
    """Write the job's request lines beside its file, once (atomically, mode 0600)."""
    ensure_private_dir(jobs_dir())
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    atomic_write_text(_path(job_id, _REQUESTS), text, mode=0o600)


def load_requests(job_id: str) -> dict[str, dict[str, Any]]:
    """The saved request lines of ``job_id`` by ``custom_id`` (empty when there are none)."""
    try:
        text = _path(job_id, _REQUESTS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    requests: dict[str, dict[str, Any]] = {}
    for row in text.splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            line = json.loads(row)
            requests[str(line["custom_id"])] = line
    return requests


def drop_requests(job_id: str) -> None:
    """Remove the saved request lines of ``job_id`` (the job no longer needs them)."""
    with contextlib.suppress(FileNotFoundError):
        _path(job_id, _REQUESTS).unlink()


def drop_job(job_id: str) -> None:
    """Remove every file of ``job_id``."""
    for suffix in (".json", _INPUTS, _REQUESTS):
        with contextlib.suppress(FileNotFoundError):
            _path(job_id, suffix).unlink()


def load_job(job_id: str) -> JobState | None:
    """The saved job ``job_id``, or ``None`` when there is none."""
    path = _path(job_id)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = JobState.from_json(text)
        if not state.inputs:
            with contextlib.suppress(FileNotFoundError):
                inputs = json.loads(_path(job_id, _INPUTS).read_text(encoding="utf-8"))
                state.inputs = inputs if isinstance(inputs, list) else []
        return state
    except (ValueError, TypeError, KeyError) as err:
        raise InvalidInputError(
            f"The batch job file {path} cannot be read ({type(err).__name__})",
            suggestion="It was damaged or written by another version; the provider's jobs can still be "
            "found in its console.",
        ) from err


def prune_finished(now: float | None = None) -> None:
    """Remove files of jobs whose results were collected more than ``KEEP_FINISHED_DAYS`` ago."""
    limit = (now if now is not None else time.time()) - KEEP_FINISHED_DAYS * 86400
    directory = jobs_dir()
    if not directory.is_dir():
        return
    for path in directory.glob("*.json"):
        if path.name.endswith(_INPUTS):
            continue
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, InvalidInputError):
            finished = json.loads(path.read_text(encoding="utf-8")).get("finished_at")
            if isinstance(finished, int | float) and finished < limit:
                drop_job(path.name.removesuffix(".json"))
