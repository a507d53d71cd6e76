"""``PromptTemplate``: prompts with named ``{variables}`` that render to LangChain messages.

A template is one message (``PromptTemplate("You are a {role}. Answer this: {question}")``, a human
message) or a chat of several (``PromptTemplate.from_messages([("system", ...), ("human", ...)])``, roles
``system``, ``human``/``user``, ``ai``/``assistant``, ``placeholder`` for a list of messages, or a literal
LangChain message). Variables use ``str.format`` syntax; ``{{`` and ``}}`` are literal braces. ``render``
checks the values: a missing or unknown variable is an ``InvalidInputError`` that names it and lists the
expected ones. ``from_langchain`` / ``to_langchain`` convert from and to LangChain's prompt templates, so a
template also works in LCEL (``template.to_langchain() | llm``).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.prompts import PromptTemplate as LangChainPromptTemplate
from langchain_core.prompts.chat import (
    AIMessagePromptTemplate,
    HumanMessagePromptTemplate,
    SystemMessagePromptTemplate,
)

from modelforge.exceptions import InvalidInputError

__all__ = ["PromptTemplate"]

Role = Literal["system", "human", "ai"]
_ROLES: dict[str, Role] = {
    "system": "system",
    "human": "human",
    "user": "human",
    "ai": "ai",
    "assistant": "ai",
}
_MESSAGE_TYPES: dict[Role, type[BaseMessage]] = {
    "system": SystemMessage,
    "human": HumanMessage,
    "ai": AIMessage,
}
_LANGCHAIN_TYPES: dict[type[Any], Role] = {
    SystemMessagePromptTemplate: "system",
    HumanMessagePromptTemplate: "human",
    AIMessagePromptTemplate: "ai",
}
MessageSpec = tuple[str, str] | BaseMessage


@dataclass(frozen=True)
class _Text:
    """A templated message: its role, its template text and the variables it uses."""

    role: Role
    template: str
    variables: tuple[str, ...]


@dataclass(frozen=True)
class _Placeholder:
    """A slot filled with a list of messages (a chat history), optional or required."""

    name: str
    optional: bool


_Part = _Text | _Placeholder | BaseMessage


class PromptTemplate:
    """A prompt with named variables that renders to a list of LangChain messages.

    ``PromptTemplate(text)`` is one message (``role="human"`` by default, or ``"system"`` / ``"ai"``);
    ``PromptTemplate.from_messages([...])`` is a chat. ``render(**values)`` returns the messages, ready for
    ``llm.invoke(messages)``; ``format(**values)`` returns the text of a one-message template.
    """

    __slots__ = ("_parts",)

    def __init__(self, template: str, *, role: str = "human") -> None:
        if not isinstance(template, str):
            raise InvalidInputError(
                f"PromptTemplate takes a template string, got {type(template).__name__}",
                suggestion="For several messages use PromptTemplate.from_messages([(role, text), ...]).",
            )
        self._parts: tuple[_Part, ...] = (_text_part(_role(role), template),)

    @classmethod
    def from_messages(cls, messages: Iterable[MessageSpec]) -> PromptTemplate:
        """A chat template from ``(role, template)`` pairs and literal LangChain messages.

        Roles: ``system``, ``human`` (or ``user``), ``ai`` (or ``assistant``), and ``placeholder`` with
        ``"{name}"`` for a list of messages given at render time (optional: missing means none).
        """
        parts: list[_Part] = []
        for item in messages:
            if isinstance(item, BaseMessage):
                parts.append(item)
            elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
                role, text = item
                if role == "placeholder":
                    parts.append(_Placeholder(_placeholder_name(text), optional=True))
                else:
                    parts.append(_text_part(_role(role), text))
            else:
                raise InvalidInputError(
                    f"PromptTemplate.from_messages got {item!r}",
                    suggestion="Give (role, template) pairs such as ('system', 'You are a {role}.'), "
                    "or LangChain messages.",
                )
        if not parts:
            raise InvalidInputError(
                "PromptTemplate.from_messages got no messages", suggestion="Give at least one message."
            )
        return cls._of(parts)

    @classmethod
    def from_langchain(cls, template: ChatPromptTemplate | LangChainPromptTemplate) -> PromptTemplate:
        """Convert a LangChain ``ChatPromptTemplate`` or (string) ``PromptTemplate`` with f-string syntax.

        Partial variables are filled in; a string ``PromptTemplate`` becomes one human message.
        """
        if isinstance(template, LangChainPromptTemplate):
            return cls._of([_text_part("human", _langchain_text(template))])
        if not isinstance(template, ChatPromptTemplate):
            raise InvalidInputError(
                f"PromptTemplate.from_langchain got {type(template).__name__}",
                suggestion="Give a langchain_core ChatPromptTemplate or PromptTemplate.",
            )
        parts: list[_Part] = []
        for message in template.messages:
            if isinstance(message, BaseMessage):
                parts.append(message)
            elif isinstance(message, MessagesPlaceholder):
                parts.append(_Placeholder(message.variable_name, optional=message.optional))
            elif type(message) in _LANGCHAIN_TYPES and isinstance(
                prompt := getattr(message, "prompt", None), LangChainPromptTemplate
            ):
                parts.append(_text_part(_LANGCHAIN_TYPES[type(message)], _langchain_text(prompt)))
            else:
                raise InvalidInputError(
                    f"PromptTemplate.from_langchain cannot convert a {type(message).__name__}",
                    suggestion="Use system, human and AI message templates with one text template each, "
                    "MessagesPlaceholder, or plain messages.",
                )
        return cls._of(_fill_partials(parts, template.partial_variables))

    @classmethod
    def _of(cls, parts: Sequence[_Part]) -> PromptTemplate:
        made = cls.__new__(cls)
        made._parts = tuple(parts)
        return made

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable name, in order of first appearance (optional placeholders included)."""
        names: dict[str, None] = {}
        for part in self._parts:
            if isinstance(part, _Text):
                names.update(dict.fromkeys(part.variables))
            elif isinstance(part, _Placeholder):
                names[part.name] = None
        return tuple(names)

    @property
    def required_variables(self) -> tuple[str, ...]:
        """The variables ``render`` needs (all but optional placeholders)."""
        optional = {p.name for p in self._parts if isinstance(p, _Placeholder) and p.optional}
        return tuple(name for name in self.variables if name not in optional)

    def render(self, **values: Any) -> list[BaseMessage]:
        """The messages with ``values`` filled in; an ``InvalidInputError`` names a missing or unknown one."""
        self._check(values)
        messages: list[BaseMessage] = []
        for part in self._parts:
            if isinstance(part, _Text):
                text = part.template.format(**{name: values[name] for name in part.variables})
                messages.append(_MESSAGE_TYPES[part.role](content=text))
            elif isinstance(part, _Placeholder):
                messages.extend(_placeholder_messages(part.name, values.get(part.name)))
            else:
                messages.append(part)
        return messages

    def format(self, **values: Any) -> str:
        """The text of a one-message template with ``values`` filled in."""
        if len(self._parts) != 1 or not isinstance(self._parts[0], _Text):
            raise InvalidInputError(
                "format() needs a one-message template; this one has several messages",
                suggestion="Use render(**values) to get the messages.",
            )
        return str(self.render(**values)[0].text)

    def partial(self, **values: Any) -> PromptTemplate:
        """A copy with some text variables filled in now (placeholders stay to be given at render time)."""
        text_names = [n for p in self._parts if isinstance(p, _Text) for n in p.variables]
        unknown = sorted(set(values) - set(text_names))
        if unknown:
            raise InvalidInputError(
                f"PromptTemplate.partial got unknown variable(s): {_names(unknown)}",
                suggestion=f"Expected text variables: {_names(dict.fromkeys(text_names))}.",
                details={"unknown": unknown, "expected": list(dict.fromkeys(text_names))},
            )
        return self._of(_fill_partials(self._parts, values))

    def to_langchain(self) -> ChatPromptTemplate:
        """The same template as a LangChain ``ChatPromptTemplate`` (usable in LCEL: ``... | llm``)."""
        pieces: list[Any] = []
        for part in self._parts:
            if isinstance(part, _Text):
                pieces.append((part.role, part.template))
            elif isinstance(part, _Placeholder):
                pieces.append(MessagesPlaceholder(part.name, optional=part.optional))
            else:
                pieces.append(part)
        return ChatPromptTemplate.from_messages(pieces)

    def _check(self, values: Mapping[str, Any]) -> None:
        expected = self.variables
        missing = [name for name in self.required_variables if name not in values]
        unknown = sorted(name for name in values if name not in expected)
        if not missing and not unknown:
            return
        problems = []
        if missing:
            problems.append(f"missing variable(s): {_names(missing)}")
        if unknown:
            problems.append(f"unknown variable(s): {_names(unknown)}")
        listed = _names(expected) if expected else "none"
        raise InvalidInputError(
            "PromptTemplate.render got " + "; ".join(problems) + f". Expected variables: {listed}",
            suggestion="Pass exactly the expected variables as keyword arguments to render().",
            details={"missing": missing, "unknown": unknown, "expected": list(expected)},
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PromptTemplate) and self._parts == other._parts

    def __hash__(self) -> int:
        return hash(self._parts)

    def __repr__(self) -> str:
        if len(self._parts) == 1 and isinstance(self._parts[0], _Text):
            part = self._parts[0]
            role = "" if part.role == "human" else f", role={part.role!r}"
            return f"PromptTemplate({part.template!r}{role})"
        return (
            f"PromptTemplate.from_messages(<{len(self._parts)} messages>, variables={list(self.variables)})"
        )


