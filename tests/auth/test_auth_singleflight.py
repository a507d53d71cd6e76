"""Single-flight: N threads, N tasks, or both at once share one refresh; failures and cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelforge.auth._singleflight import SingleFlight


class Cell:
    """A value that is missing until one refresh fills it; counts refreshes and lets tests hold them."""

    def __init__(self) -> None:
        self.value: str | None = None
        self.refreshes = 0
        self.release = threading.Event()
        self.started = threading.Event()

    def current(self) -> str | None:
        return self.value

    def refresh(self) -> str:
        self.refreshes += 1
        self.started.set()
        assert self.release.wait(5)
        self.value = f"v{self.refreshes}"
        return self.value

    async def arefresh(self) -> str:
        self.refreshes += 1
        self.started.set()
        assert await asyncio.to_thread(self.release.wait, 5)
        self.value = f"v{self.refreshes}"
        return self.value


def test_threads_share_one_refresh() -> None:
    flight: SingleFlight[str] = SingleFlight()
    cell = Cell()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(flight.run, cell.current, cell.refresh) for _ in range(8)]
        assert cell.started.wait(5)
        time.sleep(0.05)  # let every thread arrive while the refresh is held
        cell.release.set()
        results = [f.result(5) for f in futures]
    assert results == ["v1"] * 8
    assert cell.refreshes == 1


async def test_tasks_share_one_refresh() -> None:
    flight: SingleFlight[str] = SingleFlight()
    cell = Cell()
    tasks = [asyncio.create_task(flight.arun(cell.current, cell.arefresh)) for _ in range(8)]
    await asyncio.sleep(0.02)
    cell.release.set()
    assert await asyncio.gather(*tasks) == ["v1"] * 8
    assert cell.refreshes == 1


async def test_threads_and_tasks_together_share_one_refresh() -> None:
    flight: SingleFlight[str] = SingleFlight()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    assert cell.started.is_set()
    loop = asyncio.get_running_loop()
    threads = [loop.run_in_executor(None, flight.run, cell.current, cell.refresh) for _ in range(4)]
    tasks = [asyncio.create_task(flight.arun(cell.current, cell.arefresh)) for _ in range(4)]
    await asyncio.sleep(0.02)
    cell.release.set()
    assert await asyncio.gather(leader, *threads, *tasks) == ["v1"] * 9
    assert cell.refreshes == 1


async def test_tasks_on_two_loops_share_one_refresh() -> None:
    flight: SingleFlight[str] = SingleFlight()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    other = await asyncio.to_thread(lambda: asyncio.run(_release_later(flight, cell)))
    assert other == "v1" and await leader == "v1"
    assert cell.refreshes == 1


async def _release_later(flight: SingleFlight[str], cell: Cell) -> str:
    follower = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    cell.release.set()
    return await follower


def test_failure_is_shared_and_the_next_call_retries() -> None:
    flight: SingleFlight[str] = SingleFlight()
    calls = 0
    gate = threading.Event()

    def failing() -> str:
        nonlocal calls
        calls += 1
        gate.wait(5)
        raise RuntimeError("refresh refused")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(flight.run, lambda: None, failing) for _ in range(4)]
        time.sleep(0.05)
        gate.set()
        for f in futures:
            with pytest.raises(RuntimeError, match="refresh refused"):
                f.result(5)
    assert calls == 1
    assert flight.run(lambda: None, lambda: "ok") == "ok"


async def test_cancelled_leader_hands_over_to_a_follower() -> None:
    flight: SingleFlight[str] = SingleFlight()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    leader.cancel()
    await asyncio.sleep(0.01)
    cell.release.set()
    assert await follower == "v2"  # the follower led the second attempt
    assert leader.cancelled()


async def test_cancelled_follower_does_not_cancel_the_refresh() -> None:
    flight: SingleFlight[str] = SingleFlight()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    follower.cancel()
    cell.release.set()
    assert await leader == "v1"
    assert cell.refreshes == 1


async def test_sync_caller_on_the_leaders_loop_does_not_deadlock() -> None:
    flight: SingleFlight[str] = SingleFlight()
    cell = Cell()
    leader = asyncio.create_task(flight.arun(cell.current, cell.arefresh))
    await asyncio.sleep(0.01)
    threading.Timer(0.02, cell.release.set).start()
    # a sync call from inside the loop thread refreshes on its own instead of waiting for the task
    assert flight.run(cell.current, cell.refresh) == "v2"
    assert await leader == "v2"
    assert cell.refreshes == 2
