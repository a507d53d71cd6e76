"""The batch endpoints of the test server, proved with the raw ``openai`` and ``anthropic`` SDK clients:
OpenAI Files + Batches, Anthropic Message Batches, and the ``responder`` hook."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from modelforge.testing import Fault, ProviderServer, RecordedRequest, Reply, Usage
from modelforge.testing.script import ScriptItem

KEY = "sk-test-wire-batches"


def _openai(server: ProviderServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0)


def _anthropic(server: ProviderServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=KEY, max_retries=0)


def _jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _line(custom_id: str, text: str = "hi", model: str = "gpt-4o-mini") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _request(custom_id: str, text: str = "hi") -> dict[str, Any]:
    params = {"model": "claude-sonnet-4-6", "max_tokens": 32, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "params": params}


def _rows(text: str) -> dict[str, dict[str, Any]]:
    return {row["custom_id"]: row for row in map(json.loads, text.splitlines()) if row}


# -- OpenAI ----------------------------------------------------------------------------------------------


def test_openai_upload_run_and_download(server: ProviderServer) -> None:
    client = _openai(server)
    server.script(Reply(text="first", usage=Usage(3, 1)), Fault(429, "slow down"), Reply(text="third"))
    uploaded = client.files.create(
        file=("in.jsonl", _jsonl(_line("a"), _line("b"), _line("c"))), purpose="batch"
    )
    assert (uploaded.object, uploaded.purpose, uploaded.filename) == ("file", "batch", "in.jsonl")
    assert client.files.retrieve(uploaded.id).bytes == uploaded.bytes
    assert client.files.content(uploaded.id).content == server.batches.uploads[0].content

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "nightly"},
    )
    assert (batch.object, batch.status, batch.metadata) == ("batch", "validating", {"run": "nightly"})
    assert client.batches.retrieve(batch.id).status == "in_progress"  # complete_after_polls = 1
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at and done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 2, 1)
    assert done.output_file_id and done.error_file_id

    outputs = _rows(client.files.content(done.output_file_id).text)
    assert sorted(outputs) == ["a", "c"]
    first = outputs["a"]
    assert first["error"] is None and first["id"].startswith("batch_req_")
    assert first["response"]["status_code"] == 200
    body = first["response"]["body"]
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "first"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    failed = _rows(client.files.content(done.error_file_id).text)["b"]
    assert failed["error"] is None and failed["response"]["status_code"] == 429
    assert failed["response"]["body"]["error"]["message"] == "slow down"


def test_openai_validation_failure_names_the_lines(server: ProviderServer) -> None:
    client = _openai(server)
    content = _jsonl(_line("a"), _line("a"), {"custom_id": "c", "method": "POST", "url": "/v1/embeddings"})
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None and failed.errors.data
    assert [(e.code, e.line) for e in failed.errors.data] == [
        ("duplicate_custom_id", 2),
        ("mismatched_endpoint", 3),
    ]
    assert failed.output_file_id is None


def test_openai_cancel_and_expiry(server: ProviderServer) -> None:
    client = _openai(server)
    uploaded = client.files.create(file=("in.jsonl", _jsonl(_line("a"), _line("b"))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at and cancelled.error_file_id
    rows = _rows(client.files.content(cancelled.error_file_id).text)
    assert {r["error"]["code"] for r in rows.values()} == {"batch_cancelled"}
    assert all(r["response"] is None for r in rows.values())

    server.batches.expire_after = 1
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    client.batches.retrieve(batch.id)
    expired = client.batches.retrieve(batch.id)
    assert expired.status == "expired" and expired.request_counts is not None
    assert (expired.request_counts.completed, expired.request_counts.failed) == (1, 1)
    assert expired.error_file_id is not None
    rows = _rows(client.files.content(expired.error_file_id).text)
    assert [r["error"]["code"] for r in rows.values()] == ["batch_expired"]


def test_openai_jobs_stay_in_progress_while_held(server: ProviderServer) -> None:
    client = _openai(server)
    server.batches.hold()
    uploaded = client.files.create(file=("in.jsonl", _jsonl(_line("a"))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert {client.batches.retrieve(batch.id).status for _ in range(5)} == {"in_progress"}
    server.batches.release()
    assert client.batches.retrieve(batch.id).status == "completed"
    assert server.batches.job(batch.id).polls == 6


def test_openai_refusals(server: ProviderServer) -> None:
    client = _openai(server)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope")
    with pytest.raises(openai.BadRequestError, match="input_file_id"):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    uploaded = client.files.create(file=("in.jsonl", _jsonl(_line("a"))), purpose="batch")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    server.require_api_key = "sk-other"
    with pytest.raises(openai.AuthenticationError):
        client.batches.retrieve("batch_nope")


# -- Anthropic -------------------------------------------------------------------------------------------


def test_anthropic_create_poll_and_results(server: ProviderServer) -> None:
    client = _anthropic(server)
    server.script(Reply(text="one"), Fault(529, "overloaded"), Reply(text="three"))
    created = client.messages.batches.create(requests=[_request("r-1"), _request("r-2"), _request("r-3")])  # type: ignore[list-item]
    assert created.type == "message_batch" and created.processing_status == "in_progress"
    assert created.request_counts.processing == 3 and created.results_url is None
    assert client.messages.batches.retrieve(created.id).processing_status == "in_progress"
    ended = client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 1)
    assert ended.results_url == f"{server.base_url}/v1/messages/batches/{created.id}/results"

    results = {entry.custom_id: entry.result for entry in client.messages.batches.results(created.id)}
    assert sorted(results) == ["r-1", "r-2", "r-3"]
    one = results["r-1"]
    assert one.type == "succeeded" and one.message.content[0].text == "one"  # type: ignore[union-attr]
    two = results["r-2"]
    assert two.type == "errored" and two.error.error.type == "overloaded_error"  # type: ignore[union-attr]
    assert two.error.error.message == "overloaded"  # type: ignore[union-attr]


def test_anthropic_cancel_and_expiry(server: ProviderServer) -> None:
    client = _anthropic(server)
    created = client.messages.batches.create(requests=[_request("a"), _request("b")])  # type: ignore[list-item]
    canceling = client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert client.messages.batches.retrieve(created.id).request_counts.canceled == 2
    assert {e.result.type for e in client.messages.batches.results(created.id)} == {"canceled"}

    server.batches.expire_after = 1
    server.batches.complete_after_polls = 0
    created = client.messages.batches.create(requests=[_request("a"), _request("b")])  # type: ignore[list-item]
    assert client.messages.batches.retrieve(created.id).request_counts.expired == 1
    kinds = {e.custom_id: e.result.type for e in client.messages.batches.results(created.id)}
    assert kinds == {"a": "succeeded", "b": "expired"}


@pytest.mark.parametrize(
    ("requests", "problem"),
    [
        ([_request("bad id!")], "custom_id"),
        ([_request("a"), _request("a")], "more than one"),
        ([{"custom_id": "a", "params": {"model": "m", "messages": []}}], "max_tokens"),
        ([], "at least one"),
    ],
)
def test_anthropic_refuses_malformed_batches(
    server: ProviderServer, requests: list[dict[str, Any]], problem: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=problem):
        _anthropic(server).messages.batches.create(requests=requests)  # type: ignore[arg-type]


def test_anthropic_refusals(server: ProviderServer) -> None:
    client = _anthropic(server)
    server.batches.hold()
    created = client.messages.batches.create(requests=[_request("a")])  # type: ignore[list-item]
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(created.id)  # not ended yet: the SDK finds no results_url
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")
    server.batches.max_requests_per_job = 1
    with pytest.raises(anthropic.BadRequestError, match="at most 1"):
        client.messages.batches.create(requests=[_request("a"), _request("b")])  # type: ignore[list-item]
    server.require_api_key = "sk-other"
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.batches.retrieve(created.id)


# -- the responder and the records -----------------------------------------------------------------------


def test_the_responder_answers_chat_requests_by_their_content(server: ProviderServer) -> None:
    seen: list[RecordedRequest] = []

    def respond(request: RecordedRequest) -> ScriptItem | None:
        seen.append(request)
        text = request.json["messages"][-1]["content"]
        return None if text == "default please" else Reply(text=f"you said {text}")

    server.responder = respond
    server.script(Reply(text="scripted first"))
    client = _openai(server)

    def ask(text: str) -> str | None:
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
        return answer.choices[0].message.content

    assert ask("one") == "scripted first"  # the script queue comes first
    assert ask("two") == "you said two"
    assert ask("default please") == server.default_reply.text  # None: the default reply
    assert [r.path for r in seen] == ["/v1/chat/completions"] * 2 and seen[0].protocol == "openai"


def test_reset_forgets_jobs_and_files(server: ProviderServer) -> None:
    client = _openai(server)
    client.files.create(file=("in.jsonl", _jsonl(_line("a"))), purpose="batch")
    _anthropic(server).messages.batches.create(requests=[_request("a")])  # type: ignore[list-item]
    assert len(server.batches.jobs) == 1 and len(server.batches.uploads) == 1
    server.reset()
    assert server.batches.jobs == [] and server.batches.uploads == []


# -- control-plane faults and listings ---------------------------------------------------------------------


def test_a_lost_create_answer_still_creates_the_job(server: ProviderServer) -> None:
    client = _openai(server)
    uploaded = client.files.create(file=("in.jsonl", _jsonl(_line("a"))), purpose="batch")
    server.batches.lose_next_create(Fault(502))
    with pytest.raises(openai.InternalServerError):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"k": "v"},
        )
    assert len(server.batches.jobs) == 1
    listed = list(client.batches.list(limit=10))
    assert [b.id for b in listed] == [server.batches.jobs[0].id] and listed[0].metadata == {"k": "v"}
    server.batches.lose_next_create()  # a Disconnect by default
    with pytest.raises(anthropic.APIConnectionError):
        _anthropic(server).messages.batches.create(requests=[_request("a")])  # type: ignore[list-item]
    listed_anthropic = list(_anthropic(server).messages.batches.list(limit=10))
    assert len(listed_anthropic) == 1 and listed_anthropic[0].request_counts.processing == 1


def test_a_server_without_a_batch_api_answers_404(server: ProviderServer) -> None:
    server.batches.enabled = False
    with pytest.raises(openai.NotFoundError):
        _openai(server).files.create(file=("in.jsonl", _jsonl(_line("a"))), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        _openai(server).batches.list()
    with pytest.raises(anthropic.NotFoundError):
        _anthropic(server).messages.batches.create(requests=[_request("a")])  # type: ignore[list-item]


def test_a_job_over_the_enqueued_token_limit_fails_validation(server: ProviderServer) -> None:
    server.batches.max_enqueued_tokens = 5
    client = _openai(server)
    uploaded = client.files.create(file=("in.jsonl", _jsonl(_line("a", "x" * 100))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.errors is not None and [e.code for e in failed.errors.data or []] == [
        "token_limit_exceeded"
    ]