def _role(role: str) -> Role:
    found = _ROLES.get(role)
    if found is None:
        raise InvalidInputError(
            f"Unknown message role {role!r} in PromptTemplate",
            suggestion="Use one of: system, human, user, ai, assistant (or placeholder in from_messages).",
        )
    return found


def _text_part(role: Role, template: str) -> _Text:
    return _Text(role, template, _parse_variables(template))


def _parse_variables(template: str) -> tuple[str, ...]:
    """The variable names of a ``str.format`` template, checked to be plain names."""
    names: dict[str, None] = {}
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as err:
        raise InvalidInputError(
            f"Malformed prompt template ({err}): {template[:80]!r}",
            suggestion="Close every {variable}, and write a literal brace as {{ or }}.",
        ) from err
    for field in fields:
        if not field.isidentifier():
            shown = "{" + field + "}"
            raise InvalidInputError(
                f"Prompt template variable {shown!r} is not a plain name",
                suggestion="Use names like {question}; write a literal brace as {{ or }}.",
            )
        names[field] = None
    return tuple(names)


def _placeholder_name(text: str) -> str:
    inner = text[1:-1] if text.startswith("{") and text.endswith("}") else text
    if not inner.isidentifier():
        raise InvalidInputError(
            f"Placeholder {text!r} is not a variable name",
            suggestion="Write a placeholder as ('placeholder', '{history}').",
        )
    return inner


