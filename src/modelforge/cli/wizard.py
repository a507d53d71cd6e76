"""The interactive setup wizard behind ``modelforge config`` (and ``config --wizard``).

It asks for a provider, a model, where to save, and credentials, then does what ``config add`` (and
``auth login``) would do. It needs a terminal; without one it fails with the non-interactive commands to
use instead, rather than hanging on a prompt nobody can answer.
"""

from __future__ import annotations

import click

from modelforge.cli import _output, _setup
from modelforge.cli._errors import CliError
from modelforge.config import set_current_model
from modelforge.providers import KNOWN_PROVIDERS

__all__ = ["NON_INTERACTIVE_HELP", "run_wizard"]

NON_INTERACTIVE_HELP = (
    "Without a terminal use the commands directly: "
    "`modelforge config add --provider P --model M [--api-key K]`, "
    "`modelforge config use --provider P --model M`, "
    "`modelforge auth login --provider P --api-key K`, `modelforge config show`."
)
_OTHER = "other"
_SUGGESTIONS = 6


def _suggested_models(provider: str) -> list[str]:
    if provider == "local":
        from modelforge.local_model import LOCAL_MODEL_ALIAS

        return [LOCAL_MODEL_ALIAS]
    try:
        from modelforge.catalog import Catalog

        models = Catalog.bundled().models(provider)
    except Exception:  # suggestions are a convenience; the wizard works without them
        return []
    models.sort(key=lambda m: m.release_date or "", reverse=True)
    return [m.model for m in models[:_SUGGESTIONS]]


def run_wizard(*, verbose: bool = False) -> None:
    """Ask the user for a provider and model, save them, and store credentials."""
    # Both ends must be a terminal: the user answers on stdin and reads the questions on stdout.
    if not (_output.stdin_is_tty() and _output.stdout_is_tty()):
        raise CliError(
            "The configuration wizard needs an interactive terminal.",
            suggestion=NON_INTERACTIVE_HELP,
            error_code="NOT_A_TERMINAL",
        )
    click.echo("ModelForge setup: choose a provider and a model. Press Ctrl+C to stop at any time.\n")
    choices = [*sorted(KNOWN_PROVIDERS), _OTHER]
    provider = click.prompt("Provider", type=click.Choice(choices), default="openai", show_choices=True)
    base_url = llm_type = None
    if provider == _OTHER:
        provider = _setup.canonical_provider(click.prompt("Provider name"))
        base_url = click.prompt("Base URL of its OpenAI-compatible API (e.g. http://localhost:8000/v1)")
        llm_type = "openai_compatible"
    suggestions = _suggested_models(provider)
    if suggestions:
        click.echo("Some models of this provider: " + ", ".join(suggestions))
    model_id = click.prompt("Model id", default=suggestions[0] if suggestions else None).strip()
    alias = click.prompt("Alias to use in ModelForge", default=model_id).strip()
    local = click.confirm("Save in this project only (./.model-forge/config.json)?", default=False)
    strategy = KNOWN_PROVIDERS.get(provider, {}).get("auth_strategy")
    api_key = None
    if strategy == "api_key" or provider not in KNOWN_PROVIDERS:
        entered = click.prompt(
            "API key (input hidden; leave empty to skip)", default="", hide_input=True, show_default=False
        ).strip()
        if entered:
            from modelforge.validation import InputValidator

            api_key = InputValidator.validate_api_key(entered, provider)
    result = _setup.add_model(
        provider,
        alias,
        api_model_name=model_id if model_id != alias else None,
        local=local,
        base_url=base_url,
        llm_type=llm_type,
        login="api_key" if api_key is not None else None,
        select_if_none=True,
    )
    click.echo(f"Saved {result.provider}/{result.model} in {result.path}.")
    device_login = strategy == "device_flow" and click.confirm("Log in to GitHub now?", default=True)
    _setup.store_credentials(result, api_key=api_key, device_login=device_login)
    selected = result.selected
    if not selected and click.confirm("Make it the current model?", default=True):
        selected = set_current_model(result.provider, result.model, local=local, quiet=True)
    if selected:
        click.echo(f"Current model: {result.provider}/{result.model}")
    click.echo('Try it with: modelforge test -p "Hello"')
    if verbose:
        click.echo("Run `modelforge config show` to see the whole configuration.")
