"""``modelforge test``: send one prompt to the current model and print the answer.

The prompt comes from ``--prompt``, ``--input-file`` or piped stdin. stdout carries only the answer (or
nothing, with ``--output-file``, which is written atomically, streamed or not); progress notes and the
telemetry line (tokens, duration, cost) go to stderr. ``--quiet`` leaves only the answer. Telemetry is
shown unless ``--no-telemetry`` is given or ``settings.show_telemetry`` is false.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from modelforge.cli._errors import set_verbose
from modelforge.cli._output import enable_cli_logging, note, stdin_is_tty
from modelforge.exceptions import FileValidationError, InvalidInputError

__all__ = ["read_prompt", "test_model"]


def read_prompt(prompt: str | None, input_file: Path | None) -> str:
    """The prompt text from ``--prompt``, ``--input-file`` or piped stdin; ``InvalidInputError`` if none."""
    if prompt is not None and input_file is not None:
        raise click.UsageError("Give the prompt either with --prompt or with --input-file, not both")
    if input_file is not None:
        from modelforge.validation import InputValidator

        path = InputValidator.validate_file_path(input_file, must_exist=True)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise FileValidationError(str(path), "is not UTF-8 text", suggestion="Save it as UTF-8.") from err
        except OSError as err:
            raise FileValidationError(str(path), err.strerror or str(err)) from err
        source = f"input file {path}"
    elif prompt is not None:
        text, source = prompt, "--prompt"
    elif not stdin_is_tty():
        text, source = sys.stdin.read(), "stdin"
    else:
        text, source = "", ""
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


def _answer(llm: Any, text: str, callbacks: list[Any], *, stream: bool, echo: bool) -> str:
    """The answer; with ``stream`` and ``echo`` its pieces are also printed to stdout as they arrive."""
    config: dict[str, Any] = {"callbacks": callbacks}
    if not stream:
        return str(llm.invoke(text, config=config).text)
    parts: list[str] = []
    for chunk in llm.stream(text, config=config):
        piece = str(chunk.text)
        parts.append(piece)
        if echo and piece:
            click.echo(piece, nl=False)
            sys.stdout.flush()
    if echo:
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

    text = read_prompt(prompt, input_file)
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
        note(f"Sending the prompt to {provider}/{model}...")
    answer = _answer(llm, text, callbacks, stream=stream, echo=target is None)
    if target is not None:
        from modelforge._files import atomic_write_text

        atomic_write_text(target, answer if answer.endswith("\n") else answer + "\n", mode=0o644)
        if not quiet:
            note(f"Answer written to {target}")
    elif not stream:
        click.echo(answer)
    if show_telemetry:
        from modelforge.telemetry import format_metrics

        note(format_metrics(callbacks[0].metrics))
