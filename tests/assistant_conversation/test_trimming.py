"""Token-aware trimming: the budget is never exceeded and a tool call never leaves its results."""

from __future__ import annotations

import random

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from modelforge.assistant import Conversation, TokenCounter
from modelforge.assistant.compression import ContextBudgetError, fit_newest, group_units
from modelforge.exceptions import InvalidInputError
from modelforge.testing import ProviderServer, RecordedRequest, Reply
from tests.assistant_conversation.conftest import chat_requests, received_messages

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
]


def _echo(request: RecordedRequest) -> Reply:
    last = request.json["messages"][-1]
    text = last["content"] if isinstance(last["content"], str) else "tool done"
    return Reply(text="echo: " + " ".join(text.split()[:30]))


def _assert_tool_pairs_intact(messages: list) -> None:
    calls: dict[str, int] = {}
    for index, message in enumerate(messages):
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                calls[call["id"]] = index
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in calls, "a tool result was sent without its tool call"
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    assert set(calls) <= answered, "a tool call was sent without its result"


async def test_200_turns_never_exceed_the_budget_and_keep_tool_pairs(
    llm: BaseChatModel, server: ProviderServer
) -> None:
    server.responder = _echo
    rng = random.Random(6)
    conversation = Conversation(max_tokens=4000, provider=llm, system_prompt="You are a terse assistant.")
    counter = conversation.token_counter
    for turn in range(200):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 120)))
        await conversation.add_user_message(f"Turn {turn}: {text}")
        if turn % 7 == 3:  # a tool round-trip with two calls in one answer
            await conversation.add_assistant_message(
                tool_calls=[
                    {"name": "lookup", "args": {"q": text[:200]}, "id": f"call_{turn}_a"},
                    {"name": "weather", "args": {"city": "Oslo"}, "id": f"call_{turn}_b"},
                ]
            )
            await conversation.add_tool_result(f"call_{turn}_a", " ".join(WORDS * rng.randint(1, 20)))
            await conversation.add_tool_result(f"call_{turn}_b", "sunny")
        answer = await conversation.continue_chat()
        assert answer.text.startswith("echo:")

    bodies = chat_requests(server)
    assert len(bodies) == 200
    sizes = []
    for body in bodies:
        sent = received_messages(body)
        sizes.append(counter.count_messages(sent))
        assert isinstance(sent[0].content, str) and sent[0].type == "system"
        assert sent[0].content == "You are a terse assistant."
        assert isinstance(sent[1], HumanMessage)
        _assert_tool_pairs_intact(sent)
    assert max(sizes) <= 4000
    assert max(sizes) > 3000  # the budget was actually used, and trimming happened
    assert len(conversation.messages) > len(received_messages(bodies[-1]))
    assert counter.exact and counter.count_messages(conversation.messages) > 4000


def test_trimming_keeps_a_tool_call_with_its_results() -> None:
    counter = TokenCounter("gpt-4o-mini")
    call = AIMessage("", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}])
    history = [
        HumanMessage("first question"),
        AIMessage("first answer"),
        HumanMessage("second " * 50),
        call,
        ToolMessage("result " * 40, tool_call_id="c1"),
        AIMessage("done"),
    ]
    units = group_units(history)
    assert [len(unit) for unit in units] == [1, 1, 1, 2, 1]
    tail = sum(counter.count_message(m) for m in history[3:])
    kept = fit_newest(units, tail + 5, counter)  # room for the pair and the answer, not the question
    # Nothing starting mid-turn is sent: without its user message the pair goes too, never half of it.
    assert all(len(unit) != 1 or not isinstance(unit[0], ToolMessage) for unit in kept)
    kept = fit_newest(units, tail + counter.count_message(history[2]), counter)
    assert [m for unit in kept for m in unit] == history[2:]


def test_the_newest_tool_pair_bigger_than_the_budget_is_a_clear_error() -> None:
    counter = TokenCounter("gpt-4o-mini")
    call = AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}])
    units = group_units([HumanMessage("q"), call, ToolMessage("x " * 500, tool_call_id="c1")])
    with pytest.raises(ContextBudgetError, match="A tool call and its results need") as info:
        fit_newest(units, 100, counter)
    assert "Raise max_tokens" in (info.value.suggestion or "")


async def test_a_message_bigger_than_the_budget_is_refused(llm: BaseChatModel) -> None:
    conversation = Conversation(max_tokens=50, provider=llm)
    with pytest.raises(InvalidInputError, match=r"needs \d+ prompt tokens .* more than max_tokens=50"):
        await conversation.add_user_message("word " * 100)
    assert conversation.messages == []
    with pytest.raises(InvalidInputError, match="The system prompt needs"):
        Conversation(max_tokens=10, provider=llm, system_prompt="long " * 20)


def test_counts_follow_openai_framing() -> None:
    counter = TokenCounter("gpt-4o")
    assert counter.exact
    # 3 framing tokens per message + role + content, plus 3 priming the reply.
    hello = HumanMessage("Hello!")
    assert counter.count_messages([hello]) == 3 + 3 + 1 + counter.count_text("Hello!")
    image = HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])
    assert counter.count_message(image) == 3 + 1 + 765
    estimate = TokenCounter("claude-sonnet-4-6")
    assert not estimate.exact
    assert estimate.count_text("hello world " * 20) > TokenCounter("gpt-4").count_text("hello world " * 20)
