"""The compat page's lines that the name-and-signature comparison with 2.3.0 (test_compat_signatures.py) and
the CLI session (test_compat_against_2_3_0.py) do not exercise: what the functions return and do.

Written from the page and 2.3.0's source; config files live in the suite's per-test HOME.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelforge import config
from modelforge.cli import cli
from modelforge.exceptions import ModelForgeError
from tests.auth.test_auth_strategies import COPILOT

OLLAMA = {"llm_type": "ollama", "base_url": "http://localhost:11434"}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path


def _global(data: dict[str, Any]) -> Path:
    return _write(config.get_config_path(local=False), data)


# --- modelforge.config ----------------------------------------------------------------------------------


def test_config_paths_and_reads_return_what_2_3_returned() -> None:
    local = config.get_config_path(local=True)
    assert local == Path.cwd() / ".model-forge" / "config.json"
    assert config.get_config_path() == Path.home() / ".config" / "model-forge" / "config.json"
    data = {"providers": {"ollama": {**OLLAMA, "models": {"a": {}}}}, "current_model": {}}
    path = _global(data)
    assert config.get_config_from_path(path) == (data, path)
    assert config.get_config() == (data, path)
    assert config.get_settings() == {"show_telemetry": True}  # the default, merged with `settings`
    assert config.get_current_model() == {}  # as 2.3.0: the stored value; None only when the key is absent
    _global({"providers": {}})
    assert config.get_current_model() is None


def test_local_selection_and_settings_go_to_the_project_file() -> None:
    _global({"providers": {"ollama": {**OLLAMA, "models": {"a": {}}}}})
    local = _write(
        config.get_config_path(local=True), {"providers": {"ollama": {**OLLAMA, "models": {"b": {}}}}}
    )

    assert config.set_current_model("ollama", "b", local=True, quiet=True) is True
    config.update_setting("show_telemetry", False, local=True)

    assert json.loads(local.read_text())["current_model"] == {"provider": "ollama", "model": "b"}
    assert config.get_config() == (json.loads(local.read_text()), local)  # the local file wins
    assert config.get_settings() == {"show_telemetry": False}
    assert "current_model" not in json.loads(config.get_config_path().read_text())


# --- ModelForgeRegistry --------------------------------------------------------------------------------


def test_the_registry_reads_the_config_once() -> None:
    from modelforge.registry import ModelForgeRegistry

    models = {"a": {"api_model_name": "model-a"}, "b": {"api_model_name": "model-b"}}
    _global(
        {
            "providers": {"ollama": {**OLLAMA, "models": models}},
            "current_model": {"provider": "ollama", "model": "a"},
        }
    )
    registry = ModelForgeRegistry(verbose=False)
    _global(
        {
            "providers": {"ollama": {**OLLAMA, "models": models}},
            "current_model": {"provider": "ollama", "model": "b"},
        }
    )

    assert registry.get_llm().model == "model-a"  # what the file said when the registry was made
    assert ModelForgeRegistry().get_llm().model == "model-b"


def test_discovery_lists_come_from_models_dev() -> None:
    from modelforge.registry import ModelForgeRegistry

    registry = ModelForgeRegistry()
    providers = registry.get_available_providers(force_refresh=False)
    assert any(p["id"] == "openai" for p in providers)
    models = registry.get_available_models(provider="openai", force_refresh=False)
    assert {m["provider"] for m in models} == {"openai"}
    assert any(m["id"] == "gpt-4o-mini" for m in models)
    assert len(registry.get_available_models()) > len(models)


# --- EnhancedLLM and ModelsDevClient ----------------------------------------------------------------------


def test_enhanced_llm_metadata_is_read_only() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from modelforge.enhanced_llm import EnhancedLLM

    metadata = {"limit": {"context": 1000, "output": 100}, "cost": {"input": 1.0, "output": 2.0}}
    llm = EnhancedLLM(
        FakeListChatModel(responses=["ok"]), model_metadata=metadata, provider="p", model_alias="m"
    )
    assert llm.context_length == 1000 and llm.max_output_tokens == 100
    assert llm.pricing_info["input_per_1m"] == 1.0 and llm.pricing_info["currency"] == "USD"
    for name in (
        "context_length",
        "max_output_tokens",
        "supports_function_calling",
        "supports_vision",
        "model_info",
        "pricing_info",
    ):
        with pytest.raises(AttributeError):
            setattr(llm, name, 1)


def test_models_dev_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelforge.modelsdev import ModelsDevClient

    monkeypatch.delenv("MODELFORGE_MODELSDEV_URL", raising=False)  # the suite points it at nowhere
    client = ModelsDevClient()
    assert client.url == "https://models.dev/api.json"
    # 2.3.0 fixed CACHE_DIR at import; the cache in use follows HOME (and an assigned CACHE_DIR)
    assert client.cache_dir == Path.home() / ".cache" / "model-forge" / "modelsdev"


# --- exceptions -----------------------------------------------------------------------------------------


def test_the_base_error_keeps_its_attributes_and_dict() -> None:
    err = ModelForgeError(
        "broke", context="while testing", suggestion="try again", error_code="X", details={"a": 1}
    )
    assert (err.message, err.context, err.suggestion, err.error_code, err.details) == (
        "broke",
        "while testing",
        "try again",
        "X",
        {"a": 1},
    )
    assert str(err) == "broke"
    assert set(err.to_dict()) >= {"error_type", "message", "context", "suggestion", "error_code", "details"}
    assert err.to_dict()["error_type"] == "ModelForgeError"
    assert ModelForgeError("plain").details == {}
    with pytest.raises(TypeError):
        ModelForgeError("broke", "context passed positionally")  # type: ignore[misc]


# --- CLI ------------------------------------------------------------------------------------------------

# The defaults the page lists for `config add` (2.3.0's table; anthropic is ours).
PAGE_DEFAULTS = {
    "openai": {
        "llm_type": "openai_compatible",
        "base_url": "https://api.openai.com/v1",
        "auth_strategy": "api_key",
    },
    "openrouter": {"base_url": "https://openrouter.ai/api/v1", "auth_strategy": "api_key"},
    "google": {"llm_type": "google_genai", "auth_strategy": "api_key"},
    "github_copilot": {k: v for k, v in COPILOT.items() if k != "models"},  # the page's example entry
    "ollama": {"llm_type": "ollama", "base_url": "http://localhost:11434"},
    "anthropic": {"llm_type": "anthropic"},
}


def _run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


@pytest.mark.parametrize("provider", sorted(PAGE_DEFAULTS))
def test_config_add_writes_the_page_defaults(provider: str) -> None:
    result = _run("config", "add", "--provider", provider, "--model", "m")
    assert result.exit_code == 0, result.output
    entry = json.loads(config.get_config_path().read_text())["providers"][provider]
    assert entry.items() >= PAGE_DEFAULTS[provider].items()
    assert entry["models"] == {"m": {}}


def test_local_use_and_remove_and_the_long_option_names(tmp_path: Path) -> None:
    from modelforge.testing import ProviderServer, Reply

    with ProviderServer() as server:
        local = config.get_config_path(local=True)
        providers = {
            "srv": {
                "llm_type": "openai_compatible",
                "base_url": server.openai_base_url,
                "models": {"a": {"api_model_name": "gpt-4o-mini"}, "b": {}},
            }
        }
        _write(local, {"providers": providers})
        assert _run("config", "use", "--provider", "srv", "--model", "a", "--local").exit_code == 0
        assert json.loads(local.read_text())["current_model"] == {"provider": "srv", "model": "a"}

        prompt, answer = tmp_path / "q.txt", tmp_path / "a.txt"
        prompt.write_text("Hi", encoding="utf-8")
        server.script(Reply(text="long options work"))
        result = _run("test", "--input-file", str(prompt), "--output-file", str(answer), "--no-telemetry")
        assert result.exit_code == 0, result.output
        assert answer.read_text(encoding="utf-8") == "long options work"

        assert _run("config", "remove", "--provider", "srv", "--model", "b", "--local").exit_code == 0
        assert list(json.loads(local.read_text())["providers"]["srv"]["models"]) == ["a"]


def test_models_commands_take_refresh_and_fail_cleanly_offline() -> None:
    """--refresh downloads the catalogue again; offline (this suite) that is a clean error or the bundled
    data, never a traceback."""
    for args in (
        ["models", "list", "--provider", "openai", "--refresh"],
        ["models", "search", "gpt", "--refresh"],
        ["models", "info", "--provider", "openai", "--model", "gpt-4o-mini", "--refresh"],
    ):
        result = _run(*args)
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 0:
            assert "gpt-4o-mini" in result.stdout


def test_config_verbose_starts_the_wizard_which_needs_a_terminal() -> None:
    result = _run("config", "--verbose")
    assert result.exit_code == 1 and "terminal" in result.stderr.lower()
    assert os.environ.get("MODELFORGE_CREDENTIAL_STORE") != "keyring"
