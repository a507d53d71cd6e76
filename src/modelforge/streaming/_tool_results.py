"""What running a tool call gives: ``ToolResult``, the ``ToolCallStarted`` / ``ToolCallFinished`` events, and
the errors of a call that could not run as asked (``ToolCallError`` and its subclasses; their tree and codes
are in the docstring of ``modelforge.streaming.tools``, which re-exports everything here).

``ToolResult.to_message()`` is the ``ToolMessage`` the model gets back: the output, or ``"Error: ..."``
describing the failure (secrets masked), with ``status="error"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import ToolMessage

from modelforge._secrets import mask_secrets
from modelforge.exceptions import ModelForgeError
from modelforge.streaming.events import ToolCallComplete

__all__ = [
    "ToolArgumentsError",
    "ToolCallError",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolEvent",
    "ToolResult",
    "ToolTimeoutError",
    "UnknownToolError",
]


# --- errors ----------------------------------------------------------------------------------------------


class ToolCallError(ModelForgeError):
    """A tool call could not run as the model asked; ``tool`` and ``call_id`` say which."""

    default_code = "TOOL_CALL_ERROR"

    def __init__(self, tool: str, call_id: str, message: str, **kwargs: Any) -> None:
        details = {"tool": tool, "call_id": call_id, **kwargs.pop("details", {})}
        super().__init__(message, details=details, **kwargs)
        self.tool = tool
        self.call_id = call_id


class UnknownToolError(ToolCallError):
    """The model called a tool that is not registered (never was, or was unregistered)."""

    default_code = "UNKNOWN_TOOL"

    def __init__(self, tool: str, call_id: str, available: Sequence[str]) -> None:
        names = ", ".join(available) or "none"
        super().__init__(
            tool,
            call_id,
            f"There is no tool named '{tool}'. Available tools: {names}.",
            suggestion="Register a handler with that name, or tell the model which tools exist.",
            details={"available": list(available)},
        )


class ToolArgumentsError(ToolCallError):
    """The model's arguments do not match the tool's argument schema."""

    default_code = "TOOL_ARGUMENTS"

    def __init__(self, tool: str, call_id: str, reason: str) -> None:
        super().__init__(tool, call_id, f"Invalid arguments for tool '{tool}': {reason}")
        self.reason = reason


class ToolTimeoutError(ToolCallError):
    """A handler ran longer than the manager's ``call_timeout``."""

    default_code = "TOOL_TIMEOUT"

    def __init__(self, tool: str, call_id: str, timeout: float) -> None:
        super().__init__(
            tool,
            call_id,
            f"Tool '{tool}' did not finish within {timeout:g}s.",
            suggestion="Raise call_timeout, or make the tool answer sooner.",
            details={"timeout": timeout},
        )
        self.timeout = timeout


# --- results and events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call gave: ``output`` (text; ``""`` on error) or ``error``, and how long it took."""

    call: ToolCallComplete
    output: str
    error: Exception | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def content(self) -> str:
        """The text the model gets: the output, or a description of the error (secrets masked)."""
        if self.error is None:
            return self.output
        if isinstance(self.error, ModelForgeError):
            return f"Error: {self.error.message}"
        return mask_secrets(
            f"Error: tool '{self.call.name}' failed: {type(self.error).__name__}: {self.error}"
        )

    def to_message(self) -> ToolMessage:
        """The ``ToolMessage`` answering the call (``status="error"`` when it failed)."""
        return ToolMessage(
            content=self.content,
            tool_call_id=self.call.id,
            name=self.call.name,
            status="error" if self.error is not None else "success",
        )


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A handler is about to run ``call`` (with bounded concurrency: it got its slot)."""

    call: ToolCallComplete


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A call is done, successfully or not."""

    result: ToolResult


ToolEvent = ToolCallStarted | ToolCallFinished
