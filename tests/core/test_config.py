"""Config files: locations, JSON and YAML, validation errors that point at the problem, safe writes."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

from modelforge import config
from modelforge.exceptions import (
    ConfigurationError,
    ConfigurationNotFoundError,
    ConfigurationValidationError,
    JsonDecodeError,
)
from tests._unprivileged import run_python

COMPAT_EXAMPLE = {
    "providers": {
        "openai": {
            "llm_type": "openai_compatible",
            "base_url": "https://api.openai.com/v1",
            "auth_strategy": "api_key",
            "models": {"gpt-4o-mini": {"api_model_name": "gpt-4o-mini"}},
        },
        "ollama": {"llm_type": "ollama", "base_url": "http://localhost:11434", "models": {"qwen3:1.7b": {}}},
    },
    "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    "settings": {"show_telemetry": False},
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_locations_follow_home_and_cwd(isolated_home: Path) -> None:
    assert isolated_home / ".config" / "model-forge" / "config.json" == config.GLOBAL_CONFIG_FILE
    assert Path.cwd() / ".model-forge" / "config.json" == config.LOCAL_CONFIG_FILE


def test_no_config_reads_as_empty() -> None:
    data, path = config.get_config()
    assert data == {}
    assert path == config.GLOBAL_CONFIG_FILE
    assert config.get_settings() == {"show_telemetry": True}
    assert config.get_current_model() is None


def test_local_config_wins_over_global() -> None:
    write(config.GLOBAL_CONFIG_FILE, json.dumps(COMPAT_EXAMPLE))
    local = {"providers": {}, "current_model": {"provider": "ollama", "model": "x"}}
    write(config.LOCAL_CONFIG_FILE, json.dumps(local))
    data, path = config.get_config()
    assert path == config.LOCAL_CONFIG_FILE
    assert data["current_model"]["provider"] == "ollama"


def test_yaml_config_is_the_same_data() -> None:
    write(config.global_config_dir() / "config.yaml", yaml.safe_dump(COMPAT_EXAMPLE))
    loaded = config.load_config()
    assert loaded.path is not None and loaded.path.name == "config.yaml"
    assert loaded.config.providers["openai"].models["gpt-4o-mini"].api_model_name == "gpt-4o-mini"
    assert config.get_settings()["show_telemetry"] is False


def test_yaml_config_is_written_back_as_yaml() -> None:
    path = write(config.global_config_dir() / "config.yaml", yaml.safe_dump(COMPAT_EXAMPLE))
    config.update_setting("show_telemetry", True)
    assert yaml.safe_load(path.read_text())["settings"]["show_telemetry"] is True
    assert not config.GLOBAL_CONFIG_FILE.exists()


def test_json_and_yaml_side_by_side_is_an_error() -> None:
    write(config.GLOBAL_CONFIG_FILE, "{}")
    write(config.global_config_dir() / "config.yaml", "providers: {}\n")
    with pytest.raises(ConfigurationError, match="Two config files"):
        config.get_config()


def test_policy_sections_are_accepted_and_kept() -> None:
    data = json.loads(json.dumps(COMPAT_EXAMPLE))
    data["providers"]["openai"].update(
        retry={"max_attempts": 5, "backoff_factor": 2.0},
        rate_limit={"requests_per_minute": 60, "tokens_per_minute": 90000},
        optimizations={"seed": 7, "json_mode": False},
        cache={"backend": "memory", "ttl": 60},
        fallbacks=["anthropic"],
        connection_pool={"max_connections": 10},
        batch={"max_concurrent": 4, "use_batch_api": "auto"},
    )
    config.save_config(data)
    loaded = config.load_config()
    openai = loaded.config.providers["openai"]
    assert openai.retry == {"max_attempts": 5, "backoff_factor": 2.0}
    assert openai.fallbacks == ["anthropic"]
    assert openai.optimizations == {"seed": 7, "json_mode": False}
    assert openai.connection_pool == {"max_connections": 10}
    assert openai.batch == {"max_concurrent": 4, "use_batch_api": "auto"}
    assert loaded.raw["providers"]["openai"]["rate_limit"]["tokens_per_minute"] == 90000


@pytest.mark.parametrize(
    ("section", "value", "named"),
    [
        ("optimizations", {"seed": "x"}, "optimizations.seed"),
        ("cache", {"backend": "mongo"}, "cache.backend"),
        ("connection_pool", {"max_connections": 0}, "connection_pool.max_connections"),
        ("batch", {"max_concurrent": -1}, "batch.max_concurrent"),
    ],
)
def test_bad_policy_sections_are_refused_at_load_naming_the_key(
    section: str, value: dict[str, object], named: str
) -> None:
    data = json.loads(json.dumps(COMPAT_EXAMPLE))
    data["providers"]["openai"][section] = value
    config.get_config_path().parent.mkdir(parents=True, exist_ok=True)
    config.get_config_path().write_text(json.dumps(data, indent=4))
    with pytest.raises(ConfigurationValidationError, match=named.replace(".", r"\.")) as caught:
        config.load_config()
    assert "line " in str(caught.value)  # and where in the file


def test_malformed_json_names_file_and_line() -> None:
    path = write(config.GLOBAL_CONFIG_FILE, '{\n    "providers": {},\n    "settings": {,}\n}\n')
    with pytest.raises(JsonDecodeError) as info:
        config.get_config()
    assert str(path) in info.value.message
    assert info.value.line == 3
    assert "line 3" in info.value.message


def test_malformed_yaml_names_file_and_line() -> None:
    path = write(
        config.global_config_dir() / "config.yaml", "providers:\n  openai: [unclosed\nsettings: {}\n"
    )
    with pytest.raises(ConfigurationValidationError) as info:
        config.get_config()
    assert str(path) in info.value.message
    assert "line" in info.value.message


def test_unknown_key_names_line_key_and_allowed_keys() -> None:
    text = json.dumps(COMPAT_EXAMPLE, indent=4).replace(
        '"base_url": "https://api.openai.com/v1"', '"base_ur": "x"'
    )
    path = write(config.GLOBAL_CONFIG_FILE, text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "base_ur" in row)
    with pytest.raises(ConfigurationValidationError) as info:
        config.get_config()
    message = info.value.message
    assert str(path) in message
    assert f"line {line}" in message
    assert "providers.openai.base_ur" in message
    assert "allowed keys here" in message and "base_url" in message


def test_wrong_type_is_named() -> None:
    data = json.loads(json.dumps(COMPAT_EXAMPLE))
    data["providers"]["openai"]["models"]["gpt-4o-mini"]["temperature"] = "hot"
    write(config.global_config_dir() / "config.yaml", yaml.safe_dump(data))
    with pytest.raises(ConfigurationValidationError, match=r"models\.gpt-4o-mini\.temperature"):
        config.get_config()


def test_invalid_data_is_never_saved() -> None:
    config.save_config(COMPAT_EXAMPLE)
    before = config.GLOBAL_CONFIG_FILE.read_text()
    with pytest.raises(ConfigurationValidationError):
        config.save_config({"providers": {"x": {"models": "not a mapping"}}})
    assert config.GLOBAL_CONFIG_FILE.read_text() == before


def test_saved_file_is_owner_only_json_indent_4() -> None:
    config.save_config(COMPAT_EXAMPLE)
    path = config.GLOBAL_CONFIG_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == json.dumps(COMPAT_EXAMPLE, indent=4) + "\n"


def test_corrupt_file_is_set_aside_not_lost() -> None:
    path = write(config.GLOBAL_CONFIG_FILE, '{"providers": {"openai": ')
    config.save_config(COMPAT_EXAMPLE)
    copies = list(path.parent.glob("config.json.corrupt-*"))
    assert len(copies) == 1
    assert copies[0].read_text() == '{"providers": {"openai": '
    assert json.loads(path.read_text()) == COMPAT_EXAMPLE


def test_updates_refuse_to_touch_a_corrupt_file() -> None:
    path = write(config.GLOBAL_CONFIG_FILE, "{ not json")
    with pytest.raises(JsonDecodeError):
        config.update_setting("show_telemetry", False)
    assert path.read_text() == "{ not json"


def test_interrupted_write_leaves_the_old_file(monkeypatch: pytest.MonkeyPatch) -> None:
    config.save_config(COMPAT_EXAMPLE)
    before = config.GLOBAL_CONFIG_FILE.read_text()

    # A crash between writing the temporary file and renaming it cannot be produced on demand with real
    # I/O, so the rename is made to fail; the point is that nothing has touched the target by then.
    def crash(*_: object) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash)
        with pytest.raises(ConfigurationError, match="Cannot write"):
            config.update_setting("show_telemetry", True)
    assert config.GLOBAL_CONFIG_FILE.read_text() == before
    leftovers = [p.name for p in config.GLOBAL_CONFIG_FILE.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_unwritable_directory_is_a_clear_error() -> None:
    home = Path(tempfile.mkdtemp(prefix="mf-readonly-"))
    try:
        home.chmod(0o755)
        directory = home / ".config" / "model-forge"
        directory.mkdir(parents=True)
        (home / ".config").chmod(0o555)
        directory.chmod(0o555)
        script = (
            "import sys\n"
            "from modelforge import config\n"
            "from modelforge.exceptions import ConfigurationError\n"
            "try:\n"
            "    config.save_config({'providers': {}})\n"
            "except ConfigurationError as err:\n"
            "    print(err.message); print(err.suggestion); sys.exit(3)\n"
        )
        result = run_python(script, home=home)
        assert result.returncode == 3, result.stderr
        assert "Cannot write" in result.stdout and "writable" in result.stdout
        assert "Traceback" not in result.stdout
    finally:
        (home / ".config").chmod(0o755)
        shutil.rmtree(home, ignore_errors=True)


def test_unwritable_location_is_a_clear_error(isolated_home: Path) -> None:
    # A regular file where the config directory should be: fails for root too.
    (isolated_home / ".config").write_text("not a directory")
    with pytest.raises(ConfigurationError) as info:
        config.save_config(COMPAT_EXAMPLE)
    assert info.value.suggestion


def _add_setting(home: str, key: str) -> None:
    os.environ["HOME"] = home
    for _ in range(10):
        config.update_setting(key, True)


def test_concurrent_writers_do_not_lose_changes(isolated_home: Path) -> None:
    config.save_config(COMPAT_EXAMPLE)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_add_setting, args=(str(isolated_home), f"key{i}")) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    settings = config.get_settings()
    assert all(settings[f"key{i}"] is True for i in range(4))


def test_set_current_model_checks_the_model_exists() -> None:
    """As 2.3.0: an unknown provider or model raises ConfigurationNotFoundError; the selection stays."""
    config.save_config(COMPAT_EXAMPLE)
    assert config.set_current_model("ollama", "qwen3:1.7b", quiet=True) is True
    assert config.get_current_model() == {"provider": "ollama", "model": "qwen3:1.7b"}
    with pytest.raises(ConfigurationNotFoundError) as info:
        config.set_current_model("ollama", "nope")
    assert info.value.error_code == "CONFIG_NOT_FOUND"
    assert str(config.GLOBAL_CONFIG_FILE) in (info.value.suggestion or "")
    assert config.get_current_model() == {"provider": "ollama", "model": "qwen3:1.7b"}


def test_selecting_an_unknown_model_writes_nothing() -> None:
    with pytest.raises(ConfigurationNotFoundError):
        config.set_current_model("openai", "gpt-4o", quiet=True)
    assert not config.GLOBAL_CONFIG_FILE.exists()


def test_migrate_old_models_json() -> None:
    old = write(config.global_config_dir() / "models.json", json.dumps(COMPAT_EXAMPLE))
    assert config.migrate_old_config() is True
    assert not old.exists()
    assert json.loads(config.GLOBAL_CONFIG_FILE.read_text()) == COMPAT_EXAMPLE
    assert config.migrate_old_config() is False
