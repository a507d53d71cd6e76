"""Which credentials keep their pools (the least recently used go beyond the bound), and how a retired
pool closes without handing a closing pool to a request made meanwhile."""

from __future__ import annotations

import asyncio

import httpx

from modelforge._pool_transport import LoopPools
from modelforge.pooling import MAX_CREDENTIALS, PoolLimits, shared_http_clients

URL = "https://retirement.example.test/v1"


def test_beyond_the_bound_the_least_recently_used_credential_is_retired() -> None:
    limits = PoolLimits()
    first = [shared_http_clients("lru", URL, f"key-{n}", limits).pool for n in range(MAX_CREDENTIALS)]
    assert all(pool is not None for pool in first)
    # key-0 is the oldest, but a request leased its pool since: key-1 is now the least recently used.
    used = first[0]
    assert used is not None
    used.release_sync(used.lease_sync())

    ninth = shared_http_clients("lru", URL, "key-9", limits).pool
    assert ninth is not None and ninth not in first
    kept = [shared_http_clients("lru", URL, f"key-{n}", limits).pool for n in (0, *range(2, MAX_CREDENTIALS))]
    assert kept == [first[0], *first[2:]]
    assert shared_http_clients("lru", URL, "key-9", limits).pool is ninth

    retired = first[1]
    assert retired is not None
    # Still usable by the models holding it, but each request's pool closes with it.
    retired.release_sync(retired.lease_sync())
    assert retired.stats()[0] is False
    assert shared_http_clients("lru", URL, "key-1", limits).pool is not retired  # a fresh pool for it


def test_the_bound_is_per_provider_and_base_url() -> None:
    limits = PoolLimits()
    mine = shared_http_clients("lru-bound", URL, "mine", limits).pool
    for n in range(MAX_CREDENTIALS + 2):
        shared_http_clients("lru-bound", URL + f"/tenant-{n}", f"key-{n}", limits)
        shared_http_clients("lru-bound-other", URL, f"key-{n}", limits)
    assert shared_http_clients("lru-bound", URL, "mine", limits).pool is mine


async def test_a_lease_while_a_retired_pool_closes_gets_a_fresh_pool() -> None:
    pools = LoopPools(httpx, {})
    idle = await pools.lease_async()
    await pools.release_async(idle)

    pools.retire()  # schedules the idle pool's closing on this loop; it has not run yet
    fresh = await pools.lease_async()
    assert fresh is not idle
    await asyncio.sleep(0.01)  # the closing runs
    assert pools.stats()[1] == {id(asyncio.get_running_loop())}  # the fresh pool stays in the table
    await pools.release_async(fresh)  # retired: closed with its last request
    assert pools.stats()[1] == frozenset()


async def test_a_lease_while_the_last_request_of_a_retired_pool_closes_it_gets_a_fresh_pool() -> None:
    pools = LoopPools(httpx, {})
    busy = await pools.lease_async()
    pools.retire()  # busy: closes when its last request is over

    releasing = asyncio.create_task(pools.release_async(busy))
    await asyncio.sleep(0)  # the release has decided to close the pool and is waiting for the closing
    assert not releasing.done()
    fresh = await pools.lease_async()
    assert fresh is not busy
    await releasing
    assert pools.stats()[1] == {id(asyncio.get_running_loop())}
    await pools.release_async(fresh)
    assert pools.stats()[1] == frozenset()
