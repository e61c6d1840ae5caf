"""Events, their permission rows and their versions, each write in one statement."""

from __future__ import annotations

import datetime as dt

import asyncpg

from calsvc import errors
from calsvc.models import Event

# What Event.from_row reads, by position (models.ROW_COLUMNS; each query adds the role).
# tests/db/test_columns.py checks both lists against that order and against the schema.
EVENT_COLUMNS = (
    "e.id, e.owner_id, e.title, e.description, e.location, e.start_time, e.end_time, e.timezone, "
    "e.all_day, e.rrule, e.exdates, e.rdates, e.exceptions::text, e.last_start, e.version, "
    "e.created_at, e.updated_at, e.updated_by"
)

# The calendar's candidates: what placing them in time needs (a description can be 10,000
# characters, and a conflict check may read thousands of rows), and no role.
CALENDAR_COLUMNS = (
    "e.id, e.owner_id, e.title, ''::text AS description, NULL::text AS location, e.start_time, "
    "e.end_time, e.timezone, e.all_day, e.rrule, e.exdates, e.rdates, e.exceptions::text, "
    "e.last_start, e.version, e.created_at, e.updated_at, e.updated_by, ''::text AS role"
)

_INSERT = (
    """
-- new events (one per element of $2, in order), each with its owner's permission row and
-- version 1, in one statement; ids are drawn first so the answer keeps the request order.
-- None while the owner's account is closed: this runs under the owner's calendar lock, which
-- closing an account holds until it commits, so a create that waited for it sees the close
WITH input AS (
    SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id, i.*
    FROM ROWS FROM (jsonb_to_recordset($2::jsonb) AS (
        title text, description text, location text, start_time timestamptz,
        end_time timestamptz, timezone text, all_day boolean, rrule text, exdates timestamptz[],
        rdates timestamptz[], exceptions jsonb, last_start timestamptz, lower timestamptz,
        upper timestamptz, snapshot jsonb
    )) WITH ORDINALITY AS i(title, description, location, start_time, end_time, timezone, all_day,
                            rrule, exdates, rdates, exceptions, last_start, lower, upper, snapshot, ord)
    WHERE EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)
), e AS (
    INSERT INTO events (id, owner_id, title, description, location, start_time, end_time, timezone,
                        all_day, rrule, exdates, rdates, exceptions, last_start, during, updated_by)
    OVERRIDING SYSTEM VALUE
    SELECT id, $1, title, description, location, start_time, end_time, timezone, all_day, rrule,
           exdates, rdates, exceptions, last_start, tstzrange(lower, upper), $1
    FROM input
    RETURNING *
), p AS (
    INSERT INTO event_permissions (event_id, user_id, role, granted_by, starts_at, during, version)
    SELECT e.id, $1, 'owner', $1, e.start_time, e.during, e.version FROM e
), v AS (
    INSERT INTO event_versions (event_id, version, kind, snapshot, actor_id)
    SELECT input.id, 1, 'created', input.snapshot || jsonb_build_object('id', input.id), $1 FROM input
)
SELECT """
    + EVENT_COLUMNS
    + """, 'owner' AS role
FROM e JOIN input ON input.id = e.id
ORDER BY input.ord
"""
)

