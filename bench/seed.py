"""The seed of the benchmarks that need a big calendar table (conflict_check.py, load.py).

    from seed import seed, seeded, verify
    if not await seeded(url, events, owners, recurring):
        await seed(url, events, owners, recurring, extra=add_more)   # drop, create, migrate, fill

`seed` drops and creates the database named by `url`, applies the migrations and fills it
with set-based SQL plus one COPY: `owners` users named bench_owner_NNNN (password PASSWORD,
a real bcrypt hash of 4 rounds), each in one of 8 time zones; `events` events owned round
robin, of which `recurring` (default 1%) are series run through the service's check_event
and the rest single events generated in SQL; every event with its owner's permission row and
version 1, as the service writes them. `extra(conn, owner_ids)` may add rows before the
secondary indexes are built. A marker table (bench_seed) records what was seeded, so
`seeded` can tell whether a later run may reuse it. `verify` rebuilds a sample of rows with
the service's own code and compares them. `code_version` names the checkout a run measured.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from calsvc.db import migrate
from calsvc.drafts import check_event

UTC = dt.UTC
# The seeded range: 104 whole weeks from Monday 2026-01-05 (local dates of each owner).
FIRST_DAY = dt.date(2026, 1, 5)
WEEKS = 104
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Europe/London",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "UTC",
    "Australia/Sydney",
    "Asia/Kolkata",
)
RECURRING_SHARE = 0.01  # of the events, unless told how many series
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


PASSWORD = "bench-password"  # every seeded user's


def zone_of(owner_index: int) -> str:
    return ZONES[owner_index % len(ZONES)]


def owner_name(position: int) -> str:
    """The username of the owner at `position` (0-based), as seed() writes it."""
    return f"bench_owner_{position:04d}"


def admin_url(url: str) -> str:
    """The same server's maintenance database (to drop and create the one in `url`)."""
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def default_recurring(events: int) -> int:
    return max(1, round(events * RECURRING_SHARE))


# -- seeding ------------------------------------------------------------------------------

# Single events, generated in SQL. Per event: an owner (round robin), a day (90% on a working
# day, 10% on a weekend) in the 104 weeks, a start between 07:00 and 19:00 local on the
# quarter hour, 30-120 min (15-min steps); 2% are all-day (local midnight to midnight).
# The random values are drawn once per row in the inner query.
_SINGLES = """
INSERT INTO seed_stage (sort_key, owner_id, title, description, location, start_time, end_time,
                        timezone, all_day)
SELECT r.k, o.user_id,
       CASE WHEN r.all_day THEN 'Day off ' ELSE 'Meeting ' END || r.g,
       CASE WHEN r.r_desc < 0.7 THEN '' ELSE 'Agenda: item ' || r.g || ', review, next steps' END,
       CASE WHEN r.r_loc < 0.5 THEN NULL ELSE 'Room ' || (1 + (r.g % 40)) END,
       CASE WHEN r.all_day THEN r.day::timestamp AT TIME ZONE o.tz
            ELSE (r.day + make_interval(mins => r.start_min)) AT TIME ZONE o.tz END,
       CASE WHEN r.all_day THEN (r.day + 1)::timestamp AT TIME ZONE o.tz
            ELSE (r.day + make_interval(mins => r.start_min + r.minutes)) AT TIME ZONE o.tz END,
       o.tz, r.all_day
FROM (
    SELECT g, random() AS k, random() < 0.02 AS all_day, random() AS r_desc, random() AS r_loc,
           $3::date + 7 * floor(random() * $4)::int
               + CASE WHEN random() < 0.9 THEN floor(random() * 5)::int
                      ELSE 5 + floor(random() * 2)::int END AS day,
           7 * 60 + 15 * floor(random() * 49)::int AS start_min,
           30 + 15 * floor(random() * 7)::int AS minutes
    FROM generate_series(0, $1 - 1) AS g
) r
JOIN bench_owners o ON o.position = r.g % $2
"""

# Python's datetime.isoformat() of an instant shown in a zone, as the service's snapshot writes it.
_ISO = """
CREATE FUNCTION pg_temp.iso(ts timestamptz, tz text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(ts AT TIME ZONE tz, 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN off < 0 THEN '-' ELSE '+' END
           || to_char(abs(off) / 3600, 'FM00') || ':' || to_char(abs(off) % 3600 / 60, 'FM00')
    FROM (SELECT extract(epoch FROM (ts AT TIME ZONE tz) - (ts AT TIME ZONE 'UTC'))::int AS off) o
$$
"""

