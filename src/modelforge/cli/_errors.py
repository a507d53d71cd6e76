"""How the CLI fails: one clear message on stderr and a non-zero exit code, never a traceback.

``ForgeGroup`` is the click group class of every ModelForge command group. The root group's ``invoke``
runs the whole command chain, so it is the one place where errors are turned into ``CliError``:

* ``ModelForgeError``: its ``message``, ``suggestion`` and ``error_code`` (exit code 1);
* ``OSError`` (a file that cannot be read or written): the file name and the system's reason (exit code 1);
* ``KeyboardInterrupt``: "Interrupted." (exit code 130);
* anything else: the exception type and masked text with a hint to rerun with ``--verbose`` (exit code 1).

click's own usage errors keep click's format and exit code 2; ``CliUsageError`` is a bad argument found by
a command itself (an empty prompt), shown like a ``ModelForgeError`` but with click's exit code 2. With
``--verbose`` (any command that has it) the traceback is printed after the message; secrets are masked
everywhere.
"""

from __future__ import annotations

import os
import traceback
from typing import IO, Any

import click

from modelforge._secrets import mask_secrets
from modelforge.exceptions import ModelForgeError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "CliError",
    "CliInterrupted",
    "CliUsageError",
    "ForgeGroup",
    "is_verbose",
    "set_verbose",
    "to_cli_error",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_VERBOSE_KEY = "modelforge.verbose"


class CliError(click.ClickException):
    """A failure to report as ``Error: <message>`` plus an optional hint, then exit."""

    exit_code = EXIT_ERROR

    def __init__(
        self,
        message: str,
        *,
        suggestion: str | None = None,
        error_code: str | None = None,
        traceback_text: str | None = None,
    ) -> None:
        super().__init__(mask_secrets(message))
        self.suggestion = mask_secrets(suggestion) if suggestion else None
        self.error_code = error_code
        self.traceback_text = mask_secrets(traceback_text) if traceback_text else None

    def show(self, file: IO[Any] | None = None) -> None:
        if self.traceback_text:
            click.echo(self.traceback_text.rstrip(), err=True)
        code = f" [{self.error_code}]" if self.error_code else ""
        click.echo(click.style("Error", fg="red", bold=True) + f"{code}: {self.message}", err=True)
        if self.suggestion and not self.message.rstrip(". ").endswith(self.suggestion.rstrip(". ")):
            click.echo(f"  Hint: {self.suggestion}", err=True)  # unless the message already ends with it


class CliUsageError(CliError):
    """A bad argument the command found itself: exit code 2, as click's usage errors (and 2.3.0's)."""

    exit_code = EXIT_USAGE

    @classmethod
    def from_error(cls, err: ModelForgeError) -> CliUsageError:
        return cls(err.message, suggestion=err.suggestion, error_code=err.error_code)


class CliInterrupted(CliError):
    """Ctrl+C: exit code 130, as shells expect after SIGINT."""

    exit_code = EXIT_INTERRUPTED


def set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """Option callback for ``--verbose``: remember it for the error handler (``ctx.meta`` is shared)."""
    if value:
        ctx.meta[_VERBOSE_KEY] = True
    return value


def is_verbose(ctx: click.Context | None = None) -> bool:
    """Whether ``--verbose`` was given anywhere in the current command line."""
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(_VERBOSE_KEY))


def _oserror_message(err: OSError) -> str:
    reason = os.strerror(err.errno) if err.errno else str(err)
    target = err.filename if err.filename is not None else None
    return f"{target}: {reason}" if target else reason


def to_cli_error(err: BaseException, *, verbose: bool = False) -> CliError:
    """The ``CliError`` to show for ``err``."""
    trace = "".join(traceback.format_exception(err)) if verbose else None
    if isinstance(err, ModelForgeError):
        return CliError(
            err.message, suggestion=err.suggestion, error_code=err.error_code, traceback_text=trace
        )
    if isinstance(err, KeyboardInterrupt):
        return CliInterrupted("Interrupted.", traceback_text=trace)
    if isinstance(err, OSError):
        return CliError(
            _oserror_message(err),
            suggestion="Check that the path exists and that you may read or write it.",
            error_code="OS_ERROR",
            traceback_text=trace,
        )
    return CliError(
        f"Unexpected error: {type(err).__name__}: {err}",
        suggestion=None if verbose else "Run the command again with --verbose for details, and report it.",
        error_code="INTERNAL_ERROR",
        traceback_text=trace,
    )


class ForgeGroup(click.Group):
    """A click group that turns every failure of its commands into a ``CliError``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise  # the reader went away (`modelforge models list | head`): click exits quietly
        except (KeyboardInterrupt, Exception) as err:
            raise to_cli_error(err, verbose=is_verbose(ctx)) from err
