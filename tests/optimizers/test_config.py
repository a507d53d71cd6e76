"""The ``optimizations`` section: what it accepts, what it refuses (naming the key), and its defaults."""

from __future__ import annotations

from typing import Any

import pytest

from modelforge.optimizers import OptimizationConfig, validate_section
from modelforge.sections.optimizations import DEFAULT_KEEP_ALIVE, DEFAULT_MAX_NUM_CTX


def test_defaults() -> None:
    config = OptimizationConfig.from_config(None)
    assert config == OptimizationConfig.from_config({})
    assert config.enabled and config.prompt_caching and config.context_caching
    assert (config.seed, config.json_mode) == (None, None)  # the family decides
    assert (config.keep_alive, config.num_ctx, config.max_num_ctx) == (
        DEFAULT_KEEP_ALIVE,
        "auto",
        DEFAULT_MAX_NUM_CTX,
    )
    assert config.safety_settings == {}


def test_a_full_section() -> None:
    config = OptimizationConfig.from_config(
        {
            "enabled": True,
            "seed": 7,
            "json_mode": False,
            "prompt_caching": {"min_tokens": 2048},
            "context_caching": {"min_tokens": 4096, "ttl": "10m"},
            "safety_settings": {"harm_category_harassment": "block_only_high"},
            "keep_alive": "1h30m",
            "num_ctx": 8192,
            "max_num_ctx": 65536,
        }
    )
    assert (config.seed, config.json_mode) == (7, False)
    assert (config.prompt_caching, config.prompt_caching_min_tokens) == (True, 2048)
    assert (config.context_caching_min_tokens, config.context_caching_ttl) == (4096, 600.0)
    assert config.safety_settings == {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH"}
    assert (config.keep_alive, config.num_ctx, config.max_num_ctx) == ("1h30m", 8192, 65536)


def test_switches_off() -> None:
    config = OptimizationConfig.from_config(
        {
            "seed": False,
            "prompt_caching": False,
            "context_caching": {"enabled": False},
            "keep_alive": False,
            "num_ctx": False,
        }
    )
    assert config.seed is False
    assert not config.prompt_caching and not config.context_caching
    assert config.keep_alive is None and config.num_ctx is None


@pytest.mark.parametrize(
    ("section", "key", "allowed"),
    [
        ({"sed": 1}, "optimizations.sed", "allowed keys"),
        ({"enabled": "yes"}, "optimizations.enabled", "true or false"),
        ({"seed": "abc"}, "optimizations.seed", "whole number"),
        ({"json_mode": 1}, "optimizations.json_mode", "true or false"),
        ({"prompt_caching": {"min_token": 5}}, "optimizations.prompt_caching.min_token", "min_tokens"),
        ({"prompt_caching": {"min_tokens": 0}}, "optimizations.prompt_caching.min_tokens", ">= 1"),
        ({"prompt_caching": "on"}, "optimizations.prompt_caching", "true, false or a mapping"),
        ({"context_caching": {"ttl": "soon"}}, "optimizations.context_caching.ttl", "600s"),
        ({"context_caching": {"ttl": 10}}, "optimizations.context_caching.ttl", "at least 60"),
        ({"safety_settings": {"HARM_CATEGORY_BOREDOM": "BLOCK_NONE"}}, "HARM_CATEGORY_BOREDOM", "HARASSMENT"),
        ({"safety_settings": {"HARM_CATEGORY_HARASSMENT": "SOMETIMES"}}, "HARASSMENT", "BLOCK_ONLY_HIGH"),
        ({"safety_settings": ["BLOCK_NONE"]}, "optimizations.safety_settings", "mapping"),
        ({"keep_alive": "ten minutes"}, "optimizations.keep_alive", "10m"),
        ({"num_ctx": "big"}, "optimizations.num_ctx", '"auto"'),
        ({"max_num_ctx": 1000}, "optimizations.max_num_ctx", ">= 2048"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(section: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_section(section)
    assert key in str(caught.value)
    assert allowed in str(caught.value)


def test_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="optimizations must be a mapping"):
        validate_section(["seed"])  # type: ignore[arg-type]