_SINGLE_SNAPSHOT = """jsonb_build_object(
    'title', s.title, 'description', s.description, 'location', s.location,
    'start_time', pg_temp.iso(s.start_time, s.timezone), 'end_time', pg_temp.iso(s.end_time, s.timezone),
    'timezone', s.timezone, 'all_day', s.all_day, 'rrule', NULL::text,
    'exdates', '[]'::jsonb, 'rdates', '[]'::jsonb, 'owner_id', s.owner_id) || $1::jsonb"""


def stored_snapshot(draft, owner_id: int) -> dict[str, Any]:
    """The version-1 snapshot the service writes for `draft` (without the id, which the
    INSERT adds)."""
    return draft.row(owner_id)["snapshot"]


_SNAPSHOT_KEYS = (
    "title",
    "description",
    "location",
    "start_time",
    "end_time",
    "timezone",
    "all_day",
    "rrule",
    "exdates",
    "rdates",
    "owner_id",
)


def single_snapshot_rest() -> dict[str, Any]:
    """The keys of a single event's snapshot that do not depend on the row (say
    `exceptions: {}`), taken from the service's own snapshot of a sample event."""
    start = dt.datetime(2026, 1, 5, 9, tzinfo=UTC)
    draft = check_event(
        {
            "title": "x",
            "description": "",
            "location": None,
            "start_time": start,
            "end_time": start + dt.timedelta(hours=1),
            "timezone": "UTC",
            "all_day": False,
            "recurrence": None,
        }
    )
    return {k: v for k, v in stored_snapshot(draft, 1).items() if k not in _SNAPSHOT_KEYS}


def recurring_fields(rng: random.Random, tz_name: str, n: int) -> dict[str, Any]:
    """The fields of one recurring series as a client would send them: weekly (some every
    other week, some on two days) or working-daily, endless or with COUNT or UNTIL, a few
    with EXDATEs; first occurrence in the first year of the range (endless ones: anywhere)."""
    tz = ZoneInfo(tz_name)
    kind = rng.random()
    bound = rng.random()
    day = FIRST_DAY + dt.timedelta(days=rng.randrange(0, 7 * WEEKS if bound < 0.4 else 7 * 52))
    if day.weekday() >= 5:  # series start on a working day
        day += dt.timedelta(days=7 - day.weekday())
    if kind < 0.55:  # weekly on the start's weekday (sometimes a second day, or every other week)
        days = [WEEKDAYS[day.weekday()]]
        if rng.random() < 0.2:
            days.append(WEEKDAYS[(day.weekday() + 2) % 5])
        rule = "FREQ=WEEKLY;BYDAY=" + ",".join(days)
        if rng.random() < 0.2:
            rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=" + days[0]
        minutes = rng.choice((30, 45, 60, 90))
        title = f"Weekly {n}"
    else:  # a stand-up every working day
        rule = "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"
        minutes = rng.choice((15, 15, 30))
        title = f"Stand-up {n}"
    if bound < 0.4:
        pass  # endless
    elif bound < 0.7:
        rule += f";COUNT={rng.randrange(5, 60)}"
    else:
        until = day + dt.timedelta(days=rng.randrange(30, 400))
        rule += f";UNTIL={until:%Y%m%d}"
    start = dt.datetime.combine(day, dt.time(rng.randrange(8, 18), rng.choice((0, 15, 30, 45))), tz)
    exdates = []
    if rng.random() < 0.15:  # a cancelled occurrence or two (one, two or three weeks on)
        exdates = [start + dt.timedelta(weeks=k) for k in sorted(rng.sample((1, 2, 3), rng.randrange(1, 3)))]
    return {
        "title": title,
        "description": "" if rng.random() < 0.5 else f"Series {n}",
        "location": None if rng.random() < 0.5 else f"Room {n % 40 + 1}",
        "start_time": start,
        "end_time": start + dt.timedelta(minutes=minutes),
        "timezone": tz_name,
        "all_day": False,
        "recurrence": {"rrule": rule, "exdates": exdates, "rdates": []},
    }


