"""``modelforge batch IN.jsonl -o OUT.jsonl`` against the OpenAI-protocol test server.

The server answers each prompt by its content (``server.responder``), so every record can be checked
against its line whatever order the concurrent calls or the provider's result lines came in: refusals
(400, never retried), transient 503s that recover within the provider's retry budget and 503s that exhaust
it, and malformed lines all end as one record each, in input order; ``--resume`` sends only what failed.
"""

from __future__ import annotations

import json
import os
import pty
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelforge.cli._batch_io import prompt_digest, read_lines
from modelforge.testing import Fault, ProviderServer, RecordedRequest, Reply, Usage
from modelforge.testing.script import ScriptItem
from tests.cli.conftest import Invoke, assert_clean_failure
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import openai_section

WriteConfig = Callable[[dict[str, Any]], Path]
PROMPT = re.compile(r"prompt (\d+)")
MODELFORGE = Path(sys.executable).parent / "modelforge"


def refused(i: int) -> bool:
    return i % 10 == 3  # 400: not retried


def flaky(i: int) -> bool:
    return i % 10 == 7  # one 503, then an answer (within max_attempts)


def down(i: int) -> bool:
    return i % 25 == 11  # 503 every time: retries exhaust


def prompt_of(request: RecordedRequest) -> str:
    body = request.json if isinstance(request.json, dict) else {}
    return str((body.get("messages") or [{}])[-1].get("content", ""))


def chat_requests(server: ProviderServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


class Scripted:
    """Answers ``prompt N`` by N: refusals, flaky and down prompts; counts the attempts at each prompt."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> ScriptItem:
        text = prompt_of(request)
        with self._lock:
            attempt = self.attempts[text] = self.attempts.get(text, 0) + 1
        found = PROMPT.search(text)
        if found:
            i = int(found.group(1))
            if refused(i):
                return Fault(400, f"refused {found.group(0)}")
            if down(i) or (flaky(i) and attempt == 1):
                return Fault(503, "overloaded, try again")
        return Reply(text=f"echo: {text}", usage=Usage(3, 2))


def echo(request: RecordedRequest) -> ScriptItem:
    return Reply(text=f"echo: {prompt_of(request)}", usage=Usage(3, 2))


@pytest.fixture
def srv(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """The module's server, with the key in the environment; its responder and hold undone afterwards."""
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    yield server
    server.responder = None
    server.batches.release()


def config(server: ProviderServer, **batch: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": openai_section(
                server,
                retry={"max_attempts": 3, "initial_wait": 0.001, "max_wait": 0.005},
                batch={"poll_interval": 0, **batch},
            )
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }


@pytest.fixture
def ready(srv: ProviderServer, write_config: WriteConfig) -> ProviderServer:
    write_config(config(srv))
    return srv


def records_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(row) for row in path.read_text(encoding="utf-8").splitlines()]


def write_lines(path: Path, rows: list[Any]) -> Path:
    """One JSON value per row; a row that is already a ``str`` starting with ``RAW:`` is written as is."""
    text = "".join(
        (row[4:] if isinstance(row, str) and row.startswith("RAW:") else json.dumps(row)) + "\n"
        for row in rows
    )
    path.write_text(text, encoding="utf-8")
    return path


# The malformed lines of the big batch, by the prompt number they replace, and what each error says.
MALFORMED = {
    40: ("RAW:{not json", "INVALID_JSON", "not valid JSON"),
    90: ("RAW:[1, 2]", "INVALID_LINE", "not a prompt string"),
    140: ({"prompt": "prompt 140", "colour": "red"}, "INVALID_LINE", "accepted keys: prompt, messages, id"),
    190: ({"messages": []}, "INVALID_LINE", '"messages" must be a non-empty list'),
}


