"""``RateLimitConfig``: defaults, validation errors that name the key and what is allowed, no secrets."""

from __future__ import annotations

from typing import Any

import pytest

from modelforge.policies.ratelimit import RateLimitConfig


def test_defaults_and_provider_key() -> None:
    config = RateLimitConfig.from_config(
        {"requests_per_minute": 3500, "tokens_per_minute": 90000}, provider="openai"
    )
    assert config.backend == "local"
    assert config.key == "openai"
    assert config.window_seconds == 60.0
    limits = config.limits()
    assert (limits.requests, limits.tokens, limits.window) == (3500, 90000, 60.0)
    assert RateLimitConfig.from_config(None).limits().requests is None


def test_the_redis_example_of_the_issue() -> None:
    config = RateLimitConfig.from_config(
        {
            "requests_per_minute": 3500,
            "tokens_per_minute": 90000,
            "backend": "redis",
            "url": "redis://127.0.0.1:6379/0",
            "key": "openai",
        }
    )
    assert (config.backend, config.url, config.key) == ("redis", "redis://127.0.0.1:6379/0", "openai")


@pytest.mark.parametrize(
    ("section", "words"),
    [
        (
            {"requests_per_minuet": 1},
            ["rate_limit.requests_per_minuet", "allowed keys", "requests_per_minute"],
        ),
        ({"backend": "memcached"}, ["rate_limit.backend", "local, redis", "'memcached'"]),
        ({"backend": "redis"}, ["rate_limit.url", "required"]),
        ({"backend": "redis", "url": "http://x"}, ["rate_limit.url", "redis://"]),
        ({"requests_per_minute": 0}, ["rate_limit.requests_per_minute", ">= 1"]),
        ({"tokens_per_minute": 1.5}, ["rate_limit.tokens_per_minute", "whole number"]),
        ({"tokens_per_minute": True}, ["rate_limit.tokens_per_minute"]),
        ({"window_seconds": 0}, ["rate_limit.window_seconds", "> 0"]),
        ({"reservation_timeout": "long"}, ["rate_limit.reservation_timeout"]),
        ({"key": ""}, ["rate_limit.key"]),
    ],
)
def test_errors_name_the_key_and_what_is_allowed(section: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        RateLimitConfig.validate_section(section)
    for word in words:
        assert word in str(info.value)


def test_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="rate_limit must be a mapping"):
        RateLimitConfig.from_config([1, 2])  # type: ignore[arg-type]


def test_the_password_never_shows() -> None:
    url = "redis://user:hunter2-secret@cache:6380/1"
    config = RateLimitConfig.from_config({"backend": "redis", "url": url})
    assert "hunter2" not in repr(config)
    assert "redis://user:***@cache:6380/1" in repr(config)
    with pytest.raises(ValueError) as info:
        RateLimitConfig.from_config({"backend": "redis", "url": "http://:hunter2@cache"})
    assert "hunter2" not in str(info.value)
