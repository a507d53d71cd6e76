"""Token records and refresh before expiry: one refresh for many concurrent callers, saved to the store."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from modelforge.auth import (
    DeviceFlowSettings,
    OAuthTokenSource,
    TokenRecord,
    access_token_source,
    get_auth_data,
    run_device_flow,
)
from modelforge.auth.tokens import format_expires_at, parse_expires_at, token_auth_data
from modelforge.config_schema import ProviderConfig
from modelforge.exceptions import TokenExpiredError

ACCESS = "gho_refreshableaccesstoken00000000000"
REFRESH = "ghr_refreshtoken000000000000000000000"


# --- pure parts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2025-01-01T12:00:00+00:00", "2025-01-01T12:00:00Z", "2025-01-01T12:00:00", "2025-01-01T13:00:00+01:00"],
)
def test_parse_expires_at_forms(value: str) -> None:
    assert parse_expires_at(value) == datetime(2025, 1, 1, 12, tzinfo=UTC).timestamp()


def test_expires_at_round_trip_and_garbage() -> None:
    assert parse_expires_at(format_expires_at(1_700_000_000.0)) == 1_700_000_000.0
    assert format_expires_at(0).endswith("+00:00")
    assert parse_expires_at("not a date") is None
    assert parse_expires_at(None) is None


def test_record_freshness_with_skew() -> None:
    record = TokenRecord(ACCESS, REFRESH, expires_at=1000.0)
    assert record.is_fresh(939.0)
    assert not record.is_fresh(940.0)  # within the default 60 s skew
    assert TokenRecord(ACCESS).is_fresh(1e12)  # no expiry: never stale
    assert ACCESS not in repr(record) and REFRESH not in repr(record)


def test_token_auth_data_keeps_unrotated_refresh_token() -> None:
    data = token_auth_data(
        {"access_token": "gho_new0000000000000", "expires_in": 100},
        now=0,
        previous={"refresh_token": REFRESH},
    )
    assert data["refresh_token"] == REFRESH
    assert parse_expires_at(data["expires_at"]) == 100


def test_expired_without_refresh_token_says_log_in_again(clock: Any) -> None:
    source = OAuthTokenSource(
        "github_copilot",
        initial={"access_token": ACCESS, "expires_at": format_expires_at(clock.now + 30)},
        token_url="http://127.0.0.1:9/token",
        client_id="cid",
        clock=clock,
    )
    with pytest.raises(TokenExpiredError) as info:
        source.get_token()
    assert "modelforge auth login --provider github_copilot" in (info.value.suggestion or "")


# --- refresh against the test server ----------------------------------------------------------------------


def provider(server: Any) -> ProviderConfig:
    base = server.github_base_url
    return ProviderConfig.model_validate(
        {
            "llm_type": "github_copilot",
            "auth_strategy": "device_flow",
            "auth_details": {
                "client_id": "01ab8ac9400c4e429b23",
                "device_code_url": base + "/login/device/code",
                "token_url": base + "/login/oauth/access_token",
                "scope": "read:user",
            },
        }
    )


def login(server: Any, clock: Any, expires_in: int = 3600) -> None:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(
        pending_polls=0, access_token=ACCESS, refresh_token=REFRESH, token_expires_in=expires_in
    )
    details = provider(server).auth_details
    assert details is not None
    settings = DeviceFlowSettings.from_details("github_copilot", details)
    run_device_flow(settings, on_prompt=lambda c, u: None, sleep=clock.sleep, clock=clock)


def refresh_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if b"grant_type=refresh_token" in r.body]


def test_fresh_token_is_used_as_is(server: Any, clock: Any) -> None:
    login(server, clock)
    source = access_token_source("github_copilot", provider(server), clock=clock)
    assert source.get_token() == ACCESS
    assert refresh_requests(server) == []


def test_refreshes_within_skew_and_saves(server: Any, clock: Any) -> None:
    login(server, clock, expires_in=3600)
    source = access_token_source("github_copilot", provider(server), clock=clock)
    clock.advance(3600 - 59)
    token = source.get_token()
    assert token == ACCESS + "_r1"
    assert len(refresh_requests(server)) == 1
    stored = get_auth_data("github_copilot")
    assert stored["access_token"] == ACCESS + "_r1"
    assert stored["refresh_token"] == REFRESH + "_r1"
    expires_at = parse_expires_at(stored["expires_at"])
    assert expires_at is not None and abs(expires_at - (clock.now + 3600)) < 1
    assert source.get_token() == token  # fresh again: no second refresh
    assert len(refresh_requests(server)) == 1


def test_rejected_refresh_token_means_log_in_again(server: Any, clock: Any) -> None:
    login(server, clock)
    server.reset()  # the server forgets the refresh token it issued
    source = access_token_source("github_copilot", provider(server), clock=clock)
    clock.advance(4000)
    with pytest.raises(TokenExpiredError, match="bad_refresh_token"):
        source.get_token()


def test_threads_during_expiry_cause_one_refresh(server: Any, clock: Any) -> None:
    login(server, clock)
    source = access_token_source("github_copilot", provider(server), clock=clock)
    clock.advance(4000)
    barrier = threading.Barrier(8)

    def call() -> str:
        barrier.wait(5)
        return source.get_token()

    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(lambda _: call(), range(8)))
    assert tokens == [ACCESS + "_r1"] * 8
    assert len(refresh_requests(server)) == 1


async def test_tasks_during_expiry_cause_one_refresh(server: Any, clock: Any) -> None:
    login(server, clock)
    source = access_token_source("github_copilot", provider(server), clock=clock)
    clock.advance(4000)
    tokens = await asyncio.gather(*(source.aget_token() for _ in range(8)))
    assert tokens == [ACCESS + "_r1"] * 8
    assert len(refresh_requests(server)) == 1
    assert get_auth_data("github_copilot")["access_token"] == ACCESS + "_r1"


async def test_threads_and_tasks_together_cause_one_refresh(server: Any, clock: Any) -> None:
    login(server, clock)
    source = access_token_source("github_copilot", provider(server), clock=clock)
    clock.advance(4000)
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(
        *(source.aget_token() for _ in range(4)),
        *(loop.run_in_executor(None, source.get_token) for _ in range(4)),
    )
    assert set(results) == {ACCESS + "_r1"}
    assert len(refresh_requests(server)) == 1


def test_a_token_refreshed_by_another_process_is_picked_up(server: Any, clock: Any) -> None:
    login(server, clock)
    ours = access_token_source("github_copilot", provider(server), clock=clock)
    theirs = access_token_source("github_copilot", provider(server), clock=clock)
    clock.advance(4000)
    assert theirs.get_token() == ACCESS + "_r1"
    assert ours.get_token() == ACCESS + "_r1"  # read from the store, no second refresh
    assert len(refresh_requests(server)) == 1


def test_unused_counters_and_helpers_are_gone() -> None:
    from modelforge.auth import CopilotTokenSource

    assert not hasattr(DeviceFlowSettings, "from_provider")  # from_details is the one constructor
    assert not hasattr(OAuthTokenSource("p", initial={"access_token": ACCESS}), "refresh_count")
    assert not hasattr(CopilotTokenSource(ACCESS), "exchange_count")