def _placeholder_messages(name: str, value: Any) -> list[BaseMessage]:
    if value is None:
        return []
    if isinstance(value, str | BaseMessage) or not isinstance(value, Sequence):
        raise InvalidInputError(
            f"Placeholder variable {name!r} takes a list of messages, got {type(value).__name__}",
            suggestion="Pass a list of LangChain messages or (role, text) pairs.",
        )
    try:
        return list(convert_to_messages(list(value)))
    except (ValueError, TypeError, NotImplementedError) as err:
        raise InvalidInputError(
            f"Placeholder variable {name!r} holds something that is not a message: {err}",
            suggestion="Pass a list of LangChain messages or (role, text) pairs.",
        ) from err


def _langchain_text(prompt: LangChainPromptTemplate) -> str:
    if prompt.template_format != "f-string":
        raise InvalidInputError(
            f"Cannot convert a LangChain prompt in {prompt.template_format!r} format",
            suggestion="Use LangChain's default f-string template format.",
        )
    return _substitute(prompt.template, prompt.partial_variables)


def _fill_partials(parts: Sequence[_Part], values: Mapping[str, Any]) -> list[_Part]:
    if not values:
        return list(parts)
    filled: list[_Part] = []
    for part in parts:
        if isinstance(part, _Text):
            filled.append(_text_part(part.role, _substitute(part.template, values)))
        else:
            filled.append(part)
    return filled


def _substitute(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with the variables in ``values`` filled in (callables are called) and others kept."""
    out: list[str] = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        if field in values:
            value = values[field]
            value = value() if callable(value) else value
            shown = (
                "{0" + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            ).format(value)
            out.append(shown.replace("{", "{{").replace("}", "}}"))
        else:
            out.append(
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
    return "".join(out)


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)
