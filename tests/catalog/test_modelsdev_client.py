"""ModelsDevClient against a real HTTP server on 127.0.0.1: shapes, cache TTLs, offline fallback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from modelforge.exceptions import InvalidInputError, ModelNotFoundError, ProviderNotAvailableError
from modelforge.modelsdev import ModelInfoNotFoundError, ModelsDevClient, ProviderInfoNotFoundError
from modelforge.testing import ProviderServer

from .conftest import api_document

HOUR = 3600.0


def hits(server: ProviderServer) -> int:
    return len(server.requests_for("modelsdev"))


def cache_file(home: Path) -> Path:
    return home / ".cache" / "model-forge" / "modelsdev" / "catalog.json"


def age_cache(home: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(cache_file(home), (stamp, stamp))


@pytest.fixture
def client(server: ProviderServer) -> ModelsDevClient:
    return ModelsDevClient(url=server.modelsdev_url)


# --- shapes ----------------------------------------------------------------------------------------------


def test_providers_models_and_info_shapes(client: ModelsDevClient, server: ProviderServer) -> None:
    providers = client.get_providers()
    assert [p["id"] for p in providers] == ["acme", "openai"]
    acme = providers[0]
    assert acme["name"] == "acme" and acme["display_name"] == "Acme AI"
    assert acme["base_urls"] == ["https://api.acme.test/v1"] and acme["auth_types"] == ["api_key"]
    assert acme["model_count"] == 1

    models = client.get_models("openai")
    assert [m["id"] for m in models] == ["gpt-4o", "gpt-test-fresh"]
    fresh = models[1]
    assert fresh["provider"] == "openai" and fresh["name"] == "GPT-TEST-FRESH"
    assert fresh["pricing"] == {
        "input_per_1m_tokens": 0.5,  # 2.3.0's keys
        "output_per_1m_tokens": 1.5,
        "cache_read_per_1m_tokens": None,
        "cache_write_per_1m_tokens": None,
        "input_per_1m": 0.5,
        "output_per_1m": 1.5,
        "cache_read_per_1m": None,
        "cache_write_per_1m": None,
        "currency": "USD",
    }
    assert fresh["context_length"] == 100_000 and fresh["max_tokens"] == 8_000
    assert fresh["capabilities"] == ["reasoning", "function_calling", "vision"]
    assert isinstance(fresh["description"], str) and fresh["description"]
    assert len(client.get_models()) == 3

    info = client.get_model_info("openai", "gpt-test-fresh")
    assert info["id"] == "gpt-test-fresh" and info["pricing"]["input_per_1m"] == 0.5
    assert info["cost"] == {"input": 0.5, "output": 1.5} and info["limit"]["context"] == 100_000
    assert info["tool_call"] is True
    assert client.data_source == "cache"  # everything above came from one download
    assert hits(server) == 1
    assert client.snapshot_date == time.strftime("%Y-%m-%d", time.gmtime())


def test_search_models(client: ModelsDevClient) -> None:
    assert [m["id"] for m in client.search_models("gpt")] == ["gpt-4o", "gpt-test-fresh"]
    assert [m["id"] for m in client.search_models("gpt", capabilities=["reasoning"])] == ["gpt-test-fresh"]
    assert [m["id"] for m in client.search_models("", max_price=0.2)] == ["acme-1"]
    assert client.search_models("gpt", provider="acme") == []
    with pytest.raises(InvalidInputError):
        client.search_models("gpt", capabilities=["mind-reading"])


def test_unknown_model_and_provider_errors(client: ModelsDevClient) -> None:
    with pytest.raises(ModelInfoNotFoundError) as err:
        client.get_model_info("openai", "gpt-4o-fresh")
    assert isinstance(err.value, ModelNotFoundError) and isinstance(err.value, ValueError)
    assert err.value.error_code == "MODEL_NOT_FOUND"
    assert "gpt-test-fresh" in err.value.available_models or "gpt-4o" in err.value.available_models
    with pytest.raises(ProviderInfoNotFoundError) as perr:
        client.get_model_info("nowhere", "x")
    assert isinstance(perr.value, ProviderNotAvailableError) and isinstance(perr.value, ValueError)
    with pytest.raises(ValueError):
        client.get_model_info("", "gpt-4o")


def test_provider_names_are_mapped(server: ProviderServer, client: ModelsDevClient) -> None:
    server.modelsdev_catalog = {
        **api_document(),
        "github-copilot": {"name": "GitHub Copilot", "models": {"gpt-4o": {"name": "GPT-4o"}}},
    }
    assert [m["id"] for m in client.get_models("github_copilot")] == ["gpt-4o"]
    assert client.get_model_info("github_copilot", "gpt-4o")["provider"] == "github-copilot"
    assert client.get_models("ollama") == []


# --- where the URL comes from ----------------------------------------------------------------------------


def test_url_from_environment_and_base_url(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFORGE_MODELSDEV_URL", server.base_url)  # no /api.json: appended
    client = ModelsDevClient()
    assert client.url == server.base_url + "/api.json"
    assert [m["id"] for m in client.get_models("acme")] == ["acme-1"]
    assert client.data_source == "network" and hits(server) == 1


def test_api_key_is_sent_as_bearer(server: ProviderServer) -> None:
    ModelsDevClient("md-key-123456789", url=server.modelsdev_url).get_providers()
    assert server.requests_for("modelsdev")[0].headers["authorization"] == "Bearer md-key-123456789"


# --- cache lifetimes -------------------------------------------------------------------------------------


def test_cache_is_written_atomically_under_home(client: ModelsDevClient, isolated_home: Path) -> None:
    client.get_providers()
    path = cache_file(isolated_home)
    assert path.is_file() and client.cache_path == path
    assert [p.name for p in path.parent.iterdir()] == ["catalog.json"]  # no temporary files left


def test_lists_expire_after_a_day(
    client: ModelsDevClient, server: ProviderServer, isolated_home: Path
) -> None:
    client.get_models()
    age_cache(isolated_home, 23 * HOUR)
    client.get_models()
    assert hits(server) == 1 and client.data_source == "cache"
    age_cache(isolated_home, 25 * HOUR)
    client.get_providers()
    assert hits(server) == 2 and client.data_source == "network"


def test_model_info_lasts_a_week(
    client: ModelsDevClient, server: ProviderServer, isolated_home: Path
) -> None:
    client.get_model_info("openai", "gpt-4o")
    age_cache(isolated_home, 6 * 24 * HOUR)
    assert client.get_model_info("openai", "gpt-4o")["id"] == "gpt-4o"
    assert hits(server) == 1 and client.data_source == "cache"
    age_cache(isolated_home, 8 * 24 * HOUR)
    client.get_model_info("openai", "gpt-4o")
    assert hits(server) == 2 and client.data_source == "network"


def test_model_info_for_a_model_newer_than_a_day_old_cache(
    client: ModelsDevClient, server: ProviderServer, isolated_home: Path
) -> None:
    client.get_models()
    age_cache(isolated_home, 2 * 24 * HOUR)
    server.modelsdev_catalog["acme"]["models"]["acme-2"] = {
        "name": "Acme 2",
        "cost": {"input": 1, "output": 1},
    }
    assert client.get_model_info("acme", "acme-2")["name"] == "Acme 2"
    assert hits(server) == 2


def test_injected_clock(server: ProviderServer) -> None:
    now = [time.time()]
    client = ModelsDevClient(url=server.modelsdev_url, clock=lambda: now[0])
    client.get_models()
    now[0] += 23 * HOUR
    client.get_models()
    assert hits(server) == 1
    now[0] += 2 * HOUR
    client.get_models()
    assert hits(server) == 2


def test_force_refresh_always_downloads(client: ModelsDevClient, server: ProviderServer) -> None:
    client.get_models()
    client.get_models(force_refresh=True)
    client.get_model_info("openai", "gpt-4o", force_refresh=True)
    assert hits(server) == 3


def test_clear_cache(client: ModelsDevClient, server: ProviderServer, isolated_home: Path) -> None:
    client.get_models()
    legacy = cache_file(isolated_home).with_name("models_all.json")  # a 2.3.0 cache file
    legacy.write_text("{}")
    client.clear_cache()
    assert not cache_file(isolated_home).exists() and not legacy.exists()
    client.get_models()
    assert hits(server) == 2


# --- offline ---------------------------------------------------------------------------------------------


def test_refused_connection_answers_from_the_bundled_snapshot(refused_url: str) -> None:
    client = ModelsDevClient(url=refused_url)
    started = time.monotonic()
    models = client.get_models("openai")
    assert time.monotonic() - started < 2.0
    assert client.data_source == "bundled" and client.snapshot_date == "2026-07-02"
    assert "gpt-4o-mini" in {m["id"] for m in models}
    assert client.get_model_info("openai", "gpt-4o-mini")["pricing"]["input_per_1m"] == 0.15


def test_refused_connection_prefers_the_stale_cache(
    server: ProviderServer, refused_url: str, isolated_home: Path
) -> None:
    ModelsDevClient(url=server.modelsdev_url).get_models()
    age_cache(isolated_home, 30 * 24 * HOUR)
    offline = ModelsDevClient(url=refused_url)
    assert [m["id"] for m in offline.get_models("acme")] == ["acme-1"]
    assert offline.data_source == "stale-cache"


def test_a_failed_download_is_not_retried_at_once(client: ModelsDevClient, server: ProviderServer) -> None:
    server.modelsdev_catalog = ["not", "a", "catalogue"]  # type: ignore[assignment]
    client.get_models("openai")
    client.get_providers()
    assert client.data_source == "bundled" and hits(server) == 1
    server.modelsdev_catalog = api_document()
    client.get_models(force_refresh=True)  # an explicit refresh does try again
    assert client.data_source == "network" and hits(server) == 2


def test_offline_setting_never_touches_the_network(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFORGE_OFFLINE", "1")
    client = ModelsDevClient(url=server.modelsdev_url)
    assert client.get_models("anthropic") and client.data_source == "bundled"
    assert client.get_models("openai", force_refresh=True) and hits(server) == 0


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{not json", b'{"format": 1}', b"[1, 2]", b"\x1f\x8b\x08broken gzip", b"\xff\xfe\x00"],
)
def test_corrupt_cache_is_ignored_and_replaced(
    client: ModelsDevClient, server: ProviderServer, isolated_home: Path, garbage: bytes
) -> None:
    path = cache_file(isolated_home)
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    assert [m["id"] for m in client.get_models("acme")] == ["acme-1"]
    assert client.data_source == "network" and hits(server) == 1
    assert ModelsDevClient(url=server.modelsdev_url).get_models("acme")  # the new file reads back
    assert hits(server) == 1


def test_corrupt_cache_while_offline_uses_the_bundled_snapshot(refused_url: str, isolated_home: Path) -> None:
    path = cache_file(isolated_home)
    path.parent.mkdir(parents=True)
    path.write_text("{oops")
    client = ModelsDevClient(url=refused_url)
    assert client.get_models("openai") and client.data_source == "bundled"


def test_unwritable_cache_still_answers(server: ProviderServer, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    client = ModelsDevClient(url=server.modelsdev_url, cache_dir=blocker / "cache")
    assert [m["id"] for m in client.get_models("acme")] == ["acme-1"]
    assert client.data_source == "network"


def test_model_info_is_the_callers_own_copy() -> None:
    """2.3.0 returned a fresh dict per call; changing one must not change the catalogue others read."""
    from modelforge.modelsdev import ModelsDevClient

    client = ModelsDevClient(offline=True)
    first = client.get_model_info("openai", "gpt-4o-mini")
    first["cost"]["input"] = 99.0
    first["limit"]["context"] = 1
    again = client.get_model_info("openai", "gpt-4o-mini")
    assert again["cost"]["input"] == 0.15 and again["limit"]["context"] == 128000
