"""``modelforge chat``: an interactive, streamed conversation with a configured model.

::

    modelforge chat [--provider P] [--model M] [--system TEXT] [--max-tokens N] [--no-stream] [--verbose]

Each line read is sent with the conversation so far (the newest turns within ``--max-tokens`` prompt
tokens; by default half the model's catalogue context length, at most 32,000, else 4,000) and the answer
is printed to stdout as it arrives. Slash commands: ``/cost``, ``/reset``, ``/model [provider/alias |
alias]``, ``/help``, ``/exit`` / ``/quit``; a line starting with ``//`` is sent with one ``/`` less.

* Ctrl-C while an answer streams stops it and returns to the prompt: the text received so far stays in the
  memory, marked as interrupted (nothing is kept when no text had arrived), and the tracker counts the
  tokens received. Ctrl-C at the prompt, ``/exit``, ``/quit`` and Ctrl-D end the chat with exit code 0
  and the session's cost on stderr.
* A failed call prints the error (message and hint) on stderr and the chat goes on; the line that failed
  is not kept in the memory.
* With piped stdin (no terminal) there is no prompt: lines are read until end of input, answers go to
  stdout one after the other, and the exit code is 1 if any line failed, so scripts can tell.

Errors before the chat starts (no model configured, unknown provider or model) end the command with the
usual one-line error and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from modelforge.cli._errors import EXIT_ERROR, CliError, is_verbose, set_verbose, to_cli_error
from modelforge.cli._output import note, print_table, stdin_is_tty

if TYPE_CHECKING:  # the session loads LangChain and the config: only once the command runs
    from modelforge.cli._chat_session import ChatSession

__all__ = ["chat_command"]

PROMPT = "you> "
COMMANDS = ("/cost", "/reset", "/model", "/help", "/exit", "/quit")
HELP = """Commands:
  /cost                       calls, tokens and cost of this session so far
  /reset                      forget the conversation (the system prompt and the cost so far stay)
  /model                      show the current model
  /model provider/alias       switch model, keeping the conversation (or: /model alias)
  /help                       this help
  /exit, /quit                end the chat (so do Ctrl-D and Ctrl-C at the prompt)
Ctrl-C while an answer streams stops it. Start a line with // to send a line that begins with /."""


def _money(cost: float) -> str:
    return f"${cost:.6f}"


