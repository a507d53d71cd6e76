"""The ``modelforge`` command line: thin commands over ModelForge's public API.

::

    modelforge [--version]
    ├── config [--wizard] [--verbose]     show | migrate | add | use | remove   (no subcommand: wizard)
    ├── auth                              login | logout | status
    ├── test                              one prompt to the current model
    ├── models                            list | search | info   (models.dev catalogue)
    ├── settings                          show | telemetry on|off|status | stats on|off|status
    ├── stats [--json] [--reset]          performance metrics saved by every process
    ├── chat                              interactive streamed chat (/cost, /reset, /model)
    ├── batch IN.jsonl -o OUT.jsonl       answer every line (live or batch API, resumable)
    └── status                            deprecated alias of `auth status`

``main`` is the console-script entry point; ``cli`` is the click group (2.3.0 name). Every failure ends as
one message on stderr and a non-zero exit code (see ``_errors``).
"""

from __future__ import annotations

import click

from modelforge import __version__
from modelforge.cli._errors import ForgeGroup, set_verbose
from modelforge.cli.auth_cmds import auth_group, auth_status
from modelforge.cli.batch_cmd import batch_command
from modelforge.cli.chat_cmd import chat_command
from modelforge.cli.config_cmds import config_group
from modelforge.cli.models_cmds import models_group
from modelforge.cli.settings_cmds import settings_group
from modelforge.cli.stats_cmd import stats_command
from modelforge.cli.test_cmd import test_model

__all__ = ["cli", "main"]


@click.group(name="modelforge", cls=ForgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="modelforge", message="%(prog)s %(version)s")
def cli() -> None:
    """ModelForge: manage LLM providers, credentials and the model your code gets."""


cli.add_command(config_group)
cli.add_command(auth_group)
cli.add_command(test_model)
cli.add_command(models_group)
cli.add_command(settings_group)
cli.add_command(chat_command)
cli.add_command(batch_command)
cli.add_command(stats_command)


@cli.command(name="status")
@click.option("--provider", help="Only this provider.")
@click.option("--verbose", is_flag=True, callback=set_verbose, help="Show where credentials are looked for.")
@click.pass_context
def status(ctx: click.Context, provider: str | None, verbose: bool) -> None:
    """Deprecated: use `modelforge auth status`."""
    click.echo("Note: `modelforge status` is deprecated; use `modelforge auth status`.", err=True)
    ctx.invoke(auth_status, provider=provider, verbose=verbose)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI (console script ``modelforge``)."""
    cli.main(args=argv, prog_name="modelforge")