def big_input(path: Path, *, malformed: bool = True) -> list[int]:
    """200 prompts in three shapes (and blank lines); returns the file line of each prompt number."""
    rows: list[Any] = []
    where: list[int] = []
    for i in range(200):
        if i % 50 == 25:
            rows.append("")  # a blank line: skipped, not a line
        if malformed and i in MALFORMED:
            row: Any = MALFORMED[i][0]
        elif i % 3 == 0:
            row = f"prompt {i}"
        elif i % 3 == 1:
            row = {"id": f"p-{i}", "prompt": f"prompt {i}"}
        else:
            row = {"messages": [{"role": "user", "content": f"prompt {i}"}], "id": 1000 + i}
        rows.append(row)
        where.append(len(rows))
    text = "".join(
        ("" if row == "" else row[4:] if isinstance(row, str) and row.startswith("RAW:") else json.dumps(row))
        + "\n"
        for row in rows
    )
    path.write_text(text, encoding="utf-8")
    return where


def expected_id(i: int, line: int) -> Any:
    return line if i % 3 == 0 or i in MALFORMED else f"p-{i}" if i % 3 == 1 else 1000 + i


def test_two_hundred_lines_with_failures_then_resume(
    ready: ProviderServer, invoke: Invoke, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    where = big_input(source)
    scripted = Scripted()
    ready.responder = scripted

    result = invoke("batch", str(source), "-o", str(out), "--concurrency", "8")

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    records = records_of(out)
    assert [r["line"] for r in records] == where  # one record per line, in input order
    failed: set[int] = set()
    for i, record in enumerate(records):
        assert record["id"] == expected_id(i, where[i]), record
        if i in MALFORMED:
            _, code, words = MALFORMED[i]
            assert not record["ok"] and record["error"]["code"] == code, record
            assert words in record["error"]["message"] and f"line {where[i]}" in record["error"]["message"]
            failed.add(i)
        elif refused(i):
            assert not record["ok"]
            assert record["error"]["type"] == "BadRequestError" and record["error"]["code"] == "BAD_REQUEST"
            assert f"refused prompt {i}" in record["error"]["message"]
            assert scripted.attempts[f"prompt {i}"] == 1  # a 400 is not retried
            failed.add(i)
        elif down(i):
            assert not record["ok"] and record["error"]["code"].startswith("PROVIDER_"), record
            assert scripted.attempts[f"prompt {i}"] == 3  # every attempt of the retry budget
            failed.add(i)
        else:
            assert record["ok"], record
            assert record["content"] == f"echo: prompt {i}"
            assert record["usage"] == {"input_tokens": 3, "output_tokens": 2}
            assert record["model"] == "gpt-4o-mini"
            if flaky(i):
                assert scripted.attempts[f"prompt {i}"] == 2  # recovered on its retry
    assert any(flaky(i) and i not in failed for i in range(200))
    assert f"200 lines: {200 - len(failed)} ok, {len(failed)} failed -> {out}" in result.stderr
    assert OPENAI_KEY not in out.read_text() and OPENAI_KEY not in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    # The user fixes the malformed lines; the provider is healthy again.
    big_input(source, malformed=False)
    ready.responder = echo
    sent_before = len(chat_requests(ready))
    resumed = invoke("batch", str(source), "-o", str(out), "--resume")

    assert resumed.exit_code == 0, resumed.output
    again = sorted(prompt_of(r) for r in chat_requests(ready)[sent_before:])
    assert again == sorted(f"prompt {i}" for i in failed)  # only the failed lines were sent again
    records = records_of(out)
    assert [r["line"] for r in records] == where
    assert all(r["ok"] for r in records)
    assert [r["content"] for r in records] == [f"echo: prompt {i}" for i in range(200)]
    assert f"200 lines: 200 ok, 0 failed -> {out}" in resumed.stderr


def test_a_killed_run_keeps_what_it_finished(ready: ProviderServer, invoke: Invoke, tmp_path: Path) -> None:
    """A run killed mid-way leaves its finished records (unordered, maybe a half line): resume finishes."""
    source = write_lines(tmp_path / "in.jsonl", [f"prompt {i}" for i in range(6)])
    out = tmp_path / "out.jsonl"
    asked = prompt_digest(read_lines(source)[4])
    done = [
        {
            "id": 5,
            "line": 5,
            "ok": True,
            "content": "kept",
            "usage": {},
            "model": "m",
            "prompt_digest": asked,
        },
        {"id": 2, "line": 2, "ok": False, "error": {"type": "X", "code": "X", "message": "x"}},
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in done) + '{"id": 3, "li', encoding="utf-8")
    ready.responder = echo

    result = invoke("batch", str(source), "-o", str(out), "--resume")

    assert result.exit_code == 0, result.output
    assert sorted(prompt_of(r) for r in chat_requests(ready)) == [f"prompt {i}" for i in (0, 1, 2, 3, 5)]
    records = records_of(out)
    assert [r["id"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[4]["content"] == "kept"
    assert "unreadable" in result.stderr


def test_existing_output_is_refused_without_resume(
    ready: ProviderServer, invoke: Invoke, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", ["prompt 1"])
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n", encoding="utf-8")

    result = invoke("batch", str(source), "-o", str(out))

    assert_clean_failure(result, str(out), "--resume", "remove")
    assert out.read_text(encoding="utf-8") == "precious\n"
    assert not chat_requests(ready)


def test_duplicate_ids_are_refused_before_anything_is_sent(
    ready: ProviderServer, invoke: Invoke, tmp_path: Path
) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [{"id": "a", "prompt": "x"}, "prompt 1", {"id": "a", "prompt": "y"}, {"id": 2, "prompt": "z"}],
    )
    out = tmp_path / "out.jsonl"

    result = invoke("batch", str(source), "-o", str(out))

    assert_clean_failure(result, "duplicate ids", 'id "a" on lines 1, 3', "id 2 on lines 2, 4")
    assert not chat_requests(ready)
    assert not out.exists()


def test_options_reach_the_request_body(ready: ProviderServer, invoke: Invoke, tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            "prompt 0",
            {"prompt": "prompt 1", "max_tokens": 7, "temperature": 0.5, "stop": "END"},
            {
                "messages": [
                    {"role": "system", "content": "Own system."},
                    {"role": "user", "content": "prompt 2"},
                ]
            },
        ],
    )
    ready.responder = echo
    out = tmp_path / "out.jsonl"

    result = invoke("batch", str(source), "-o", str(out), "--max-tokens", "50", "--system", "Be brief.")

    assert result.exit_code == 0, result.output
    bodies = {prompt_of(r): r.json for r in chat_requests(ready)}
    # langchain-openai sends max_tokens as OpenAI's current name for it.
    assert bodies["prompt 0"]["max_completion_tokens"] == 50
    assert bodies["prompt 0"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert bodies["prompt 1"]["max_completion_tokens"] == 7
    assert bodies["prompt 1"]["temperature"] == 0.5 and bodies["prompt 1"]["stop"] == ["END"]
    assert [m["content"] for m in bodies["prompt 2"]["messages"]] == ["Own system.", "prompt 2"]


def test_batch_api_answers_every_line_in_order(
    srv: ProviderServer, write_config: WriteConfig, invoke: Invoke, tmp_path: Path
) -> None:
    write_config(config(srv))
    rows: list[Any] = [f"prompt {i}" for i in range(30)]
    rows[5] = {"prompt": "prompt 5", "max_tokens": 9}  # other options: a job of its own
    rows[8] = "RAW:oops"
    source, out = write_lines(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    srv.responder = Scripted()

    result = invoke("batch", str(source), "-o", str(out), "--batch-api")

    assert result.exit_code == 1, result.output
    assert not chat_requests(srv)  # no live call
    assert sorted(len(job.lines) for job in srv.batches.jobs) == [1, 28]
    small = next(job for job in srv.batches.jobs if len(job.lines) == 1)
    assert small.lines[0].body["max_completion_tokens"] == 9  # the line's own option, in its own job
    records = records_of(out)
    assert [r["line"] for r in records] == list(range(1, 31))
    for i, record in enumerate(records):
        if i == 8:
            assert record["error"]["code"] == "INVALID_JSON"
        elif refused(i):
            assert (
                record["error"]["code"] == "BAD_REQUEST"
                and f"refused prompt {i}" in record["error"]["message"]
            )
        elif down(i) or flaky(i):  # a provider's batch job does not retry its lines
            assert not record["ok"] and record["error"]["code"].startswith("PROVIDER_"), record
        else:
            assert record["ok"] and record["content"] == f"echo: prompt {i}", record
    assert not (tmp_path / "out.jsonl.job").exists()  # every job collected


def test_a_submitted_job_is_collected_on_resume_not_sent_again(
    srv: ProviderServer, write_config: WriteConfig, invoke: Invoke, tmp_path: Path
) -> None:
    write_config(config(srv, poll_interval=0.02, max_wait=0.2))
    source = write_lines(tmp_path / "in.jsonl", [f"prompt {i}" for i in range(12)])
    out, job_file = tmp_path / "out.jsonl", tmp_path / "out.jsonl.job"
    srv.responder = echo
    srv.batches.hold()  # the provider keeps the job running: the run gives up waiting (max_wait)

    first = invoke("batch", str(source), "-o", str(out), "--batch-api")

    assert first.exit_code == 1, first.output
    assert {r["error"]["code"] for r in records_of(out)} == {"BATCH_PENDING"}
    assert "--resume" in records_of(out)[0]["error"]["message"]
    saved = json.loads(job_file.read_text(encoding="utf-8"))["jobs"]
    assert len(saved) == 1 and saved[0]["lines"] == list(range(1, 13))
    assert stat.S_IMODE(job_file.stat().st_mode) == 0o600
    assert len(srv.batches.jobs) == 1

    refused_run = invoke("batch", str(source), "-o", str(out), "--batch-api")
    assert_clean_failure(refused_run, "--resume")

    srv.batches.release()
    resumed = invoke("batch", str(source), "-o", str(out), "--resume")

    assert resumed.exit_code == 0, resumed.output
    assert len(srv.batches.jobs) == 1  # collected, not submitted again
    assert not chat_requests(srv)
    assert [r["content"] for r in records_of(out)] == [f"echo: prompt {i}" for i in range(12)]
    assert saved[0]["job_id"] in resumed.stderr
    assert not job_file.exists()


def test_poll_interval_flag_overrides_the_providers_setting(
    srv: ProviderServer, write_config: WriteConfig, invoke: Invoke, tmp_path: Path
) -> None:
    # The provider's setting: the default 30 s between looks, and give up after 5 s: the job would still be
    # pending at its first look. --poll-interval looks often enough to collect it.
    section = openai_section(srv, batch={"max_wait": 5})
    write_config(
        {"providers": {"openai": section}, "current_model": {"provider": "openai", "model": "gpt-4o-mini"}}
    )
    source = write_lines(tmp_path / "in.jsonl", ["one", "two"])
    out = tmp_path / "out.jsonl"
    srv.responder = echo
    polls_before = srv.batches.complete_after_polls
    srv.batches.complete_after_polls = 3
    try:
        result = invoke("batch", str(source), "-o", str(out), "--batch-api", "--poll-interval", "0.01")
    finally:
        srv.batches.complete_after_polls = polls_before
    assert result.exit_code == 0, result.output
    assert [r["content"] for r in records_of(out)] == ["echo: one", "echo: two"]
    assert srv.batches.jobs[-1].polls >= 3
    bad = invoke("batch", str(source), "-o", str(tmp_path / "other.jsonl"), "--poll-interval", "0")
    assert bad.exit_code == 2 and "--poll-interval" in bad.output


def test_a_job_never_submitted_is_sent_on_resume(
    ready: ProviderServer, invoke: Invoke, tmp_path: Path
) -> None:
    """The job file is written before submitting: a run killed in between left a job never submitted."""
    from modelforge.cli._batch_io import JobEntry, digest_of, read_lines, save_jobs

    source = write_lines(tmp_path / "in.jsonl", [f"prompt {i}" for i in range(3)])
    out = tmp_path / "out.jsonl"
    lines = read_lines(source)
    save_jobs(tmp_path / "out.jsonl.job", [JobEntry("mfcli-never-sent", [1, 2, 3], digest_of(lines))])
    ready.responder = echo

    result = invoke("batch", str(source), "-o", str(out), "--resume", "--no-batch-api")

    assert result.exit_code == 0, result.output
    assert "never submitted" in result.stderr
    assert [r["content"] for r in records_of(out)] == [f"echo: prompt {i}" for i in range(3)]


def run_on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run ``args`` with stderr on a pseudo-terminal (stdout a pipe): exit code, stdout, stderr."""
    master, slave = pty.openpty()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert child.stdout is not None
    stdout = child.stdout.read().decode()
    child.stdout.close()
    return child.wait(timeout=60), stdout, seen.decode(errors="replace")


def test_the_console_script_shows_progress_on_a_terminal(
    ready: ProviderServer, isolated_home: Path, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", ["prompt 0", {"prompt": "prompt 3"}, "prompt 1"])
    out = tmp_path / "out.jsonl"
    ready.responder = Scripted()
    env = {**os.environ, "HOME": str(isolated_home), "MODELFORGE_CREDENTIAL_STORE": "file", "COLUMNS": "100"}
    command = [str(MODELFORGE), "batch", str(source), "-o", str(out)]

    code, stdout, stderr = run_on_a_terminal(command, env, tmp_path)

    assert code == 1, stderr
    assert stdout == ""  # the bar and the summary go to stderr only
    assert "3/3" in stderr and "1 failed" in stderr  # the progress bar
    assert f"3 lines: 2 ok, 1 failed -> {out}" in stderr
    assert [r["ok"] for r in records_of(out)] == [True, False, True]

    ready.responder = echo
    code, stdout, stderr = run_on_a_terminal([*command, "--resume", "--no-progress"], env, tmp_path)

    assert code == 0, stderr
    assert stdout == "" and "3/3" not in stderr
    assert f"3 lines: 3 ok, 0 failed -> {out}" in stderr


def test_batch_api_on_a_provider_without_one_is_a_clear_error(
    srv: ProviderServer, write_config: WriteConfig, invoke: Invoke, tmp_path: Path
) -> None:
    data = config(srv)
    data["providers"]["local"] = {
        "llm_type": "ollama",
        "base_url": srv.ollama_base_url,
        "models": {"qwen3:1.7b": {}},
    }
    write_config(data)
    source, out = write_lines(tmp_path / "in.jsonl", ["prompt 0"]), tmp_path / "out.jsonl"

    result = invoke("batch", str(source), "-o", str(out), "--provider", "local", "--batch-api")

    assert_clean_failure(result, "has no batch API", "--no-batch-api")
    assert not srv.requests and not (tmp_path / "out.jsonl.job").exists()


def test_resume_resends_answers_whose_line_now_asks_something_else(
    ready: ProviderServer, invoke: Invoke, tmp_path: Path
) -> None:
    """Lines identified by their number: inserting a line must not pair an old answer with a new prompt."""
    source = write_lines(tmp_path / "in.jsonl", ["a", "b"])
    out = tmp_path / "out.jsonl"
    ready.responder = echo
    assert invoke("batch", str(source), "-o", str(out)).exit_code == 0
    write_lines(source, ["a", "c", "b"])

    result = invoke("batch", str(source), "-o", str(out), "--resume")

    assert result.exit_code == 0, result.output
    assert [r["content"] for r in records_of(out)] == ["echo: a", "echo: c", "echo: b"]
    assert "1 answered line(s) ask something else now" in result.stderr


def test_line_options_reach_ollama_inside_its_options(
    srv: ProviderServer, write_config: WriteConfig, invoke: Invoke, tmp_path: Path
) -> None:
    ollama = {"llm_type": "ollama", "base_url": srv.ollama_base_url, "models": {"qwen3:1.7b": {}}}
    write_config(
        {"providers": {"ollama": ollama}, "current_model": {"provider": "ollama", "model": "qwen3:1.7b"}}
    )
    source = write_lines(tmp_path / "in.jsonl", [{"prompt": "hi", "max_tokens": 7, "temperature": 0.5}])
    out = tmp_path / "out.jsonl"
    srv.responder = echo

    result = invoke("batch", str(source), "-o", str(out))

    assert result.exit_code == 0, result.output
    [body] = [r.json for r in srv.requests_for("ollama") if r.path == "/api/chat"]
    assert body["options"] == {"num_predict": 7, "temperature": 0.5}
    assert records_of(out)[0]["content"] == "echo: hi"
