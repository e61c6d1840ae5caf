"""run_in_tx against the real PostgreSQL: serialization failures and deadlocks are retried a
bounded number of times with the body run again; other errors are not retried; hooks run
before the commit inside the transaction, and after it only once it has committed, never
for an attempt that rolled back."""
from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from calsvc.db import tx as tx_module
from calsvc.db.tx import Tx, run_in_tx
from tests.factories import connect

# An error the server raises with a given SQLSTATE, as if the transaction had really met it.
RAISE = "DO $$ BEGIN RAISE EXCEPTION 'injected by the test' USING ERRCODE = '{}'; END $$"
RETRYABLE = [("40001", asyncpg.SerializationError), ("40P01", asyncpg.DeadlockDetectedError)]


@pytest.fixture
async def probe(database_url):
    """A table of the test's own, dropped afterwards (the database goes to the next test)."""
    async with connect(database_url) as conn:
        await conn.execute("CREATE TABLE tx_probe (id serial PRIMARY KEY, note text NOT NULL)")
    yield
    async with connect(database_url) as conn:
        await conn.execute("DROP TABLE tx_probe")


async def notes(database_url: str) -> list[str]:
    """The committed rows of tx_probe, as another session sees them."""
    async with connect(database_url) as conn:
        return [r["note"] for r in await conn.fetch("SELECT note FROM tx_probe ORDER BY id")]


async def write(tx: Tx, note: str) -> None:
    await tx.conn.execute("INSERT INTO tx_probe (note) VALUES ($1)", note)


class Attempts:
    """Counts the runs of a body: each begins with `attempt = attempts.next()`."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> int:
        self.count += 1
        return self.count


# -- retries ----------------------------------------------------------------------------

@pytest.mark.parametrize("code,error", RETRYABLE)
async def test_a_retryable_error_runs_the_body_again_in_a_new_transaction(make_db, probe, database_url,
                                                                           code, error):
    """The first attempt's write is rolled back and its after-commit callback dropped."""
    db = await make_db()
    attempts = Attempts()
    called: list[int] = []

    async def body(tx: Tx) -> str:
        attempt = attempts.next()
        tx.call_after(lambda: called.append(attempt))
        await write(tx, f"attempt {attempt}")
        if attempt == 1:
            await tx.conn.execute(RAISE.format(code))
        return f"done in {attempt}"

    assert await run_in_tx(db, "retried", body) == "done in 2"
    assert attempts.count == 2
    assert called == [2]
    assert await notes(database_url) == ["attempt 2"]


async def test_two_serializable_transactions_that_clash_both_commit_after_a_retry(make_db, probe, database_url):
    """A write skew: each reads the table, then both insert. PostgreSQL fails one of them
    (40001); run against what the other committed, its retry then commits."""
    db = await make_db()
    both_read = asyncio.Barrier(2)
    attempts = {"a": 0, "b": 0}

    async def body(tx: Tx, who: str) -> int:
        attempts[who] += 1
        seen = await tx.conn.fetchval("SELECT count(*) FROM tx_probe")
        if attempts[who] == 1:
            await both_read.wait()
        await write(tx, who)
        return seen

    seen = await asyncio.gather(run_in_tx(db, "a", body, "a", isolation="serializable"),
                                run_in_tx(db, "b", body, "b", isolation="serializable"))
    assert sorted(attempts.values()) == [1, 2]
    assert sorted(seen) == [0, 1]  # the retried one saw the other's row
    assert sorted(await notes(database_url)) == ["a", "b"]


async def test_a_deadlock_between_two_transactions_is_retried(make_db, probe, database_url):
    """Two transactions update two rows in opposite orders; PostgreSQL ends one (40P01), whose
    retry then waits for the other and commits."""
    async with connect(database_url) as conn:
        await conn.execute("INSERT INTO tx_probe (id, note) VALUES (1, ''), (2, '')")
    db = await make_db()
    both_locked = asyncio.Barrier(2)
    attempts = {"a": 0, "b": 0}

    async def body(tx: Tx, who: str, first: int, second: int) -> None:
        attempts[who] += 1
        await tx.conn.execute("SET LOCAL deadlock_timeout = '50ms'")  # found sooner than the 1 s default
        for row in (first, second):
            await tx.conn.execute("UPDATE tx_probe SET note = note || $2 WHERE id = $1", row, who)
            if row == first and attempts[who] == 1:
                await both_locked.wait()

    await asyncio.gather(run_in_tx(db, "a", body, "a", 1, 2), run_in_tx(db, "b", body, "b", 2, 1))
    assert sorted(attempts.values()) == [1, 2]
    assert sorted(map(sorted, await notes(database_url))) == [["a", "b"], ["a", "b"]]  # each once per row


@pytest.mark.parametrize("code,error", RETRYABLE)
async def test_retries_are_bounded(make_db, code, error):
    db = await make_db()
    attempts = Attempts()
    called: list[int] = []

    async def body(tx: Tx) -> None:
        attempt = attempts.next()
        tx.call_after(lambda: called.append(attempt))
        await tx.conn.execute(RAISE.format(code))

    with pytest.raises(error):
        async with asyncio.timeout(30):  # an unbounded loop fails here instead of hanging
            await run_in_tx(db, "doomed", body)
    assert attempts.count == tx_module.MAX_ATTEMPTS > 1
    assert called == []


