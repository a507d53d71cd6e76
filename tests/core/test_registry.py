"""``ModelForgeRegistry``: model selection, the 2.3.0 errors, discovery, and a 2.3.0 config used unchanged."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel

from modelforge import config
from modelforge.exceptions import (
    ConfigurationError,
    InvalidApiKeyError,
    ModelNotFoundError,
    ProviderError,
    ProviderNotAvailableError,
)
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.conftest import OPENAI_KEY


def legacy_config(base_url: str) -> dict[str, Any]:
    """The compat document's example, pointed at the test server, with 2.3.0's in-file auth_data."""
    return {
        "providers": {
            "openai": {
                "llm_type": "openai_compatible",
                "base_url": base_url,
                "auth_strategy": "api_key",
                "auth_data": {"api_key": OPENAI_KEY},
                "models": {"gpt-4o-mini": {"api_model_name": "gpt-4o-mini"}},
            },
            "ollama": {
                "llm_type": "ollama",
                "base_url": "http://localhost:11434",
                "models": {"qwen3:1.7b": {}},
            },
            "github_copilot": {
                "llm_type": "github_copilot",
                "base_url": "https://api.githubcopilot.com",
                "auth_strategy": "device_flow",
                "auth_details": {
                    "client_id": "01ab8ac9400c4e429b23",
                    "device_code_url": "https://github.com/login/device/code",
                    "token_url": "https://github.com/login/oauth/access_token",
                    "scope": "read:user",
                },
                "models": {"claude-sonnet": {"api_model_name": "claude-3.7-sonnet"}},
            },
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
        "settings": {"show_telemetry": False},
    }


def write_config(data: dict[str, Any]) -> None:
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data, indent=4))


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


def test_legacy_config_with_auth_data_works_unchanged(server: ProviderServer) -> None:
    write_config(legacy_config(server.openai_base_url))
    before = config.GLOBAL_CONFIG_FILE.read_text()
    server.script(Reply(text="hi from 2.3.0 config"))
    llm = ModelForgeRegistry().get_llm()
    assert isinstance(llm, BaseChatModel)
    assert llm.invoke("hello").text == "hi from 2.3.0 config"
    assert server.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert config.GLOBAL_CONFIG_FILE.read_text() == before, "reading never rewrites the user's file"


def test_env_key_wins_over_config(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(legacy_config(server.openai_base_url))
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", "sk-proj-" + "e" * 40)
    ModelForgeRegistry().get_llm().invoke("hello")
    assert server.requests[-1].headers["authorization"] == "Bearer sk-proj-" + "e" * 40


def test_server_without_key_needs_none(server: ProviderServer) -> None:
    write_config(
        {
            "providers": {
                "vllm": {
                    "llm_type": "openai_compatible",
                    "base_url": server.openai_base_url,
                    "models": {"m": {}},
                }
            },
            "current_model": {"provider": "vllm", "model": "m"},
        }
    )
    server.script(Reply(text="no key needed"))
    assert ModelForgeRegistry().get_llm().invoke("x").text == "no key needed"


def test_openrouter_llm_type_written_by_2_3_is_usable(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFORGE_OPENROUTER_API_KEY", "sk-or-v1-" + "a" * 40)
    write_config(
        {
            "providers": {
                "openrouter": {
                    "llm_type": "openrouter",
                    "base_url": server.openai_base_url,
                    "auth_strategy": "api_key",
                    "models": {"claude": {"api_model_name": "anthropic/claude-3.5-sonnet"}},
                }
            },
            "current_model": {"provider": "openrouter", "model": "claude"},
        }
    )
    ModelForgeRegistry().get_llm().invoke("x")
    assert (server.requests[-1].json or {})["model"] == "anthropic/claude-3.5-sonnet"


def test_no_model_selected() -> None:
    data = legacy_config("http://127.0.0.1:9/v1")
    del data["current_model"]
    write_config(data)
    with pytest.raises(ConfigurationError) as info:
        ModelForgeRegistry().get_llm()
    assert info.value.error_code == "NO_MODEL_SELECTED"
    assert "config use" in (info.value.suggestion or "")


def test_unknown_provider() -> None:
    write_config(legacy_config("http://127.0.0.1:9/v1"))
    with pytest.raises(ProviderNotAvailableError) as info:
        ModelForgeRegistry().get_llm("mistral", "large")
    assert info.value.error_code == "PROVIDER_NOT_AVAILABLE"
    assert "openai" in (info.value.suggestion or "")


def test_unknown_model_lists_the_available_ones() -> None:
    write_config(legacy_config("http://127.0.0.1:9/v1"))
    with pytest.raises(ModelNotFoundError) as info:
        ModelForgeRegistry().get_llm("openai", "gpt-5")
    assert info.value.available_models == ["gpt-4o-mini"]
    assert "gpt-4o-mini" in (info.value.suggestion or "")


def test_missing_llm_type() -> None:
    write_config(
        {"providers": {"x": {"models": {"m": {}}}}, "current_model": {"provider": "x", "model": "m"}}
    )
    with pytest.raises(ConfigurationError) as info:
        ModelForgeRegistry().get_llm()
    assert info.value.error_code == "MISSING_LLM_TYPE"


def test_unsupported_llm_type() -> None:
    write_config(
        {
            "providers": {"x": {"llm_type": "bedrock", "models": {"m": {}}}},
            "current_model": {"provider": "x", "model": "m"},
        }
    )
    with pytest.raises(ProviderError) as info:
        ModelForgeRegistry().get_llm()
    assert info.value.error_code == "UNSUPPORTED_LLM_TYPE"
    assert "openai_compatible" in (info.value.suggestion or "")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_missing_key(provider: str) -> None:
    llm_type = {"openai": "openai_compatible", "anthropic": "anthropic", "google": "google_genai"}[provider]
    write_config(
        {
            "providers": {provider: {"llm_type": llm_type, "auth_strategy": "api_key", "models": {"m": {}}}},
            "current_model": {"provider": provider, "model": "m"},
        }
    )
    with pytest.raises(InvalidApiKeyError) as info:
        ModelForgeRegistry().get_llm()
    assert f"MODELFORGE_{provider.upper()}_API_KEY" in (info.value.suggestion or "")


def test_ollama_without_url(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config({"providers": {"ollama": {"llm_type": "ollama", "models": {"q": {}}}}})
    with pytest.raises(ConfigurationError) as info:
        ModelForgeRegistry().get_llm("ollama", "q")
    assert info.value.error_code == "OLLAMA_URL_MISSING"
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11434")
    llm = ModelForgeRegistry().get_llm("ollama", "q")
    assert llm.base_url == "http://127.0.0.1:11434"  # type: ignore[attr-defined]


def test_ollama_honours_api_model_name(server: ProviderServer) -> None:
    write_config(
        {
            "providers": {
                "ollama": {
                    "llm_type": "ollama",
                    "base_url": server.ollama_base_url,
                    "models": {"q": {"api_model_name": "qwen3:1.7b"}},
                }
            }
        }
    )
    ModelForgeRegistry().get_llm("ollama", "q").invoke("hi")
    assert (server.requests[-1].json or {})["model"] == "qwen3:1.7b"


def test_provider_only_uses_its_single_model(server: ProviderServer) -> None:
    write_config(legacy_config(server.openai_base_url))
    llm = ModelForgeRegistry().get_llm("ollama")
    assert llm.model_alias == "qwen3:1.7b"  # type: ignore[attr-defined]


def test_discovery_methods() -> None:
    write_config(legacy_config("http://127.0.0.1:9/v1"))
    registry = ModelForgeRegistry()
    assert set(registry.get_configured_providers()) == {"openai", "ollama", "github_copilot"}
    assert "auth_data" not in registry.get_configured_providers()["openai"]
    assert registry.get_configured_models("openai") == {"gpt-4o-mini": {"api_model_name": "gpt-4o-mini"}}
    assert "github_copilot/claude-sonnet" in registry.get_configured_models()
    assert registry.is_provider_configured("ollama") and not registry.is_provider_configured("nope")
    assert registry.is_model_configured("openai", "gpt-4o-mini")
    assert not registry.is_model_configured("openai", "gpt-5")


def test_errors_do_not_show_the_key(server: ProviderServer) -> None:
    write_config(legacy_config(server.openai_base_url))
    llm = ModelForgeRegistry().get_llm()
    assert OPENAI_KEY not in repr(llm)
    assert OPENAI_KEY not in str(llm)


@pytest.mark.parametrize(
    "module",
    [
        "modelforge",
        "modelforge.registry",
        "modelforge.config",
        "modelforge.auth",
        "modelforge.exceptions",
        "modelforge.telemetry",
        "modelforge.streaming",
        "modelforge.retry",
        "modelforge.validation",
        "modelforge.enhanced_llm",
        "modelforge.modelsdev",
        "modelforge.cli",
    ],
)
def test_2_3_module_names_import(module: str) -> None:
    importlib.import_module(module)


def test_2_3_public_names() -> None:
    import modelforge

    assert modelforge.ModelForgeRegistry is ModelForgeRegistry
    assert isinstance(modelforge.__version__, str)
    from modelforge.auth import (  # noqa: F401
        ApiKeyAuth,
        AuthStrategy,
        DeviceFlowAuth,
        NoAuth,
        clear_auth_data,
        get_auth_data,
        get_auth_strategy,
        get_credentials,
        save_auth_data,
    )
    from modelforge.config import (  # noqa: F401
        GLOBAL_CONFIG_FILE,
        LOCAL_CONFIG_FILE,
        get_config,
        get_config_from_path,
        get_config_path,
        get_current_model,
        get_settings,
        migrate_old_config,
        save_config,
        set_current_model,
        update_setting,
    )
    from modelforge.exceptions import (  # noqa: F401
        ConfigurationNotFoundError,
        ConfigurationValidationError,
        FileValidationError,
        InternalError,
        InvalidInputError,
        JsonDecodeError,
        JsonError,
        NetworkTimeoutError,
        RateLimitError,
        TokenExpiredError,
        ValidationError,
    )


def test_enhanced_llm_from_the_registry(server: ProviderServer) -> None:
    from modelforge.enhanced_llm import EnhancedLLM
    from modelforge.exceptions import InvalidInputError, RateLimitError
    from modelforge.testing import Fault

    write_config(legacy_config(server.openai_base_url))
    llm = ModelForgeRegistry().get_llm(enhanced=True)
    assert isinstance(llm, EnhancedLLM)
    assert llm.context_length > 100_000
    assert llm.pricing_info["input_per_1m"] > 0
    llm.temperature = 0.3
    llm.max_tokens = 50
    with pytest.raises(InvalidInputError):
        llm.max_tokens = 10_000_000
    llm.invoke("hello")
    sent = server.requests[-1].json or {}
    assert sent["temperature"] == 0.3
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 50
    # The SDK's own two retries (the default until a retry policy is configured) see three 429s.
    server.script(*[Fault(status=429, retry_after="0")] * 3)
    with pytest.raises(RateLimitError):
        llm.invoke("hello")


def test_enhanced_via_environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelforge.enhanced_llm import EnhancedLLM

    write_config(legacy_config(server.openai_base_url))
    monkeypatch.setenv("MODELFORGE_ENHANCED", "true")
    assert isinstance(ModelForgeRegistry().get_llm(), EnhancedLLM)
    assert not isinstance(ModelForgeRegistry().get_llm(enhanced=False), EnhancedLLM)


def test_pickles_carry_no_credentials(server: ProviderServer) -> None:
    import pickle

    write_config(legacy_config(server.openai_base_url))
    for enhanced in (False, True):
        llm = ModelForgeRegistry().get_llm(enhanced=enhanced)
        if enhanced:
            llm.temperature = 0.7  # type: ignore[attr-defined]
        data = pickle.dumps(llm)
        assert OPENAI_KEY.encode() not in data
        clone = pickle.loads(data)
        server.script(Reply(text="from the clone"))
        assert clone.invoke("hi").text == "from the clone"
        assert server.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
        if enhanced:
            assert (server.requests[-1].json or {})["temperature"] == 0.7


def test_every_public_name_resolves() -> None:
    import modelforge

    for name in modelforge.__all__:
        assert getattr(modelforge, name) is not None


def test_missing_provider_package_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    write_config(
        {
            "providers": {
                "ollama": {"llm_type": "ollama", "base_url": "http://127.0.0.1:9", "models": {"q": {}}}
            },
            "current_model": {"provider": "ollama", "model": "q"},
        }
    )
    # An uninstalled package cannot be produced in a venv that has it, so its import is blocked here.
    monkeypatch.setitem(sys.modules, "langchain_ollama", None)
    # ... and the family's module, which this process imported already, is imported afresh.
    monkeypatch.delitem(sys.modules, "modelforge.providers.ollama", raising=False)
    monkeypatch.setattr("modelforge.providers._instances", {})
    with pytest.raises(ProviderNotAvailableError) as info:
        ModelForgeRegistry().get_llm()
    assert "pip install langchain-ollama" in (info.value.suggestion or "")
