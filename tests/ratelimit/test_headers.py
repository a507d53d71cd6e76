"""Reading OpenAI's and Anthropic's rate-limit headers (and retry-after) into an ``Observation``."""

from __future__ import annotations

import email.utils
import math

import pytest

from modelforge.policies._ratelimit_headers import parse_duration
from modelforge.policies.ratelimit import Observation, parse_rate_limit_headers

WALL = 1_750_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
        ("17.227s", 17.227),
        ("250us", 0.00025),
        ("2", 2.0),
        ("0", 0.0),
        ("", None),
        ("soon", None),
        ("5x", None),
        ("s", None),
        ("-3", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_openai_durations(text: str, seconds: float | None) -> None:
    parsed = parse_duration(text)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds)


def test_openai_headers() -> None:
    observation = parse_rate_limit_headers(
        {
            "X-RateLimit-Limit-Requests": "3500",
            "x-ratelimit-remaining-requests": "3499",
            "x-ratelimit-reset-requests": "17ms",
            "x-ratelimit-limit-tokens": "90000",
            "x-ratelimit-remaining-tokens": "89000",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert observation == Observation(3500, 3499, pytest.approx(0.017), 90000, 89000, 360.0, None)


def test_anthropic_headers_with_rfc3339_resets() -> None:
    observation = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2025-06-15T15:06:42Z",
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "39000",
            "anthropic-ratelimit-tokens-reset": "2025-06-15T15:06:41.500000+00:00",
        },
        wall_clock=lambda: 1749999999.0,  # 2025-06-15T15:06:39Z
    )
    assert observation.limit_requests == 50
    assert observation.remaining_requests == 49
    assert observation.reset_requests == pytest.approx(3.0)
    assert observation.limit_tokens == 40000
    assert observation.remaining_tokens == 39000
    assert observation.reset_tokens == pytest.approx(2.5)


def test_anthropic_input_tokens_stand_in_for_tokens() -> None:
    observation = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-input-tokens-limit": "20000",
            "anthropic-ratelimit-input-tokens-remaining": "100",
            "anthropic-ratelimit-input-tokens-reset": "not a time",
        }
    )
    assert (observation.limit_tokens, observation.remaining_tokens, observation.reset_tokens) == (
        20000,
        100,
        None,
    )


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        ({"retry-after": email.utils.formatdate(WALL + 30, usegmt=True)}, 30.0),
        ({"retry-after": "later"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, 3600.0),
    ],
)
def test_retry_after_forms(headers: dict[str, str], seconds: float | None) -> None:
    observation = parse_rate_limit_headers(headers, wall_clock=lambda: WALL)
    if seconds is None:
        assert observation.retry_after is None
    else:
        assert observation.retry_after == pytest.approx(seconds, abs=1)


def test_garbage_is_ignored() -> None:
    observation = parse_rate_limit_headers(
        {"x-ratelimit-remaining-requests": "many", "x-ratelimit-limit-tokens": "-5", "content-type": "x"}
    )
    assert observation.empty
    assert not math.isnan(observation.reset_requests or 0.0)
