"""PromptTemplate: variables checked, escapes, chat form, LangChain interop, and a real model round trip."""

from __future__ import annotations

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.prompts import PromptTemplate as LangChainPromptTemplate

from modelforge.assistant import PromptTemplate
from modelforge.exceptions import InvalidInputError, ValidationError
from modelforge.testing import ProviderServer, Reply

CHEF = "You are a {role}. Answer this: {question}"


def test_render_returns_messages_with_values_filled_in() -> None:
    template = PromptTemplate(CHEF)
    messages = template.render(role="chef", question="How to cook pasta?")
    assert messages == [HumanMessage(content="You are a chef. Answer this: How to cook pasta?")]
    assert template.variables == ("role", "question")
    assert template.format(role="chef", question="Why?") == "You are a chef. Answer this: Why?"


def test_role_option_and_repeated_variables() -> None:
    template = PromptTemplate("{name} and {name} again", role="system")
    assert template.variables == ("name",)
    assert template.render(name="x") == [SystemMessage(content="x and x again")]
    assert repr(template) == "PromptTemplate('{name} and {name} again', role='system')"


def test_missing_variable_is_named_with_the_expected_ones() -> None:
    with pytest.raises(InvalidInputError) as caught:
        PromptTemplate(CHEF).render(role="chef")
    message = str(caught.value)
    assert "missing variable(s): 'question'" in message
    assert "Expected variables: 'role', 'question'" in message
    assert caught.value.details["missing"] == ["question"]
    assert isinstance(caught.value, ValidationError)


def test_unknown_variable_is_named_with_the_expected_ones() -> None:
    with pytest.raises(InvalidInputError) as caught:
        PromptTemplate(CHEF).render(role="chef", question="q", topic="pasta")
    message = str(caught.value)
    assert "unknown variable(s): 'topic'" in message
    assert "Expected variables: 'role', 'question'" in message
    assert caught.value.details["unknown"] == ["topic"]


def test_missing_and_unknown_together_are_both_reported() -> None:
    with pytest.raises(InvalidInputError) as caught:
        PromptTemplate(CHEF).render(rol="chef", question="q")
    assert "missing variable(s): 'role'" in str(caught.value)
    assert "unknown variable(s): 'rol'" in str(caught.value)


def test_double_braces_are_literal_braces() -> None:
    template = PromptTemplate('Reply as JSON like {{"answer": "..."}} about {topic}')
    assert template.variables == ("topic",)
    assert template.format(topic="cats") == 'Reply as JSON like {"answer": "..."} about cats'
    assert PromptTemplate("no variables {{here}}").render() == [HumanMessage(content="no variables {here}")]


