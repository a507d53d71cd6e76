"""The OAuth device flow: pure polling decisions, then the real protocol against the test server."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime
from typing import Any, Literal

import pytest

from modelforge.auth import (
    DeviceCodeExpiredError,
    DeviceFlowSettings,
    arun_device_flow,
    get_auth_data,
    run_device_flow,
)
from modelforge.auth._http import HttpResponse
from modelforge.auth.device_flow import DeviceCode, PollState, parse_device_code
from modelforge.exceptions import (
    AuthenticationError,
    DeviceFlowError,
    NetworkConnectionError,
    NetworkError,
    TokenExpiredError,
)

TOKEN = "gho_devicegrantedtoken000000000000000"


def ok(**body: Any) -> HttpResponse:
    return HttpResponse(200, dict(body))


def state(interval: float = 5, expires_in: float = 900, now: float = 0) -> PollState:
    code = DeviceCode("dc", "ABCD-EFGH", "https://github.com/login/device", expires_in, interval)
    return PollState.start("github_copilot", code, now=now)


# --- pure decisions ---------------------------------------------------------------------------------------


def test_pending_keeps_polling_at_the_interval() -> None:
    s = state(interval=5)
    assert s.next_delay(0) == 5
    assert s.on_response(ok(error="authorization_pending"), now=5) is None
    assert s.next_delay(5) == 5


def test_slow_down_uses_the_servers_interval_else_adds_five() -> None:
    s = state(interval=5)
    s.on_response(ok(error="slow_down", interval=12), now=5)
    assert s.next_delay(5) == 12
    s.on_response(ok(error="slow_down"), now=17)
    assert s.next_delay(17) == 17


def test_stops_at_expires_in() -> None:
    s = state(interval=5, expires_in=12)
    assert s.next_delay(10) == 2  # never sleeps past the deadline
    with pytest.raises(DeviceCodeExpiredError) as info:
        s.next_delay(12)
    assert isinstance(info.value, DeviceFlowError) and isinstance(info.value, TokenExpiredError)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"error": "expired_token"}, 200, DeviceCodeExpiredError),
        ({"error": "access_denied"}, 200, DeviceFlowError),
        ({"error": "incorrect_client_credentials"}, 200, DeviceFlowError),
        ({"error": "unsupported_grant_type"}, 200, DeviceFlowError),
        ({"error": "incorrect_device_code", "error_description": "bad"}, 200, DeviceFlowError),
        ({}, 404, DeviceFlowError),
        ({}, 502, NetworkError),
    ],
)
def test_terminal_answers(body: dict[str, Any], status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        state().on_response(HttpResponse(status, body), now=5)
    assert type(info.value) is error
    if body.get("error"):
        assert info.value.details["oauth_error"] == body["error"]  # type: ignore[attr-defined]


def test_granted_answer_becomes_stored_form() -> None:
    data = state().on_response(
        ok(access_token=TOKEN, token_type="bearer", expires_in=3600), now=1_700_000_000
    )
    assert data is not None and data["access_token"] == TOKEN
    assert datetime.fromisoformat(data["expires_at"]).timestamp() == 1_700_003_600


def test_device_code_errors() -> None:
    with pytest.raises(DeviceFlowError, match="Not Found"):
        parse_device_code("gh", HttpResponse(404, {"error": "Not Found"}))
    with pytest.raises(NetworkError):
        parse_device_code("gh", HttpResponse(503, {}))
    code = parse_device_code(
        "gh", ok(device_code="d" * 40, user_code="AB-CD", verification_uri="https://x/device")
    )
    assert (code.interval, code.expires_in) == (5, 900)  # RFC defaults when absent
    assert "d" * 40 not in repr(code)


# --- against the GitHub side of the test server -----------------------------------------------------------


def settings(server: Any, client_id: str = "01ab8ac9400c4e429b23") -> DeviceFlowSettings:
    base = server.github_base_url
    return DeviceFlowSettings(
        "github_copilot",
        client_id,
        base + "/login/device/code",
        base + "/login/oauth/access_token",
        "read:user",
    )


def polls(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path == "/login/oauth/access_token"]


def test_granted_honours_interval_and_slow_down(server: Any, clock: Any) -> None:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(
        pending_polls=3, slow_down_on=(2,), interval=5, access_token=TOKEN, token_expires_in=28800
    )
    prompts: list[tuple[str, str]] = []
    data = run_device_flow(
        settings(server), on_prompt=lambda c, u: prompts.append((c, u)), sleep=clock.sleep, clock=clock
    )
    # poll 1 pending, poll 2 slow_down (GitHub sends interval 10), poll 3 pending, poll 4 granted
    assert clock.sleeps == [5, 5, 10, 10]
    assert prompts == [("WDJB-MJHT", server.github_base_url + "/login/device")]
    assert data["access_token"] == TOKEN
    assert get_auth_data("github_copilot")["access_token"] == TOKEN
    stored_expiry = datetime.fromisoformat(get_auth_data("github_copilot")["expires_at"])
    offset = stored_expiry.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert abs(stored_expiry.timestamp() - (clock.now + 28800)) < 1
    first = next(r for r in server.requests if r.path == "/login/device/code")
    assert first.headers["accept"] == "application/json"
    form = [dict(p.split("=", 1) for p in r.body.decode().split("&")) for r in polls(server)]
    assert all(f["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code" for f in form)
    assert len(form) == 4


@pytest.mark.parametrize(
    ("outcome", "error"), [("denied", DeviceFlowError), ("expired", DeviceCodeExpiredError)]
)
def test_denied_and_expired(
    server: Any, clock: Any, outcome: Literal["denied", "expired"], error: type[Exception]
) -> None:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(pending_polls=1, outcome=outcome)
    with pytest.raises(error) as info:
        run_device_flow(settings(server), on_prompt=lambda c, u: None, sleep=clock.sleep, clock=clock)
    assert type(info.value) is error
    assert "modelforge auth login --provider github_copilot" in (info.value.suggestion or "")  # type: ignore[attr-defined]
    assert get_auth_data("github_copilot") == {}


def test_stops_polling_at_expires_in(server: Any, clock: Any) -> None:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(pending_polls=10_000, interval=5, expires_in=30)
    with pytest.raises(DeviceCodeExpiredError):
        run_device_flow(settings(server), on_prompt=lambda c, u: None, sleep=clock.sleep, clock=clock)
    assert sum(clock.sleeps) == 30
    assert len(polls(server)) == 6


def test_wrong_client_id_ends_cleanly(server: Any, clock: Any) -> None:
    server.github_client_id = "the-right-one"
    with pytest.raises(DeviceFlowError):
        run_device_flow(settings(server), on_prompt=lambda c, u: None, sleep=clock.sleep, clock=clock)


def test_transport_error_is_a_network_error(clock: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    dead = DeviceFlowSettings("gh", "cid", base + "/login/device/code", base + "/token")
    with pytest.raises(NetworkConnectionError):
        run_device_flow(dead, on_prompt=lambda c, u: None, sleep=clock.sleep, clock=clock)


async def test_async_flow_matches_the_sync_one(server: Any, clock: Any) -> None:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(pending_polls=3, slow_down_on=(2,), interval=5, access_token=TOKEN)
    shown: list[str] = []

    async def prompt(code: str, uri: str) -> None:
        shown.append(code)

    data = await arun_device_flow(settings(server), on_prompt=prompt, sleep=clock.asleep, clock=clock)
    assert clock.sleeps == [5, 5, 10, 10]
    assert shown == ["WDJB-MJHT"]
    assert data["access_token"] == TOKEN
    assert get_auth_data("github_copilot")["access_token"] == TOKEN


async def test_async_denied(server: Any, clock: Any) -> None:
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(pending_polls=0, outcome="denied")
    with pytest.raises(DeviceFlowError) as info:
        await arun_device_flow(settings(server), on_prompt=lambda c, u: None, sleep=clock.asleep, clock=clock)
    assert isinstance(info.value, AuthenticationError)


async def test_async_flow_does_not_block_the_loop(server: Any) -> None:
    """Real (scaled-down) sleeps: a concurrent task keeps ticking while the flow polls."""
    from modelforge.testing import DeviceFlowScript

    server.device_flow = DeviceFlowScript(pending_polls=3, interval=5, access_token=TOKEN)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    async def short_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / 100)  # 5 s -> 50 ms

    task = asyncio.create_task(ticker())
    data = await arun_device_flow(settings(server), on_prompt=lambda c, u: None, sleep=short_sleep)
    done.set()
    await task
    assert data["access_token"] == TOKEN
    assert ticks >= 20  # ~200 ms of flow; a blocked loop would tick once or twice