@pytest.mark.parametrize("failure", ["23505", "40003", "python"])
async def test_other_errors_are_not_retried(make_db, probe, database_url, failure):
    """A unique violation, a class-40 error other than the two retryable ones, an error of
    the body's own: raised at once, the transaction rolled back."""
    db = await make_db()
    attempts = Attempts()

    async def body(tx: Tx) -> None:
        attempts.next()
        await write(tx, "rolled back")
        if failure == "python":
            raise ValueError("the body's own")
        await tx.conn.execute(RAISE.format(failure))

    with pytest.raises(ValueError if failure == "python" else asyncpg.PostgresError) as raised:
        await run_in_tx(db, "failing", body)
    assert failure == "python" or raised.value.sqlstate == failure
    assert attempts.count == 1
    assert await notes(database_url) == []


# -- after-commit callbacks ---------------------------------------------------------------

async def test_after_commit_callbacks_run_once_each_once_committed(make_db, probe, database_url):
    db = await make_db()
    called: list = []

    async def committed_rows() -> None:  # async callbacks are awaited
        called.append(("async", await notes(database_url)))

    async def body(tx: Tx) -> str:
        await write(tx, "kept")
        tx.call_after(lambda: called.append("sync"))
        tx.call_after(committed_rows)
        return "result"

    assert await run_in_tx(db, "notify", body) == "result"
    # in the order given, once each, before run_in_tx returned; another session already saw
    # the row: the transaction had committed
    assert called == ["sync", ("async", ["kept"])]


async def test_after_commit_callbacks_do_not_run_when_the_body_raises(make_db, probe, database_url):
    db = await make_db()
    called: list[str] = []

    async def body(tx: Tx) -> None:
        tx.call_after(lambda: called.append("after"))
        await write(tx, "rolled back")
        raise ValueError("the body failed")

    with pytest.raises(ValueError):
        await run_in_tx(db, "rolled_back", body)
    assert called == []
    assert await notes(database_url) == []


async def test_a_failing_after_commit_callback_is_logged_and_the_others_still_run(make_db, probe, database_url,
                                                                                  caplog):
    db = await make_db()
    called: list[str] = []

    def fail() -> None:
        raise RuntimeError("callback failed")

    async def body(tx: Tx) -> str:
        await write(tx, "kept")
        tx.call_after(fail)
        tx.call_after(lambda: called.append("next"))
        return "result"

    with caplog.at_level(logging.ERROR, logger=tx_module.__name__):
        assert await run_in_tx(db, "noisy", body) == "result"
    assert called == ["next"]
    assert await notes(database_url) == ["kept"]  # the commit stands
    assert [r.getMessage() for r in caplog.records] == ["after-commit callback of noisy failed"]


# -- before-commit hooks ------------------------------------------------------------------

async def test_before_commit_hooks_run_after_the_body_inside_its_transaction(make_db, probe, database_url):
    db = await make_db()
    called: list = []

    async def body(tx: Tx) -> str:
        async def last() -> None:
            # the body's row: seen in this transaction, not yet by another session
            called.append(("before", await tx.conn.fetchval("SELECT count(*) FROM tx_probe"),
                           await notes(database_url), tx.conn.is_in_transaction()))
            await write(tx, "hook")

        tx.call_before_commit(last)
        tx.call_after(lambda: called.append("after"))
        await write(tx, "body")
        called.append("body")
        return "result"

    assert await run_in_tx(db, "hooked", body) == "result"
    assert called == ["body", ("before", 1, [], True), "after"]
    assert await notes(database_url) == ["body", "hook"]  # committed with the body's


async def test_before_commit_hooks_do_not_run_when_the_body_raises(make_db, probe):
    db = await make_db()
    called: list[str] = []

    async def hook() -> None:
        called.append("before")

    async def body(tx: Tx) -> None:
        tx.call_before_commit(hook)
        raise ValueError("the body failed")

    with pytest.raises(ValueError):
        await run_in_tx(db, "rolled_back", body)
    assert called == []


async def test_a_failing_before_commit_hook_rolls_the_transaction_back(make_db, probe, database_url):
    db = await make_db()
    called: list[str] = []

    async def fail() -> None:
        raise RuntimeError("hook failed")

    async def body(tx: Tx) -> None:
        await write(tx, "rolled back")
        tx.call_before_commit(fail)
        tx.call_after(lambda: called.append("after"))

    with pytest.raises(RuntimeError, match="hook failed"):
        await run_in_tx(db, "hook_fails", body)
    assert called == []
    assert await notes(database_url) == []


@pytest.mark.parametrize("fails_in", ["body", "hook"])
async def test_before_commit_hooks_belong_to_their_attempt(make_db, probe, database_url, fails_in):
    """A serialization failure in the first attempt's body (its hook never runs) or in its
    hook (which then ran once): the retry's body registers and runs its own hook, once."""
    db = await make_db()
    attempts = Attempts()
    called: list[str] = []

    async def body(tx: Tx) -> None:
        attempt = attempts.next()

        async def hook() -> None:
            called.append(f"before {attempt}")
            if fails_in == "hook" and attempt == 1:
                await tx.conn.execute(RAISE.format("40001"))
            await write(tx, f"hook {attempt}")

        tx.call_before_commit(hook)
        tx.call_after(lambda: called.append(f"after {attempt}"))
        if fails_in == "body" and attempt == 1:
            await tx.conn.execute(RAISE.format("40001"))

    await run_in_tx(db, "retried", body)
    expected = {"body": ["before 2", "after 2"], "hook": ["before 1", "before 2", "after 2"]}
    assert called == expected[fails_in]
    assert await notes(database_url) == ["hook 2"]
