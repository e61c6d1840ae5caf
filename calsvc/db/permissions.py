"""Permission rows of events (who may see them, as what) and the log of every change of
access, each change one statement. Callers hold the event's row lock (FOR UPDATE)."""

from __future__ import annotations

import asyncpg

from calsvc.models import Permission

MAX_PERMISSIONS = 1000  # people with access to one event, owner included

_LIST = """
-- an event's permission rows by user id, after a keyset
SELECT p.user_id, u.username, p.role, p.granted_by, p.granted_at
FROM event_permissions p JOIN users u ON u.id = p.user_id
WHERE p.event_id = $1 AND p.user_id > $2
ORDER BY p.user_id
LIMIT $3
"""

_GRANT = """
-- give users ($2) roles ($3) on event $1, or change the role they have; each actual change
-- logged with its actor ($4). New rows copy the event's start, envelope, version and liveness.
WITH input AS (
    SELECT i.user_id, i.role FROM unnest($2::bigint[], $3::text[]) AS i(user_id, role)
), old AS (
    SELECT p.user_id, p.role FROM event_permissions p JOIN input USING (user_id) WHERE p.event_id = $1
), written AS (
    INSERT INTO event_permissions AS p (event_id, user_id, role, granted_by, starts_at, during, version, live)
    SELECT e.id, i.user_id, i.role, $4, e.start_time, e.during, e.version, e.deleted_at IS NULL
    FROM events e CROSS JOIN input i WHERE e.id = $1
    ON CONFLICT (event_id, user_id) DO UPDATE
        SET role = excluded.role, granted_by = excluded.granted_by, granted_at = now()
        WHERE p.role <> excluded.role
    RETURNING p.user_id, p.role
)
INSERT INTO event_access_changes (event_id, action, user_id, old_role, new_role, actor_id)
SELECT $1, CASE WHEN old.role IS NULL THEN 'shared' ELSE 'role_changed' END, w.user_id, old.role, w.role, $4
FROM written w LEFT JOIN old USING (user_id)
ORDER BY w.user_id
RETURNING user_id, action, new_role
"""

_DEMOTE_OWNER = """
-- the old owner becomes an editor, logged as part of the transfer
WITH p AS (
    UPDATE event_permissions SET role = 'editor', granted_by = $3, granted_at = now()
    WHERE event_id = $1 AND user_id = $2 AND role = 'owner'
    RETURNING user_id
)
INSERT INTO event_access_changes (event_id, action, user_id, old_role, new_role, actor_id)
SELECT $1, 'ownership_transferred', p.user_id, 'owner', 'editor', $3 FROM p
"""

_PROMOTE = """
-- the new owner: their row, the event's owner_id, and the log (old role: theirs before)
WITH p AS (
    UPDATE event_permissions n SET role = 'owner', granted_by = $3, granted_at = now()
    FROM event_permissions o
    WHERE n.event_id = $1 AND n.user_id = $2 AND o.event_id = n.event_id AND o.user_id = n.user_id
    RETURNING o.role AS old_role
), e AS (
    UPDATE events SET owner_id = $2 WHERE id = $1
)
INSERT INTO event_access_changes (event_id, action, user_id, old_role, new_role, actor_id)
SELECT $1, 'ownership_transferred', $2, p.old_role, 'owner', $3 FROM p
"""

_REVOKE = """
-- take away a user's ($2) access to events ($1) (never the owner's), each logged as $4
-- ('unshared' or 'left'): the events whose access went, with their title and liveness, and
-- the user's name
WITH gone AS (
    DELETE FROM event_permissions WHERE event_id = ANY($1::bigint[]) AND user_id = $2 AND role <> 'owner'
    RETURNING event_id, role
), logged AS (
    INSERT INTO event_access_changes (event_id, action, user_id, old_role, new_role, actor_id)
    SELECT gone.event_id, $4, $2, gone.role, NULL, $3 FROM gone ORDER BY gone.event_id
    RETURNING event_id
)
SELECT e.id, e.title, e.deleted_at IS NULL AS live, (SELECT username FROM users WHERE id = $2) AS username
FROM logged JOIN events e ON e.id = logged.event_id
ORDER BY e.id
"""


