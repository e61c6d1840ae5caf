"""Migrations on a fresh, empty database: apply all, roll all back to nothing, apply again;
and the refusal to start with pending migrations when auto_migrate is off."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from calsvc.__main__ import ensure_migrated
from calsvc.config import ConfigError, Settings
from calsvc.db import migrate
from tests.conftest import admin_execute, db_url

YOYO_TABLES = {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"}


@pytest.fixture
def empty_db() -> str:
    """The URL of a new, empty database (not cloned from the template); dropped after."""
    name = f"calsvc_mig_{uuid.uuid4().hex[:12]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    yield db_url(name)
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_objects(url: str) -> dict[str, set]:
    """What the migrations can leave in the public schema, by kind."""
    with psycopg.connect(url) as conn:
        relations = {
            (name, kind) for name, kind in conn.execute(
                "SELECT c.relname, c.relkind::text FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")
        }
        columns = set(conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public'").fetchall())
        types = {row[0] for row in conn.execute(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r', 'm') "
            "OR (n.nspname = 'public' AND t.typtype = 'c' AND NOT EXISTS "
            "(SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c'))")}
        functions = {row[0] for row in conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public'")}
        triggers = {row[0] for row in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
    return {"relations": relations, "columns": columns, "types": types,
            "functions": functions, "triggers": triggers}


def app_tables(objects: dict[str, set]) -> set[str]:
    return {name for name, kind in objects["relations"] if kind in ("r", "p") and name not in YOYO_TABLES}


def yoyo_owned(name: str) -> bool:
    return any(name == t or name.startswith(t + "_") for t in YOYO_TABLES)


def test_apply_rollback_apply_on_an_empty_database(empty_db):
    ids = migrate.all_ids()
    assert ids and ids == sorted(ids)
    assert migrate.pending(empty_db) == ids

    assert migrate.apply_all(empty_db) == ids
    assert migrate.pending(empty_db) == []
    first = schema_objects(empty_db)
    assert {"users", "token_families", "refresh_tokens", "revoked_access_tokens"} <= app_tables(first)
    assert migrate.apply_all(empty_db) == []  # nothing left to do

    assert migrate.rollback_all(empty_db) == list(reversed(ids))
    assert migrate.pending(empty_db) == ids
    bare = schema_objects(empty_db)
    assert app_tables(bare) == set()
    leftover = {name for name, _ in bare["relations"] if not yoyo_owned(name)}
    assert leftover == set(), f"rollback left {leftover}"
    assert bare["types"] == set() and bare["functions"] == set() and bare["triggers"] == set()

    assert migrate.apply_all(empty_db) == ids
    assert migrate.pending(empty_db) == []
    assert schema_objects(empty_db) == first


def test_migrate_refuses_pending_without_auto_migrate(empty_db):
    manual = Settings().replace(database={"url": empty_db, "auto_migrate": False})
    with pytest.raises(ConfigError) as raised:
        ensure_migrated(manual)
    message = str(raised.value)
    assert "auto_migrate" in message
    assert all(mid in message for mid in migrate.all_ids())
    assert migrate.pending(empty_db) == migrate.all_ids()  # refused, and applied nothing

    # With auto_migrate on, the same call applies them; then the manual mode starts.
    ensure_migrated(manual.replace(database={"auto_migrate": True}))
    assert migrate.pending(empty_db) == []
    ensure_migrated(manual)


def test_migrate_refuses_when_only_some_are_pending(empty_db):
    migrate.apply_all(empty_db)
    ids = migrate.all_ids()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # Pretend the newest migration was never applied (its tables stay: only the check is tested).
        conn.execute("DELETE FROM _yoyo_migration WHERE migration_id = %s", (ids[-1],))
    assert migrate.pending(empty_db) == [ids[-1]]
    with pytest.raises(ConfigError, match=ids[-1]):
        ensure_migrated(Settings().replace(database={"url": empty_db, "auto_migrate": False}))


def test_notification_counts_start_from_the_unread_notifications_already_there(empty_db):
    """Migration 0009 counts what an existing database holds, then its triggers keep up."""
    backend, migrations = migrate.backend_and_migrations(empty_db)
    try:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0009")))
    finally:
        backend.connection.close()
    with psycopg.connect(empty_db) as conn:
        users = [conn.execute(
            "INSERT INTO users (username, email, password_hash) VALUES (%s, %s, 'x') RETURNING id",
            (name, f"{name}@example.com")).fetchone()[0] for name in ("ann", "bob", "cat")]
        event = conn.execute(
            "INSERT INTO events (owner_id, title, start_time, end_time, during, updated_by) "
            "VALUES (%s, 't', '2026-01-01Z', '2026-01-01 01:00Z', '[2026-01-01Z, 2026-01-01 01:00Z)', %s) "
            "RETURNING id", (users[0], users[0])).fetchone()[0]
        for user, read in ((users[0], None), (users[0], None), (users[0], "now()"), (users[1], None), (users[2], "now()")):
            conn.execute(
                "INSERT INTO notifications (user_id, kind, event_id, actor_id, summary, read_at) "
                f"VALUES (%s, 'event.updated', %s, %s, 's', {read or 'NULL'})", (user, event, users[0]))
    migrate.apply_all(empty_db)
    with psycopg.connect(empty_db) as conn:
        def counts() -> dict[int, int]:
            return dict(conn.execute("SELECT user_id, unread FROM notification_counts").fetchall())

        assert counts() == {users[0]: 2, users[1]: 1}
        conn.execute("UPDATE notifications SET read_at = now() WHERE user_id = %s AND read_at IS NULL", (users[0],))
        conn.execute("UPDATE notifications SET read_at = NULL WHERE user_id = %s", (users[2],))
        assert counts() == {users[0]: 0, users[1]: 1, users[2]: 1}
        conn.execute("DELETE FROM notifications WHERE user_id = %s", (users[1],))
        assert counts() == {users[0]: 0, users[1]: 0, users[2]: 1}