def recurring_records(owners: list[int], count: int, seed: int) -> list[tuple]:
    """Stage rows of `count` series spread over the owners, each checked by check_event so
    the rule, the EXDATEs and the envelope are what the service stores."""
    rng = random.Random(seed)
    records = []
    for n in range(count):
        position = n % len(owners)
        fields = recurring_fields(rng, zone_of(position), n)
        draft = check_event(fields)
        records.append(
            (
                rng.random(),
                owners[position],
                draft.title,
                draft.description,
                draft.location,
                draft.start_time,
                draft.end_time,
                draft.timezone,
                draft.all_day,
                draft.rrule,
                list(draft.exdates),
                list(draft.rdates),
                draft.during[0],
                draft.during[1],
                orjson.dumps(stored_snapshot(draft, owners[position])).decode(),
                draft.series.last_start,
            )
        )
    return records


async def seeded(url: str, events: int, owners: int, recurring: int | None = None) -> bool:
    """Whether the database at `url` holds this seed (its marker matches and every event is
    there); if so, migrations added since are applied to it."""
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        if await conn.fetchval("SELECT to_regclass('bench_seed')") is None:
            return False
        marker = await conn.fetchrow("SELECT events, owners, recurring FROM bench_seed")
        if marker is None or (marker["events"], marker["owners"]) != (events, owners):
            return False
        if recurring is not None and marker["recurring"] != recurring:
            return False
        if await conn.fetchval("SELECT count(*) FROM events WHERE id <= $1", events) != events:
            return False
        await asyncio.to_thread(migrate.apply_all, url)  # migrations added since the seed
        await backfill_last_start(conn)
        return True
    finally:
        await conn.close()


async def backfill_last_start(conn: asyncpg.Connection) -> None:
    """Series seeded before events.last_start existed get it, as the service computes it."""
    rows = await conn.fetch("""
        SELECT id, title, description, location, start_time, end_time, timezone, all_day, rrule, exdates, rdates
        FROM events WHERE last_start IS NULL AND (rrule LIKE '%COUNT=%' OR rrule LIKE '%UNTIL=%')""")
    if not rows:
        return

    def compute() -> list[tuple[int, dt.datetime]]:
        out = []
        for row in rows:
            fields = {
                k: row[k] for k in ("title", "description", "location", "start_time", "end_time", "timezone", "all_day")
            }
            fields["recurrence"] = {
                "rrule": row["rrule"],
                "exdates": list(row["exdates"]),
                "rdates": list(row["rdates"]),
            }
            out.append((row["id"], check_event(fields).series.last_start))
        return out

    values = await asyncio.to_thread(compute)
    await conn.execute(
        """
        UPDATE events e SET last_start = v.last_start
        FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, last_start) WHERE e.id = v.id""",
        [v[0] for v in values],
        [v[1] for v in values],
    )
    print(f"  last_start filled in for {len(values):,} series seeded before it existed", flush=True)


Extra = Callable[[asyncpg.Connection, list[int]], Awaitable[None]]


