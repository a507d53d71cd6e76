"""OpenAI Responses API wire format (``POST /v1/responses``), langchain-openai's ``use_responses_api``.

Shapes follow real recorded traffic (``tests/recordings/langchain-openai-*.jsonl.gz``, from the HTTP
cassettes in langchain-openai's source distribution). Non-streamed: a ``response`` object whose ``output``
holds a ``message`` item (``output_text`` content) and one ``function_call`` item per tool call, with
``usage`` (``input_tokens_details.cached_tokens``, ``output_tokens_details.reasoning_tokens``). A
``length`` finish is ``status: incomplete`` with ``incomplete_details.reason: max_output_tokens``.

Streamed: ``event: <type>`` / ``data: {...}`` server-sent events, each with a ``sequence_number``:
``response.created``, ``response.in_progress``, ``response.output_item.added`` (the message),
``response.content_part.added``, one ``response.output_text.delta`` per text chunk,
``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done``, for each tool
call ``response.output_item.added`` / ``response.function_call_arguments.delta`` / ``.done`` /
``response.output_item.done``, then ``response.completed`` (or ``response.incomplete``) carrying the whole
response with its usage. There is no ``[DONE]`` line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from modelforge.testing._chat import ChatProtocol, ChatRequest, WireError
from modelforge.testing._common import dumps, estimate_tokens, new_id, split_fragments
from modelforge.testing._http import Exchange
from modelforge.testing._openai import OpenAIProtocol
from modelforge.testing.script import ProtocolName, Reply, Usage

__all__ = ["ResponsesProtocol"]


@dataclass
class _ResponsesRequest(ChatRequest):
    """A Responses request and the state of its stream (event numbering, the message item's id)."""

    instructions: str | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    message_id: str = ""
    sequence: int = 0
    text: list[str] = field(default_factory=list)

    def next_sequence(self) -> int:
        number = self.sequence
        self.sequence += 1
        return number


def _input_text(value: Any) -> str:
    """The text of a Responses ``input`` (a string, or message / item objects with text parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_input_text(item) for item in value)
    if isinstance(value, dict):
        parts = [value.get(key) for key in ("content", "text", "output", "arguments")]
        return " ".join(_input_text(part) for part in parts if part is not None)
    return ""


class ResponsesProtocol(ChatProtocol):
    """OpenAI ``/v1/responses`` (the module docstring has the event sequence)."""

    name: ClassVar[ProtocolName] = "openai"

    def __init__(self, required_key: Callable[[], str | None]) -> None:
        self._chat = OpenAIProtocol(required_key)  # the same key check and error bodies

    def parse(self, ex: Exchange, data: Any, path_model: str | None) -> ChatRequest:
        if not isinstance(data, dict) or "input" not in data:
            raise WireError(400, "Missing required parameter: 'input'.")
        instructions = data.get("instructions")
        text = _input_text(data["input"]) + (f" {instructions}" if isinstance(instructions, str) else "")
        max_output = data.get("max_output_tokens")
        previous = data.get("previous_response_id")
        return _ResponsesRequest(
            model=str(data.get("model") or "gpt-4o-mini"),
            stream=bool(data.get("stream")),
            prompt_tokens=estimate_tokens(text),
            include_usage=True,  # a Responses stream always ends with the usage
            response_id=new_id("resp_", 48),
            created=int(time.time()),
            instructions=instructions if isinstance(instructions, str) else None,
            max_output_tokens=max_output if isinstance(max_output, int) else None,
            previous_response_id=previous if isinstance(previous, str) else None,
            message_id=new_id("msg_", 48),
        )

    def authorize(self, ex: Exchange) -> str | None:
        return self._chat.authorize(ex)

    def error_body(self, status: int, message: str) -> bytes:
        return self._chat.error_body(status, message)

    def response_headers(self, chat: ChatRequest) -> dict[str, str]:
        return self._chat.response_headers(chat)

    # -- non-streamed ----------------------------------------------------------------------------------

    def render(self, reply: Reply, chat: ChatRequest, usage: Usage) -> Any:
        request = cast(_ResponsesRequest, chat)
        return self._response(reply, request, usage, reply.text, self._calls(reply))

    # -- streamed --------------------------------------------------------------------------------------

    def stream_open(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        request = cast(_ResponsesRequest, chat)
        opening = self._response(reply, request, usage, "", None)
        events = [
            self._event(request, "response.created", response=opening),
            self._event(request, "response.in_progress", response=opening),
        ]
        if reply.text or not reply.tool_calls:
            item = {**self._message(request, ""), "status": "in_progress", "content": []}
            events.append(self._event(request, "response.output_item.added", output_index=0, item=item))
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            events.append(self._part(request, "response.content_part.added", part))
        return events

    def stream_text(self, text: str, chat: ChatRequest) -> bytes:
        request = cast(_ResponsesRequest, chat)
        request.text.append(text)
        return self._event(
            request,
            "response.output_text.delta",
            content_index=0,
            delta=text,
            item_id=request.message_id,
            logprobs=[],
            output_index=0,
        )

    def stream_close(self, reply: Reply, chat: ChatRequest, usage: Usage) -> list[bytes]:
        request = cast(_ResponsesRequest, chat)
        text = "".join(request.text)
        events: list[bytes] = []
        has_message = bool(reply.text or not reply.tool_calls)
        if has_message:
            events.append(
                self._event(
                    request,
                    "response.output_text.done",
                    content_index=0,
                    item_id=request.message_id,
                    logprobs=[],
                    output_index=0,
                    text=text,
                )
            )
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            events.append(self._part(request, "response.content_part.done", part))
            message = self._message(request, text)
            events.append(self._event(request, "response.output_item.done", output_index=0, item=message))
        calls = self._calls(reply)
        for offset, call in enumerate(calls):
            index = offset + int(has_message)
            opening = {**call, "arguments": "", "status": "in_progress"}
            events.append(
                self._event(request, "response.output_item.added", output_index=index, item=opening)
            )
            for fragment in split_fragments(call["arguments"]):
                events.append(
                    self._event(
                        request,
                        "response.function_call_arguments.delta",
                        delta=fragment,
                        item_id=call["id"],
                        output_index=index,
                    )
                )
            events.append(
                self._event(
                    request,
                    "response.function_call_arguments.done",
                    arguments=call["arguments"],
                    item_id=call["id"],
                    output_index=index,
                )
            )
            events.append(self._event(request, "response.output_item.done", output_index=index, item=call))
        final = self._response(reply, request, usage, text, calls)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        events.append(self._event(request, kind, response=final))
        return events

    def stream_error(self, data: bytes, chat: ChatRequest) -> bytes:
        return b"event: error\ndata: " + data + b"\n\n"

    def stream_error_data(self, status: int, message: str, chat: ChatRequest) -> bytes:
        """The ``error`` event: the error's code and message at the top level, numbered like the others."""
        error = json.loads(self._chat.error_body(status, message))["error"]
        request = cast(_ResponsesRequest, chat)
        body = {
            "type": "error",
            "code": error.get("code") or error.get("type"),
            "message": message,
            "param": None,
            "sequence_number": request.next_sequence(),
        }
        return dumps(body)

    def stream_malformed(self, chat: ChatRequest) -> bytes:
        return (
            b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": \n\n'
        )

    # -- helpers ---------------------------------------------------------------------------------------

    def _event(self, request: _ResponsesRequest, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, **fields, "sequence_number": request.next_sequence()}
        return b"event: " + kind.encode() + b"\ndata: " + dumps(body) + b"\n\n"

    def _part(self, request: _ResponsesRequest, kind: str, part: dict[str, Any]) -> bytes:
        return self._event(
            request, kind, content_index=0, item_id=request.message_id, output_index=0, part=part
        )

    @staticmethod
    def _message(request: _ResponsesRequest, text: str) -> dict[str, Any]:
        content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
        return {
            "id": request.message_id,
            "type": "message",
            "status": "completed",
            "content": content,
            "role": "assistant",
        }

    @staticmethod
    def _calls(reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "id": new_id("fc_", 48),
                "type": "function_call",
                "status": "completed",
                "arguments": json.dumps(call.arguments),
                "call_id": call.id or new_id("call_"),
                "name": call.name,
            }
            for call in reply.tool_calls
        ]

    def _response(
        self,
        reply: Reply,
        request: _ResponsesRequest,
        usage: Usage,
        text: str,
        calls: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        """The response object: final with its ``calls`` (their items), else still in progress (None)."""
        final = calls is not None
        incomplete = final and reply.neutral_finish() == "length"
        output: list[dict[str, Any]] = []
        if calls is not None:
            if reply.text or not reply.tool_calls:
                output.append(self._message(request, text))
            output += calls
        status = "incomplete" if incomplete else "completed" if final else "in_progress"
        return {
            "id": request.response_id,
            "object": "response",
            "created_at": request.created,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if final and not incomplete else None,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "model": request.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": request.previous_response_id,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": self._usage(usage) if final else None,
            "user": None,
            "metadata": {},
        }

    @staticmethod
    def _usage(usage: Usage) -> dict[str, Any]:
        return {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens,
        }
