"""Config inputs that cannot hurt (issue 17, point 5): every one of these used to pass validation and fail
later as a raw error, hang, or eat gigabytes; each is now refused when the file is loaded, naming the file,
the key and what is allowed."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest

from modelforge import config
from modelforge.exceptions import ConfigurationValidationError


def _provider(**fields: Any) -> dict[str, Any]:
    entry = {"llm_type": "openai_compatible", "base_url": "http://localhost:8000/v1", "models": {"m": {}}}
    return {"providers": {"srv": {**entry, **fields}}}


def _write(text: str, suffix: str = ".json") -> Path:
    path = config.get_config_path().with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _refused(text: str, *fragments: str, suffix: str = ".json") -> ConfigurationValidationError:
    path = _write(text, suffix)
    with pytest.raises(ConfigurationValidationError) as info:
        config.get_config_from_path(path)
    message = info.value.message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://host\x00/v1", "control character"),
        ("http://host/v1\r\nX: y", "control character"),
        ("http://" + "a" * 70_000, "characters long"),
        ("", "empty"),
        ("   ", "empty"),
        ("file:///etc/passwd", "http:// or https://"),
        ("localhost:8000/v1", "http:// or https://"),
        ("http://host:99999/v1", "not a valid URL"),
    ],
)
def test_base_urls_http_cannot_use_are_refused(url: str, why: str) -> None:
    _refused(json.dumps(_provider(base_url=url)), "providers.srv.base_url", why)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"timeout": "Infinity"}, "providers.srv.timeout"),
        ({"timeout": 1e308}, "providers.srv.timeout"),
        ({"timeout": "NaN"}, "providers.srv.timeout"),
        ({"models": {"m": {"timeout": 1e308}}}, "providers.srv.models.m.timeout"),
        ({"retry": {"max_wait": 1e308}}, "max_wait"),
        ({"retry": {"initial_wait": "Infinity"}}, "initial_wait"),
        ({"retry": {"deadline": "Infinity"}}, "deadline"),
        ({"retry": {"max_attempts": 10**9}}, "max_attempts"),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused(fields: dict[str, Any], key: str) -> None:
    # JSON has no Infinity or NaN, but Python's reader accepts them bare, as a hand edit may write them.
    text = json.dumps(_provider(**fields)).replace('"Infinity"', "Infinity").replace('"NaN"', "NaN")
    _refused(text, key)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X-Token": "line\r\nInjected: yes"}, "printable ASCII"),
        ({"X-Name": "café"}, "printable ASCII"),
        ({"Content-Length": "5"}, "set by the HTTP client"),
        ({"Host": "evil.example"}, "set by the HTTP client"),
        ({"Bad Name": "x"}, "not a valid HTTP header name"),
    ],
)
def test_headers_http_cannot_carry_are_refused(headers: dict[str, str], why: str) -> None:
    _refused(json.dumps(_provider(headers=headers)), "providers.srv.headers", why)


def test_sane_values_still_load() -> None:
    data = _provider(
        timeout=600, headers={"X-Api-Version": "2024-01-01"}, retry={"max_wait": 60, "deadline": 300}
    )
    path = _write(json.dumps(data))
    assert config.get_config_from_path(path)[0] == data


def test_a_yaml_alias_bomb_is_refused_at_once() -> None:
    """The "billion laughs": 9 levels of 9 aliases, under 1 KB, expanding to 9**9 values."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines.append("settings: {bomb: *a9}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    _refused("\n".join(lines), "YAML aliases", suffix=".yaml")
    assert time.monotonic() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: under 200 MB more


def test_a_few_anchors_are_still_fine() -> None:
    text = (
        "settings: {shared_retry: &d {max_wait: 5}}\n"
        "providers:\n  srv:\n    llm_type: ollama\n    retry: *d\n    models: {m: {}}\n"
    )
    path = _write(text, ".yaml")
    assert config.get_config_from_path(path)[0]["providers"]["srv"]["retry"] == {"max_wait": 5}


def test_json_nested_too_deep_is_a_clear_error() -> None:
    _refused('{"settings": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001, "nested too deeply")


def test_a_fifo_or_a_device_is_refused_without_reading() -> None:
    path = config.get_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)  # reading it would block until a writer came
    with pytest.raises(ConfigurationValidationError, match="not a regular file"):
        config.get_config()
    path.unlink()
    path.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(ConfigurationValidationError, match="not a regular file"):
        config.get_config()


def test_a_symlink_to_a_real_file_is_read() -> None:
    real = Path.cwd() / "dotfiles-config.json"
    real.write_text(json.dumps(_provider()), encoding="utf-8")
    path = config.get_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(real)
    assert config.get_config()[0] == _provider()
