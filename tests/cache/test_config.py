"""The ``cache`` section: what it accepts, and errors naming ``cache.<key>`` and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from modelforge.cache import CacheConfig, validate_section, with_cache
from modelforge.exceptions import InvalidInputError

PASSWORD = "cache-section-pw-3c9d"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (None, CacheConfig(enabled=False)),
        (False, CacheConfig(enabled=False)),
        (True, CacheConfig()),
        ({}, CacheConfig()),
        ({"ttl": 300, "max_entries": 10}, CacheConfig(ttl=300, max_entries=10)),
        ({"backend": "sqlite", "path": "~/answers.db"}, CacheConfig(backend="sqlite", path="~/answers.db")),
        (
            {"backend": "redis", "url": "rediss://cache:6380/1", "namespace": "team-a", "timeout": 0.5},
            CacheConfig(backend="redis", url="rediss://cache:6380/1", namespace="team-a", timeout=0.5),
        ),
        ({"serve_stale": True, "stale_ttl": 60}, CacheConfig(serve_stale=True, stale_ttl=60)),
        ({"enabled": False}, CacheConfig(enabled=False)),
    ],
)
def test_valid_sections(section: Any, expected: CacheConfig) -> None:
    assert CacheConfig.from_config(section) == expected
    validate_section(section)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"ttl": 0}, "cache.ttl must be a number of seconds > 0"),
        ({"ttl": "300"}, "cache.ttl must be a number of seconds > 0"),
        ({"ttl": float("inf")}, "cache.ttl must be a number of seconds > 0"),
        ({"stale_ttl": -1}, "cache.stale_ttl must be a number of seconds > 0"),
        ({"timeout": True}, "cache.timeout must be a number of seconds > 0"),
        ({"backend": "disk"}, "cache.backend must be one of: memory, sqlite, redis; got 'disk'"),
        ({"max_entries": 0}, "cache.max_entries must be a whole number >= 1"),
        ({"max_entries": 1.5}, "cache.max_entries must be a whole number >= 1"),
        ({"namespace": " "}, "cache.namespace must be a non-empty string"),
        ({"enabled": "yes"}, "cache.enabled must be true or false"),
        ({"serve_stale": 1}, "cache.serve_stale must be true or false"),
        ({"ttl_seconds": 5}, "unknown key cache.ttl_seconds; allowed keys: backend, enabled, max_entries"),
        ({"backend": "redis"}, "cache.url is required when cache.backend is redis"),
        ({"backend": "redis", "url": "http://cache:6379"}, "cache.url must start with one of: redis://"),
        ({"url": "redis://cache:6379/0"}, "cache.url applies only to backend redis"),
        ({"path": "/tmp/x.db"}, "cache.path applies only to backend sqlite"),
        ({"backend": "sqlite", "path": ""}, "cache.path must be a file path"),
        ("yes", "cache must be true, false or a mapping"),
        ([1], "cache must be true, false or a mapping"),
    ],
)
def test_invalid_sections_name_the_key(section: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        validate_section(section)
    assert message in str(raised.value)


def test_redis_password_never_shown() -> None:
    url = f"redis://:{PASSWORD}@cache:6379/0"
    config = CacheConfig.from_config({"backend": "redis", "url": url})
    assert PASSWORD not in repr(config)
    assert "redis://:***@cache:6379/0" in repr(config)
    assert config.location == "redis://:***@cache:6379/0"
    with pytest.raises(ValueError) as raised:
        validate_section({"backend": "redis", "url": f"http://:{PASSWORD}@cache:6379/0"})
    assert PASSWORD not in str(raised.value)


def test_arguments_override_the_section() -> None:
    assert CacheConfig.from_config(None, enable=True) == CacheConfig()
    assert CacheConfig.from_config({"ttl": 60}, enable=False, ttl=5) == CacheConfig(enabled=False, ttl=5)
    assert CacheConfig.from_config(True, ttl=300).ttl == 300


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), "300"])
def test_bad_cache_ttl_argument(ttl: Any) -> None:
    with pytest.raises(InvalidInputError, match="cache_ttl must be a number of seconds > 0"):
        CacheConfig.from_config(None, enable=True, ttl=ttl)


def test_disabled_cache_returns_the_model_unchanged() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    model = FakeListChatModel(responses=["x"])
    assert with_cache(model, "p", {"ttl": 60}, enable=False) is model
    assert with_cache(model, "p", {"enabled": False}) is model
    assert with_cache(model, "p", None) is model
    with pytest.raises(ValueError, match=r"cache\.backend"):
        with_cache(model, "p", {"backend": "nope"}, enable=True)
