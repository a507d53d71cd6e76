"""``modelforge models``: list, search and describe models from the models.dev catalogue.

Data comes from ``modelforge.catalog.modelsdev.ModelsDevClient``: the cache or a fresh download when
models.dev can be reached, the snapshot bundled with ModelForge when not. Every listing says which, and the
date of its prices (US dollars per million tokens), on stderr so ``--format json`` output stays parseable.
"""

from __future__ import annotations

from typing import Any

import click

from modelforge.cli._errors import ForgeGroup
from modelforge.cli._output import echo_json, note, print_table, warn

__all__ = ["models_group"]

_FORMAT = click.Choice(["table", "json"])
_SOURCES = {
    "network": "models.dev (just downloaded)",
    "cache": "models.dev (cached)",
    "stale-cache": "an outdated models.dev cache (models.dev unreachable)",
    "bundled": "the catalogue bundled with ModelForge (models.dev unreachable)",
}


def _client() -> Any:
    from modelforge.catalog.modelsdev import ModelsDevClient

    return ModelsDevClient()


def _price(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def _tokens(value: Any) -> str:
    if not value:
        return "-"
    return f"{value // 1000}K" if value >= 1000 else str(value)


def _source_note(client: Any) -> None:
    source = _SOURCES.get(client.data_source or "", client.data_source or "unknown")
    note(f"Data: {source}, as of {client.snapshot_date or 'an unknown date'}; prices in USD per 1M tokens.")


def _show_models(models: list[dict[str, Any]], output: str, client: Any, empty: str) -> None:
    if not models:  # as 2.3.0: a warning on stderr and nothing on stdout, in either format
        warn(empty)
    elif output == "json":
        echo_json(models)
    else:
        _print_models(models)
    _source_note(client)


def _print_models(models: list[dict[str, Any]]) -> None:
    rows = [
        [
            m.get("provider"),
            m.get("id"),
            m.get("display_name") or m.get("name"),
            _tokens(m.get("context_length")),
            _price((m.get("pricing") or {}).get("input_per_1m")),
            _price((m.get("pricing") or {}).get("output_per_1m")),
            ", ".join(m.get("capabilities") or []) or "-",
        ]
        for m in models
    ]
    print_table(["PROVIDER", "MODEL", "NAME", "CONTEXT", "INPUT $/1M", "OUTPUT $/1M", "CAPABILITIES"], rows)


@click.group(name="models", cls=ForgeGroup)
def models_group() -> None:
    """Discover models and their prices, context sizes and capabilities (models.dev)."""


@models_group.command(name="list")
@click.option("--provider", help="Only this provider's models (e.g. openai, anthropic, github_copilot).")
@click.option("--refresh", is_flag=True, help="Download the catalogue again from models.dev.")
@click.option("--format", "output", type=_FORMAT, default="table", show_default=True, help="Output format.")
def list_models(provider: str | None, refresh: bool, output: str) -> None:
    """List known models."""
    client = _client()
    models = client.get_models(provider=provider, force_refresh=refresh)
    empty = f"No models known for provider '{provider}'." if provider else "No models known."
    _show_models(models, output, client, empty)


@models_group.command(name="search")
@click.argument("query")
@click.option("--provider", help="Only this provider's models.")
@click.option(
    "--capability",
    "capabilities",
    multiple=True,
    help="Required capability (repeatable): reasoning, function_calling, vision, structured_output, ...",
)
@click.option("--max-price", type=click.FloatRange(min=0), help="Highest input price in USD per 1M tokens.")
@click.option("--refresh", is_flag=True, help="Download the catalogue again from models.dev.")
@click.option("--format", "output", type=_FORMAT, default="table", show_default=True, help="Output format.")
def search_models(
    query: str,
    provider: str | None,
    capabilities: tuple[str, ...],
    max_price: float | None,
    refresh: bool,
    output: str,
) -> None:
    """Search models by id, name or family."""
    client = _client()
    models = client.search_models(
        query,
        provider=provider,
        capabilities=list(capabilities) or None,
        max_price=max_price,
        force_refresh=refresh,
    )
    _show_models(models, output, client, f"No models match '{query}'.")


@models_group.command(name="info")
@click.option("--provider", required=True, help="The provider.")
@click.option("--model", required=True, help="The model id.")
@click.option("--refresh", is_flag=True, help="Download the catalogue again from models.dev.")
@click.option(
    "--format",
    "output",
    type=_FORMAT,
    default="json",
    show_default=True,
    help="Output format (JSON, as 2.3.0).",
)
def model_info(provider: str, model: str, refresh: bool, output: str) -> None:
    """Show one model's details."""
    client = _client()
    info = client.get_model_info(provider, model, force_refresh=refresh)
    if output == "json":
        echo_json(info)
        _source_note(client)
        return
    pricing = info.get("pricing") or {}
    modalities = info.get("modalities") or {}
    rows = [
        ("Model", info.get("id")),
        ("Name", info.get("display_name") or info.get("name")),
        ("Provider", info.get("provider")),
        ("Family", info.get("family")),
        ("Description", info.get("description")),
        ("Context window", info.get("context_length")),
        ("Max output tokens", info.get("max_output_tokens")),
        ("Input price", _price(pricing.get("input_per_1m"))),
        ("Output price", _price(pricing.get("output_per_1m"))),
        ("Cached input price", _price(pricing.get("cache_read_per_1m"))),
        ("Capabilities", ", ".join(info.get("capabilities") or []) or "-"),
        ("Input modalities", ", ".join(modalities.get("input") or []) or "-"),
        ("Output modalities", ", ".join(modalities.get("output") or []) or "-"),
        ("Knowledge cut-off", info.get("knowledge")),
        ("Released", info.get("release_date")),
        ("Open weights", info.get("open_weights")),
    ]
    print_table(["FIELD", "VALUE"], [[k, "-" if v is None else v] for k, v in rows])
    _source_note(client)