_UPDATE = (
    """
-- a new version of a live event (or of a deleted one, restored, when $9): the row (only if
-- still at version $2 and owned by $3), the copies of its start, envelope, version and
-- liveness in every permission row, and the version row
WITH e AS (
    UPDATE events
    SET title = i.title, description = i.description, location = i.location,
        start_time = i.start_time, end_time = i.end_time, timezone = i.timezone, all_day = i.all_day,
        rrule = i.rrule, exdates = i.exdates, rdates = i.rdates, exceptions = i.exceptions,
        last_start = i.last_start, during = tstzrange(i.lower, i.upper), version = events.version + 1,
        updated_at = now(), updated_by = $4, deleted_at = NULL
    FROM jsonb_to_record($5::jsonb) AS i(
        title text, description text, location text, start_time timestamptz, end_time timestamptz,
        timezone text, all_day boolean, rrule text, exdates timestamptz[], rdates timestamptz[],
        exceptions jsonb, last_start timestamptz, lower timestamptz, upper timestamptz, snapshot jsonb)
    WHERE events.id = $1 AND events.version = $2 AND events.owner_id = $3 AND (events.deleted_at IS NULL OR $9)
    RETURNING events.*, i.snapshot
), p AS (
    UPDATE event_permissions SET starts_at = e.start_time, during = e.during, version = e.version, live = true
    FROM e WHERE event_permissions.event_id = e.id
), v AS (
    INSERT INTO event_versions (event_id, version, kind, snapshot, changed_fields, actor_id)
    SELECT e.id, e.version, $6, e.snapshot || jsonb_build_object('id', e.id), $7::text[], $4 FROM e
)
SELECT """
    + EVENT_COLUMNS
    + """, $8::text AS role FROM e
"""
)

_DELETE = """
-- soft delete of events ($1, each only if live and still at its version in $2): the rows leave
-- every read, their permission rows leave every index, and a version row each keeps what the
-- event was ($4, JSON texts)
WITH input AS (
    SELECT i.id, i.version, i.snapshot FROM unnest($1::bigint[], $2::int[], $4::text[]) AS i(id, version, snapshot)
), e AS (
    UPDATE events SET deleted_at = now(), version = events.version + 1, updated_at = now(), updated_by = $3
    FROM input
    WHERE events.id = input.id AND events.version = input.version AND events.deleted_at IS NULL
    RETURNING events.id, events.version, input.snapshot
), p AS (
    UPDATE event_permissions SET live = false, version = e.version FROM e WHERE event_permissions.event_id = e.id
), v AS (
    INSERT INTO event_versions (event_id, version, kind, snapshot, actor_id)
    SELECT e.id, e.version, 'deleted', e.snapshot::jsonb || jsonb_build_object('id', e.id), $3 FROM e
)
SELECT count(*) FROM e
"""

_GET = (
    """
-- one live event, with the caller's role (no row: unknown, deleted or not visible); a
-- deleted one too for its owner when $3
SELECT """
    + EVENT_COLUMNS
    + """, p.role, e.deleted_at IS NOT NULL AS deleted
FROM events e JOIN event_permissions p ON p.event_id = e.id AND p.user_id = $2
WHERE e.id = $1 AND (e.deleted_at IS NULL OR ($3 AND p.role = 'owner'))
"""
)


async def insert_events(conn: asyncpg.Connection, owner_id: int, rows_json: str) -> list[Event]:
    """Insert the events described by `rows_json` (a JSON array of objects with the columns
    of _INSERT's input, `lower`/`upper` being the envelope and `snapshot` the version 1
    content), owned by `owner_id`; the stored events in the same order. errors.Unauthorized
    when the owner's account is closed (the caller holds the owner's calendar lock)."""
    rows = await conn.fetch(_INSERT, owner_id, rows_json)
    if not rows:
        raise errors.Unauthorized("the account is closed")
    return [Event.from_row(r) for r in rows]


async def update_event(
    conn: asyncpg.Connection,
    event_id: int,
    version: int,
    owner_id: int,
    actor_id: int,
    row_json: str,
    kind: str,
    changed_fields: list[str],
    role: str,
    restore: bool = False,
) -> Event | None:
    """Write the next version of the event from `row_json` (one object shaped like an
    element of insert_events' input); None when it is no longer at `version`, owned by
    `owner_id` and live (or deleted, when `restore`: it is live again)."""
    row = await conn.fetchrow(
        _UPDATE, event_id, version, owner_id, actor_id, row_json, kind, changed_fields, role, restore
    )
    return None if row is None else Event.from_row(row)


