"""Counting a request from when it was sent: the send mark of each attempt, stamped by the pooled transport.

Unit tests on the fake clock (the mark's own life in a context, ``Reservation.settle(sent_ago=...)``,
``Admission.release``, the Redis backend's local fallback), then end to end through ``ProviderServer``:
every family's sync and async ``invoke`` and ``stream`` stamps the mark of its attempt and settles with
its send time, and a request that waits for the only pooled connection is stamped when it goes out.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from modelforge import _send_marks, config
from modelforge.exceptions import InvalidInputError, NetworkConnectionError, RateLimitError
from modelforge.policies.admission import Admission, limiter_for
from modelforge.policies.ratelimit import RateLimitConfig, RateLimiter
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.providers.conftest import CASES, FamilyCase, provider_config
from tests.ratelimit.conftest import FakeClock
from tests.ratelimit.test_redis_fallback import free_port

# --- the mark --------------------------------------------------------------------------------------------


def test_the_first_stamp_wins_and_sent_ago_follows_the_clock(clock: FakeClock) -> None:
    mark = _send_marks.SendMark(clock)
    assert mark.sent is None and mark.sent_ago() is None
    clock.advance(1)
    mark.stamp()
    clock.advance(2)
    mark.stamp()  # a redirect, say: the request had already gone out
    assert mark.sent == pytest.approx(1001)
    assert mark.sent_ago() == pytest.approx(2)


def test_begin_sets_the_mark_and_end_restores_what_was_there() -> None:
    assert _send_marks.current() is None
    outer = _send_marks.begin()
    inner = _send_marks.begin()
    assert _send_marks.current() is inner
    _send_marks.end(inner)
    assert _send_marks.current() is outer
    _send_marks.end(inner)  # twice: nothing more happens
    assert _send_marks.current() is outer
    _send_marks.end(outer)
    assert _send_marks.current() is None


def test_end_in_another_context_clears_the_mark_there() -> None:
    # A stream's generator can be resumed in a copy of the context that set its mark.
    mark = _send_marks.begin()
    try:
        elsewhere = contextvars.copy_context()
        assert elsewhere.run(_send_marks.current) is mark
        elsewhere.run(_send_marks.end, mark)
        assert elsewhere.run(_send_marks.current) is None
    finally:
        _send_marks.end(mark)
    assert _send_marks.current() is None


# --- settling with the send time -------------------------------------------------------------------------


def one_a_minute(clock: FakeClock, **extra: Any) -> RateLimiter:
    section = {"requests_per_minute": 1, "tokens_per_minute": 1000, **extra}
    return RateLimiter(RateLimitConfig.from_config(section, provider="test"), clock=clock)


def test_reservation_settle_passes_the_send_time_down(clock: FakeClock) -> None:
    limiter = one_a_minute(clock)
    reservation = limiter.acquire_sync(tokens=10)
    clock.advance(15)
    reservation.settle(10, sent_ago=10)  # sent 5 s after the reservation, answered 10 s later
    assert limiter.wait_time() == pytest.approx(50.6)  # until 5 + 0.6 + 60


async def test_reservation_asettle_without_a_send_time_is_conservative(clock: FakeClock) -> None:
    limiter = one_a_minute(clock)
    reservation = await limiter.acquire(tokens=10)
    clock.advance(15)
    await reservation.asettle(10)
    assert limiter.wait_time() == pytest.approx(60)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "3"])
def test_sent_ago_must_be_seconds(clock: FakeClock, bad: Any) -> None:
    reservation = one_a_minute(clock).acquire_sync()
    with pytest.raises(InvalidInputError):
        reservation.settle(0, sent_ago=bad)
    assert not reservation.done


def test_admission_release_settles_with_the_marks_send_time(clock: FakeClock) -> None:
    limiter = one_a_minute(clock)
    mark = _send_marks.SendMark(clock)
    admission = Admission(limiter, limiter.acquire_sync(tokens=100), 20, mark)
    clock.advance(5)
    mark.stamp()
    clock.advance(10)
    admission.release(30, None)
    assert limiter.wait_time() == pytest.approx(50.6)
    assert limiter.wait_time(tokens=971) == pytest.approx(60)  # the 30 tokens count from the answer


def test_admission_release_of_a_request_never_sent_is_conservative(clock: FakeClock) -> None:
    limiter = one_a_minute(clock)
    admission = Admission(limiter, limiter.acquire_sync(tokens=100), 20, _send_marks.SendMark(clock))
    clock.advance(10)
    admission.release(None, NetworkConnectionError("chat"))
    assert limiter.wait_time() == pytest.approx(60)


def test_admission_start_sets_the_mark_and_release_takes_it_down(clock: FakeClock) -> None:
    limiter = one_a_minute(clock)
    admission = Admission.start(limiter, limiter.acquire_sync(), 0)
    assert admission.mark is not None and _send_marks.current() is admission.mark
    admission.release(None, RateLimitError("test"))  # refused: given back
    assert _send_marks.current() is None
    assert limiter.wait_time() == 0


def test_redis_outage_settles_locally_with_the_send_time(clock: FakeClock) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    limiter = one_a_minute(clock, backend="redis", url=url, key="down")
    reservation = limiter.acquire_sync()
    assert limiter.degraded  # reserved locally
    clock.advance(15)
    reservation.settle(0, sent_ago=10)
    assert limiter.wait_time() == pytest.approx(50.6)


# --- end to end: every family stamps its attempts --------------------------------------------------------


class SettleSpy:
    """The send times (``sent_ago``) the provider's limiter was settled with, and the marks that were set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, limiter: RateLimiter) -> None:
        self.sent_agos: list[float | None] = []
        self.marks: list[_send_marks.SendMark] = []
        backend = limiter.backend
        settle = backend.settle
        begin = _send_marks.begin

        def spy_settle(rid: str, actual: int, limits: Any, *, sent_ago: float | None = None) -> None:
            self.sent_agos.append(sent_ago)
            settle(rid, actual, limits, sent_ago=sent_ago)

        def spy_begin() -> _send_marks.SendMark:
            mark = begin()
            self.marks.append(mark)
            return mark

        monkeypatch.setattr(backend, "settle", spy_settle)
        monkeypatch.setattr(_send_marks, "begin", spy_begin)


