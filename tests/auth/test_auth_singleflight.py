"""Single-flight: N threads, N tasks, or both at once share one refresh; failures and cancellation."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelforge.auth._singleflight import SingleFlight


class Cell:
    """A value that is missing until one refresh fills it; counts refreshes and holds each one until
    ``release`` is set, so a test decides when the leader finishes."""

    def __init__(self) -> None:
        self.value: str | None = None
        self.refreshes = 0
        self.release = threading.Event()
        self._entered = threading.Condition()

    def current(self) -> str | None:
        return self.value

    def _enter(self) -> None:
        with self._entered:
            self.refreshes += 1
            self._entered.notify_all()

    def wait_refreshes(self, n: int) -> bool:
        """Block until ``n`` refreshes have started (False after 5 s)."""
        with self._entered:
            return self._entered.wait_for(lambda: self.refreshes >= n, timeout=5)

    def refresh(self) -> str:
        self._enter()
        assert self.release.wait(5)
        self.value = f"v{self.refreshes}"
        return self.value

    async def arefresh(self) -> str:
        self._enter()
        assert await asyncio.to_thread(self.release.wait, 5)
        self.value = f"v{self.refreshes}"
        return self.value


class Arrivals:
    """SingleFlight's ``on_wait`` hook: counts the callers that committed to the refresh in flight."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def __call__(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, n: int) -> bool:
        """Block until ``n`` callers are waiting (False after 5 s)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= n, timeout=5)

    async def await_for(self, n: int) -> bool:
        """``wait_for`` without blocking the event loop, so tasks on it can arrive meanwhile."""
        return await asyncio.to_thread(self.wait_for, n)


def flight_with_arrivals() -> tuple[SingleFlight[str], Arrivals]:
    arrivals = Arrivals()
    return SingleFlight(on_wait=arrivals), arrivals


def test_threads_share_one_refresh() -> None:
    flight, arrivals = flight_with_arrivals()
    cell = Cell()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(flight.run, cell.current, cell.refresh) for _ in range(8)]
        assert cell.wait_refreshes(1)
        assert arrivals.wait_for(7)  # every other thread is waiting on the held refresh
        assert flight.waiting == 7
        cell.release.set()
        results = [f.result(5) for f in futures]
    assert results == ["v1"] * 8
    assert cell.refreshes == 1
    assert flight.waiting == 0


async def test_tasks_share_one_refresh() -> None:
    flight, arrivals = flight_with_arrivals()
    cell = Cell()
    tasks = [asyncio.create_task(flight.arun(cell.current, cell.arefresh)) for _ in range(8)]
    assert await arrivals.await_for(7)
    assert cell.refreshes == 1 and flight.waiting == 7
    cell.release.set()
    assert await asyncio.gather(*tasks) == ["v1"] * 8
    assert cell.refreshes == 1


async def test_threads_and_tasks_together_share_one_refresh() -> None:
    flight, arrivals = flight_with_arrivals()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    assert await asyncio.to_thread(cell.wait_refreshes, 1)
    loop = asyncio.get_running_loop()
    threads = [loop.run_in_executor(None, flight.run, cell.current, cell.refresh) for _ in range(4)]
    tasks = [asyncio.create_task(flight.arun(cell.current, cell.arefresh)) for _ in range(4)]
    assert await arrivals.await_for(8)
    cell.release.set()
    assert await asyncio.gather(leader, *threads, *tasks) == ["v1"] * 9
    assert cell.refreshes == 1


async def test_tasks_on_two_loops_share_one_refresh() -> None:
    flight, arrivals = flight_with_arrivals()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    assert await asyncio.to_thread(cell.wait_refreshes, 1)
    other = await asyncio.to_thread(lambda: asyncio.run(_release_once_waiting(flight, cell, arrivals)))
    assert other == "v1" and await leader == "v1"
    assert cell.refreshes == 1


async def _release_once_waiting(flight: SingleFlight[str], cell: Cell, arrivals: Arrivals) -> str:
    follower = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    assert await arrivals.await_for(1)
    cell.release.set()
    return await follower


def test_failure_is_shared_and_the_next_call_retries() -> None:
    flight, arrivals = flight_with_arrivals()
    calls = 0
    gate = threading.Event()

    def failing() -> str:
        nonlocal calls
        calls += 1
        assert gate.wait(5)
        raise RuntimeError("refresh refused")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(flight.run, lambda: None, failing) for _ in range(4)]
        assert arrivals.wait_for(3)
        gate.set()
        for f in futures:
            with pytest.raises(RuntimeError, match="refresh refused"):
                f.result(5)
    assert calls == 1
    assert flight.run(lambda: None, lambda: "ok") == "ok"


async def test_cancelled_leader_hands_over_to_a_follower() -> None:
    flight, arrivals = flight_with_arrivals()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    assert await asyncio.to_thread(cell.wait_refreshes, 1)
    follower = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    assert await arrivals.await_for(1)
    leader.cancel()
    assert await asyncio.to_thread(cell.wait_refreshes, 2)  # the follower leads the second attempt
    cell.release.set()
    assert await follower == "v2"
    assert leader.cancelled()


async def test_cancelled_follower_does_not_cancel_the_refresh() -> None:
    flight, arrivals = flight_with_arrivals()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    follower = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    assert await arrivals.await_for(1)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    assert flight.waiting == 0
    cell.release.set()
    assert await leader == "v1"
    assert cell.refreshes == 1


async def test_sync_caller_on_the_leaders_loop_does_not_deadlock() -> None:
    flight, arrivals = flight_with_arrivals()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    assert await asyncio.to_thread(cell.wait_refreshes, 1)

    def release_once_both_refresh() -> None:
        assert cell.wait_refreshes(2)
        cell.release.set()

    helper = threading.Thread(target=release_once_both_refresh)
    helper.start()
    # a sync call from inside the loop thread refreshes on its own instead of waiting for the task
    assert flight.run(cell.current, cell.refresh) == "v2"
    helper.join(5)
    assert await leader == "v2"
    assert cell.refreshes == 2
    assert arrivals.count == 0  # it never waited on the task's refresh