async def delete_event(
    conn: asyncpg.Connection, event_id: int, version: int, actor_id: int, snapshot_json: str
) -> bool:
    """Soft-delete the event if it is live and still at `version`; whether it was."""
    return await delete_events(conn, [(event_id, version, snapshot_json)], actor_id) == 1


async def delete_events(conn: asyncpg.Connection, events: list[tuple[int, int, str]], actor_id: int) -> int:
    """Soft-delete each (event id, version, snapshot JSON) that is live and still at that
    version, in one statement; how many were."""
    return await conn.fetchval(
        _DELETE, [e[0] for e in events], [e[1] for e in events], actor_id, [e[2] for e in events]
    )


async def lock_events_of(conn: asyncpg.Connection, user_id: int) -> list[int]:
    """Lock, in id order, the row of every event (live or deleted) `user_id` has access to;
    their ids."""
    rows = await conn.fetch(
        """
        SELECT e.id FROM events e
        WHERE e.id IN (SELECT p.event_id FROM event_permissions p WHERE p.user_id = $1)
        ORDER BY e.id FOR UPDATE OF e
        """,
        user_id,
    )
    return [r["id"] for r in rows]


async def owned_among(conn: asyncpg.Connection, owner_id: int, event_ids: list[int]) -> list[Event]:
    """The live events among `event_ids` that `owner_id` owns, by id."""
    rows = await conn.fetch(
        "SELECT " + EVENT_COLUMNS + ", 'owner' AS role FROM events e "
        "WHERE e.id = ANY($2::bigint[]) AND e.owner_id = $1 AND e.deleted_at IS NULL ORDER BY e.id",
        owner_id,
        event_ids,
    )
    return [Event.from_row(r) for r in rows]


async def roles_of(conn: asyncpg.Connection, event_ids: list[int], user_id: int) -> dict[int, tuple[str, int]]:
    """(the role of `user_id`, the owner) of each of `event_ids` that `user_id` can see (live)."""
    rows = await conn.fetch(
        """
        SELECT e.id, p.role, e.owner_id FROM events e JOIN event_permissions p ON p.event_id = e.id AND p.user_id = $2
        WHERE e.id = ANY($1::bigint[]) AND e.deleted_at IS NULL
        """,
        event_ids,
        user_id,
    )
    return {r["id"]: (r["role"], r["owner_id"]) for r in rows}


async def visible_among(conn: asyncpg.Connection, user_id: int, event_ids: list[int]) -> set[int]:
    """Those of `event_ids` that `user_id` can see."""
    rows = await conn.fetch(
        "SELECT event_id FROM event_permissions WHERE user_id = $1 AND live AND event_id = ANY($2::bigint[])",
        user_id,
        event_ids,
    )
    return {r["event_id"] for r in rows}


async def lock_events(conn: asyncpg.Connection, event_ids: list[int]) -> None:
    """Lock the rows of the live events among `event_ids`, in id order."""
    await conn.execute(
        "SELECT 1 FROM events WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL ORDER BY id FOR UPDATE", event_ids
    )


async def lock_calendar(conn: asyncpg.Connection, owner_id: int) -> None:
    """Serialise conflict checks and writes on one owner's calendar until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", owner_id)


_CANDIDATES = (
    """
-- candidates of a conflict check: the calendar of $1 overlapping [$2, $3), from two GiST
-- indexes split by the span of the envelope (migration 0005). Short rows (24 hours at most)
-- with their event; long rows (series, long events) only as (id, version): their content is
-- cached by the caller
SELECT p.event_id AS candidate_id, p.version AS candidate_version, """
    + CALENDAR_COLUMNS
    + """
FROM event_permissions p JOIN events e ON e.id = p.event_id
WHERE p.user_id = $1 AND p.live AND NOT p.long AND p.during && tstzrange($2, $3)
UNION ALL
SELECT p.event_id, p.version, """
    + CALENDAR_COLUMNS
    + """
FROM event_permissions p LEFT JOIN events e ON false
WHERE p.user_id = $1 AND p.live AND p.long AND p.during && tstzrange($2, $3)
"""
)


_CANDIDATES_NEAR = (
    """
