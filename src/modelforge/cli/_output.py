"""How the CLI prints: rich tables on a terminal, plain aligned text when stdout is a pipe or a file.

Results go to stdout; notes, warnings and progress go to stderr, so ``modelforge ... | tool`` sees only
the result. Nothing here colours or wraps output that is not going to a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["echo_json", "note", "print_table", "stdin_is_tty", "stdout_is_tty", "warn"]


def stdout_is_tty() -> bool:
    """Whether stdout is an interactive terminal (tables and prompts can be seen)."""
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def stdin_is_tty() -> bool:
    """Whether stdin is an interactive terminal (no piped input), so the user can be asked.

    The same test the library's auth strategies use before prompting (``auth.strategies.is_interactive``),
    so the CLI and the library agree on when a prompt is possible. Imported here, not at module level:
    ``modelforge --help`` need not load the auth package.
    """
    from modelforge.auth.strategies import is_interactive

    return is_interactive()


def note(message: str) -> None:
    """An informational line on stderr."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    """A warning line on stderr."""
    click.echo(click.style("Warning", fg="yellow") + f": {message}", err=True)


def echo_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A table on stdout: rich on a terminal, otherwise columns separated by two spaces."""
    cells = [["" if value is None else str(value) for value in row] for row in rows]
    if stdout_is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False, highlight=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in cells:
            table.add_row(*row)
        Console(highlight=False).print(table)
        return
    if title:
        click.echo(title)
    widths = [len(column) for column in columns]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=False)]
    for row in [list(columns), *cells]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


_LOG_HANDLER_NAME = "modelforge-cli"


def enable_cli_logging() -> None:
    """``--verbose``: ModelForge's INFO log lines on stderr (one handler, however often it is called)."""
    logger = logging.getLogger("modelforge")
    if not any(h.get_name() == _LOG_HANDLER_NAME for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_LOG_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
