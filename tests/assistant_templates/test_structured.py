"""Validated structured output against the test server: parse, validate, re-ask, and the final error."""

from __future__ import annotations

import pickle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

from modelforge.assistant import (
    StructuredOutputError,
    ValidationConfig,
    ainvoke_validated,
    invoke_validated,
)
from modelforge.exceptions import InvalidInputError, ProviderServerError, ValidationError
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply


class PersonInfo(BaseModel):
    name: str
    age: int


PERSON_SCHEMA: dict[str, Any] = {
    "title": "Person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}

Invoke = Callable[..., Awaitable[Any]]


async def _sync(llm: Any, messages: Any, **kwargs: Any) -> Any:
    return invoke_validated(llm, messages, **kwargs)


async def _async(llm: Any, messages: Any, **kwargs: Any) -> Any:
    return await ainvoke_validated(llm, messages, **kwargs)


@pytest.fixture(params=[_sync, _async], ids=["sync", "async"])
def ask(request: pytest.FixtureRequest) -> Invoke:
    invoke: Invoke = request.param
    return invoke


def _last_messages(server: ProviderServer, protocol: str = "openai") -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = server.requests_for(protocol)[-1].json["messages"]  # type: ignore[arg-type]
    return messages


@pytest.mark.parametrize(
    "provider,model,protocol",
    [("openai", "gpt-4o-mini", "openai"), ("anthropic", "claude-sonnet-4-6", "anthropic")],
)
async def test_recovers_from_two_invalid_answers(
    server: ProviderServer, ask: Invoke, provider: str, model: str, protocol: str
) -> None:
    llm = ModelForgeRegistry().get_llm(provider, model)
    server.script(Reply(text="not json"), Reply(text='{"name": 1}'), Reply(text='{"name": "Ada", "age": 36}'))
    person = await ask(
        llm,
        [("human", "Who wrote the first program?")],
        response_format=PersonInfo,
        validation=ValidationConfig(max_retries=2),
    )
    assert person == PersonInfo(name="Ada", age=36)
    requests = server.requests_for(protocol)
    assert len(requests) == 3
    # The third ask carries both bad answers and, after each, the problems found in it.
    last = requests[-1].json["messages"]  # type: ignore[index]
    texts = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in last]
    assert "Who wrote the first program?" in texts[0]
    assert any(t == "not json" for t in texts)
    assert any(t == '{"name": 1}' for t in texts)
    assert any("not valid JSON" in t for t in texts)
    problems = next(t for t in texts if "name: Input should be a valid string" in t)
    assert "age: Field required" in problems
    assert [m["role"] for m in last][-4:] == ["assistant", "user", "assistant", "user"]


async def test_third_failure_raises_with_all_three_reasons(
    server: ProviderServer, llm: BaseChatModel, ask: Invoke
) -> None:
    server.script(Reply(text="not json"), Reply(text='{"name": 1}'), Reply(text='{"name": "Ada", "age": -1}'))
    with pytest.raises(StructuredOutputError) as caught:
        await ask(llm, "Who?", response_format=PERSON_SCHEMA, validation=ValidationConfig(max_retries=2))
    error = caught.value
    assert isinstance(error, ValidationError)
    assert [a.number for a in error.attempts] == [1, 2, 3]
    assert "not valid JSON" in error.attempts[0].problems[0]
    assert error.attempts[1].problems == (
        "(root): 'age' is a required property",
        "name: 1 is not of type 'string'",
    )
    assert error.attempts[2].problems == ("age: -1 is less than the minimum of 0",)
    message = str(error)
    assert "after 3 attempts" in message and "'Person'" in message
    for reason in ("not valid JSON", "1 is not of type 'string'", "-1 is less than the minimum of 0"):
        assert reason in message
    assert error.details["attempts"][2]["problems"] == ["age: -1 is less than the minimum of 0"]
    assert len(server.requests_for("openai")) == 3
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == message and copy.attempts == error.attempts


async def test_valid_first_answer_in_a_json_fence_needs_one_call(
    server: ProviderServer, llm: BaseChatModel, ask: Invoke
) -> None:
    server.script(Reply(text='Here you go:\n```json\n{"name": "Ada", "age": 36}\n```'))
    assert await ask(llm, "Who?", response_format=PERSON_SCHEMA) == {"name": "Ada", "age": 36}
    assert len(server.requests_for("openai")) == 1
    sent = _last_messages(server)
    assert sent[0] == {"role": "user", "content": "Who?"}
    assert "JSON schema" in sent[1]["content"] and '"required": ["name", "age"]' in sent[1]["content"]


async def test_instructions_can_be_turned_off_and_no_retries_means_one_ask(
    server: ProviderServer, llm: BaseChatModel, ask: Invoke
) -> None:
    server.script(Reply(text="nope"))
    with pytest.raises(StructuredOutputError) as caught:
        await ask(
            llm,
            "Who?",
            response_format=PersonInfo,
            validation=ValidationConfig(max_retries=0, instructions=False),
        )
    assert len(caught.value.attempts) == 1 and "after 1 attempt:" in str(caught.value)
    assert _last_messages(server) == [{"role": "user", "content": "Who?"}]


async def test_plain_json_format(server: ProviderServer, llm: BaseChatModel, ask: Invoke) -> None:
    server.script(Reply(text="```\n[1, 2, 3]\n```"))
    assert await ask(llm, "Numbers?", response_format="json") == [1, 2, 3]


async def test_transport_failures_are_not_validation_attempts(
    server: ProviderServer, llm: BaseChatModel, ask: Invoke
) -> None:
    server.script(Reply(text="not json"), Fault(status=500))
    with pytest.raises(ProviderServerError):
        await ask(llm, "Who?", response_format=PersonInfo)
    assert len(server.requests_for("openai")) == 2


@dataclass
class _Provider:
    llm: BaseChatModel


async def test_accepts_a_provider_object_with_llm(
    server: ProviderServer, llm: BaseChatModel, ask: Invoke
) -> None:
    server.script(Reply(text='{"name": "Ada", "age": 36}'))
    assert await ask(_Provider(llm), "Who?", response_format=PersonInfo) == PersonInfo(name="Ada", age=36)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"response_format": int}, "response_format must be"),
        ({"response_format": {"type": "no-such-type"}}, "not a valid JSON schema"),
    ],
)
async def test_bad_response_format_is_rejected_before_any_call(
    server: ProviderServer, llm: BaseChatModel, ask: Invoke, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        await ask(llm, "Who?", **kwargs)
    assert server.requests_for("openai") == []


async def test_not_a_model_is_rejected(ask: Invoke) -> None:
    with pytest.raises(InvalidInputError, match="chat model"):
        await ask(object(), "Who?", response_format=PersonInfo)


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_validation_config_checks_max_retries(value: Any) -> None:
    with pytest.raises(InvalidInputError, match="max_retries"):
        ValidationConfig(max_retries=value)
