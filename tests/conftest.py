"""Test harness: the real PostgreSQL, a template database built once from the migrations,
and a fresh clone of it for every test that needs the database."""
from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from calsvc.app import create_app
from calsvc.config import Settings
from calsvc.db import migrate

ADMIN_URL = os.environ.get("CALSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
TEMPLATE = f"calsvc_test_template_{os.getpid()}"
SECRET = "test-secret-" + "x" * 40


def db_url(name: str) -> str:
    base = ADMIN_URL.rstrip("/")
    if base.count("/") > 2:  # the URL names a database: swap it
        base = base.rsplit("/", 1)[0]
    return f"{base}/{name}"


def admin_execute(*statements: str) -> None:
    with psycopg.connect(db_url("postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="session")
def template_db() -> str:
    admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)', f'CREATE DATABASE "{TEMPLATE}"')
    migrate.apply_all(db_url(TEMPLATE))
    with psycopg.connect(db_url(TEMPLATE)) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT LIKE '%yoyo%' ORDER BY tablename").fetchall()]
    _EMPTY.append(_emptying(tables))
    yield TEMPLATE
    for conn in _KEEPERS.values():
        conn.close()
    while _SPARE:
        admin_execute(f'DROP DATABASE IF EXISTS "{_SPARE.pop()}" WITH (FORCE)')
    admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')


# Permission rows carry copies of their event's start, envelope, version and liveness
# (migrations 0003 and 0005), which every write keeps; after each test none may differ.
_STALE_COPIES = """
SELECT p.event_id, p.user_id FROM event_permissions p JOIN events e ON e.id = p.event_id
WHERE (p.starts_at, p.during, p.version, p.live) IS DISTINCT FROM
      (e.start_time, e.during, e.version, e.deleted_at IS NULL)
"""

# Each user's count of unread notifications is kept by triggers (migration 0009); after each
# test it must equal the count of their unread rows (where the migration is applied).
_WRONG_COUNTS = """
SELECT u.id, coalesce(c.unread, 0) AS kept, n.unread
FROM users u
LEFT JOIN notification_counts c ON c.user_id = u.id
CROSS JOIN LATERAL (SELECT count(*) AS unread FROM notifications WHERE user_id = u.id AND read_at IS NULL) n
WHERE coalesce(c.unread, 0) <> n.unread
"""


# Databases a test has used, emptied for the next one: cloning the template and dropping the
# clone cost about 240 ms a test here, emptying one a few milliseconds.
_SPARE: list[str] = []
# The session's own connection to each of them, kept open from test to test: connecting for
# the checks and the emptying of each test was most of their cost (70-110 ms a test, against
# 10-15 ms on a kept connection, measured under the load of a full run).
_KEEPERS: dict[str, psycopg.Connection] = {}
_EMPTY: list[str] = []  # the statement that empties a database, made once from the template


def _clone(template: str) -> str:
    name = f"calsvc_test_{uuid.uuid4().hex[:12]}"
    admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def _emptying(tables: list[str]) -> str:
    """Every other session of the database ended, then every row gone and every sequence back
    at its start, as in a fresh clone; what else a test changed (functions, triggers,
    settings) it puts back itself. DELETE with triggers off (foreign keys and the unread
    counts' included): a few milliseconds for the small tables of a test, where TRUNCATE
    took over 100. One round trip."""
    return "; ".join([
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        "BEGIN",
        "SET LOCAL session_replication_role = replica",
        *(f"DELETE FROM {table}" for table in tables),
        "SELECT setval(format('%I', sequencename)::regclass, start_value, false) "
        "FROM pg_sequences WHERE schemaname = 'public'",
        "COMMIT",
    ])


def _on_keeper(name: str, work: Callable[[psycopg.Connection], Any]) -> Any:
    """`work(conn)` on the kept connection to database `name`, opened (again) if need be: a
    test may have ended it (as it ends every session of its database)."""
    for attempt in (1, 2):
        conn = _KEEPERS.get(name)
        if conn is None or conn.closed:
            conn = _KEEPERS[name] = psycopg.connect(db_url(name), autocommit=True)
        try:
            return work(conn)
        except psycopg.OperationalError:
            conn.close()
            if attempt == 2:
                raise


def _forget(name: str) -> None:
    conn = _KEEPERS.pop(name, None)
    if conn is not None:
        conn.close()


@pytest.fixture
def database_url(template_db: str) -> str:
    """A database as migrated and empty (a clone of the template, or one a test used before,
    emptied); after the test, the permission rows must agree with their events and the unread
    counts with the notifications. A database a test failed in is dropped, not used again."""
    name = _SPARE.pop() if _SPARE else _clone(template_db)
    yield db_url(name)
    reuse = False
    try:
        stale, wrong = _on_keeper(name, _check)
        assert not stale, f"permission rows (event, user) out of step with their event: {stale}"
        assert not wrong, f"unread counts (user, kept, actual) out of step with the notifications: {wrong}"
        _on_keeper(name, lambda conn: conn.execute(_EMPTY[0]))
        reuse = True
    finally:
        if reuse:
            _SPARE.append(name)
        else:
            _forget(name)
            admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check(conn: psycopg.Connection) -> tuple[list, list]:
    stale = conn.execute(_STALE_COPIES).fetchall()
    counted = conn.execute("SELECT to_regclass('notification_counts') IS NOT NULL").fetchone()[0]
    return stale, conn.execute(_WRONG_COUNTS).fetchall() if counted else []


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:
    """Fast bcrypt, no rate limits (tests of limits turn them on), a fixed secret."""
    return Settings().replace(
        server={"data_dir": str(tmp_path / "data")},
        database={"url": database_url, "pool_min_size": 1, "pool_max_size": 5},
        auth={"secret": SECRET, "bcrypt_rounds": 4},
        rate_limit={"auth_per_minute": 0, "user_per_minute": 0},
    )


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(settings: Settings, aiohttp_client) -> MakeClient:
    """`await make_client(rate_limit={...})`: a client of a real app over a real socket,
    with some settings sections changed. (`settings` first: its database then outlives the
    apps, which close their connections before it is dropped.)"""

    async def make(**sections: dict[str, Any]) -> TestClient:
        return await aiohttp_client(create_app(settings.replace(**sections) if sections else settings))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


PROBLEM = "application/problem+json"


async def assert_problem(resp, status: int, slug: str) -> dict[str, Any]:
    """The response is problem+json with this status and `type`; returns the body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM, (resp.content_type, text)
    body = await resp.json(content_type=PROBLEM)
    assert body["type"] == f"/problems/{slug}", body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    return body
