"""Schema migrations with yoyo (synchronous, through psycopg 3); call from async code via a thread."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    """`sql/` of a source checkout, else the copy installed as `calsvc/migrations`."""
    for candidate in (_PACKAGE.parent / "sql", _PACKAGE / "migrations"):
        if any(candidate.glob("*.sql")):
            return candidate
    raise FileNotFoundError("no migrations found (sql/ or calsvc/migrations/)")


def yoyo_url(dsn: str) -> str:
    """yoyo reads `postgresql+psycopg://` as psycopg 3 (`postgresql://` would mean psycopg2)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", dsn)


def backend_and_migrations(dsn: str):
    """yoyo's backend for the database at `dsn` (the caller closes backend.connection) and
    every migration."""
    return get_backend(yoyo_url(dsn)), read_migrations(str(migrations_dir()))


def all_ids() -> list[str]:
    return [m.id for m in read_migrations(str(migrations_dir()))]


def pending(dsn: str) -> list[str]:
    """Ids of the migrations not yet applied to the database at `dsn`."""
    backend, migrations = backend_and_migrations(dsn)
    try:
        return [m.id for m in backend.to_apply(migrations)]
    finally:
        backend.connection.close()


def apply_all(dsn: str) -> list[str]:
    """Apply every pending migration under yoyo's lock; return the ids applied."""
    backend, migrations = backend_and_migrations(dsn)
    try:
        with backend.lock():
            todo = backend.to_apply(migrations)
            backend.apply_migrations(todo)
        ids = [m.id for m in todo]
        if ids:
            log.info("applied migrations: %s", ", ".join(ids))
        return ids
    finally:
        backend.connection.close()


def rollback_all(dsn: str) -> list[str]:
    """Roll back every applied migration (newest first); return the ids rolled back."""
    backend, migrations = backend_and_migrations(dsn)
    try:
        with backend.lock():
            todo = backend.to_rollback(migrations)
            backend.rollback_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()


async def readiness(db, expected: list[str], timeout: float) -> tuple[bool, list[str]]:
    """(database answered within `timeout`, ids of `expected` not applied yet)."""
    import asyncio

    import asyncpg

    from calsvc import errors

    try:
        async with asyncio.timeout(timeout):
            async with db.acquire() as conn:
                applied = await applied_ids(conn)
    except (TimeoutError, errors.Unavailable, asyncpg.PostgresError):
        return False, []
    return True, [m for m in expected if m not in applied]


async def applied_ids(conn) -> set[str]:
    """Ids of the migrations applied to the connected database (empty before the first)."""
    import asyncpg

    try:
        rows = await conn.fetch("SELECT migration_id FROM _yoyo_migration")
    except asyncpg.UndefinedTableError:
        return set()
    return {r["migration_id"] for r in rows}
