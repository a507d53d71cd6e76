"""Validated structured output: ask a chat model for JSON, validate it, and re-ask with the problems.

``invoke_validated(llm, messages, response_format=PersonInfo, validation=ValidationConfig(max_retries=2))``
(and ``await ainvoke_validated(...)``) asks the model, reads its answer as JSON (bare, or inside a
```` ```json ```` fence), and validates it: a pydantic model class gives an instance, a JSON-schema dict gives
the dict (checked with ``jsonschema``), ``"json"`` gives any parsed JSON value. On a problem the model is
re-asked, its bad answer and a message listing the problems appended to the conversation, up to
``max_retries`` times. These re-asks are separate from transport retries, which the model's own retry
policy handles (an HTTP failure propagates as its ModelForge error). When every attempt fails,
``StructuredOutputError`` lists each attempt's problems.

``llm`` is any LangChain ``BaseChatModel`` (``ModelForgeRegistry().get_llm()``) or an object with one in
``.llm`` (a provider object).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from modelforge.exceptions import InvalidInputError, ValidationError

__all__ = [
    "ResponseFormat",
    "StructuredAttempt",
    "StructuredOutputError",
    "ValidationConfig",
    "ainvoke_validated",
    "invoke_validated",
]

ResponseFormat = type[BaseModel] | dict[str, Any] | Literal["json"]
_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class ValidationConfig:
    """How validated output is asked for.

    ``max_retries``: re-asks after the first answer (0 = no re-ask). ``instructions``: append a message
    telling the model to answer with JSON matching the schema (turn off when the prompt already says so).
    """

    max_retries: int = 2
    instructions: bool = True

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise InvalidInputError(
                f"ValidationConfig.max_retries must be an integer >= 0, got {self.max_retries!r}",
                suggestion="Use e.g. ValidationConfig(max_retries=2).",
            )


@dataclass(frozen=True)
class StructuredAttempt:
    """One answer that failed: its number (1 = the first ask), the model's text and the problems found."""

    number: int
    answer: str = field(repr=False)
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"attempt {self.number}: " + "; ".join(self.problems)


class StructuredOutputError(ValidationError):
    """No answer passed validation; ``attempts`` holds every attempt's problems, in order."""

    default_code = "STRUCTURED_OUTPUT_ERROR"

    def __init__(self, target: str, attempts: Sequence[StructuredAttempt], **kwargs: Any) -> None:
        self.attempts: list[StructuredAttempt] = list(attempts)
        self.target = target
        count = len(self.attempts)
        listed = " | ".join(str(attempt) for attempt in self.attempts)
        kwargs.setdefault(
            "suggestion",
            "Raise ValidationConfig.max_retries, describe the format in the prompt, or use a stronger model.",
        )
        details = {
            "target": target,
            "attempts": [{"number": a.number, "problems": list(a.problems)} for a in self.attempts],
            **kwargs.pop("details", {}),
        }
        super().__init__(
            f"The model's answer did not match {target} after {count} attempt{'s' if count != 1 else ''}: "
            + listed,
            details=details,
            **kwargs,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.target, self.attempts), self.__dict__.copy())


def invoke_validated(
    llm: Any,
    messages: Sequence[Any] | str,
    *,
    response_format: ResponseFormat,
    validation: ValidationConfig | None = None,
    config: Any = None,
    **kwargs: Any,
) -> Any:
    """Ask ``llm`` and return the validated answer, re-asking on problems (see the module docstring).

    ``config`` and ``kwargs`` go to every ``llm.invoke`` call (callbacks, tags, model options).
    """
    model, loop = _prepare(llm, messages, response_format, validation)
    while True:
        reply = model.invoke(loop.messages, config=config, **kwargs)
        done, value = loop.check(reply)
        if done:
            return value


async def ainvoke_validated(
    llm: Any,
    messages: Sequence[Any] | str,
    *,
    response_format: ResponseFormat,
    validation: ValidationConfig | None = None,
    config: Any = None,
    **kwargs: Any,
) -> Any:
    """The async twin of ``invoke_validated``."""
    model, loop = _prepare(llm, messages, response_format, validation)
    while True:
        reply = await model.ainvoke(loop.messages, config=config, **kwargs)
        done, value = loop.check(reply)
        if done:
            return value


