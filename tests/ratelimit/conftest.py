"""Fixtures for the rate-limit tests: a fake clock, and a real Redis at 127.0.0.1:6379 with a unique key.

Redis tests skip when no Redis answers there, except under CI (``CI=true``), where they fail: CI has Redis.
Every test that uses ``redis_key`` gets a key of its own, and its Redis keys are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests._clock import FakeClock

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def _redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        _redis_client().ping()
    except Exception as err:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI needs Redis at {REDIS_URL} for the rate-limit tests") from err
        pytest.skip(f"no Redis at {REDIS_URL}: {err}")
    return REDIS_URL


@pytest.fixture
def redis_key(redis_url: str) -> Iterator[str]:
    key = f"test-{uuid.uuid4().hex}"
    yield key
    client = _redis_client()
    for name in client.scan_iter(match=f"modelforge:ratelimit:{{{key}}}:*"):
        client.delete(name)
    client.close()