-- candidates of a conflict check of a draft with many occurrences: the short rows of the
-- calendar of $1 overlapping one of the pieces [$2[i], $3[i]) (one GiST probe each; OFFSET 0
-- keeps the planner from turning the probes into one join filter), the long rows overlapping
-- [$4, $5) as in _CANDIDATES
SELECT p.event_id AS candidate_id, p.version AS candidate_version, """
    + CALENDAR_COLUMNS
    + """
FROM (SELECT DISTINCT c.event_id FROM unnest($2::timestamptz[], $3::timestamptz[]) AS r(lo, hi)
      CROSS JOIN LATERAL (SELECT p.event_id FROM event_permissions p
                          WHERE p.user_id = $1 AND p.live AND NOT p.long AND p.during && tstzrange(r.lo, r.hi)
                          OFFSET 0) c) near
JOIN event_permissions p ON p.event_id = near.event_id AND p.user_id = $1
JOIN events e ON e.id = p.event_id
UNION ALL
SELECT p.event_id, p.version, """
    + CALENDAR_COLUMNS
    + """
FROM event_permissions p LEFT JOIN events e ON false
WHERE p.user_id = $1 AND p.live AND p.long AND p.during && tstzrange($4, $5)
"""
)


async def list_calendar(
    conn: asyncpg.Connection,
    user_id: int,
    lower: dt.datetime,
    upper: dt.datetime,
    pieces: list[tuple[dt.datetime, dt.datetime]] | None = None,
) -> tuple[list[Event], list[tuple[int, int]]]:
    """The live events of `user_id`'s calendar (owned or shared with them) whose envelope
    overlaps [lower, upper), the candidates of a conflict check: those of 24 hours at most
    as events, the others (series, long events) as (event id, version), for calendar_events.
    Only what placing events in time needs is read: `description` is empty, `location` None
    and `my_role` empty. With `pieces` (the draft's occurrences, within [lower, upper)), the
    short ones only where they overlap a piece: a weekly series checked over two years meets
    the rows near its occurrences instead of every single event of those years
    (bench/conflict_check.py)."""
    short: list[Event] = []
    long: list[tuple[int, int]] = []
    if pieces:
        rows = await conn.fetch(_CANDIDATES_NEAR, user_id, [s for s, _ in pieces], [e for _, e in pieces], lower, upper)
    else:
        rows = await conn.fetch(_CANDIDATES, user_id, lower, upper)
    for row in rows:
        if row["id"] is None:
            long.append((row["candidate_id"], row["candidate_version"]))
        else:
            short.append(Event.from_row(row, 2))  # after candidate_id, candidate_version
    return short, long


async def calendar_events(conn: asyncpg.Connection, event_ids: list[int]) -> list[Event]:
    """The live events of `event_ids` as list_calendar reads them (in no particular order)."""
    rows = await conn.fetch(
        "SELECT " + CALENDAR_COLUMNS + " FROM events e WHERE e.id = ANY($1::bigint[]) AND e.deleted_at IS NULL",
        event_ids,
    )
    return [Event.from_row(r) for r in rows]


async def find_event(conn: asyncpg.Connection, event_id: int, user_id: int, deleted_ok: bool = False) -> Event | None:
    """The event as `user_id` sees it; None when it is unknown, deleted or not visible
    (`deleted_ok`: a deleted event is found for its owner, `deleted` set)."""
    row = await conn.fetchrow(_GET, event_id, user_id, deleted_ok)
    return None if row is None else Event.from_row(row)


async def lock_event(conn: asyncpg.Connection, event_id: int, user_id: int, deleted_ok: bool = False) -> Event | None:
    """find_event, with the event's row locked until the transaction ends (writers of one
    event queue here instead of racing). The event is read again once the lock is held, by a
    statement of its own: a row that waited for the lock is re-read by PostgreSQL, but not the
    permission row joined to it, and every change of access takes this lock first, so only a
    fresh read sees the role as the last of them left it."""
    if await conn.fetchval("SELECT 1 FROM events WHERE id = $1 FOR UPDATE", event_id) is None:
        return None
    return await find_event(conn, event_id, user_id, deleted_ok)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_visible(
    conn: asyncpg.Connection,
    user_id: int,
    *,
    role: str | None,
    window: tuple[dt.datetime | None, dt.datetime | None] | None,
    q: str | None,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> list[Event]:
    """Live events `user_id` can see, by (start_time, id), after the keyset `after`, filtered
    by role, by envelope overlap with `window` (either bound may be None) and by `q` in the
    title or description; at most `limit`. Series still need the exact occurrence check."""
    args: list[object] = [user_id]

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    where = ["p.user_id = $1", "p.live"]
    if role is not None:
        where.append(f"p.role = {arg(role)}")
    if q is not None:
        pattern = arg(_like(q))
        where.append(f"(e.title ILIKE {pattern} OR e.description ILIKE {pattern})")
    if after is not None:
        where.append(f"(p.starts_at, p.event_id) > ({arg(after[0])}, {arg(after[1])})")
    most = arg(limit)
    order = f"ORDER BY p.starts_at, p.event_id LIMIT {most}"

    def part(conditions: list[str]) -> str:
        return (
            "SELECT " + EVENT_COLUMNS + ", p.role FROM event_permissions p JOIN events e ON e.id = p.event_id "
            "WHERE " + " AND ".join(conditions) + " " + order
        )

    if window is None or window[0] is None:
        if window is not None:
            where.append(f"p.during && tstzrange(NULL, {arg(window[1])})")
        sql = "-- the caller's events in start order, from the (user_id, starts_at, event_id) index\n" + part(where)
    else:
        # A regular row (an envelope of at most 24 hours, from the event's start) overlaps
        # [W, U) when it starts in [W - 24 h, U) and ends after W: its walk of the (user_id,
        # starts_at) index starts a day before the window (conditions the GiST index cannot
        # take, so that a prepared statement's generic plan walks it too). The irregular rows
        # come from their own small GiST index (migration 0008).
        start, end = arg(window[0]), arg(window[1])
        regular = where + [
            f"NOT p.irregular AND p.starts_at >= {arg(window[0] - _REGULAR_SPAN)} AND upper(p.during) > {start}"
        ]
        if window[1] is not None:
            regular.append(f"p.starts_at < {end}")
        irregular = where + [f"p.irregular AND p.during && tstzrange({start}, {end})"]
        sql = (
            "-- the caller's events in a window, in start order: the regular rows from the (user_id,\n"
            "-- starts_at, event_id) index from a day before it, the irregular ones from their GiST index\n"
            f"({part(regular)}) UNION ALL ({part(irregular)}) ORDER BY start_time, id LIMIT {most}"
        )
    return [Event.from_row(r) for r in await conn.fetch(sql, *args)]


_REGULAR_SPAN = dt.timedelta(hours=24)  # the most a regular row's envelope lasts (migration 0008)


async def users_sharing_with(conn: asyncpg.Connection, user_id: int, others: list[int]) -> set[int]:
    """Those of `others` who gave `user_id` access to at least one live event they own (their
    own act: a share the other way, or an event `user_id` handed over to them, does not count),
    and whose account is live."""
    rows = await conn.fetch(
        """
        -- per other user, stop at the first of the caller's permissions that they granted on an
        -- event they own
        SELECT o.id FROM unnest($2::bigint[]) AS o(id)
        WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = o.id AND u.deleted_at IS NULL) AND EXISTS (
            SELECT 1 FROM event_permissions mine
            JOIN event_permissions theirs ON theirs.event_id = mine.event_id AND theirs.user_id = o.id
            WHERE mine.user_id = $1 AND mine.live AND mine.granted_by = o.id AND theirs.role = 'owner')
        """,
        user_id,
        others,
    )
    return {r["id"] for r in rows}
