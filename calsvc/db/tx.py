"""Named transactions with bounded retries and after-commit callbacks (Synapse's runInteraction)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from calsvc.db.pool import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 5
RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


class Tx:
    """A connection inside a transaction, plus the callbacks to run just before it commits
    and once it has committed."""

    __slots__ = ("conn", "name", "notes", "_before_commit", "_after_commit")

    def __init__(self, conn: asyncpg.Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        self.notes: list[Any] = []  # notifications of this transaction's changes (services.notifications)
        self._before_commit: list[Callable[[], Awaitable[Any]]] = []
        self._after_commit: list[Callable[[], Any]] = []

    def call_before_commit(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Await `fn()` inside the transaction once its body has succeeded, as its last writes."""
        self._before_commit.append(fn)

    def call_after(self, fn: Callable[[], Any]) -> None:
        """Run `fn()` (sync or async) after a successful commit; never on rollback."""
        self._after_commit.append(fn)


async def run_in_tx(
    db: Database, name: str, fn: Callable[..., Awaitable[T]], *args: Any, isolation: str = "read_committed"
) -> T:
    """Run `fn(tx, *args)` in one transaction; retry it on serialization failures and deadlocks.

    `fn` must be safe to run again. After-commit callbacks of a retried attempt are dropped.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        async with db.acquire() as conn:
            tx = Tx(conn, name)
            try:
                async with conn.transaction(isolation=isolation):
                    result = await fn(tx, *args)
                    for before in tx._before_commit:
                        await before()
            except RETRYABLE as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                log.info("transaction %s: %s, retrying (%d)", name, type(exc).__name__, attempt)
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
                continue
        for callback in tx._after_commit:
            try:
                outcome = callback()
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:
                log.exception("after-commit callback of %s failed", name)
        return result
    raise AssertionError("unreachable")