async def seed(url: str, events: int, owners: int, recurring: int | None = None, extra: Extra | None = None) -> float:
    """Drop, create, migrate and fill the database at `url`; the seconds it took. `extra`, if
    given, runs on the seeding connection once the events, permission and version rows are
    written (the owners' ids in position order; table bench_owners maps positions to ids and
    time zones), before the secondary indexes are built."""
    began = time.perf_counter()
    name = database_name(url)
    admin = await asyncpg.connect(admin_url(url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await asyncio.to_thread(migrate.apply_all, url)
    print(f"  database created and migrated ({time.perf_counter() - began:.1f} s)", flush=True)
    if recurring is None:
        recurring = default_recurring(events)
    recurring = min(recurring, events)
    singles = events - recurring
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "SET synchronous_commit = off; SET maintenance_work_mem = '1GB';"
            "SET max_parallel_workers_per_gather = 0; SELECT setseed(0.42)"
        )
        step = time.perf_counter()
        await conn.execute("""
            CREATE TABLE bench_owners (position int PRIMARY KEY, user_id bigint NOT NULL, tz text NOT NULL);
            CREATE TEMP TABLE seed_stage (
                sort_key float8, owner_id bigint, title text, description text, location text,
                start_time timestamptz, end_time timestamptz, timezone text, all_day boolean,
                rrule text, exdates timestamptz[], rdates timestamptz[], lower timestamptz,
                upper timestamptz, snapshot jsonb, last_start timestamptz, id bigint);
        """)
        # A real (cheap) bcrypt hash: load.py logs in with it.
        from calsvc.passwords import hash_sync

        password_hash = hash_sync(PASSWORD, 4)
        users = await conn.fetch(
            """
            INSERT INTO users (username, email, password_hash, full_name)
            SELECT 'bench_owner_' || lpad(g::text, greatest(4, length(g::text)), '0'),
                   'bench_owner_' || g || '@example.com',
                   $2, 'Bench Owner ' || g
            FROM generate_series(0, $1 - 1) g ORDER BY g
            RETURNING id
            """,
            owners,
            password_hash,
        )
        owner_ids = [r["id"] for r in users]
        await conn.executemany(
            "INSERT INTO bench_owners VALUES ($1, $2, $3)", [(i, uid, zone_of(i)) for i, uid in enumerate(owner_ids)]
        )
        await conn.execute(_SINGLES, singles, owners, FIRST_DAY, WEEKS)
        print(f"  {singles:,} single events staged in SQL ({time.perf_counter() - step:.1f} s)", flush=True)
        step = time.perf_counter()
        records = await asyncio.to_thread(recurring_records, owner_ids, recurring, 42) if recurring else []
        await conn.copy_records_to_table(
            "seed_stage",
            records=records,
            columns=[
                "sort_key",
                "owner_id",
                "title",
                "description",
                "location",
                "start_time",
                "end_time",
                "timezone",
                "all_day",
                "rrule",
                "exdates",
                "rdates",
                "lower",
                "upper",
                "snapshot",
                "last_start",
            ],
        )
        print(
            f"  {recurring:,} series checked by check_event and copied ({time.perf_counter() - step:.1f} s)", flush=True
        )
        step = time.perf_counter()
        # Ids in a random order (as created over time, every owner's interleaved).
        await conn.execute("""
            UPDATE seed_stage s SET id = o.id,
                   lower = CASE WHEN s.rrule IS NULL THEN s.start_time ELSE s.lower END,
                   upper = CASE WHEN s.rrule IS NULL THEN s.end_time ELSE s.upper END
            FROM (SELECT ctid, row_number() OVER (ORDER BY sort_key) AS id FROM seed_stage) o
            WHERE s.ctid = o.ctid""")
        # Secondary indexes are built once after the load (same definitions as the migration).
        indexes = await conn.fetch("""
            SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid IN ('events'::regclass, 'event_permissions'::regclass, 'event_versions'::regclass,
                                 'event_access_changes'::regclass, 'notifications'::regclass)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)""")
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["name"]}"')
        await conn.execute(_ISO)
        await conn.execute("""
            INSERT INTO events (id, owner_id, title, description, location, start_time, end_time,
                                timezone, all_day, rrule, exdates, rdates, last_start, during, updated_by)
            OVERRIDING SYSTEM VALUE
            SELECT id, owner_id, title, description, location, start_time, end_time, timezone,
                   all_day, rrule, coalesce(exdates, '{}'), coalesce(rdates, '{}'), last_start,
                   tstzrange(lower, upper), owner_id
            FROM seed_stage ORDER BY id""")
        await conn.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), $1)", events)
        await conn.execute("""
            INSERT INTO event_permissions (event_id, user_id, role, granted_by, starts_at, during)
            SELECT id, owner_id, 'owner', owner_id, start_time, during FROM events ORDER BY id""")
        await conn.execute(
            f"""
            INSERT INTO event_versions (event_id, version, kind, snapshot, actor_id)
            SELECT s.id, 1, 'created', coalesce(s.snapshot, {_SINGLE_SNAPSHOT}) || jsonb_build_object('id', s.id),
                   s.owner_id
            FROM seed_stage s ORDER BY s.id""",
            orjson.dumps(single_snapshot_rest()).decode(),
        )
        print(f"  events, permission rows and version rows written ({time.perf_counter() - step:.1f} s)", flush=True)
        if extra is not None:
            step = time.perf_counter()
            await extra(conn, owner_ids)
            print(f"  extra rows written ({time.perf_counter() - step:.1f} s)", flush=True)
        step = time.perf_counter()
        for index in indexes:
            await conn.execute(index["definition"])
        print(f"  {len(indexes)} secondary indexes built ({time.perf_counter() - step:.1f} s)", flush=True)
        step = time.perf_counter()
        await conn.execute(
            "VACUUM (ANALYZE) users, events, event_permissions, event_versions, event_access_changes, notifications"
        )
        print(f"  VACUUM ANALYZE ({time.perf_counter() - step:.1f} s)", flush=True)
        seconds = time.perf_counter() - began
        await conn.execute("""
            CREATE TABLE bench_seed (events int NOT NULL, owners int NOT NULL, recurring int NOT NULL,
                                     seconds float8 NOT NULL, seeded_at timestamptz NOT NULL DEFAULT now());
        """)
        await conn.execute(
            "INSERT INTO bench_seed (events, owners, recurring, seconds) VALUES ($1, $2, $3, $4)",
            events,
            owners,
            recurring,
            seconds,
        )
    finally:
        await conn.close()
    return seconds


