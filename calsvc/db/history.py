"""Reads of an event's history: its versions and the log of access changes (written by
db.events and db.permissions), in the one order of the shared change sequence."""
from __future__ import annotations

import asyncpg

_ACCESS = """
-- who may read the history of event $1: anyone with a permission row while it is live, its
-- owner alone once deleted (SPEC 7)
SELECT e.deleted_at IS NOT NULL AS deleted, p.role, e.version
FROM events e JOIN event_permissions p ON p.event_id = e.id AND p.user_id = $2
WHERE e.id = $1
"""

_VERSIONS = """
SELECT v.version, v.kind, v.at, v.actor_id, u.username AS actor_username, v.changed_fields
FROM event_versions v JOIN users u ON u.id = v.actor_id
WHERE v.event_id = $1 AND v.version > $2::bigint  -- a cursor is any 64-bit number
ORDER BY v.version
LIMIT $3
"""

_VERSION = """
SELECT v.version, v.kind, v.at, v.actor_id, u.username AS actor_username, v.changed_fields, v.snapshot::text
FROM event_versions v JOIN users u ON u.id = v.actor_id
WHERE v.event_id = $1 AND v.version = ANY($2::int[])
"""

_CHANGELOG = """
-- content versions (each with the snapshot before it) and access changes, in the order
-- they were written
SELECT seq, version, action, at, actor_id, actor_username, snapshot, previous, previous_kind,
       user_id, username, old_role, new_role
FROM (
    SELECT v.seq, v.version, v.kind AS action, v.at, v.actor_id, a.username AS actor_username,
           v.snapshot::text AS snapshot, prev.snapshot::text AS previous, prev.kind AS previous_kind,
           NULL::bigint AS user_id, NULL::text AS username, NULL::text AS old_role, NULL::text AS new_role
    FROM event_versions v
    JOIN users a ON a.id = v.actor_id
    LEFT JOIN event_versions prev ON prev.event_id = v.event_id AND prev.version = v.version - 1
    WHERE v.event_id = $1 AND v.seq > $2
    UNION ALL
    SELECT c.seq, NULL, c.action, c.at, c.actor_id, a.username, NULL, NULL, NULL,
           c.user_id, t.username, c.old_role, c.new_role
    FROM event_access_changes c JOIN users a ON a.id = c.actor_id JOIN users t ON t.id = c.user_id
    WHERE c.event_id = $1 AND c.seq > $2
) changes
ORDER BY seq
LIMIT $3
"""


async def access(conn: asyncpg.Connection, event_id: int, user_id: int) -> asyncpg.Record | None:
    """(deleted, role, version) of the event for `user_id`; None when they have no row."""
    return await conn.fetchrow(_ACCESS, event_id, user_id)


async def versions(conn: asyncpg.Connection, event_id: int, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_VERSIONS, event_id, after, limit)


async def snapshots(conn: asyncpg.Connection, event_id: int, numbers: list[int]) -> dict[int, asyncpg.Record]:
    """The versions `numbers` of the event with their snapshots (JSON text), by number."""
    return {r["version"]: r for r in await conn.fetch(_VERSION, event_id, numbers)}


async def changelog(conn: asyncpg.Connection, event_id: int, after_seq: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_CHANGELOG, event_id, after_seq, limit)
