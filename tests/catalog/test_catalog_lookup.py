"""The bundled catalogue: exact lookups, the few tolerated aliases, search, and the data file itself."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import runpy
from pathlib import Path

import pytest

from modelforge import catalog as catalog_module
from modelforge.catalog import CATALOG_SNAPSHOT_DATE, Catalog, ModelInfo, find_model_anywhere
from modelforge.catalog._data import load_bundled_envelope, resolve_base_models
from modelforge.exceptions import InvalidInputError, ValidationError

from .conftest import model_entry

ROOT = Path(__file__).resolve().parents[2]
# The models.dev snapshot lives in shared/ beside the repository (also in CI).
SHARED_SNAPSHOT = ROOT.parent / "shared" / "data" / "models-dev.json"


@pytest.fixture(scope="module")
def bundled() -> Catalog:
    return Catalog.bundled()


# --- exact matching --------------------------------------------------------------------------------------


def test_gpt_4o_mini_is_not_priced_as_gpt_4o(bundled: Catalog) -> None:
    mini = bundled.model("openai", "gpt-4o-mini")
    full = bundled.model("openai", "gpt-4o")
    assert mini is not None and full is not None
    # The models.dev prices of the 2026-07-02 snapshot, USD per million tokens.
    assert (mini.input_per_1m, mini.output_per_1m, mini.cache_read_per_1m) == (0.15, 0.6, 0.075)
    assert (full.input_per_1m, full.output_per_1m, full.cache_read_per_1m) == (2.5, 10.0, 1.25)
    assert mini.model == "gpt-4o-mini" and mini.name == "GPT-4o mini"
    assert (mini.context_length, mini.max_output_tokens) == (128_000, 16_384)
    assert mini.supports_function_calling and mini.supports_vision and mini.supports_structured_output
    assert not mini.supports_reasoning
    assert (mini.knowledge, mini.release_date) == ("2023-09", "2024-07-18")


def test_no_substring_or_prefix_match() -> None:
    only_full = Catalog({"openai": {"models": {"gpt-4o": model_entry("gpt-4o")}}})
    assert only_full.model("openai", "gpt-4o") is not None
    for near_miss in ("gpt-4o-mini", "gpt-4", "gpt-4o-", "GPT-4o", "gpt-4o-mini-2024-07-18", ""):
        assert only_full.model("openai", near_miss) is None, near_miss


def test_dated_ids_fall_back_to_a_listed_alias_only(bundled: Catalog) -> None:
    dated = bundled.model("openai", "gpt-4o-mini-2024-07-18")
    assert dated is not None and dated.model == "gpt-4o-mini" and dated.input_per_1m == 0.15
    # A dated id models.dev lists is its own entry.
    assert bundled.model("openai", "gpt-4o-2024-08-06").model == "gpt-4o-2024-08-06"  # type: ignore[union-attr]
    listed = bundled.model("anthropic", "claude-3-5-sonnet-20241022")
    assert listed is not None and listed.model == "claude-3-5-sonnet-20241022"
    # The undated alias is not listed for Claude 3.5 Sonnet: no guessing which date was meant.
    assert bundled.model("anthropic", "claude-3-5-sonnet") is None
    assert bundled.model("anthropic", "claude-sonnet-4-5-20990101").model == "claude-sonnet-4-5"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("ours", "expected"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("google", "google"),
        ("gemini", "google"),
        ("google_genai", "google"),
        ("github_copilot", "github-copilot"),
        ("github-copilot", "github-copilot"),
        ("openrouter", "openrouter"),
        (" OpenAI ", "openai"),
        ("amazon_bedrock", "amazon-bedrock"),
        ("ollama", None),
        ("my_private_proxy", None),
    ],
)
def test_provider_names(bundled: Catalog, ours: str, expected: str | None) -> None:
    assert bundled.provider_id(ours) == expected


def test_provider_aliases_find_models(bundled: Catalog) -> None:
    gemini = bundled.model("gemini", "gemini-2.5-flash")
    assert gemini is not None and gemini.provider == "google"
    assert gemini.context_length == 1_048_576 and gemini.input_per_1m == 0.3
    copilot = bundled.model("github_copilot", "gpt-4.1")
    assert copilot is not None and copilot.provider == "github-copilot" and copilot.input_per_1m == 2.0
    assert bundled.model("ollama", "qwen3:1.7b") is None


def test_openrouter_vendor_ids(bundled: Catalog) -> None:
    own = bundled.model("openrouter", "openai/gpt-4o-mini")
    assert own is not None and (own.provider, own.model) == ("openrouter", "openai/gpt-4o-mini")
    assert own.context_length == 128_000  # inherited from its base model
    vendor = bundled.model("openrouter", "anthropic/claude-sonnet-4-5")  # not listed at OpenRouter
    assert vendor is not None and (vendor.provider, vendor.model) == ("anthropic", "claude-sonnet-4-5")
    assert bundled.model("openrouter", "anthropic/claude-sonnet-4-5-mini") is None
    assert bundled.model("openai", "openai/gpt-4o-mini") is None  # vendor ids are OpenRouter's habit only


def test_find_model_anywhere_prefers_the_maker(bundled: Catalog) -> None:
    assert find_model_anywhere("gpt-4o-mini").provider == "openai"  # type: ignore[union-attr]
    assert find_model_anywhere("claude-sonnet-4-5").provider == "anthropic"  # type: ignore[union-attr]
    assert find_model_anywhere("gemini-2.5-pro").provider == "google"  # type: ignore[union-attr]
    assert find_model_anywhere("anthropic/claude-sonnet-4-5").provider == "anthropic"  # type: ignore[union-attr]
    assert find_model_anywhere("gpt-4o-mini-2024-07-18").model == "gpt-4o-mini"  # type: ignore[union-attr]
    assert find_model_anywhere("no-such-model-anywhere") is None
    assert find_model_anywhere("") is None
    resold = Catalog(
        {
            "zeta": {"models": {"solo-1": model_entry("solo-1", cost=(3.0, 4.0))}},
            "alpha": {"models": {"solo-1": model_entry("solo-1", cost=(1.0, 2.0))}},
        }
    )
    found = resold.find_model_anywhere("solo-1")
    assert found is not None and found.provider == "alpha"  # no maker known: first provider by id


# --- search, listings ------------------------------------------------------------------------------------


def test_search_words_provider_and_exact_first(bundled: Catalog) -> None:
    results = bundled.search("gpt-4o", provider="openai")
    ids = [r.model for r in results]
    assert ids[0] == "gpt-4o"
    assert set(ids) >= {"gpt-4o", "gpt-4o-mini", "gpt-4o-2024-08-06"}
    assert all(r.provider == "openai" for r in results)
    assert {r.model for r in bundled.search("claude sonnet", provider="anthropic")} >= {"claude-sonnet-4-5"}
    assert bundled.search("gpt-4o", provider="ollama") == []


def test_search_capabilities_and_price(bundled: Catalog) -> None:
    cheap = bundled.search("", provider="openai", capabilities=["tools", "vision"], max_price=0.2)
    assert cheap and all(r.input_per_1m is not None and r.input_per_1m <= 0.2 for r in cheap)
    assert all(r.supports_function_calling and r.supports_vision for r in cheap)
    assert "gpt-4o-mini" in {r.model for r in cheap} and "gpt-4o" not in {r.model for r in cheap}
    reasoning = bundled.search("claude", provider="anthropic", capabilities=["reasoning"])
    assert reasoning and all(r.supports_reasoning for r in reasoning)


def test_search_rejects_unknown_capability_and_negative_price(bundled: Catalog) -> None:
    with pytest.raises(InvalidInputError) as err:
        bundled.search("gpt", capabilities=["telepathy"])
    assert isinstance(err.value, ValidationError) and "function_calling" in (err.value.suggestion or "")
    with pytest.raises(InvalidInputError):
        bundled.search("gpt", max_price=-1)


def test_providers_and_models_listings(bundled: Catalog) -> None:
    providers = bundled.providers()
    assert len(providers) == 147
    assert [p.id for p in providers] == sorted(p.id for p in providers)
    openai = bundled.provider("openai")
    assert (
        openai is not None and openai.name == "OpenAI" and openai.model_count == len(bundled.models("openai"))
    )
    assert openai.to_dict()["name"] == "openai" and openai.to_dict()["display_name"] == "OpenAI"
    models = bundled.models("anthropic")
    assert [m.model for m in models] == sorted(m.model for m in models)
    assert bundled.models("ollama") == []


def test_snapshot_date_and_singleton(bundled: Catalog) -> None:
    assert CATALOG_SNAPSHOT_DATE == "2026-07-02"
    assert catalog_module.CATALOG_SNAPSHOT_DATE == bundled.snapshot_date == "2026-07-02"
    assert Catalog.bundled() is bundled
    assert bundled.model("openai", "gpt-4o").snapshot_date == "2026-07-02"  # type: ignore[union-attr]


# --- records ---------------------------------------------------------------------------------------------


def test_model_info_is_frozen_and_raw_is_a_private_copy(bundled: Catalog) -> None:
    info = bundled.model("openai", "gpt-4o-mini")
    assert isinstance(info, ModelInfo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.input_per_1m = 0.0  # type: ignore[misc]
    info.raw["cost"]["input"] = 99.0
    try:
        assert bundled.model("openai", "gpt-4o-mini").input_per_1m == 0.15  # type: ignore[union-attr]
        assert info == bundled.model("openai", "gpt-4o-mini")  # raw takes no part in equality
    finally:
        info.raw["cost"]["input"] = 0.15  # the bundled catalogue is shared by the whole test session


def test_cost_with_cache_and_context_tiers(bundled: Catalog) -> None:
    mini = bundled.model("openai", "gpt-4o-mini")
    assert mini is not None
    assert mini.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    # 400k of the 1M prompt tokens were read from the cache at 0.075 instead of 0.15.
    assert mini.cost(1_000_000, 0, cache_read_tokens=400_000) == pytest.approx(0.6 * 0.15 + 0.4 * 0.075)
    pro = bundled.model("google", "gemini-2.5-pro")
    assert pro is not None
    assert pro.cost(100_000, 0) == pytest.approx(0.1 * 1.25)
    assert pro.cost(300_000, 0) == pytest.approx(0.3 * 2.5)  # above the 200k context tier
    unpriced = Catalog({"x": {"models": {"m": model_entry("m", cost=None)}}}).model("x", "m")
    assert unpriced is not None and unpriced.input_per_1m is None and unpriced.cost(10, 10) is None


def test_to_dict_shape(bundled: Catalog) -> None:
    data = bundled.model("anthropic", "claude-sonnet-4-5").to_dict()  # type: ignore[union-attr]
    assert data["id"] == "claude-sonnet-4-5" and data["provider"] == "anthropic"
    assert data["pricing"] == {
        "input_per_1m_tokens": 3.0,  # 2.3.0's keys
        "output_per_1m_tokens": 15.0,
        "cache_read_per_1m_tokens": 0.3,
        "cache_write_per_1m_tokens": 3.75,
        "input_per_1m": 3.0,
        "output_per_1m": 15.0,
        "cache_read_per_1m": 0.3,
        "cache_write_per_1m": 3.75,
        "currency": "USD",
    }
    assert data["context_length"] == 200_000 and data["max_tokens"] == 64_000
    assert {"reasoning", "function_calling", "vision"} <= set(data["capabilities"])
    json.dumps(data)


# --- api.json documents ----------------------------------------------------------------------------------


def test_base_models_are_resolved() -> None:
    api = {
        "vendor": {"models": {"base-1": model_entry("base-1", cost=(1.0, 2.0), structured_output=True)}},
        "reseller": {
            "models": {
                "base-1": {
                    "id": "base-1",
                    "base_model": "vendor/base-1",
                    "base_model_omit": ["structured_output"],
                    "cost": {"input": 0.5, "output": 0.7},
                    "limit": {"output": 4_000},
                },
                "orphan": {
                    "id": "orphan",
                    "base_model": "elsewhere/base-1",
                    "cost": {"input": 9, "output": 9},
                },
            }
        },
    }
    resolved = Catalog(api)
    resold = resolved.model("reseller", "base-1")
    assert resold is not None
    assert (resold.input_per_1m, resold.output_per_1m) == (0.5, 0.7)  # its own price
    assert (resold.context_length, resold.max_output_tokens) == (100_000, 4_000)  # limits merged
    assert resold.supports_function_calling and not resold.supports_structured_output  # omitted
    # A base outside the document: limits from a self-contained entry of the same model, never its price.
    orphan = resolve_base_models(api)["reseller"]["models"]["orphan"]
    assert orphan["cost"] == {"input": 9, "output": 9}
    assert orphan["limit"]["context"] == 100_000


def test_rejects_documents_that_are_not_api_json() -> None:
    for bad in ({}, {"openai": "nope"}, {"openai": {"models": []}}, []):
        with pytest.raises(InvalidInputError):
            Catalog(bad)  # type: ignore[arg-type]


# --- the data file ---------------------------------------------------------------------------------------


def test_bundled_file_ships_inside_the_package() -> None:
    path = ROOT / "src" / "modelforge" / "data" / "models_dev.json.gz"
    assert path.is_file() and path.stat().st_size < 400_000
    envelope = json.loads(gzip.decompress(path.read_bytes()))
    assert envelope["snapshot_date"] == "2026-07-02" and envelope["format"] == 1
    assert envelope == load_bundled_envelope()
    entry = envelope["providers"]["openai"]["models"]["gpt-4o-mini"]
    assert set(entry) <= {
        "name",
        "family",
        "cost",
        "limit",
        "modalities",
        "tool_call",
        "reasoning",
        "attachment",
        "temperature",
        "structured_output",
        "knowledge",
        "release_date",
        "last_updated",  # 2.3.0's `models info` printed it
        "open_weights",
        "status",
    }
    assert entry["cost"] == {"input": 0.15, "output": 0.6, "cache_read": 0.075}


@pytest.mark.skipif(
    not SHARED_SNAPSHOT.exists() and not os.environ.get("CI"),
    reason="the models.dev snapshot is not beside the repository",
)
def test_build_script_reproduces_the_bundled_file(tmp_path: Path) -> None:
    out = tmp_path / "models_dev.json.gz"
    script = runpy.run_path(str(ROOT / "scripts" / "build_catalog.py"), run_name="build_catalog")
    assert script["main"](["--output", str(out)]) == 0
    assert out.read_bytes() == (ROOT / "src" / "modelforge" / "data" / "models_dev.json.gz").read_bytes()


# --- lookup by several names (telemetry and EnhancedLLM) ---------------------------------------------------


def _two_providers() -> Catalog:
    return Catalog(
        {
            "openai": {"models": {"gpt-a": model_entry("gpt-a"), "gpt-b": model_entry("gpt-b")}},
            "acme": {"models": {"acme-1": model_entry("acme-1")}},
        }
    )


def test_lookup_tries_each_name_in_order_at_the_provider() -> None:
    catalog = _two_providers()
    first = catalog.lookup("openai", ["gpt-b", "gpt-a"])
    assert first is not None and first.model == "gpt-b"
    skipped = catalog.lookup("openai", [None, "", "gpt-x", "gpt-a"])
    assert skipped is not None and skipped.model == "gpt-a"
    assert catalog.lookup("openai", []) is None
    assert catalog.lookup("openai", [None, "  "]) is None


def test_lookup_searches_other_providers_only_for_an_unknown_provider() -> None:
    catalog = _two_providers()
    # A known provider that lacks the model: no cross-provider guess.
    assert catalog.lookup("openai", ["acme-1"]) is None
    # An OpenAI-compatible proxy models.dev does not know: exact id at any provider, names in order.
    found = catalog.lookup("my_proxy", ["no-such", "acme-1", "gpt-a"])
    assert found is not None and (found.provider, found.model) == ("acme", "acme-1")
    # Local models have no catalogue entry and are never priced like a cloud model.
    for local in ("ollama", "local", " Ollama "):
        assert catalog.lookup(local, ["gpt-a"]) is None, local


def test_telemetry_and_enhance_agree_with_lookup(bundled: Catalog) -> None:
    from langchain_core.language_models import FakeListChatModel

    from modelforge.enhanced_llm import enhance
    from modelforge.telemetry import TokenUsage, calculate_cost

    usage = TokenUsage(1_000_000, 0, 1_000_000)
    for provider, name in (("openai", "gpt-4o-mini"), ("my_proxy", "gpt-4o-mini"), ("ollama", "gpt-4o")):
        info = bundled.lookup(provider, [name])
        expected = info.input_per_1m if info is not None and info.input_per_1m is not None else 0.0
        assert calculate_cost(provider, name, usage, catalog=bundled) == expected, provider
        enhanced = enhance(FakeListChatModel(responses=["x"]), provider, name, catalog=bundled)
        assert enhanced.context_length == (info.context_length or 0 if info else 0), provider
