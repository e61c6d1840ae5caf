"""Notifications: written for a transaction's changes just before it commits, listed newest
first, read by the event stream after an id, marked read."""

from __future__ import annotations

import asyncpg

from calsvc.models import Notification

BUCKETS = 64  # recipients' lock buckets (migration 0007)
LOCK_CLASS = 1667329134  # key space of those advisory locks (two-int form; the calendar
# locks use the one-bigint form, a key space of its own)
MAX_PAYLOAD = 7900  # NOTIFY payloads must stay under 8,000 bytes

_COLUMNS = (
    "n.id, n.user_id, n.kind, n.event_id, n.actor_id, a.username AS actor_username, n.summary, n.created_at, n.read_at"
)

_LOCK = """
-- the recipients' buckets, in order (see migration 0007), before any id is drawn
SELECT pg_advisory_xact_lock($3::int, s.bucket) FROM (
    SELECT DISTINCT (u.user_id % $4)::int AS bucket FROM (
        SELECT user_id FROM event_permissions WHERE event_id = ANY($1::bigint[])
        UNION ALL SELECT unnest($2::bigint[])
    ) u
    ORDER BY 1
) s
"""

_INSERT = """
-- one row per recipient of each note ($1): everyone with access to its event (a deleted
-- event keeps its permission rows) and anyone with a line of their own ($2: the user who
-- was shared with, promoted, revoked), never the actor. A summary is a format() template
-- whose %1$s is the actor's username. Ids follow the notes' order. With a channel ($3), the
-- recipients are announced by NOTIFY, which PostgreSQL delivers when the transaction commits.
-- created_at is the time of writing, under the recipients' locks (not the transaction's start):
-- it grows with the ids of each user's notifications, as a list in id order expects.
WITH note AS (
    SELECT n.ord, n.kind, n.event_id, n.actor_id, n.summary FROM jsonb_to_recordset($1::jsonb)
        AS n(ord int, kind text, event_id bigint, actor_id bigint, summary text)
), personal AS (
    SELECT p.ord, p.user_id, p.summary FROM jsonb_to_recordset($2::jsonb) AS p(ord int, user_id bigint, summary text)
), recipient AS (
    SELECT n.ord, p.user_id FROM note n JOIN event_permissions p ON p.event_id = n.event_id
    UNION
    SELECT ord, user_id FROM personal
), written AS (
    INSERT INTO notifications (user_id, kind, event_id, actor_id, summary, created_at)
    SELECT r.user_id, n.kind, n.event_id, n.actor_id, format(coalesce(x.summary, n.summary), a.username),
           clock_timestamp()
    FROM recipient r
    JOIN note n ON n.ord = r.ord
    JOIN users a ON a.id = n.actor_id
    LEFT JOIN personal x ON x.ord = r.ord AND x.user_id = r.user_id
    WHERE r.user_id <> n.actor_id
    ORDER BY n.ord, r.user_id
    RETURNING user_id
), recipients AS (
    SELECT coalesce(array_agg(DISTINCT user_id ORDER BY user_id), '{}') AS users FROM written
)
SELECT users, CASE WHEN $3::text <> '' AND cardinality(users) > 0 THEN pg_notify($3, 'n:' || (
    CASE WHEN octet_length(array_to_string(users, ',')) <= $4 THEN array_to_string(users, ',') ELSE '*' END))
END IS NULL AS unused
FROM recipients
"""

_LIST = (
    """
-- a page of a user's notifications, newest first, before id $2 (unread ones only when $3)
SELECT """
    + _COLUMNS
    + """
FROM notifications n JOIN users a ON a.id = n.actor_id
WHERE n.user_id = $1 AND n.id < $2 AND (NOT $3 OR n.read_at IS NULL)
ORDER BY n.id DESC
LIMIT $4
"""
)

_AFTER = (
    """
-- what the streams of each user ($1) have not had yet: ids after their cursor ($2), in order,
-- at most $3 per user
SELECT """
    + _COLUMNS
    + """
FROM unnest($1::bigint[], $2::bigint[]) AS c(user_id, after)
CROSS JOIN LATERAL (
    SELECT id, user_id, kind, event_id, actor_id, summary, created_at, read_at FROM notifications n
    WHERE n.user_id = c.user_id AND n.id > c.after ORDER BY n.id LIMIT $3
) n
JOIN users a ON a.id = n.actor_id
ORDER BY n.user_id, n.id
"""
)

_READ_ONE = (
    """
-- mark one of the user's notifications read (it keeps the first read_at)
WITH n AS (
    UPDATE notifications SET read_at = coalesce(read_at, now())
    WHERE id = $1 AND user_id = $2
    RETURNING id, user_id, kind, event_id, actor_id, summary, created_at, read_at
)
SELECT """
    + _COLUMNS
    + """ FROM n JOIN users a ON a.id = n.actor_id
"""
)


async def lock_recipients(conn: asyncpg.Connection, event_ids: list[int], extra_users: list[int]) -> None:
    """Lock the buckets of everyone with access to `event_ids` and of `extra_users`."""
    await conn.execute(_LOCK, event_ids, extra_users, LOCK_CLASS, BUCKETS)


async def insert_notifications(
    conn: asyncpg.Connection, notes_json: str, personal_json: str, channel: str | None
) -> list[int]:
    """Write the notifications of `notes_json` (see _INSERT); the recipients, by id.
    The caller has locked their buckets (lock_recipients) in this transaction."""
    row = await conn.fetchrow(_INSERT, notes_json, personal_json, channel or "", MAX_PAYLOAD)
    return list(row["users"])


async def list_notifications(
    conn: asyncpg.Connection, user_id: int, before: int, unread: bool, limit: int
) -> list[Notification]:
    return [Notification.from_row(r) for r in await conn.fetch(_LIST, user_id, before, unread, limit)]


async def count_unread(conn: asyncpg.Connection, user_id: int) -> int:
    """Kept by the database as notifications come and go (migration 0009)."""
    return await conn.fetchval(
        "SELECT coalesce((SELECT unread FROM notification_counts WHERE user_id = $1), 0)", user_id
    )


async def notifications_after(conn: asyncpg.Connection, cursors: dict[int, int], per_user: int) -> list[Notification]:
    """Each user's notifications after their cursor, by user then id, `per_user` at most each."""
    users = list(cursors)
    return [Notification.from_row(r) for r in await conn.fetch(_AFTER, users, [cursors[u] for u in users], per_user)]


async def latest_id(conn: asyncpg.Connection, user_id: int) -> int:
    """The id of the user's newest notification; 0 when they have none."""
    return await conn.fetchval("SELECT coalesce(max(id), 0) FROM notifications WHERE user_id = $1", user_id)


async def mark_read(conn: asyncpg.Connection, notification_id: int, user_id: int) -> Notification | None:
    """The notification, read; None when the user has no notification with that id."""
    row = await conn.fetchrow(_READ_ONE, notification_id, user_id)
    return None if row is None else Notification.from_row(row)


async def mark_all_read(conn: asyncpg.Connection, user_id: int) -> int:
    """Mark every unread notification of the user read; how many there were."""
    status = await conn.execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user_id
    )
    return int(status.split()[-1])
