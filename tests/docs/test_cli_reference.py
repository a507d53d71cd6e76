"""``docs/cli.md`` names every command and every option of the ``modelforge`` command line.

The commands and options are read from the click group itself, so a new command or option that the page
does not mention fails here. An option must appear in its command's section: the section whose heading
names the command (``## `modelforge batch` ``, ``### `config add` ``), else its group's section.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from modelforge.cli import cli

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_HEADING = re.compile(r"^(#+) `(?:modelforge )?([^`]+)`", re.MULTILINE)


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(cli))


def _section(text: str, path: tuple[str, ...]) -> str:
    """The part of the page about ``path``: its own section, else its closest documented group's."""
    headings = list(_HEADING.finditer(text))
    for size in range(len(path), 0, -1):
        key = " ".join(path[:size])
        for position, heading in enumerate(headings):
            if heading[2] == key:
                level = len(heading[1])
                end = next((h.start() for h in headings[position + 1 :] if len(h[1]) <= level), len(text))
                return text[heading.start() : end]
    return text


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_the_command_and_its_options_are_documented(path: tuple[str, ...], command: click.Command) -> None:
    text = PAGE.read_text(encoding="utf-8")
    where = "`" + " ".join(("modelforge", *path)) + "`"
    if path:
        assert f"modelforge {' '.join(path)}" in text, f"docs/cli.md does not mention {where}"
    section = _section(text, path)
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            for name in [*param.opts, *param.secondary_opts]:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", section), (
                    f"docs/cli.md does not mention {name} in the section of {where}"
                )
        elif isinstance(param, click.Argument) and isinstance(param.type, click.Choice):
            for choice in param.type.choices:
                assert str(choice) in section, f"docs/cli.md does not mention {choice!r} for {where}"


def test_the_commands_are_found() -> None:
    names = {" ".join(path) for path, _ in COMMANDS if path}
    assert {"config add", "auth login", "test", "models search", "batch", "chat", "stats", "status"} <= names