def _prepare(
    llm: Any,
    messages: Sequence[Any] | str,
    response_format: ResponseFormat,
    validation: ValidationConfig | None,
) -> tuple[BaseChatModel, _Loop]:
    model = getattr(llm, "llm", llm)
    if not isinstance(model, BaseChatModel):
        raise InvalidInputError(
            f"Expected a LangChain chat model or a provider with .llm, got {type(llm).__name__}",
            suggestion="Pass ModelForgeRegistry().get_llm() or a provider from create_provider(...).",
        )
    checker = _Checker.of(response_format)
    chosen = validation or ValidationConfig()
    start: list[BaseMessage] = (
        [HumanMessage(content=messages)] if isinstance(messages, str) else list(convert_to_messages(messages))
    )
    if chosen.instructions:
        start.append(HumanMessage(content=checker.instructions()))
    return model, _Loop(checker, chosen, start)


class _Loop:
    """The decisions of the re-ask loop, with no I/O: what to send next, and whether an answer is done."""

    def __init__(self, checker: _Checker, validation: ValidationConfig, messages: list[BaseMessage]) -> None:
        self.checker = checker
        self.validation = validation
        self.messages = messages
        self.attempts: list[StructuredAttempt] = []

    def check(self, reply: BaseMessage) -> tuple[bool, Any]:
        """``(True, value)`` if valid; ``(False, None)`` after queueing a re-ask; raises when out of tries."""
        answer = str(reply.text)
        value, problems = self.checker.check(answer)
        if not problems:
            return True, value
        self.attempts.append(StructuredAttempt(len(self.attempts) + 1, answer, tuple(problems)))
        if len(self.attempts) > self.validation.max_retries:
            raise StructuredOutputError(self.checker.name, self.attempts)
        self.messages = [
            *self.messages,
            AIMessage(content=answer),
            HumanMessage(content=_reask(problems)),
        ]
        return False, None


def _reask(problems: Sequence[str]) -> str:
    listed = "\n".join(f"- {problem}" for problem in problems)
    return (
        "Your previous answer was not valid:\n"
        + listed
        + "\nReply again with only the corrected JSON, no other text."
    )


@dataclass(frozen=True)
class _Checker:
    """Parses and validates one answer against a pydantic model, a JSON schema, or plain JSON."""

    name: str
    model: type[BaseModel] | None = None
    schema: dict[str, Any] | None = None

    @classmethod
    def of(cls, response_format: ResponseFormat) -> _Checker:
        if isinstance(response_format, type) and issubclass(response_format, BaseModel):
            return cls(response_format.__name__, model=response_format)
        if isinstance(response_format, dict):
            try:
                jsonschema.validators.validator_for(response_format).check_schema(response_format)
            except jsonschema.SchemaError as err:
                raise InvalidInputError(
                    f"response_format is not a valid JSON schema: {err.message}",
                    suggestion="Fix the schema, or pass a pydantic model class.",
                ) from err
            title = response_format.get("title")
            return cls(f"the JSON schema {title!r}" if title else "the JSON schema", schema=response_format)
        if response_format == "json":
            return cls("JSON")
        raise InvalidInputError(
            "response_format must be a pydantic model class, a JSON schema dict or 'json', "
            f"got {response_format!r}",
            suggestion="Pass e.g. response_format=PersonInfo (a pydantic BaseModel subclass).",
        )

    def instructions(self) -> str:
        schema = self.model.model_json_schema() if self.model is not None else self.schema
        if schema is None:
            return "Reply with only a JSON value, no other text."
        return "Reply with only a JSON object matching this JSON schema, no other text:\n" + json.dumps(
            schema
        )

    def check(self, answer: str) -> tuple[Any, list[str]]:
        try:
            data = _parse_json(answer)
        except ValueError as err:
            return None, [str(err)]
        if self.model is not None:
            try:
                return self.model.model_validate(data), []
            except PydanticValidationError as err:
                return None, [_pydantic_problem(e) for e in err.errors()]
        if self.schema is not None:
            validator = jsonschema.validators.validator_for(self.schema)(self.schema)
            errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
            if errors:
                return None, [_schema_problem(e) for e in errors]
        return data, []


def _parse_json(answer: str) -> Any:
    """The JSON value in ``answer``: the whole text, else a fenced block; ``ValueError`` names why not."""
    text = answer.strip()
    if not text:
        raise ValueError("the answer was empty, not JSON")
    candidates = [text, *(block.strip() for block in _FENCE.findall(text))]
    first_error: json.JSONDecodeError | None = None
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as err:
            first_error = first_error or err
    shown = text if len(text) <= 60 else text[:57] + "..."
    reason = first_error.msg if first_error else "unreadable"
    raise ValueError(f"the answer is not valid JSON ({reason}): {shown!r}")


def _pydantic_problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "(root)"
    return f"{where}: {error.get('msg', 'invalid')}"


def _schema_problem(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"
