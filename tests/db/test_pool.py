"""Database.lease (a request's token check and first queries on one connection) and the
first-come-first-served order of acquires, against the real PostgreSQL."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from calsvc import errors
from calsvc.db.pool import Database, off_loop


async def backend(db: Database) -> int:
    async with db.acquire() as conn:
        return await conn.fetchval("SELECT pg_backend_pid()")


async def test_a_lease_shares_one_connection_for_its_first_acquires_then_gives_it_back(make_db):
    db = await make_db()
    async with db.lease():
        first = await backend(db)
        assert db.in_use() == 1  # kept between the two
        assert await backend(db) == first
        assert db.in_use() == 0  # back in the pool after the second, before the lease ends
        await backend(db)  # later acquires take from the pool as without a lease
        assert db.in_use() == 0
    async with db.lease():
        await backend(db)
    assert db.in_use() == 0  # one use only: given back when the lease ends


async def test_nested_acquires_and_other_tasks_get_connections_of_their_own(make_db):
    db = await make_db()
    async with db.lease():
        async with db.acquire() as conn:
            mine = await conn.fetchval("SELECT pg_backend_pid()")
            assert await backend(db) != mine  # nested: its own
        # other tasks (gather copies the context, lease included) never get the lease's
        # connection, even while it is not in use
        others = await asyncio.gather(backend(db), backend(db))
        assert mine not in others
        assert await backend(db) == mine


async def test_a_connection_left_in_a_transaction_is_not_kept(make_db):
    db = await make_db()
    async with db.lease(uses=3):
        async with db.acquire() as conn:
            tx = conn.transaction()
            await tx.start()  # and never finished
            first = await conn.fetchval("SELECT pg_backend_pid()")
        assert db.in_use() == 0  # released (and reset) at once
        async with db.acquire() as conn:
            assert not conn.is_in_transaction()
            await conn.fetchval("SELECT 1")
    assert db.in_use() == 0
    assert first


async def test_waiters_are_served_in_the_order_they_came(make_db):
    db = await make_db(size=1)
    order: list[str] = []

    async def use(name: str) -> None:
        async with db.acquire():
            order.append(name)
            await asyncio.sleep(0)

    async with db.acquire():
        waiters = []
        for name in ("w1", "w2", "w3"):
            waiters.append(asyncio.create_task(use(name)))
            await asyncio.sleep(0.01)
    # released: a newcomer arriving now queues behind the three who waited
    late = [asyncio.create_task(use(f"n{k}")) for k in range(3)]
    await asyncio.gather(*waiters, *late)
    assert order == ["w1", "w2", "w3", "n0", "n1", "n2"]


async def test_work_off_the_loop_holds_no_leased_connection(make_db):
    db = await make_db()
    seen: list[int] = []
    async with db.lease():
        await backend(db)  # the token check: the lease keeps its connection for the next
        assert db.in_use() == 1
        await off_loop(lambda: seen.append(db.in_use()))
        assert seen == [0]  # given back while the thread worked
        await backend(db)
        assert db.in_use() == 0
    async with db.lease():
        async with db.acquire() as conn:  # the leased connection in use (a transaction): kept
            await off_loop(lambda: seen.append(db.in_use()))
            assert await conn.fetchval("SELECT 1") == 1
        assert seen == [0, 1]
        assert db.in_use() == 1  # and still the lease's for its second use
    assert db.in_use() == 0


async def test_a_broken_leased_connection_is_dropped_and_its_turn_comes_back(make_db):
    """A connection whose protocol fell out of step (the server ended it mid-query) is
    terminated, which detaches it from its pool proxy: the lease must not ask it anything
    more, and its turn must come back (a pool of one would otherwise wait forever)."""
    db = await make_db(size=1)
    async with db.lease(uses=3):
        with pytest.raises(errors.Unavailable):
            async with db.acquire():
                raise asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress")
        assert await backend(db)  # a new connection, with the only turn
        assert await backend(db)
    assert db.in_use() == 0
