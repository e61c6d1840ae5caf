"""Events, with their owner's permission row and version 1 written together."""
from __future__ import annotations

import datetime as dt

import asyncpg

from calsvc.models import Event

_EVENT_COLUMNS = (
    "e.id, e.owner_id, e.title, e.description, e.location, e.start_time, e.end_time, e.timezone, "
    "e.all_day, e.rrule, e.exdates, e.rdates, e.version, e.created_at, e.updated_at, e.updated_by"
)

_INSERT = """
-- the event, its owner's permission row and version 1, in one statement
WITH e AS (
    INSERT INTO events (owner_id, title, description, location, start_time, end_time, timezone,
                        all_day, rrule, exdates, rdates, during, updated_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, tstzrange($12, $13), $1)
    RETURNING *
), p AS (
    INSERT INTO event_permissions (event_id, user_id, role, granted_by, starts_at, during)
    SELECT e.id, $1, 'owner', $1, e.start_time, e.during FROM e
), v AS (
    INSERT INTO event_versions (event_id, version, kind, snapshot, actor_id)
    SELECT e.id, 1, 'created', $14::jsonb || jsonb_build_object('id', e.id), $1 FROM e
)
SELECT """ + _EVENT_COLUMNS + """, 'owner' AS role FROM e
"""

_GET = """
-- one live event, with the caller's role (no row: unknown, deleted or not visible)
SELECT """ + _EVENT_COLUMNS + """, p.role
FROM events e JOIN event_permissions p ON p.event_id = e.id AND p.user_id = $2
WHERE e.id = $1 AND e.deleted_at IS NULL
"""


async def insert_event(conn: asyncpg.Connection, owner_id: int, title: str, description: str,
                       location: str | None, start_time: dt.datetime, end_time: dt.datetime,
                       timezone: str, all_day: bool, rrule: str | None,
                       exdates: list[dt.datetime], rdates: list[dt.datetime],
                       during: tuple[dt.datetime, dt.datetime | None], snapshot_json: str) -> Event:
    row = await conn.fetchrow(_INSERT, owner_id, title, description, location, start_time, end_time,
                              timezone, all_day, rrule, exdates, rdates, during[0], during[1],
                              snapshot_json)
    return Event.from_row(row)


async def lock_calendar(conn: asyncpg.Connection, owner_id: int) -> None:
    """Serialise conflict checks and writes on one owner's calendar until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", owner_id)


async def list_calendar(conn: asyncpg.Connection, owner_id: int, lower: dt.datetime,
                        upper: dt.datetime | None) -> list[Event]:
    """Live events in `owner_id`'s calendar (owned or shared with them) whose envelope
    overlaps [lower, upper): the candidates of a conflict check, from the GiST index."""
    rows = await conn.fetch(
        """
        -- candidates: the owner's calendar overlapping the range (GiST on user_id, during)
        SELECT """ + _EVENT_COLUMNS + """, p.role
        FROM event_permissions p JOIN events e ON e.id = p.event_id
        WHERE p.user_id = $1 AND p.live AND p.during && tstzrange($2, $3) AND e.deleted_at IS NULL
        """,
        owner_id, lower, upper,
    )
    return [Event.from_row(r) for r in rows]


async def find_event(conn: asyncpg.Connection, event_id: int, user_id: int) -> Event | None:
    """The event as `user_id` sees it; None when it is unknown, deleted or not visible."""
    row = await conn.fetchrow(_GET, event_id, user_id)
    return None if row is None else Event.from_row(row)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_visible(conn: asyncpg.Connection, user_id: int, *, role: str | None,
                       window: tuple[dt.datetime | None, dt.datetime | None] | None, q: str | None,
                       after: tuple[dt.datetime, int] | None, limit: int) -> list[Event]:
    """Live events `user_id` can see, by (start_time, id), after the keyset `after`, filtered
    by role, by envelope overlap with `window` (either bound may be None) and by `q` in the
    title or description; at most `limit`. Series still need the exact occurrence check."""
    where = ["p.user_id = $1", "p.live"]
    args: list[object] = [user_id]

    def add(condition: str, *values: object) -> None:
        # Each value takes the next placeholder, so numbering cannot drift.
        for value in values:
            args.append(value)
            condition = condition.replace("?", f"${len(args)}", 1)
        where.append(condition)

    if role is not None:
        add("p.role = ?", role)
    if window is not None:
        add("p.during && tstzrange(?, ?)", window[0], window[1])
    if q is not None:
        add("(e.title ILIKE ? OR e.description ILIKE ?)", _like(q), _like(q))
    if after is not None:
        add("(p.starts_at, p.event_id) > (?, ?)", after[0], after[1])
    args.append(limit)
    sql = (
        "-- the caller's events in start order, from the (user_id, starts_at, event_id) index\n"
        "SELECT " + _EVENT_COLUMNS + ", p.role "
        "FROM event_permissions p JOIN events e ON e.id = p.event_id "
        "WHERE " + " AND ".join(where) + " "
        f"ORDER BY p.starts_at, p.event_id LIMIT ${len(args)}"
    )
    return [Event.from_row(r) for r in await conn.fetch(sql, *args)]


async def users_sharing_with(conn: asyncpg.Connection, user_id: int, others: list[int]) -> set[int]:
    """Those of `others` who have access to at least one live event that `user_id` also has."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT theirs.user_id
        FROM event_permissions mine
        JOIN event_permissions theirs ON theirs.event_id = mine.event_id AND theirs.live
        WHERE mine.user_id = $1 AND mine.live AND theirs.user_id = ANY($2::bigint[])
        """,
        user_id, others,
    )
    return {r["user_id"] for r in rows}