async def verify(conn: asyncpg.Connection, sample: int = 300) -> None:
    """Rebuild a random sample of seeded rows with check_event and compare what the service
    would store (rule, EXDATEs, envelope, permission copies, version 1 snapshot)."""
    rng = random.Random()
    seeded_events = await conn.fetchval("SELECT events FROM bench_seed")
    series_ids = [
        r["id"] for r in await conn.fetch("SELECT id FROM events WHERE rrule IS NOT NULL AND id <= $1", seeded_events)
    ]
    ids = rng.sample(range(1, seeded_events + 1), sample) + rng.sample(series_ids, min(len(series_ids), sample // 3))
    rows = await conn.fetch(
        """
        SELECT e.*, p.starts_at, p.during AS p_during, p.role, p.granted_by, p.live,
               v.snapshot::text AS snap, v.kind
        FROM events e JOIN event_permissions p ON p.event_id = e.id AND p.user_id = e.owner_id
        JOIN event_versions v ON v.event_id = e.id AND v.version = 1
        WHERE e.id = ANY($1::bigint[]) AND e.version = 1  -- (load.py edits some)""",
        ids,
    )
    bad = []
    for row in rows:
        fields = {
            k: row[k] for k in ("title", "description", "location", "start_time", "end_time", "timezone", "all_day")
        }
        fields["recurrence"] = (
            None
            if row["rrule"] is None
            else {"rrule": row["rrule"], "exdates": list(row["exdates"]), "rdates": list(row["rdates"])}
        )
        draft = check_event(fields)
        during = (row["during"].lower, row["during"].upper)
        expected = stored_snapshot(draft, row["owner_id"]) | {"id": row["id"]}
        problems = []
        if draft.rrule != row["rrule"]:
            problems.append(f"rrule {row['rrule']!r} != {draft.rrule!r}")
        if tuple(draft.exdates) != tuple(row["exdates"]):
            problems.append("exdates")
        if (draft.series and draft.series.last_start) != row["last_start"]:
            problems.append(f"last_start {row['last_start']} != {draft.series and draft.series.last_start}")
        if during != draft.during or row["during"].lower_inc is not True or row["during"].upper_inc:
            problems.append(f"during {row['during']} != {draft.during}")
        if row["p_during"] != row["during"] or row["starts_at"] != row["start_time"]:
            problems.append("permission copies")
        if (row["role"], row["granted_by"], row["live"], row["kind"]) != ("owner", row["owner_id"], True, "created"):
            problems.append("permission/version columns")
        if orjson.loads(row["snap"]) != expected:
            problems.append(f"snapshot {row['snap']} != {orjson.dumps(expected).decode()}")
        if problems:
            bad.append((row["id"], problems))
    singles = sum(1 for r in rows if r["rrule"] is None)
    print(
        f"consistency: {len(rows) - len(bad)}/{len(rows)} sampled rows ({singles} single, "
        f"{len(rows) - singles} series) equal what check_event and the service's snapshot compute"
    )
    for event_id, problems in bad[:5]:
        print(f"  event {event_id}: {'; '.join(problems)}")


def code_version() -> str:
    """The commit of the checkout measured, and whether calsvc/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "calsvc"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in calsvc/" if dirty else "")