async def list_permissions(
    conn: asyncpg.Connection, event_id: int, after_user: int = 0, limit: int = MAX_PERMISSIONS
) -> list[Permission]:
    """The event's permission rows (owner included) by user id, those after `after_user`."""
    return [Permission.from_row(r) for r in await conn.fetch(_LIST, event_id, after_user, limit)]


async def count_permissions(conn: asyncpg.Connection, event_id: int, adding: list[int]) -> int:
    """How many people would have access once `adding` have it too."""
    return await conn.fetchval(
        """
        SELECT count(*) FROM (
            SELECT user_id FROM event_permissions WHERE event_id = $1 UNION SELECT unnest($2::bigint[])
        ) everyone
        """,
        event_id,
        adding,
    )


async def roles_of(conn: asyncpg.Connection, event_id: int, user_ids: list[int]) -> dict[int, str]:
    """The roles of those of `user_ids` who have access (deleted users have none)."""
    rows = await conn.fetch(
        "SELECT p.user_id, p.role FROM event_permissions p JOIN users u ON u.id = p.user_id "
        "WHERE p.event_id = $1 AND p.user_id = ANY($2) AND u.deleted_at IS NULL",
        event_id,
        user_ids,
    )
    return {r["user_id"]: r["role"] for r in rows}


async def grant(
    conn: asyncpg.Connection, event_id: int, grants: list[tuple[int, str]], actor_id: int
) -> list[tuple[int, str, str]]:
    """Give each (user id, role) that role (editor or viewer), logging every actual change;
    the changes: (user id, 'shared' or 'role_changed', role), by user id."""
    rows = await conn.fetch(_GRANT, event_id, [u for u, _ in grants], [r for _, r in grants], actor_id)
    return [(r["user_id"], r["action"], r["new_role"]) for r in rows]


async def transfer(conn: asyncpg.Connection, event_id: int, old_owner: int, new_owner: int, actor_id: int) -> None:
    """Make `new_owner` (who has access) the owner; the old owner becomes an editor. Two
    statements, in this order: one owner per event is a unique index, checked row by row."""
    await conn.execute(_DEMOTE_OWNER, event_id, old_owner, actor_id)
    await conn.execute(_PROMOTE, event_id, new_owner, actor_id)


async def revoke(conn: asyncpg.Connection, event_id: int, user_id: int, actor_id: int, action: str) -> str | None:
    """Take away the access of `user_id` (never the owner's); their username, None when they
    had none."""
    rows = await conn.fetch(_REVOKE, [event_id], user_id, actor_id, action)
    return rows[0]["username"] if rows else None


async def revoke_many(
    conn: asyncpg.Connection, event_ids: list[int], user_id: int, actor_id: int, action: str
) -> list[tuple[int, str, bool]]:
    """Take away the access of `user_id` to each of `event_ids` they have access to but do not
    own, in one statement; (event id, title, live) of those, by id."""
    rows = await conn.fetch(_REVOKE, event_ids, user_id, actor_id, action)
    return [(r["id"], r["title"], r["live"]) for r in rows]


async def find_users(
    conn: asyncpg.Connection, ids: list[int], usernames: list[str], emails: list[str]
) -> list[tuple[int, str, str]]:
    """Live users named by id, username or email (both ignoring case): (id, username, email)."""
    rows = await conn.fetch(
        """
        SELECT id, username, email FROM users
        WHERE deleted_at IS NULL
          AND (id = ANY($1::bigint[]) OR lower(username) = ANY($2::text[]) OR lower(email) = ANY($3::text[]))
        """,
        ids,
        [u.lower() for u in usernames],
        [e.lower() for e in emails],
    )
    return [(r["id"], r["username"], r["email"]) for r in rows]


async def hold_live_users(conn: asyncpg.Connection, user_ids: list[int]) -> set[int]:
    """Those of `user_ids` whose account is live, their rows share-locked until the
    transaction ends (closing an account locks its row first)."""
    rows = await conn.fetch(
        "SELECT id FROM users WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL ORDER BY id FOR SHARE", user_ids
    )
    return {r["id"] for r in rows}
