"""``modelforge test``: send one prompt to the current model and print the answer.

The prompt comes from ``--prompt``, ``--input-file`` or piped stdin. As in 2.3.0, everything goes to
stdout so ``> file`` and ``grep`` see it: a status line, the exchange as ``Q: <prompt>`` / ``A: <answer>``
(the answer streamed after ``A:`` with ``--stream``), then the telemetry block (tokens, duration, cost).
``--output-file`` writes the answer alone (exactly, no newline added), atomically, and stdout says where.
``--quiet`` prints the answer alone (with ``--output-file``, only where it was written). Telemetry is
shown unless ``--quiet``, ``--no-telemetry`` or ``settings.show_telemetry: false``. Errors go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from modelforge.cli._errors import CliUsageError, set_verbose
from modelforge.cli._output import enable_cli_logging, stdin_is_tty, stdout_is_tty
from modelforge.exceptions import FileValidationError, InvalidInputError

__all__ = ["read_prompt", "test_model"]


def read_prompt(prompt: str | None, input_file: Path | None) -> str:
    """The prompt text from ``--prompt``, ``--input-file`` or piped stdin; ``InvalidInputError`` if none.

    As in 2.3.0: an empty ``--prompt`` counts as none given (the prompt is then read from stdin), and a
    prompt read from a file or stdin is sent without its surrounding blank space (the trailing newline).
    """
    if prompt and input_file is not None:
        raise click.UsageError("Give the prompt either with --prompt or with --input-file, not both")
    if input_file is not None:
        from modelforge.validation import InputValidator

        path = InputValidator.validate_file_path(input_file, must_exist=True)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as err:
            raise FileValidationError(str(path), "is not UTF-8 text", suggestion="Save it as UTF-8.") from err
        except OSError as err:
            raise FileValidationError(str(path), err.strerror or str(err)) from err
        source = f"input file {path}"
    elif prompt:
        text, source = prompt, "--prompt"
    elif not stdin_is_tty():
        text, source = sys.stdin.read().strip(), "stdin"
    else:
        text, source = "", "--prompt" if prompt is not None else ""
    if not text.strip():
        where = f"The prompt from {source} is empty" if source else "No prompt given"
        raise InvalidInputError(
            where,
            suggestion='Use: modelforge test -p "Hello", or -i prompt.txt, '
            "or pipe it: echo Hello | modelforge test",
            error_code="EMPTY_PROMPT",
        )
    return text


def _writable_output(output_file: Path | None) -> Path | None:
    if output_file is None:
        return None
    from modelforge.validation import InputValidator

    return InputValidator.validate_file_path(output_file, must_be_writable=True)


PROMPT_DISPLAY_CHARS = 80
"""The longest prompt shown after ``Q:``; a longer one is cut to this length with ``...``, as in 2.3.0."""


def _question_line(prompt: str) -> str:
    text = prompt.strip()
    shown = text if len(text) <= PROMPT_DISPLAY_CHARS else text[: PROMPT_DISPLAY_CHARS - 3] + "..."
    return click.style("Q: ", fg="blue", bold=True) + shown


def _answer_label() -> str:
    return click.style("A: ", fg="green", bold=True)


def _show_question(text: str, *, answer: str | None) -> None:
    """The exchange as 2.3.0 printed it: a blank line, ``Q: <prompt>``, then ``A: `` and the answer (left
    open for a streamed answer when ``answer`` is None)."""
    click.echo()
    click.echo(_question_line(text))
    if answer is None:
        click.echo(_answer_label(), nl=False)
    else:
        click.echo(_answer_label() + answer)


def _answer(llm: Any, text: str, callbacks: list[Any], *, stream: bool, echo: bool, exchange: bool) -> str:
    """The answer; with ``stream`` and ``echo`` its pieces are also printed to stdout as they arrive,
    after the ``Q:`` / ``A:`` labels when ``exchange``."""
    config: dict[str, Any] = {"callbacks": callbacks}
    if not stream:
        return str(llm.invoke(text, config=config).text)
    if echo and exchange:
        _show_question(text, answer=None)
    parts: list[str] = []
    for chunk in llm.stream(text, config=config):
        piece = str(chunk.text)
        parts.append(piece)
        if echo and piece:
            click.echo(piece, nl=False)
            sys.stdout.flush()
    if echo and (exchange or stdout_is_tty()):  # --quiet into a pipe or file: the answer's bytes, as 2.3.0
        click.echo()
    return "".join(parts)


@click.command(name="test")
@click.option("-p", "--prompt", help="The prompt to send.")
@click.option(
    "-i", "--input-file", type=click.Path(dir_okay=False, path_type=Path), help="Read the prompt from a file."
)
@click.option(
    "-o", "--output-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the answer to a file."
)
@click.option("--verbose", is_flag=True, callback=set_verbose, help="Log what happens, and show tracebacks.")
@click.option("--no-telemetry", is_flag=True, help="Do not show tokens, duration and cost.")
@click.option("--stream", is_flag=True, help="Stream the answer (printed as it arrives, unless -o is given).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the answer.")
@click.option(
    "-m",
    "--model",
    "model_spec",
    metavar="PROVIDER:MODEL",
    help="Use this configured model instead of the current one (provider:model or provider/model).",
)
def test_model(
    prompt: str | None,
    input_file: Path | None,
    output_file: Path | None,
    verbose: bool,
    no_telemetry: bool,
    stream: bool,
    quiet: bool,
    model_spec: str | None,
) -> None:
    """Send a prompt to the current model (see `modelforge config use`), or to --model, and print the
    answer."""
    from modelforge.config import get_settings
    from modelforge.registry import ModelForgeRegistry

    if quiet and verbose:  # as 2.3.0
        raise click.UsageError("--quiet and --verbose cannot be used together")
    try:
        text = read_prompt(prompt, input_file)
    except (InvalidInputError, FileValidationError) as err:  # exit code 2, as 2.3.0's parameter errors
        raise CliUsageError.from_error(err) from err
    target = _writable_output(output_file)
    if verbose:
        enable_cli_logging()
    registry = ModelForgeRegistry(verbose=verbose)
    llm = registry.get_llm(model_spec) if model_spec else registry.get_llm()
    provider = str(getattr(llm, "provider_name", "") or "unknown")
    model = str(getattr(llm, "model_alias", "") or "unknown")
    show_telemetry = not (no_telemetry or quiet) and bool(get_settings().get("show_telemetry", True))
    callbacks: list[Any] = []
    if show_telemetry:
        from modelforge.telemetry import TelemetryCallback

        callbacks.append(TelemetryCallback(provider, model))
    if not quiet:
        click.echo(f"Sending the prompt to {provider}/{model}...")
    exchange = not quiet
    answer = _answer(llm, text, callbacks, stream=stream, echo=target is None, exchange=exchange)
    if target is not None:
        from modelforge._files import atomic_write_text

        atomic_write_text(target, answer, mode=0o644)  # the answer exactly, as 2.3.0 wrote it
        click.echo(f"Answer written to {target}")  # --quiet too, as 2.3.0
    elif not stream:
        if exchange:
            _show_question(text, answer=answer)
        else:
            click.echo(answer)
    if show_telemetry:
        from modelforge.telemetry import format_metrics

        click.echo(format_metrics(callbacks[0].metrics))