def rate_limited_config(server: ProviderServer, **provider_settings: Any) -> dict[str, Any]:
    """Every family against ``server`` with a (generous) local ``rate_limit`` of its own."""
    data = provider_config(server)
    section = {"requests_per_minute": 100, "window_seconds": 1.0, "key": f"marks-{uuid.uuid4().hex}"}
    for provider in data["providers"].values():
        provider["rate_limit"] = dict(section)
        provider.update(provider_settings)
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    return data


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FamilyCase:
    chosen: FamilyCase = request.param
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    return chosen


# Each answer comes this long after its request arrived: a stamp made when the answer came back (not when
# the request went out) would be at least this late.
LATENCY = 0.1


@pytest.fixture
def family(case: FamilyCase, server: ProviderServer) -> Iterator[tuple[Any, dict[str, Any]]]:
    server.default_reply = Reply(text="one two three", latency=LATENCY)
    data = rate_limited_config(server)
    yield ModelForgeRegistry().get_llm(case.provider, case.model), data["providers"][case.provider]


def spy_on(monkeypatch: pytest.MonkeyPatch, case: FamilyCase, provider: dict[str, Any]) -> SettleSpy:
    return SettleSpy(monkeypatch, limiter_for(case.provider, provider["rate_limit"]))


def assert_every_attempt_was_stamped(spy: SettleSpy, server: ProviderServer, attempts: int) -> None:
    assert len(spy.marks) == attempts
    assert all(mark.sent is not None for mark in spy.marks), spy.marks
    assert len(spy.sent_agos) == attempts
    assert all(ago is not None and ago >= 0 for ago in spy.sent_agos), spy.sent_agos
    assert _send_marks.current() is None  # taken down after each attempt
    # Stamped as the request went out, before the server (holding each answer LATENCY) could answer it.
    received = sorted(r.received_at for r in server.requests if r.protocol != "github")
    sent = sorted(mark.sent for mark in spy.marks if mark.sent is not None)
    assert len(received) == attempts
    assert all(at_send < arrival + LATENCY for at_send, arrival in zip(sent, received, strict=True))


