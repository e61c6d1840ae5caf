"""The connection pool, and the translation of "the database is gone" into a fast 503.

While PostgreSQL is unreachable, acquiring or using a connection fails within the
configured timeouts and raises `errors.Unavailable`; asyncpg drops broken connections
when they are released, so the pool heals by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import asyncpg

from calsvc import errors
from calsvc.config import DatabaseSettings

log = logging.getLogger(__name__)

# Failures that mean "no usable connection", as opposed to a bad query.
CONNECTION_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
)
# Failures that only mean "no connection" while connecting: the database is missing or
# refuses connections (ALTER DATABASE ... ALLOW_CONNECTIONS false, a restore in progress).
CONNECT_ERRORS = CONNECTION_ERRORS + (
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)


def is_connection_error(exc: BaseException, connecting: bool = False) -> bool:
    if isinstance(exc, CONNECT_ERRORS if connecting else CONNECTION_ERRORS):
        return True
    # asyncpg says "connection is closed" with a bare InterfaceError.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


async def _reset(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool. Pooled sessions keep no state
    of ours (advisory locks are transaction-scoped; no SET, LISTEN or cursor outside a
    transaction), so asyncpg's default reset query (`pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`, one more round trip per request) runs only when a transaction
    was left open."""
    if conn.is_in_transaction():
        await conn.reset()


def _unusable(conn: asyncpg.Connection) -> bool:
    """Closed, left in a transaction, or no longer ours (a terminated pool connection is
    detached from its proxy, whose methods then raise)."""
    try:
        return conn.is_closed() or conn.is_in_transaction()
    except asyncpg.InterfaceError:
        return True


class _Lease:
    __slots__ = ("db", "task", "conn", "busy", "left")

    def __init__(self, db: Database, task: asyncio.Task | None, uses: int) -> None:
        self.db = db
        self.task = task
        self.conn: asyncpg.Connection | None = None
        self.busy = False
        self.left = uses


_LEASE: contextvars.ContextVar[_Lease | None] = contextvars.ContextVar("calsvc_db_lease", default=None)
T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a thread (CPU work: checking a recurrence, a batch), with the current
    task's leased connection given back first when nothing is using it: it would sit idle in
    the meantime, and a few batches at once would hold the pool (Database.lease). Later
    acquires of the task take connections from the pool as without a lease."""
    lease = _LEASE.get()
    if lease is not None and lease.task is asyncio.current_task() and not lease.busy:
        conn, lease.conn, lease.left = lease.conn, None, 0
        if conn is not None:
            await lease.db._release(conn)
    return await asyncio.to_thread(fn, *args)


class Database:
    """The process's pool. `acquire()` yields a connection or raises errors.Unavailable."""

    def __init__(self, pool: asyncpg.Pool, settings: DatabaseSettings) -> None:
        self.pool = pool
        self.settings = settings
        # First come, first served: asyncpg's pool queue lets a newcomer take a connection
        # released for a waiter, who then queues again at the back (asyncio.Queue.get); under
        # load some requests waited many times over, the more so the longer requests held
        # their connection (bench/README.md). asyncio.Semaphore is FIFO.
        self._turns = asyncio.Semaphore(settings.pool_max_size)

    @classmethod
    async def connect(cls, dsn: str, settings: DatabaseSettings) -> Database:
        """The pool; when the database is down at start it opens no connection yet (requests
        get 503 until the database is back) instead of failing the start."""
        try:
            return cls(await cls._create(dsn, settings, settings.pool_min_size), settings)
        except CONNECT_ERRORS as exc:
            log.warning("database unavailable at start (%s); serving 503 until it is back", type(exc).__name__)
            return cls(await cls._create(dsn, settings, 0), settings)

    @staticmethod
    async def _create(dsn: str, settings: DatabaseSettings, min_size: int) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=settings.pool_max_size,
            timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            max_inactive_connection_lifetime=300,
            server_settings={"application_name": "calsvc", "timezone": "UTC"},
            reset=_reset,
        )

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout=5)
        except (TimeoutError, *CONNECTION_ERRORS):
            self.pool.terminate()

    @contextlib.asynccontextmanager
    async def lease(self, uses: int = 2) -> AsyncIterator[None]:
        """Within it, the first `uses` acquires of the current task (that do not nest in
        another) get the same connection, taken at the first and given back after the last
        of them (or when the lease ends): a request checks its token and runs its first
        queries on one connection instead of taking one from the pool for each (the pool's
        acquire and release were a large part of a GET of one event). The connection goes
        back as soon as those are done, not at the end of the request: held while the
        answer is rendered, the pool's connections served fewer requests at once and the
        worker sat idle (bench/README.md). Other tasks (asyncio.gather, tasks started
        inside) and nested acquires get connections of their own, as without a lease. A
        connection left in a transaction or broken is not kept for the next acquire."""
        lease = _Lease(self, asyncio.current_task(), uses)
        token = _LEASE.set(lease)
        try:
            yield
        finally:
            _LEASE.reset(token)
            conn, lease.conn, lease.task = lease.conn, None, None
            if conn is not None:
                await self._release(conn)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        lease = _LEASE.get()
        if lease is not None and (lease.busy or not lease.left or lease.task is not asyncio.current_task()):
            lease = None
        conn = lease.conn if lease is not None else None
        if conn is None:
            conn = await self._take()
            if lease is not None:
                lease.conn = conn
        if lease is not None:
            lease.busy = True
        try:
            yield conn
        except BaseException as exc:
            if isinstance(exc, asyncpg.InternalClientError):
                # The server ended the connection (pg_terminate_backend, a restart) and asyncpg
                # read its last error before seeing the close: the protocol is out of step, so
                # drop the connection (the pool opens a new one) and answer "unavailable".
                conn.terminate()
                log.warning("database connection broken: %s", exc)
                raise errors.Unavailable() from exc
            if is_connection_error(exc):
                log.warning("database connection lost: %s", type(exc).__name__)
                raise errors.Unavailable() from exc
            raise
        finally:
            if lease is None:
                await self._release(conn)
            else:
                lease.busy = False
                lease.left -= 1
                if not lease.left or _unusable(conn):
                    lease.conn = None
                    await self._release(conn)

    async def _take(self) -> asyncpg.Connection:
        try:
            # asyncio.timeout rather than acquire(timeout=), which wraps every acquire in a new
            # task (asyncio.wait_for); measured here, the difference was within noise.
            async with asyncio.timeout(self.settings.acquire_timeout):
                await self._turns.acquire()
                try:
                    return await self.pool.acquire()
                except BaseException:
                    self._turns.release()
                    raise
        except BaseException as exc:
            if is_connection_error(exc, connecting=True):
                log.warning("database unavailable: %s", type(exc).__name__)
                raise errors.Unavailable() from exc
            raise

    async def _release(self, conn: asyncpg.Connection) -> None:
        try:
            await self.pool.release(conn)
        except CONNECTION_ERRORS:
            pass
        finally:
            self._turns.release()

    def in_use(self) -> int:
        return self.pool.get_size() - self.pool.get_idle_size()

    def size(self) -> int:
        return self.pool.get_size()
