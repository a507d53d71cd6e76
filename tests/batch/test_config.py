"""The ``batch`` section: defaults, accepted spellings, and errors that name the key and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from modelforge.batch import BatchConfig, validate_section
from modelforge.exceptions import ConfigurationError, InvalidInputError
from modelforge.registry import ModelForgeRegistry
from modelforge.sections.batch import FAMILY_LIMITS
from modelforge.testing import ProviderServer
from tests.batch.conftest import batch_config, prompts, write_config


def test_defaults_are_live_calls_eight_at_a_time() -> None:
    config = BatchConfig.from_config(None)
    assert (config.max_concurrent, config.use_batch_api, config.completion_window) == (8, False, "24h")
    assert config.limits("openai_compatible") == FAMILY_LIMITS["openai_compatible"]
    assert config.limits("anthropic").requests == 100_000


@pytest.mark.parametrize(
    ("written", "expected"),
    [("auto", "auto"), ("AUTO", "auto"), ("true", True), ("false", False), (True, True)],
)
def test_use_batch_api_spellings(written: Any, expected: Any) -> None:
    assert BatchConfig.from_config({"use_batch_api": written}).use_batch_api == expected


def test_own_limits_override_the_providers() -> None:
    limits = BatchConfig.from_config({"max_requests_per_job": 300, "max_tokens_per_job": 9000}).limits(
        "anthropic"
    )
    assert (limits.requests, limits.tokens, limits.bytes) == (300, 9000, FAMILY_LIMITS["anthropic"].bytes)


@pytest.mark.parametrize(
    ("section", "key", "allowed"),
    [
        ({"max_concurent": 4}, "batch.max_concurent", "allowed keys: completion_window"),
        ({"use_batch_api": "sometimes"}, "batch.use_batch_api", "true, false, auto"),
        ({"max_concurrent": 0}, "batch.max_concurrent", ">= 1"),
        ({"max_concurrent": "8"}, "batch.max_concurrent", "whole number"),
        ({"min_batch_api_items": -1}, "batch.min_batch_api_items", ">= 0"),
        ({"poll_interval": -5}, "batch.poll_interval", ">= 0"),
        ({"poll_interval": float("nan")}, "batch.poll_interval", "seconds"),
        ({"max_wait": 0}, "batch.max_wait", "> 0"),
        ({"max_requests_per_job": 0}, "batch.max_requests_per_job", ">= 1"),
        ({"max_tokens_per_job": 2.5}, "batch.max_tokens_per_job", "whole number"),
        ({"completion_window": "48h"}, "batch.completion_window", "24h"),
    ],
)
def test_errors_name_the_key_and_what_is_allowed(section: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_section(section)
    assert key in str(caught.value) and allowed in str(caught.value)


def test_a_section_that_is_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="batch must be a mapping"):
        validate_section(["auto"])  # type: ignore[arg-type]


async def test_a_bad_section_stops_the_batch_with_a_configuration_error(
    server: ProviderServer, keys: None
) -> None:
    write_config(batch_config(server, use_batch_api="sometimes"))
    with pytest.raises(ConfigurationError) as caught:
        await ModelForgeRegistry().batch_invoke(prompts(2))
    assert "batch.use_batch_api" in str(caught.value) and "openai" in str(caught.value)


async def test_prompts_must_be_a_list(server: ProviderServer, keys: None) -> None:
    write_config(batch_config(server))
    with pytest.raises(InvalidInputError, match="list"):
        await ModelForgeRegistry().batch_invoke("prompt 0")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="use_batch_api"):
        await ModelForgeRegistry().batch_invoke(prompts(2), use_batch_api="yes")  # type: ignore[arg-type]
