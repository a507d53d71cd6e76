"""``modelforge.validation.InputValidator``: the 2.3.0 surface, with modern API keys accepted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from modelforge.exceptions import FileValidationError, InvalidInputError, ValidationError
from modelforge.validation import InputValidator as V
from tests._unprivileged import run_python

OPENAI_PROJECT_KEY = "sk-proj-" + "Ab3_dE-fG7hIjK9lMnOpQrStUvWxYz012345" * 4
OPENAI_SERVICE_KEY = "sk-svcacct-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0" * 3
OPENAI_LEGACY_KEY = "sk-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4"
OPENROUTER_KEY = "sk-or-v1-" + "0123456789abcdef" * 4
ANTHROPIC_KEY = "sk-ant-api03-" + "AbCdEfGhIjKlMnOpQrStUvWxYz_0123456789-" * 2 + "AA"
GOOGLE_KEY = "AIzaSyD" + "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"


def assert_names_fix(err: InvalidInputError) -> None:
    """Every message names the problem and the fix; the fix is also the suggestion."""
    assert err.suggestion
    assert err.suggestion in err.message
    assert str(err) == err.message


# --- provider and model names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("openai", "openai"),
        ("  OpenAI ", "openai"),
        ("github-copilot", "github_copilot"),
        ("GitHub_Copilot", "github_copilot"),
        ("ollama2", "ollama2"),
        ("my-local-vllm", "my_local_vllm"),
    ],
)
def test_provider_name_is_normalised(raw: str, expected: str) -> None:
    assert V.validate_provider_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "EMPTY_PROVIDER"),
        ("", "EMPTY_PROVIDER"),
        ("   ", "EMPTY_PROVIDER"),
        ("open ai", "INVALID_PROVIDER_FORMAT"),
        ("open.ai", "INVALID_PROVIDER_FORMAT"),
        ("openai!", "INVALID_PROVIDER_FORMAT"),
        ("-openai", "INVALID_PROVIDER_FORMAT"),
        ("ollama/../../etc", "INVALID_PROVIDER_FORMAT"),
        ("a" * 65, "INVALID_PROVIDER_FORMAT"),
    ],
)
def test_bad_provider_names_are_refused(raw: str | None, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_provider_name(raw)
    assert info.value.error_code == code
    assert_names_fix(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("qwen3:1.7b", "qwen3:1.7b"),
        (" claude-3.7-sonnet ", "claude-3.7-sonnet"),
        ("meta-llama/llama-3.1-70b-instruct", "meta-llama/llama-3.1-70b-instruct"),
        ("models/gemini-1.5-pro", "models/gemini-1.5-pro"),
        (
            "ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9AbCdEf1",
            "ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9AbCdEf1",
        ),
        ("m" * 100, "m" * 100),  # 2.3.0's limit
    ],
)
def test_model_names_are_accepted(raw: str, expected: str) -> None:
    assert V.validate_model_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "EMPTY_MODEL"),
        ("", "EMPTY_MODEL"),
        ("  ", "INVALID_MODEL_NAME"),  # 2.3.0: blanks only are an invalid name, not an empty one
        ("m" * 101, "MODEL_NAME_TOO_LONG"),
        ("gpt-4o\nmini", "INVALID_MODEL_NAME"),
        ("gpt\t4", "INVALID_MODEL_NAME"),
    ],
)
def test_bad_model_names_are_refused(raw: str | None, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_model_name(raw)
    assert info.value.error_code == code
    assert_names_fix(info.value)


# --- API keys --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        ("openai", OPENAI_PROJECT_KEY),
        ("openai", OPENAI_SERVICE_KEY),
        ("openai", OPENAI_LEGACY_KEY),
        ("OpenAI", OPENAI_PROJECT_KEY),
        ("openrouter", OPENROUTER_KEY),
        ("anthropic", ANTHROPIC_KEY),
        ("google", GOOGLE_KEY),
        ("google-genai", GOOGLE_KEY),
        ("my_vllm", "token-abc123"),
        ("github_copilot", "ghu_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    ],
)
def test_modern_api_keys_are_accepted(provider: str, key: str) -> None:
    assert V.validate_api_key(key, provider) == key


def test_api_key_surrounding_whitespace_is_stripped() -> None:
    assert V.validate_api_key(f"  {OPENAI_PROJECT_KEY}\n", "openai") == OPENAI_PROJECT_KEY


@pytest.mark.parametrize(
    ("provider", "key", "code"),
    [
        ("openai", None, "EMPTY_API_KEY"),
        ("openai", "", "EMPTY_API_KEY"),
        ("openai", "   \n", "INVALID_API_KEY"),
        ("openai", OPENAI_PROJECT_KEY[:30] + " " + OPENAI_PROJECT_KEY[30:], "INVALID_API_KEY_FORMAT"),
        ("openai", OPENAI_PROJECT_KEY[:30] + "\n" + OPENAI_PROJECT_KEY[30:], "INVALID_API_KEY_FORMAT"),
        ("openai", "Bearer " + OPENAI_PROJECT_KEY, "INVALID_API_KEY_FORMAT"),
        ("openai", f'"{OPENAI_PROJECT_KEY}"', "INVALID_API_KEY_FORMAT"),
        ("openai", "sk-proj-äöü" + "x" * 30, "INVALID_API_KEY_FORMAT"),
        ("openai", "sk-abc123", "INVALID_API_KEY_FORMAT"),
        ("openai", "org-" + "q" * 30, "INVALID_API_KEY_FORMAT"),
        ("anthropic", OPENAI_PROJECT_KEY, "INVALID_API_KEY_FORMAT"),
        ("openrouter", ANTHROPIC_KEY, "INVALID_API_KEY_FORMAT"),
        ("google", OPENAI_LEGACY_KEY, "INVALID_API_KEY_FORMAT"),
        ("my_vllm", "abc12", "INVALID_API_KEY_FORMAT"),
    ],
)
def test_broken_api_keys_are_refused_without_echoing_the_key(
    provider: str, key: str | None, code: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_api_key(key, provider)
    err = info.value
    assert err.error_code == code
    assert_names_fix(err)
    assert provider in err.message
    if key and len(key.strip()) >= 5:
        shown = json.dumps(err.to_dict()) + repr(err) + str(err)
        for fragment in (key, key.strip(), key.strip()[:12], key.strip()[-12:]):
            assert fragment not in shown


# --- file paths ------------------------------------------------------------------------------------------


def test_file_path_is_expanded_and_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert V.validate_file_path("~/a/../b.txt") == tmp_path / "b.txt"
    assert V.validate_file_path(tmp_path / "x.txt") == tmp_path / "x.txt"


def test_file_must_exist(tmp_path: Path) -> None:
    existing = tmp_path / "here.txt"
    existing.write_text("x")
    assert V.validate_file_path(str(existing), must_exist=True) == existing
    with pytest.raises(FileValidationError) as info:
        V.validate_file_path(str(tmp_path / "missing.txt"), must_exist=True)
    assert info.value.error_code == "FILE_VALIDATION_ERROR"
    assert "does not exist" in info.value.message
    assert info.value.suggestion


def test_writable_file_in_missing_directories_is_accepted(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "answer.txt"
    assert V.validate_file_path(str(target), must_be_writable=True) == target


@pytest.mark.parametrize("raw", [None, "", "   ", "bad\x00name.txt"])
def test_empty_or_nul_paths_are_refused(raw: str | None) -> None:
    with pytest.raises(FileValidationError) as info:
        V.validate_file_path(raw)
    assert info.value.error_code == "FILE_VALIDATION_ERROR"
    assert isinstance(info.value, ValidationError)


def test_directory_is_not_a_writable_file(tmp_path: Path) -> None:
    with pytest.raises(FileValidationError, match="is a directory"):
        V.validate_file_path(str(tmp_path), must_be_writable=True)


def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    script = (
        "import sys\n"
        "from modelforge.validation import InputValidator\n"
        "from modelforge.exceptions import FileValidationError\n"
        "try:\n"
        f"    InputValidator.validate_file_path({str(locked / 'out.txt')!r}, must_be_writable=True)\n"
        "except FileValidationError as err:\n"
        "    print(err.message); sys.exit(3)\n"
    )
    try:
        result = run_python(script, home=tmp_path)
    finally:
        locked.chmod(0o700)
    assert result.returncode == 3, result.stderr
    assert "not writable" in result.stdout


# --- URLs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "require_https"),
    [
        ("https://api.openai.com/v1", True),
        ("  https://openrouter.ai/api/v1 ", True),
        ("http://localhost:11434", True),
        ("http://127.0.0.1:8080/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://ollama.localhost:11434", True),
        ("http://gpu-box.lan:11434", False),
        ("HTTPS://API.EXAMPLE.COM", True),
    ],
)
def test_urls_are_accepted(url: str, require_https: bool) -> None:
    assert V.validate_url(url, require_https=require_https) == url.strip()


@pytest.mark.parametrize(
    ("url", "require_https", "code"),
    [
        (None, True, "EMPTY_URL"),
        ("", True, "EMPTY_URL"),
        ("api.openai.com/v1", True, "URL_MISSING_SCHEME"),
        ("localhost:11434", False, "URL_MISSING_SCHEME"),
        ("ftp://files.example.com", False, "INVALID_URL_SCHEME"),
        ("https://", True, "URL_MISSING_DOMAIN"),
        ("http://api.example.com/v1", True, "HTTPS_REQUIRED"),
        ("http://10.0.0.5:11434", True, "HTTPS_REQUIRED"),
        ("https://api.example.com:99999", True, "INVALID_URL_FORMAT"),
        ("https://api.example .com", True, "INVALID_URL_FORMAT"),
    ],
)
def test_bad_urls_are_refused(url: str | None, require_https: bool, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_url(url, require_https=require_https)
    assert info.value.error_code == code
    assert_names_fix(info.value)


def test_url_errors_do_not_show_passwords() -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_url("http://alice:hunter2-very-secret@api.example.com/v1")
    assert info.value.error_code == "HTTPS_REQUIRED"
    assert "hunter2" not in json.dumps(info.value.to_dict())
    assert "https://api.example.com/v1" in info.value.message
    with pytest.raises(InvalidInputError) as info:
        V.validate_url("alice:hunter2-very-secret@api.example.com/v1")
    assert info.value.error_code == "URL_MISSING_SCHEME"
    assert "hunter2" not in json.dumps(info.value.to_dict())


def test_secret_str_keys_are_unwrapped() -> None:
    assert V.validate_api_key(SecretStr(OPENAI_PROJECT_KEY), "openai") == OPENAI_PROJECT_KEY  # type: ignore[arg-type]


# --- numbers and choices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (5, {}, 5),
        ("7", {}, 7),
        (" 8 ", {}, 8),
        (3.0, {}, 3),
        (0, {"min_value": 0}, 0),
        (10, {"max_value": 10}, 10),
    ],
)
def test_positive_integers(value: Any, kwargs: dict[str, int], expected: int) -> None:
    assert V.validate_positive_integer(value, "retries", **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "kwargs", "code"),
    [
        (None, {}, "NULL_VALUE"),
        ("abc", {}, "INVALID_INTEGER"),
        ("3.5", {}, "INVALID_INTEGER"),
        (2.5, {}, "INVALID_INTEGER"),
        (float("nan"), {}, "INVALID_INTEGER"),
        (True, {}, "INVALID_INTEGER"),
        (0, {}, "VALUE_TOO_SMALL"),
        (-3, {"min_value": 0}, "VALUE_TOO_SMALL"),
        (11, {"max_value": 10}, "VALUE_TOO_LARGE"),
    ],
)
def test_bad_integers_are_refused(value: Any, kwargs: dict[str, int], code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_positive_integer(value, "retries", **kwargs)
    assert info.value.error_code == code
    assert "retries" in info.value.message
    assert_names_fix(info.value)


def test_positive_numbers() -> None:
    assert V.validate_positive_number(0.2, "timeout") == 0.2
    assert V.validate_positive_number("30", "timeout") == 30.0
    for bad in (0, -1, float("nan"), "soon", None, True):
        with pytest.raises(InvalidInputError) as info:
            V.validate_positive_number(bad, "timeout")
        assert info.value.error_code == "INVALID_NUMBER"


def test_choice_returns_the_canonical_spelling() -> None:
    assert V.validate_choice("JSON", ["table", "json"], "format") == "json"
    assert V.validate_choice(" Table ", ("table", "json"), "format") == "table"
    assert V.validate_choice("json", {"table", "json"}, "format", case_sensitive=True) == "json"


@pytest.mark.parametrize(
    ("value", "case_sensitive", "code"),
    [
        (None, False, "EMPTY_CHOICE"),
        ("", False, "EMPTY_CHOICE"),
        ("xml", False, "INVALID_CHOICE"),
        ("JSON", True, "INVALID_CHOICE"),
    ],
)
def test_bad_choices_list_the_options(value: str | None, case_sensitive: bool, code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_choice(value, ["table", "json"], "format", case_sensitive=case_sensitive)
    assert info.value.error_code == code
    assert "json, table" in info.value.message
    assert_names_fix(info.value)


def test_long_choice_lists_are_shortened() -> None:
    with pytest.raises(InvalidInputError) as info:
        V.validate_choice("nope", [f"c{i:02d}" for i in range(20)], "colour")
    assert "(and 12 more)" in info.value.message
