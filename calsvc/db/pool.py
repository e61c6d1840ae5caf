"""The connection pool, and the translation of "the database is gone" into a fast 503.

While PostgreSQL is unreachable, acquiring or using a connection fails within the
configured timeouts and raises `errors.Unavailable`; asyncpg drops broken connections
when they are released, so the pool heals by itself once the server is back.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

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


class Database:
    """The process's pool. `acquire()` yields a connection or raises errors.Unavailable."""

    def __init__(self, pool: asyncpg.Pool, settings: DatabaseSettings) -> None:
        self.pool = pool
        self.settings = settings

    @classmethod
    async def connect(cls, dsn: str, settings: DatabaseSettings) -> "Database":
        """The pool; when the database is down at start it opens no connection yet (requests
        get 503 until the database is back) instead of failing the start."""
        try:
            return cls(await cls._create(dsn, settings, settings.pool_min_size), settings)
        except CONNECT_ERRORS as exc:
            log.warning("database unavailable at start (%s); serving 503 until it is back",
                        type(exc).__name__)
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
        except (asyncio.TimeoutError, *CONNECTION_ERRORS):
            self.pool.terminate()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            # asyncio.timeout rather than acquire(timeout=), which wraps every acquire in a new
            # task (asyncio.wait_for); measured here, the difference was within noise.
            async with asyncio.timeout(self.settings.acquire_timeout):
                conn = await self.pool.acquire()
        except BaseException as exc:
            if is_connection_error(exc, connecting=True):
                log.warning("database unavailable: %s", type(exc).__name__)
                raise errors.Unavailable() from exc
            raise
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
            try:
                await self.pool.release(conn)
            except CONNECTION_ERRORS:
                pass

    def in_use(self) -> int:
        return self.pool.get_size() - self.pool.get_idle_size()

    def size(self) -> int:
        return self.pool.get_size()
