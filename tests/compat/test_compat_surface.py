"""2.3.0's public names and the behaviours its users' code and test suites rely on (section "Behaviours 2.3.0
users rely on" of the compat page): modules and names that must import, exception types and codes,
``GLOBAL_CONFIG_FILE`` / ``LOCAL_CONFIG_FILE`` redirection, the models.dev client's 2.3.0 members and
case-insensitive exact pricing. Written from 2.3.0's public surface (its source, model-forge-llm 2.3.0 on
PyPI); message wording is free, everything else is checked.
"""

from __future__ import annotations

import importlib
import json
import logging
import uuid
from pathlib import Path
from unittest import mock

import pytest

from modelforge import config
from modelforge.exceptions import (
    ConfigurationNotFoundError,
    InvalidInputError,
    ModelForgeError,
    ModelNotFoundError,
)

COMPAT_CONFIG = {
    "providers": {
        "ollama": {"llm_type": "ollama", "base_url": "http://localhost:11434", "models": {"qwen3:1.7b": {}}}
    },
    "current_model": {},
}


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("modelforge.wizard", ["ConfigWizard", "run_wizard"]),
        ("modelforge.logging_config", ["setup_logging", "get_logger"]),
        ("modelforge.streaming", ["StreamingAuthHandler", "StreamWrapper"]),
        ("modelforge.telemetry", ["PRICING", "TelemetryCallback", "calculate_cost", "TokenUsage"]),
        ("modelforge.registry", ["GITHUB_COPILOT_AVAILABLE", "ModelForgeRegistry"]),
        ("modelforge.exceptions", ["MAX_DISPLAY_MODELS"]),
        ("modelforge.validation", ["InputValidator"]),
        ("modelforge.modelsdev", ["ModelsDevClient"]),
    ],
)
def test_the_names_2_3_users_import(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    for name in names:
        assert hasattr(loaded, name), f"{module}.{name}"


def test_small_constants_keep_their_2_3_values() -> None:
    from modelforge.exceptions import MAX_DISPLAY_MODELS
    from modelforge.registry import GITHUB_COPILOT_AVAILABLE
    from modelforge.validation import InputValidator

    assert MAX_DISPLAY_MODELS == 5
    assert GITHUB_COPILOT_AVAILABLE is True  # Copilot goes through langchain-openai, always installed
    assert InputValidator.MODEL_NAME_MAX_LENGTH == 100
    patterns = InputValidator.API_KEY_PATTERNS
    assert patterns["openai"].match("sk-proj-" + "a" * 40)  # the modern key 2.3.0 refused: accepted
    assert patterns["anthropic"].match("sk-ant-api03-" + "b" * 40)
    assert not patterns["openai"].match("pk-" + "a" * 40)


def test_pricing_is_2_3s_table_built_from_the_catalogue() -> None:
    from modelforge.telemetry import PRICING

    mini = PRICING["openai"]["gpt-4o-mini"]
    assert set(mini) == {"input", "output"}  # USD per 1,000 tokens, as 2.3.0
    assert mini["input"] == pytest.approx(0.00015) and mini["output"] == pytest.approx(0.0006)
    assert set(PRICING) >= {"openai", "anthropic", "google", "github_copilot"}


def test_calculate_cost_matches_names_case_insensitively_and_exactly() -> None:
    from modelforge.telemetry import TokenUsage, calculate_cost

    usage = TokenUsage(prompt_tokens=1_000, completion_tokens=1_000, total_tokens=2_000)
    assert (
        calculate_cost("openai", "GPT-4o-Mini", usage) == calculate_cost("openai", "gpt-4o-mini", usage) > 0
    )
    assert calculate_cost("openai", "gpt-4o-mini-unknown-variant", usage) == 0.0  # never by substring


def test_exception_types_and_codes() -> None:
    assert ModelForgeError("plain").error_code is None
    assert issubclass(InvalidInputError, ValueError)
    error = ModelNotFoundError("openai", "gpt-x", [f"m{i}" for i in range(8)])
    assert error.details["provider"] == "openai" and error.details["model"] == "gpt-x"
    assert error.error_code == "MODEL_NOT_FOUND"
    assert "and 3 more" in (error.suggestion or "")


def test_enhanced_llm_setters_raise_a_value_error() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from modelforge.enhanced_llm import EnhancedLLM

    llm = EnhancedLLM(
        FakeListChatModel(responses=["ok"]), model_metadata={}, provider="fake", model_alias="fake"
    )
    with pytest.raises(ValueError):
        llm.temperature = 7.5


def test_input_validator_codes() -> None:
    from modelforge.validation import InputValidator

    for blank, code in (
        ("", "EMPTY_MODEL"),
        ("   ", "INVALID_MODEL_NAME"),
        ("m" * 101, "MODEL_NAME_TOO_LONG"),
    ):
        with pytest.raises(InvalidInputError) as info:
            InputValidator.validate_model_name(blank)
        assert info.value.error_code == code


def test_set_current_model_on_an_unknown_model_raises_configuration_not_found() -> None:
    config.save_config(COMPAT_CONFIG)
    with pytest.raises(ConfigurationNotFoundError):
        config.set_current_model("ollama", "not-there", quiet=True)
    with pytest.raises(ConfigurationNotFoundError):
        config.set_current_model("nope", "x", quiet=True)


def test_assigning_global_config_file_redirects_reads_and_writes(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "config.json"
    home_file = config.GLOBAL_CONFIG_FILE
    try:
        config.GLOBAL_CONFIG_FILE = target
        config.save_config(COMPAT_CONFIG)
        assert json.loads(target.read_text())["providers"]["ollama"]["llm_type"] == "ollama"
        assert config.get_config()[1] == target
    finally:
        del config.GLOBAL_CONFIG_FILE
    assert not home_file.exists()  # the HOME-derived default was never touched
    assert home_file == config.GLOBAL_CONFIG_FILE  # and it is the default again


def test_mock_patching_global_and_local_config_files(tmp_path: Path) -> None:
    global_file, local_file = tmp_path / "g" / "config.json", tmp_path / "l" / "config.json"
    with (
        mock.patch("modelforge.config.GLOBAL_CONFIG_FILE", global_file),
        mock.patch("modelforge.config.LOCAL_CONFIG_FILE", local_file),
    ):
        config.save_config(COMPAT_CONFIG)
        assert global_file.is_file() and not local_file.exists()
        config.save_config(
            {**COMPAT_CONFIG, "current_model": {"provider": "ollama", "model": "qwen3:1.7b"}}, local=True
        )
        assert local_file.is_file()
        assert config.get_config()[1] == local_file  # the local file wins, as in 2.3.0
    assert global_file != config.GLOBAL_CONFIG_FILE


def test_modelsdev_client_members(tmp_path: Path) -> None:
    from modelforge.modelsdev import ModelsDevClient

    assert isinstance(ModelsDevClient.CACHE_DIR, Path)
    with mock.patch.object(ModelsDevClient, "CACHE_DIR", tmp_path / "cache"):
        client = ModelsDevClient(offline=True)
        assert client.cache_dir == tmp_path / "cache"
        template = client.get_provider_config("anthropic")
        assert template["llm_type"] == "anthropic" and "ANTHROPIC_API_KEY" in template["env"]
        with pytest.raises(InvalidInputError):
            client.get_model_info("", "gpt-4o-mini")
        with pytest.raises(InvalidInputError):
            client.get_provider_config("  ")


def test_logging_config_adds_no_handler_until_asked(tmp_path: Path) -> None:
    from modelforge import logging_config

    logger = logging.getLogger("modelforge")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    assert not [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    try:
        configured = logging_config.setup_logging("DEBUG", filename=str(tmp_path / "mf.log"))
        assert configured is logger and logger.level == logging.DEBUG and not logger.propagate
        assert len(logger.handlers) == 2
        logging_config.get_logger("registry").debug("hello")
        assert "hello" in (tmp_path / "mf.log").read_text()
        assert logging_config.get_logger("x").name == "modelforge.x"
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def test_streaming_auth_handler_is_a_callback_that_leaves_api_keys_alone() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    from modelforge.auth import ApiKeyAuth
    from modelforge.streaming import StreamingAuthHandler

    assert issubclass(StreamingAuthHandler, BaseCallbackHandler)
    handler = StreamingAuthHandler("openai", ApiKeyAuth("openai"), token_refresh_threshold=120)
    assert handler.provider_name == "openai" and handler.token_refresh_threshold == 120
    handler.on_llm_new_token("hi", run_id=uuid.uuid4())  # an API key needs no refresh: nothing happens
    handler.check_token_validity()


def test_stream_wrapper_keeps_the_callbacks_passed_in() -> None:
    from modelforge.streaming import StreamWrapper

    def on_chunk(chunk: str) -> None: ...

    assert StreamWrapper(None, callbacks=[on_chunk]).callbacks == [on_chunk]


def test_an_enhanced_llm_parameter_the_model_lacks_is_stored() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from modelforge.enhanced_llm import EnhancedLLM

    llm = EnhancedLLM(
        FakeListChatModel(responses=["ok"]), model_metadata={}, provider="fake", model_alias="fake"
    )
    llm.top_k = 40  # FakeListChatModel has no top_k: stored, as 2.3.0 did
    assert llm.top_k == 40


def test_model_dicts_keep_2_3s_pricing_keys() -> None:
    from modelforge.modelsdev import ModelsDevClient

    info = ModelsDevClient(offline=True).get_model_info("openai", "gpt-4o-mini")
    pricing = info["pricing"]
    assert pricing["input_per_1m_tokens"] == pytest.approx(0.15)
    assert pricing["output_per_1m_tokens"] == pytest.approx(0.6)
    assert {"cache_read_per_1m_tokens", "cache_write_per_1m_tokens"} <= set(pricing)
    listed = ModelsDevClient(offline=True).get_models("openai")
    assert all("input_per_1m_tokens" in model["pricing"] for model in listed)


def test_credentials_go_beside_an_assigned_config_and_its_folder_keeps_its_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test suite pointing GLOBAL_CONFIG_FILE into a shared folder (2.3.0 suites use /tmp): credentials
    are written beside that file, never into ~/.config, and the folder is not made private."""
    import os
    import stat

    from modelforge.auth import clear_auth_data, save_auth_data

    monkeypatch.setenv("MODELFORGE_CREDENTIAL_STORE", "file")  # the file store, not a keyring
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    home_credentials = config.global_config_dir() / "credentials.json"
    with mock.patch("modelforge.config.GLOBAL_CONFIG_FILE", shared / "global_config.json"):
        save_auth_data("compat_probe", {"api_key": "sk-test-" + "x" * 30})
        assert (shared / "global_config.credentials.json").is_file()
        clear_auth_data("compat_probe")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert not home_credentials.exists()


def test_assigning_back_the_saved_default_is_no_redirection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``orig = GLOBAL_CONFIG_FILE; ...; GLOBAL_CONFIG_FILE = orig`` (a unittest setUp/tearDown) leaves the
    default following HOME."""
    original = config.GLOBAL_CONFIG_FILE
    config.GLOBAL_CONFIG_FILE = original
    try:
        monkeypatch.setenv("HOME", str(tmp_path / "other-home"))
        assert config.get_config_path() == tmp_path / "other-home" / ".config" / "model-forge" / "config.json"
    finally:
        del config.GLOBAL_CONFIG_FILE


def test_a_bare_mock_patch_is_refused_clearly() -> None:
    from modelforge.exceptions import ConfigurationError

    with (
        mock.patch("modelforge.config.GLOBAL_CONFIG_FILE"),
        pytest.raises(ConfigurationError, match="not a path"),
    ):
        config.get_config_path()


def test_a_clients_own_cache_dir_attribute_is_used(tmp_path: Path) -> None:
    from modelforge.modelsdev import ModelsDevClient

    client = ModelsDevClient(offline=True)
    client.CACHE_DIR = tmp_path / "mine"
    assert client.cache_dir == tmp_path / "mine"


def test_set_current_model_normalises_the_provider_name() -> None:
    config.save_config(COMPAT_CONFIG)
    assert config.set_current_model("Ollama", " qwen3:1.7b ", quiet=True) is True
    assert config.get_current_model() == {"provider": "ollama", "model": "qwen3:1.7b"}
