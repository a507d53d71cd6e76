"""The OpenAI-protocol optimizer through the registry: seed, JSON mode, batch bodies, markers.

Requests go through ``ChatOpenAI`` over HTTP to the test server; the tests read the JSON bodies it got.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from modelforge.optimizers import optimizer_of, prepare_batch_body
from modelforge.sections.optimizations import DEFAULT_SEED
from modelforge.testing import ProviderServer, Reply
from tests.optimizers.conftest import LlmFactory

JSON_OBJECT = {"type": "json_object"}


def _body(server: ProviderServer, protocol: Any = "openai") -> dict[str, Any]:
    return server.requests_for(protocol)[-1].json  # type: ignore[no-any-return]


def test_seed_is_sent(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("openai").invoke("Pick a number")
    assert _body(server)["seed"] == DEFAULT_SEED
    make_llm("openai", optimizations={"seed": 1234}).invoke("Pick a number")
    assert _body(server)["seed"] == 1234


def test_seed_switch_off(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("openai", optimizations={"seed": False}).invoke("Pick a number")
    assert "seed" not in _body(server)


@pytest.mark.filterwarnings("ignore:Parameters {'seed'} should be specified explicitly")
def test_the_models_own_seed_wins(make_llm: LlmFactory, server: ProviderServer) -> None:
    models = {"gpt-4o-mini": {"model_kwargs": {"seed": 5}}}
    make_llm("openai", models=models).invoke("Pick a number")
    assert _body(server)["seed"] == 5
    make_llm("openai").bind(seed=9).invoke("Pick a number")
    assert _body(server)["seed"] == 9


ASKS_FOR_A_JSON_OBJECT = [
    "Respond in JSON.",
    "Return a JSON object with the keys name and age for Ada Lovelace.",
    "Answer with valid JSON only: what is the capital of France?",
    "What is the capital of France? Reply in JSON.",
    "Please output valid JSON.",
    "Return the result as a JSON object.",
    "Summarize the text and respond in JSON format.",
    "Classify the sentiment.\nOutput JSON.",
    "You must respond with JSON.",
    "I want you to answer in JSON.",
    "Your answer must be valid JSON.",
    "Format your response as JSON.",
    "Return only JSON",
    "JSON only.",
    "Only JSON, no prose.",
    "Return a JSON object with a list of fruits.",  # "object" said outright: a list inside it is fine
]
DOES_NOT_ASK = [
    # About JSON, not the answer's format (a second review's cases).
    "Please write a short function with JSON support.",
    "Write a parser in Rust using JSON",
    "Provide an example with JSON and YAML.",
    "I need you to write a script in bash with JSON",
    "The API returns JSON. Why is it slow?",
    "Do not answer in JSON; use prose.",
    'Here is my config in JSON: {"debug": true}. Explain it',
    "Give me the list as JSON",
    "List three fruits. Respond in JSON.",
    "Respond with a JSON array of names.",
    "Output JSON lines, one per record",
    "What is JSON?",
    "Convert this JSON array to YAML: [1, 2]",
    "Explain how to parse JSON in Python.",
    "Return the JSON schema for a user.",
    "Don't respond in JSON.",
    "Never reply in JSON.",
    "Respond without JSON.",
    "Answer in prose and not in JSON.",
    "Please answer in plain English rather than JSON.",
    "Respond in YAML, never in JSON.",
    "The function should return JSON.",
    "My server returns JSON only when asked",
    "The endpoint accepts only JSON. How do I send a file?",
    "Tell me a joke",
]


@pytest.mark.parametrize("prompt", ASKS_FOR_A_JSON_OBJECT)
def test_json_mode_when_the_prompt_asks_for_json(
    make_llm: LlmFactory, server: ProviderServer, prompt: str
) -> None:
    server.script(Reply(text='{"answer": "ok"}'))
    answer = make_llm("openai").invoke(prompt)
    assert _body(server)["response_format"] == JSON_OBJECT
    assert answer.content == '{"answer": "ok"}'


@pytest.mark.parametrize("prompt", DOES_NOT_ASK)
def test_no_json_mode_otherwise(make_llm: LlmFactory, server: ProviderServer, prompt: str) -> None:
    make_llm("openai").invoke(prompt)
    assert "response_format" not in _body(server)


def test_the_table_holds_for_batch_bodies(make_llm: LlmFactory) -> None:
    llm = make_llm("openai")
    for prompt, wanted in [(p, True) for p in ASKS_FOR_A_JSON_OBJECT] + [(p, False) for p in DOES_NOT_ASK]:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
        assert ("response_format" in prepare_batch_body(llm, body)) is wanted, prompt


def test_json_mode_from_the_system_prompt(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("openai").invoke([SystemMessage("Always reply in JSON."), HumanMessage("Hello")])
    assert _body(server)["response_format"] == JSON_OBJECT


def test_only_the_last_user_message_is_read(make_llm: LlmFactory, server: ProviderServer) -> None:
    history = [
        HumanMessage("Respond in JSON: the capital of France?"),
        AIMessage('{"capital": "Paris"}'),
        HumanMessage("Now tell me about it in a paragraph."),
    ]
    make_llm("openai").invoke(history)
    assert "response_format" not in _body(server)
    make_llm("openai").invoke([*history, AIMessage("Paris is..."), HumanMessage("Reply in JSON.")])
    assert _body(server)["response_format"] == JSON_OBJECT


def test_a_list_in_the_user_message_outweighs_a_json_system_prompt(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    make_llm("openai").invoke([SystemMessage("Always reply in JSON."), HumanMessage("List three fruits.")])
    assert "response_format" not in _body(server)


def test_json_mode_switch_off(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("openai", optimizations={"json_mode": False}).invoke("Respond in JSON.")
    assert "response_format" not in _body(server)


def test_json_mode_leaves_tools_and_structured_output_alone(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    @tool
    def lookup(city: str) -> str:
        """Weather for a city."""
        return city

    class Person(BaseModel):
        name: str

    llm = make_llm("openai")
    llm.bind_tools([lookup]).invoke("Respond in JSON: the weather in Paris?")
    assert "response_format" not in _body(server)
    server.script(Reply(text='{"name": "Ada"}'))
    person = llm.with_structured_output(Person, method="json_schema").invoke("Return JSON for Ada")
    assert person == Person(name="Ada")
    assert _body(server)["response_format"]["type"] == "json_schema"


def test_markers_are_removed(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("openai").invoke("<<STATIC>>\nYou know the manual.\n<<DYNAMIC>>\nWhat is step 1?")
    assert _body(server)["messages"][0]["content"] == "You know the manual.\nWhat is step 1?"


def test_streaming_and_async_are_optimized(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("openai")
    server.script(Reply(text='{"a": 1}'))
    assert "".join(str(c.content) for c in llm.stream("Respond in JSON.")) == '{"a": 1}'
    body = _body(server)
    assert (body["seed"], body["response_format"], body["stream"]) == (DEFAULT_SEED, JSON_OBJECT, True)


async def test_async_invoke_and_stream(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("openai")
    await llm.ainvoke("Respond in JSON.")
    assert (_body(server)["seed"], _body(server)["response_format"]) == (DEFAULT_SEED, JSON_OBJECT)
    server.script(Reply(text="plain words"))
    chunks = [c async for c in llm.astream("<<STATIC>>Hi<<DYNAMIC>> there")]
    assert "".join(str(c.content) for c in chunks) == "plain words"
    body = _body(server)
    assert body["seed"] == DEFAULT_SEED and "response_format" not in body
    assert body["messages"][0]["content"] == "Hi there"


def test_local_family_gets_seed_and_json_mode(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("local").invoke("Respond in JSON.")
    body = _body(server)
    assert (body["seed"], body["response_format"]) == (DEFAULT_SEED, JSON_OBJECT)


def test_copilot_gets_only_marker_removal_unless_asked(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("github_copilot").invoke("<<STATIC>>Ctx<<DYNAMIC>>Respond in JSON.")
    body = _body(server, "copilot")
    assert "seed" not in body and "response_format" not in body
    assert body["messages"][0]["content"] == "CtxRespond in JSON."
    make_llm("github_copilot", optimizations={"seed": 3, "json_mode": True}).invoke("Respond in JSON.")
    body = _body(server, "copilot")
    assert (body["seed"], body["response_format"]) == (3, JSON_OBJECT)


def test_batch_body_is_shaped_like_a_live_call(make_llm: LlmFactory) -> None:
    llm = make_llm("openai", optimizations={"seed": 11})
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "<<STATIC>>Rules<<DYNAMIC>>"},
            {"role": "user", "content": "Return a JSON object with the totals."},
        ],
    }
    shaped = prepare_batch_body(llm, body)
    assert shaped["seed"] == 11
    assert shaped["response_format"] == JSON_OBJECT
    assert shaped["messages"][0]["content"] == "Rules"
    assert body["messages"][0]["content"] == "<<STATIC>>Rules<<DYNAMIC>>"  # the input is not changed
    optimizer = optimizer_of(llm)
    assert optimizer is not None
    assert optimizer.prepare_batch_body({"messages": [], "seed": 1})["seed"] == 1
    plain = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert prepare_batch_body(make_llm("openai", enable=False), plain) == plain


@pytest.mark.parametrize("enable", [False, True])
def test_disabled_sends_requests_untouched(
    make_llm: LlmFactory, server: ProviderServer, enable: bool
) -> None:
    llm = make_llm("openai", enable=enable, optimizations={"enabled": False} if enable else None)
    assert optimizer_of(llm) is None
    llm.invoke("<<STATIC>>Respond in JSON.")
    body = _body(server)
    assert "seed" not in body and "response_format" not in body
    assert body["messages"][0]["content"] == "<<STATIC>>Respond in JSON."
