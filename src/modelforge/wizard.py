"""2.3.0's ``modelforge.wizard``: the interactive setup that ``modelforge config`` (with no subcommand, or
``--wizard``) runs; its code lives in ``modelforge.cli.wizard``.

``run_wizard(verbose=False)`` runs it; ``ConfigWizard(verbose=False).run()`` is 2.3.0's class form of the
same call. Both need a terminal on stdin and stdout.
"""

from __future__ import annotations

from modelforge.cli import wizard as _wizard

__all__ = ["ConfigWizard", "run_wizard"]


def run_wizard(verbose: bool = False) -> None:
    """Ask for a provider and a model, save them and store the credentials (2.3.0's signature)."""
    _wizard.run_wizard(verbose=verbose)


class ConfigWizard:
    """The interactive configuration wizard (2.3.0's class); ``run()`` asks its questions."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

    def run(self) -> None:
        run_wizard(self.verbose)