class _Chat:
    """The read-answer loop over one ``ChatSession``."""

    def __init__(self, session: ChatSession, *, interactive: bool, verbose: bool) -> None:
        self.session = session
        self.interactive = interactive
        self.verbose = verbose
        self.failures = 0

    # --- the loop ----------------------------------------------------------------------------------------

    def run(self) -> int:
        """Chat until end of input or an exit command; the exit code."""
        if self.interactive:
            _enable_line_editing()
            note(f"Chatting with {self.session.describe()}. /help for commands, Ctrl-D to leave.")
        with asyncio.Runner() as runner:
            while True:
                line = self._read()
                if line is None:
                    break
                text = line.strip()
                if not text:
                    continue
                if text.startswith("//"):
                    self._turn(runner, text[1:])
                elif text.startswith("/"):
                    if not self._command(text):
                        break
                else:
                    self._turn(runner, text)
            with contextlib.suppress(Exception):  # closing pooled connections must not spoil the exit
                runner.run(self.session.registry.aclose())
        self._farewell()
        return EXIT_ERROR if self.failures and not self.interactive else 0

    def _read(self) -> str | None:
        """The next line, or None at end of input (Ctrl-D) or on Ctrl-C at the prompt."""
        if not self.interactive:
            line = sys.stdin.readline()
            return line.rstrip("\r\n") if line else None
        try:
            return input(PROMPT)
        except (EOFError, KeyboardInterrupt):  # Ctrl-D, or Ctrl-C at the prompt: leave like /exit
            click.echo()
            return None

    def _turn(self, runner: asyncio.Runner, text: str) -> None:
        printed: list[str] = []

        def show(piece: str) -> None:
            printed.append(piece)
            click.echo(piece, nl=False)
            sys.stdout.flush()

        try:
            outcome = self.session.send(runner, text, show)
        except Exception as err:
            if printed:
                click.echo()
            self.failures += 1
            to_cli_error(err, verbose=self.verbose).show()
            return
        if (printed and not "".join(printed).endswith("\n")) or (not printed and outcome != "interrupted"):
            click.echo()  # end the answer's line (an empty answer's, or the one the terminal echoed ^C on)
        if outcome == "interrupted":
            from modelforge.cli._chat_session import INTERRUPTED_MARK

            note(f"Answer interrupted; the part received is kept in the memory, marked {INTERRUPTED_MARK}.")
        elif outcome == "interrupted-empty":
            note("Answer interrupted before any text arrived; the message was not kept.")

    # --- slash commands ----------------------------------------------------------------------------------

    def _command(self, text: str) -> bool:
        """Run a slash command; False when the chat should end."""
        name, _, argument = text.partition(" ")
        argument = argument.strip()
        handlers: dict[str, Callable[[str], bool]] = {
            "/cost": self._cost,
            "/reset": self._reset,
            "/model": self._model,
            "/help": self._help,
            "/exit": lambda _arg: False,
            "/quit": lambda _arg: False,
        }
        handler = handlers.get(name.lower())
        if handler is None:
            _show_error(f"Unknown command {name}", "Commands: " + ", ".join(COMMANDS))
            return True
        return handler(argument)

    def _cost(self, _argument: str) -> bool:
        lines = self.session.cost_lines()
        if not lines:
            click.echo("No calls yet: $0.000000.")
            return True
        rows = [
            [
                line.model,
                line.calls,
                f"{line.input_tokens:,}",
                f"{line.output_tokens:,}",
                _money(line.cost) if line.priced else "unknown price",
            ]
            for line in lines
        ]
        unpriced = any(not line.priced for line in lines)
        total = _money(self.session.total_cost) + (" + unknown price" if unpriced else "")
        if len(lines) > 1 or unpriced:
            rows.append(
                [
                    "total",
                    sum(line.calls for line in lines),
                    f"{sum(line.input_tokens for line in lines):,}",
                    f"{sum(line.output_tokens for line in lines):,}",
                    total,
                ]
            )
        print_table(["Model", "Calls", "Input tokens", "Output tokens", "Cost"], rows, title="Session cost")
        if any(line.estimated for line in lines):
            click.echo("Some token counts are estimated from the text (the provider reported no usage).")
        return True

    def _reset(self, _argument: str) -> bool:
        self.session.reset()
        kept = " (the system prompt stays)" if self.session.system_prompt else ""
        note(
            f"Conversation forgotten{kept}. The cost so far stays: {_money(self.session.total_cost)} "
            "(see /cost)."
        )
        return True

    def _model(self, argument: str) -> bool:
        if not argument:
            click.echo(f"Current model: {self.session.describe()}")
            return True
        try:
            self.session.switch(argument)
        except Exception as err:
            to_cli_error(err, verbose=self.verbose).show()
            note(f"Still chatting with {self.session.current.label}.")
            return True
        note(f"Now chatting with {self.session.describe()}; the conversation is kept.")
        return True

    def _help(self, _argument: str) -> bool:
        click.echo(HELP)
        return True

    def _farewell(self) -> None:
        calls = self.session.calls()
        if not calls:
            note("Bye. No calls were made.")
            return
        unpriced = sum(1 for call in calls if not call.priced)
        tokens_in = sum(call.input_tokens for call in calls)
        tokens_out = sum(call.output_tokens for call in calls)
        extra = f"; {unpriced} call(s) at an unknown price" if unpriced else ""
        note(
            f"Session cost: {_money(self.session.total_cost)} over {len(calls)} call(s), "
            f"{tokens_in:,} input and {tokens_out:,} output tokens{extra}."
        )


def _show_error(message: str, suggestion: str) -> None:
    """Show a chat-level error the way the CLI shows every error (it does not end the chat)."""
    CliError(message, suggestion=suggestion).show()


def _enable_line_editing() -> None:
    """Arrow keys and history at the prompt, where the platform has readline."""
    with contextlib.suppress(ImportError):  # Windows has no readline
        import readline  # noqa: F401  (importing it is what turns line editing on for input())


@click.command(name="chat")
@click.option("--provider", help="Provider to chat with (default: the current model's).")
@click.option("--model", help="Model alias to chat with (default: the current model).")
@click.option("--system", "system_prompt", help="System prompt for the whole conversation.")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Prompt-token budget of the conversation memory "
    "(default: half the model's context length, at most 32000; 4000 if unknown).",
)
@click.option("--no-stream", is_flag=True, help="Print each answer whole instead of as it arrives.")
@click.option("--verbose", is_flag=True, callback=set_verbose, help="Log what happens, and show tracebacks.")
def chat_command(
    provider: str | None,
    model: str | None,
    system_prompt: str | None,
    max_tokens: int | None,
    no_stream: bool,
    verbose: bool,
) -> None:
    """Chat with a model: streamed answers, conversation memory, /cost, /reset, /model."""
    from modelforge.cli._chat_session import ChatSession
    from modelforge.registry import ModelForgeRegistry

    if verbose:
        from modelforge.cli._output import enable_cli_logging

        enable_cli_logging()
    session = ChatSession(
        ModelForgeRegistry(verbose=verbose),
        provider=provider,
        model=model,
        system_prompt=system_prompt,
        max_tokens=max_tokens,
        stream=not no_stream,
    )
    code = _Chat(session, interactive=stdin_is_tty(), verbose=is_verbose()).run()
    if code:
        raise click.exceptions.Exit(code)