@pytest.mark.parametrize(
    "text", ["unclosed {brace", "stray } brace", "{user.name}", "{items[0]}", "positional {}"]
)
def test_malformed_templates_are_rejected_when_built(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        PromptTemplate(text)
    assert caught.value.suggestion


def test_chat_form_with_roles_placeholder_and_literal_messages() -> None:
    template = PromptTemplate.from_messages(
        [
            ("system", "You are a {role}."),
            ("placeholder", "{history}"),
            AIMessage(content="Ask away, {not a variable}."),
            ("user", "{question}"),
        ]
    )
    assert template.variables == ("role", "history", "question")
    assert template.required_variables == ("role", "question")
    history = [HumanMessage(content="hi"), AIMessage(content="hello")]
    assert template.render(role="chef", question="Pasta?", history=history) == [
        SystemMessage(content="You are a chef."),
        *history,
        AIMessage(content="Ask away, {not a variable}."),
        HumanMessage(content="Pasta?"),
    ]
    # The placeholder is optional; (role, text) pairs are accepted too.
    assert len(template.render(role="chef", question="Pasta?")) == 3
    assert template.render(role="c", question="q", history=[("human", "earlier")])[1] == HumanMessage(
        content="earlier"
    )
    with pytest.raises(InvalidInputError, match="list of messages"):
        template.render(role="c", question="q", history="not a list")
    with pytest.raises(InvalidInputError, match="format\\(\\) needs a one-message template"):
        template.format(role="c", question="q")


@pytest.mark.parametrize("bad", [[("narrator", "x")], [("human",)], ["plain string"], []])
def test_from_messages_rejects_what_it_cannot_use(bad: list) -> None:
    with pytest.raises(InvalidInputError):
        PromptTemplate.from_messages(bad)


def test_partial_fills_some_variables_now() -> None:
    template = PromptTemplate(CHEF).partial(role="chef")
    assert template.variables == ("question",)
    assert template.format(question="{literal}?") == "You are a chef. Answer this: {literal}?"
    with pytest.raises(InvalidInputError, match="'topic'"):
        PromptTemplate(CHEF).partial(topic="x")


def test_to_langchain_renders_the_same_messages() -> None:
    template = PromptTemplate.from_messages(
        [("system", "You are a {role}. Braces: {{x}}"), ("placeholder", "{history}"), ("human", "{question}")]
    )
    converted = template.to_langchain()
    assert isinstance(converted, ChatPromptTemplate)
    assert sorted(converted.input_variables) == ["question", "role"]
    values = {"role": "chef", "question": "Pasta?", "history": [AIMessage(content="earlier")]}
    assert converted.invoke(values).to_messages() == template.render(**values)


def test_from_langchain_chat_template_keeps_roles_placeholders_and_partials() -> None:
    source = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a {role} who likes {{braces}}."),
            MessagesPlaceholder("history"),
            ("ai", "Go on."),
            ("human", "{question}"),
        ]
    ).partial(role="chef")
    template = PromptTemplate.from_langchain(source)
    assert template.variables == ("history", "question")
    assert template.required_variables == ("history", "question")
    rendered = template.render(question="Pasta?", history=[HumanMessage(content="hi")])
    assert rendered == [
        SystemMessage(content="You are a chef who likes {braces}."),
        HumanMessage(content="hi"),
        AIMessage(content="Go on."),
        HumanMessage(content="Pasta?"),
    ]
    assert PromptTemplate.from_langchain(template.to_langchain()) == template


def test_from_langchain_string_template() -> None:
    source = LangChainPromptTemplate.from_template(CHEF)
    template = PromptTemplate.from_langchain(source)
    assert template == PromptTemplate(CHEF)
    assert template.format(role="chef", question="q") == source.format(role="chef", question="q")
    # Other template formats are refused by name (mustache needs no extra package, unlike jinja2).
    mustache = LangChainPromptTemplate.from_template("Hi {{name}}", template_format="mustache")
    with pytest.raises(InvalidInputError, match="mustache"):
        PromptTemplate.from_langchain(mustache)
    with pytest.raises(InvalidInputError):
        PromptTemplate.from_langchain("not a template")  # type: ignore[arg-type]


def test_rendered_messages_reach_a_real_model(server: ProviderServer, llm: BaseChatModel) -> None:
    server.script(Reply(text="Boil water, add salt."))
    template = PromptTemplate.from_messages([("system", "You are a {role}."), ("human", "{question}")])
    answer = llm.invoke(template.render(role="chef", question="How to cook pasta?"))
    assert answer.text == "Boil water, add salt."
    sent = server.requests_for("openai")[-1].json["messages"]
    assert sent == [
        {"role": "system", "content": "You are a chef."},
        {"role": "user", "content": "How to cook pasta?"},
    ]


async def test_to_langchain_works_in_lcel(server: ProviderServer, llm: BaseChatModel) -> None:
    server.script(Reply(text="Al dente."))
    chain = PromptTemplate(CHEF).to_langchain() | llm
    answer = await chain.ainvoke({"role": "chef", "question": "How long?"})
    assert answer.text == "Al dente."
    sent = server.requests_for("openai")[-1].json["messages"]
    assert sent == [{"role": "user", "content": "You are a chef. Answer this: How long?"}]