def test_sync_invoke_and_stream_stamp_the_send(
    case: FamilyCase,
    family: tuple[Any, dict[str, Any]],
    server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm, provider = family
    spy = spy_on(monkeypatch, case, provider)
    assert llm.invoke("one").text
    assert "".join(chunk.text for chunk in llm.stream("two"))
    assert_every_attempt_was_stamped(spy, server, 2)


async def test_async_invoke_and_stream_stamp_the_send(
    case: FamilyCase,
    family: tuple[Any, dict[str, Any]],
    server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm, provider = family
    spy = spy_on(monkeypatch, case, provider)
    assert (await llm.ainvoke("one")).text
    assert "".join([chunk.text async for chunk in llm.astream("two")])
    answers = await asyncio.gather(llm.ainvoke("three"), llm.ainvoke("four"))  # one mark per task
    assert all(answer.text for answer in answers)
    assert_every_attempt_was_stamped(spy, server, 4)
    assert len({id(mark) for mark in spy.marks}) == 4


def test_a_model_without_pooled_transports_settles_conservatively(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.default_reply = Reply(text="ok")
    data = rate_limited_config(server, connection_pool={"enabled": False})  # the SDK's own client
    spy = spy_on(monkeypatch, FamilyCase("openai", "gpt-4o-mini", {}), data["providers"]["openai"])
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", "sk-test-unpooled")
    assert ModelForgeRegistry().get_llm("openai", "gpt-4o-mini").invoke("one").text == "ok"
    assert [mark.sent for mark in spy.marks] == [None]
    assert spy.sent_agos == [None]  # counted until one window after the answer


def test_a_request_waiting_for_the_only_connection_is_stamped_when_it_goes_out(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    latency = 0.3
    server.default_reply = Reply(text="ok", latency=latency)
    data = rate_limited_config(server, connection_pool={"max_connections": 1})
    spy = spy_on(monkeypatch, FamilyCase("openai", "gpt-4o-mini", {}), data["providers"]["openai"])
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", "sk-test-one-connection")
    llm = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(llm.invoke("q").text)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == ["ok", "ok"]
    first_received = min(request.received_at for request in server.requests)
    sent = sorted(mark.sent for mark in spy.marks if mark.sent is not None)
    assert len(sent) == 2
    # Both were admitted at once; the second could leave only once the first's answer freed the connection,
    # which the server held for ``latency`` after it received the first (which was stamped as it left).
    assert sent[0] < first_received + latency <= sent[1]


def test_a_stream_the_caller_stops_early_gives_its_place_back(
    case: FamilyCase,
    family: tuple[Any, dict[str, Any]],
    server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reading only the first chunk of a stream must not hold the request's place in the budget until the
    # reservation times out: it is settled when the stream is closed.
    server.default_reply = Reply(text="one two three four five six", latency=LATENCY)
    llm, provider = family
    spy = spy_on(monkeypatch, case, provider)
    stream = llm.stream("stop early")
    for chunk in stream:
        if chunk.text:
            break
    stream.close()
    assert len(spy.sent_agos) == 1
    assert _send_marks.current() is None


async def test_an_async_stream_the_caller_stops_early_gives_its_place_back(
    case: FamilyCase,
    family: tuple[Any, dict[str, Any]],
    server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.default_reply = Reply(text="one two three four five six", latency=LATENCY)
    llm, provider = family
    spy = spy_on(monkeypatch, case, provider)
    stream = llm.astream("stop early")
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()
    assert len(spy.sent_agos) == 1
