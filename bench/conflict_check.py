"""Conflict check of one event against a calendar table of 1,000,000 events.

    .venv/bin/python bench/conflict_check.py [--events 1000000] [--owners 100] [--samples 2000]
                                             [--reseed] [--profile]

Seeds the database `calsvc_bench_conflicts` once (set-based SQL plus one COPY; skipped when
its marker row says it already holds the same data), then times, in process and with the
service's own code (calsvc.db.pool.Database, EventService._resolve, EventService.create):

- single: lock_calendar + _resolve(tx, owner, draft, "allow", None) of a 30-90 min single
  event, in one transaction that is rolled back (acquire -> rollback, what create spends
  before its INSERT);
- weekly endless: the same for a weekly series without end (checked over the 2-year horizon);
- create: the whole EventService.create(owner, fields, "reject") of a single event (the rows
  it writes are deleted at the end, so the seed stays the same).

It then splits the time of the same checks into phases (pool acquire + BEGIN, advisory
lock, SQL round trip, row decoding, expansion, decision, ROLLBACK + release), prints
EXPLAIN (ANALYZE, BUFFERS) of the candidate query, and with --profile a cProfile of each.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import math
import os
import pstats
import random
import statistics
import sys
import time
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from calsvc import conflicts, errors
from calsvc.config import Settings
from calsvc.db import events as event_db
from calsvc.db import migrate
from calsvc.db.pool import Database
from calsvc.db.tx import run_in_tx
from calsvc.services import events as event_service
from calsvc.notify.broker import Broker
from calsvc.services.notifications import Notifications
from calsvc.services.events import EventService, check_event

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "calsvc_bench_conflicts"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"

UTC = dt.timezone.utc
# The seeded range: 104 whole weeks from Monday 2026-01-05 (local dates of each owner).
FIRST_DAY = dt.date(2026, 1, 5)
WEEKS = 104
ZONES = ("Europe/Berlin", "America/New_York", "Europe/London", "Asia/Tokyo",
         "America/Los_Angeles", "UTC", "Australia/Sydney", "Asia/Kolkata")
RECURRING_SHARE = 0.01
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def zone_of(owner_index: int) -> str:
    return ZONES[owner_index % len(ZONES)]


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


_SNAPSHOT_KEYS = ("title", "description", "location", "start_time", "end_time", "timezone", "all_day",
                  "rrule", "exdates", "rdates", "owner_id")


def single_snapshot_rest() -> dict[str, Any]:
    """The keys of a single event's snapshot that do not depend on the row (say
    `exceptions: {}`), taken from the service's own snapshot of a sample event."""
    start = dt.datetime(2026, 1, 5, 9, tzinfo=UTC)
    draft = check_event({"title": "x", "description": "", "location": None, "start_time": start,
                         "end_time": start + dt.timedelta(hours=1), "timezone": "UTC", "all_day": False,
                         "recurrence": None})
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
        "title": title, "description": "" if rng.random() < 0.5 else f"Series {n}",
        "location": None if rng.random() < 0.5 else f"Room {n % 40 + 1}",
        "start_time": start, "end_time": start + dt.timedelta(minutes=minutes),
        "timezone": tz_name, "all_day": False,
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
        records.append((
            rng.random(), owners[position], draft.title, draft.description, draft.location,
            draft.start_time, draft.end_time, draft.timezone, draft.all_day, draft.rrule,
            list(draft.exdates), list(draft.rdates), draft.during[0], draft.during[1],
            orjson.dumps(stored_snapshot(draft, owners[position])).decode(), draft.series.last_start,
        ))
    return records


async def seeded(events: int, owners: int) -> bool:
    try:
        conn = await asyncpg.connect(DB_URL)
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        if await conn.fetchval("SELECT to_regclass('bench_seed')") is None:
            return False
        marker = await conn.fetchrow("SELECT events, owners FROM bench_seed")
        if marker is None or (marker["events"], marker["owners"]) != (events, owners):
            return False
        if await conn.fetchval("SELECT count(*) FROM events WHERE id <= $1", events) != events:
            return False
        await asyncio.to_thread(migrate.apply_all, DB_URL)  # migrations added since the seed
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
            fields = {k: row[k] for k in ("title", "description", "location", "start_time", "end_time",
                                          "timezone", "all_day")}
            fields["recurrence"] = {"rrule": row["rrule"], "exdates": list(row["exdates"]),
                                    "rdates": list(row["rdates"])}
            out.append((row["id"], check_event(fields).series.last_start))
        return out

    values = await asyncio.to_thread(compute)
    await conn.execute("""
        UPDATE events e SET last_start = v.last_start
        FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, last_start) WHERE e.id = v.id""",
                       [v[0] for v in values], [v[1] for v in values])
    print(f"  last_start filled in for {len(values):,} series seeded before it existed", flush=True)


async def seed(events: int, owners: int) -> float:
    """Drop, create, migrate and fill the database; the seconds it took."""
    began = time.perf_counter()
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        await admin.close()
    await asyncio.to_thread(migrate.apply_all, DB_URL)
    print(f"  database created and migrated ({time.perf_counter() - began:.1f} s)", flush=True)
    recurring = max(1, round(events * RECURRING_SHARE))
    singles = events - recurring
    conn = await asyncpg.connect(DB_URL)
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '1GB';"
                           "SET max_parallel_workers_per_gather = 0; SELECT setseed(0.42)")
        step = time.perf_counter()
        await conn.execute("""
            CREATE TABLE bench_owners (position int PRIMARY KEY, user_id bigint NOT NULL, tz text NOT NULL);
            CREATE TEMP TABLE seed_stage (
                sort_key float8, owner_id bigint, title text, description text, location text,
                start_time timestamptz, end_time timestamptz, timezone text, all_day boolean,
                rrule text, exdates timestamptz[], rdates timestamptz[], lower timestamptz,
                upper timestamptz, snapshot jsonb, last_start timestamptz, id bigint);
        """)
        # A real (cheap) bcrypt hash: the users are never logged in with.
        from calsvc.passwords import hash_sync
        password_hash = hash_sync("bench-password", 4)
        users = await conn.fetch(
            """
            INSERT INTO users (username, email, password_hash, full_name)
            SELECT 'bench_owner_' || lpad(g::text, 4, '0'), 'bench_owner_' || g || '@example.com',
                   $2, 'Bench Owner ' || g
            FROM generate_series(0, $1 - 1) g ORDER BY g
            RETURNING id
            """, owners, password_hash)
        owner_ids = [r["id"] for r in users]
        await conn.executemany("INSERT INTO bench_owners VALUES ($1, $2, $3)",
                               [(i, uid, zone_of(i)) for i, uid in enumerate(owner_ids)])
        await conn.execute(_SINGLES, singles, owners, FIRST_DAY, WEEKS)
        print(f"  {singles:,} single events staged in SQL ({time.perf_counter() - step:.1f} s)", flush=True)
        step = time.perf_counter()
        records = await asyncio.to_thread(recurring_records, owner_ids, recurring, 42)
        await conn.copy_records_to_table(
            "seed_stage", records=records,
            columns=["sort_key", "owner_id", "title", "description", "location", "start_time",
                     "end_time", "timezone", "all_day", "rrule", "exdates", "rdates", "lower",
                     "upper", "snapshot", "last_start"])
        print(f"  {recurring:,} series checked by check_event and copied "
              f"({time.perf_counter() - step:.1f} s)", flush=True)
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
            WHERE i.indrelid IN ('events'::regclass, 'event_permissions'::regclass, 'event_versions'::regclass)
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
        await conn.execute(f"""
            INSERT INTO event_versions (event_id, version, kind, snapshot, actor_id)
            SELECT s.id, 1, 'created', coalesce(s.snapshot, {_SINGLE_SNAPSHOT}) || jsonb_build_object('id', s.id),
                   s.owner_id
            FROM seed_stage s ORDER BY s.id""", orjson.dumps(single_snapshot_rest()).decode())
        print(f"  events, permission rows and version rows written ({time.perf_counter() - step:.1f} s)",
              flush=True)
        step = time.perf_counter()
        for index in indexes:
            await conn.execute(index["definition"])
        print(f"  {len(indexes)} secondary indexes built ({time.perf_counter() - step:.1f} s)", flush=True)
        step = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) users, events, event_permissions, event_versions")
        print(f"  VACUUM ANALYZE ({time.perf_counter() - step:.1f} s)", flush=True)
        seconds = time.perf_counter() - began
        await conn.execute("""
            CREATE TABLE bench_seed (events int NOT NULL, owners int NOT NULL, recurring int NOT NULL,
                                     seconds float8 NOT NULL, seeded_at timestamptz NOT NULL DEFAULT now());
        """)
        await conn.execute("INSERT INTO bench_seed (events, owners, recurring, seconds) VALUES ($1, $2, $3, $4)",
                           events, owners, recurring, seconds)
    finally:
        await conn.close()
    return seconds


async def verify(conn: asyncpg.Connection, sample: int = 300) -> None:
    """Rebuild a random sample of seeded rows with check_event and compare what the service
    would store (rule, EXDATEs, envelope, permission copies, version 1 snapshot)."""
    rng = random.Random()
    seeded_events = await conn.fetchval("SELECT events FROM bench_seed")
    series_ids = [r["id"] for r in await conn.fetch("SELECT id FROM events WHERE rrule IS NOT NULL AND id <= $1",
                                                     seeded_events)]
    ids = rng.sample(range(1, seeded_events + 1), sample) + rng.sample(series_ids, min(len(series_ids), sample // 3))
    rows = await conn.fetch("""
        SELECT e.*, p.starts_at, p.during AS p_during, p.role, p.granted_by, p.live,
               v.snapshot::text AS snap, v.kind
        FROM events e JOIN event_permissions p ON p.event_id = e.id AND p.user_id = e.owner_id
        JOIN event_versions v ON v.event_id = e.id AND v.version = 1
        WHERE e.id = ANY($1::bigint[])""", ids)
    bad = []
    for row in rows:
        fields = {k: row[k] for k in ("title", "description", "location", "start_time", "end_time",
                                      "timezone", "all_day")}
        fields["recurrence"] = None if row["rrule"] is None else {
            "rrule": row["rrule"], "exdates": list(row["exdates"]), "rdates": list(row["rdates"])}
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
    print(f"consistency: {len(rows) - len(bad)}/{len(rows)} sampled rows ({singles} single, "
          f"{len(rows) - singles} series) equal what check_event and the service's snapshot compute")
    for event_id, problems in bad[:5]:
        print(f"  event {event_id}: {'; '.join(problems)}")


# -- drafts -------------------------------------------------------------------------------

def random_start(rng: random.Random, tz_name: str) -> dt.datetime:
    """A working day of the seeded range, 07:00-19:00 local on the quarter hour."""
    day = FIRST_DAY + dt.timedelta(weeks=rng.randrange(WEEKS), days=rng.randrange(5))
    clock = dt.time(7 + rng.randrange(12), rng.choice((0, 15, 30, 45)))
    return dt.datetime.combine(day, clock, ZoneInfo(tz_name))


def single_fields(rng: random.Random, tz_name: str) -> dict[str, Any]:
    start = random_start(rng, tz_name)
    return {"title": "Bench draft", "description": "", "location": None, "start_time": start,
            "end_time": start + dt.timedelta(minutes=rng.choice((30, 45, 60, 75, 90))),
            "timezone": tz_name, "all_day": False, "recurrence": None}


def weekly_fields(rng: random.Random, tz_name: str) -> dict[str, Any]:
    fields = single_fields(rng, tz_name)
    fields["title"] = "Bench weekly draft"
    fields["recurrence"] = {"rrule": "FREQ=WEEKLY;BYDAY=" + WEEKDAYS[fields["start_time"].weekday()],
                            "exdates": [], "rdates": []}
    return fields


# -- measuring ----------------------------------------------------------------------------

class _Rollback(Exception):
    pass


def percentile(values: list[float], p: float) -> float:
    if not values:  # a path measured 0 times (--recurring-samples 0)
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ms: list[float] = []
        self.candidates: list[int] = []
        self.series: list[int] = []
        self.found: list[int] = []
        self.outcomes: dict[str, list[float]] = {}


async def timed_check(db: Database, service: EventService, owner: int, draft, result: Result | None) -> None:
    box: list = []

    async def check(tx):
        await event_db.lock_calendar(tx.conn, owner)
        box.append(await service._resolve(tx, owner, draft, "allow", None))
        raise _Rollback

    began = time.perf_counter()
    try:
        await run_in_tx(db, "bench_conflict_check", check)
    except _Rollback:
        pass
    elapsed = (time.perf_counter() - began) * 1000
    if result is not None:
        result.ms.append(elapsed)
        result.found.append(len(box[0][1]))


class CountingConn:
    """A connection that times its fetches and keeps the last query (for EXPLAIN)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.fetch_s = 0.0
        self.last: tuple[str, tuple] | None = None
        self.rows = 0

    async def fetch(self, sql: str, *args: Any):
        began = time.perf_counter()
        rows = await self.conn.fetch(sql, *args)
        self.fetch_s += time.perf_counter() - began
        self.last = (sql, args)
        self.rows = len(rows)
        return rows


PHASES = ("acquire+BEGIN", "advisory lock", "SQL round trips (conn.fetch)", "decode rows + cache of long events",
          "draft occurrences", "candidate expansion (_busy)", "decision (find_conflicts)",
          "rest of _resolve", "ROLLBACK+release")


class PhaseTimers:
    """Timers around the module-level functions EventService._resolve calls (looked up at
    call time, so wrapping them times the real _resolve); installed only for the breakdown."""

    def __init__(self, service: EventService) -> None:
        self.service = service
        self.spent: dict[str, float] = {}
        self._restore: list[tuple[Any, str, Any]] = []

    def add(self, label: str, seconds: float) -> None:
        self.spent[label] = self.spent.get(label, 0.0) + seconds

    def wrap(self, module: Any, name: str, label: str) -> None:
        original = getattr(module, name, None)
        if original is None:
            return

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - began)

        self._restore.append((module, name, original))
        setattr(module, name, timed)

    def wrap_calendar(self) -> None:
        """Times EventService._calendar (the candidate query, the cache of long events and,
        on a miss, the query for what the cache lacks): database time vs the rest."""
        service = self.service
        original = service._calendar

        async def timed(conn, *args, **kwargs):
            counting = CountingConn(conn)
            began = time.perf_counter()
            try:
                return await original(counting, *args, **kwargs)
            finally:
                total = time.perf_counter() - began
                self.add(PHASES[2], counting.fetch_s)
                self.add(PHASES[3], total - counting.fetch_s)

        service._calendar = timed  # an instance attribute over the method
        self._restore.append((service, "_calendar", None))

    def __enter__(self) -> "PhaseTimers":
        self.wrap_calendar()
        for name in ("_draft_busy", "_intervals"):  # the draft's own occurrences (either name)
            self.wrap(event_service, name, "draft occurrences")
        self.wrap(event_service, "_busy", "candidate expansion (_busy)")
        self.wrap(conflicts, "find_conflicts", "decision (find_conflicts)")
        return self

    def __exit__(self, *exc: Any) -> None:
        for module, name, original in reversed(self._restore):
            if original is None:
                delattr(module, name)
            else:
                setattr(module, name, original)


async def phased_check(db: Database, service: EventService, owner: int, draft,
                       phases: dict[str, list[float]], counts: Result, timers: PhaseTimers) -> None:
    """One check as timed_check does it (run_in_tx, lock_calendar, the real _resolve), with
    the time split into phases."""
    marks: dict[str, float] = {}
    timers.spent.clear()
    box: list = []

    async def check(tx):
        marks["in"] = time.perf_counter()
        await event_db.lock_calendar(tx.conn, owner)
        marks["locked"] = time.perf_counter()
        box.append(await service._resolve(tx, owner, draft, "allow", None))
        marks["resolved"] = time.perf_counter()
        raise _Rollback

    began = time.perf_counter()
    try:
        await run_in_tx(db, "bench_conflict_check", check)
    except _Rollback:
        pass
    ended = time.perf_counter()
    spent = dict(timers.spent)
    inner = sum(spent.get(p, 0.0) for p in PHASES[2:7])
    spans = {
        "acquire+BEGIN": marks["in"] - began,
        "advisory lock": marks["locked"] - marks["in"],
        **{p: spent.get(p, 0.0) for p in PHASES[2:7]},
        "rest of _resolve": (marks["resolved"] - marks["locked"]) - inner,
        "ROLLBACK+release": ended - marks["resolved"],
    }
    for name in PHASES:
        phases.setdefault(name, []).append(spans[name] * 1000)
    phases.setdefault("total", []).append((ended - began) * 1000)
    counts.ms.append((ended - began) * 1000)
    counts.found.append(len(box[0][1]))


def table(results: list[Result]) -> str:
    lines = ["| path | samples | p50 ms | p95 ms | p99 ms | max ms | mean ms | candidate rows (mean) "
             "| of which series (mean) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r.ms:
            lines.append(f"| {r.name} | 0 | - | - | - | - | - | - | - |")
            continue
        cand = f"{statistics.mean(r.candidates):,.1f}" if r.candidates else "-"
        series = f"{statistics.mean(r.series):,.1f}" if r.series else "-"
        lines.append(f"| {r.name} | {len(r.ms):,} | {percentile(r.ms, 50):.2f} | {percentile(r.ms, 95):.2f} | "
                     f"{percentile(r.ms, 99):.2f} | {max(r.ms):.2f} | {statistics.mean(r.ms):.2f} | {cand} "
                     f"| {series} |")
    return "\n".join(lines)


def phase_table(title: str, phases: dict[str, list[float]]) -> str:
    total_mean = statistics.mean(phases["total"])
    lines = [f"{title}", "| phase | mean ms | p50 ms | p99 ms | share of mean |", "|---|---:|---:|---:|---:|"]
    for name in (*PHASES, "total"):
        v = phases[name]
        lines.append(f"| {name} | {statistics.mean(v):.3f} | {percentile(v, 50):.3f} | {percentile(v, 99):.3f} | "
                     f"{statistics.mean(v) / total_mean:.0%} |")
    return "\n".join(lines)


async def candidates_of(db: Database, service: EventService, owner: int, draft, result: Result) -> None:
    async with db.acquire() as conn:
        lower, upper = event_service._check_range(draft)
        found = await service._calendar(conn, owner, lower, upper)
    result.candidates.append(len(found))
    result.series.append(sum(1 for e in found if e.rrule is not None))


async def run_loop(label: str, n: int, warmup: int, step: Callable[[int], Awaitable[None]]) -> None:
    began = time.perf_counter()
    for i in range(warmup + n):
        await step(i - warmup)  # negative: warm-up, not recorded
    print(f"  {label}: {warmup} warm-up + {n} timed in {time.perf_counter() - began:.1f} s", flush=True)


def code_version() -> str:
    """The commit of the checkout measured, and whether calsvc/ had uncommitted changes."""
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "calsvc"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in calsvc/" if dirty else "")


def profile_report(profile: cProfile.Profile, limit: int = 22) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--owners", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2000, help="timed checks per path (after 200 warm-up)")
    parser.add_argument("--recurring-samples", type=int, default=300,
                        help="timed weekly-series checks, after 20 warm-up (each takes about half a second)")
    parser.add_argument("--breakdown-samples", type=int, default=500,
                        help="single checks timed phase by phase (weekly: a fifth of it)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each path")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the drafts")
    args = parser.parse_args()
    recurring_n = args.recurring_samples

    print(f"database {DB_NAME}: {args.events:,} events, {args.owners} owners; code: {code_version()}", flush=True)
    if not args.reseed and await seeded(args.events, args.owners):
        conn = await asyncpg.connect(DB_URL)
        marker = await conn.fetchrow("SELECT * FROM bench_seed")
        await conn.close()
        print(f"already seeded at {marker['seeded_at']:%Y-%m-%d %H:%M} in {marker['seconds']:.1f} s: seeding skipped "
              "(--reseed to seed again)")
    else:
        print("seeding...", flush=True)
        seconds = await seed(args.events, args.owners)
        print(f"seeded in {seconds:.1f} s")

    settings = Settings().replace(database={"url": DB_URL, "pool_min_size": 1, "pool_max_size": 2,
                                            "command_timeout": 60})
    db = await Database.connect(DB_URL, settings.database)
    # creates announce nothing: a broker that wakes nobody is enough here
    service = EventService(db, Notifications(db, Broker(None)))  # type: ignore[arg-type]
    try:
        async with db.acquire() as conn:
            stats = await conn.fetchrow("""
                SELECT count(*) AS events, count(*) FILTER (WHERE rrule IS NOT NULL) AS series,
                       count(*) FILTER (WHERE rrule IS NOT NULL AND upper_inf(during)) AS endless,
                       count(*) FILTER (WHERE all_day) AS all_day,
                       min(lower(during)) AS first, max(upper(during)) AS last
                FROM events WHERE deleted_at IS NULL""")
            print(f"events: {stats['events']:,} ({stats['series']:,} series, {stats['endless']:,} endless; "
                  f"{stats['all_day']:,} all-day), {stats['first']:%Y-%m-%d} .. {stats['last']:%Y-%m-%d}")
            size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
            print(f"database size: {size}")
            owners = [(r["user_id"], r["tz"]) for r in await conn.fetch(
                "SELECT user_id, tz FROM bench_owners ORDER BY position")]
            max_seed_id = await conn.fetchval("SELECT events FROM bench_seed")
            await verify(conn)

        rng = random.Random(args.seed)

        def draft_of(make) -> tuple[int, Any, dict[str, Any]]:
            owner, tz_name = rng.choice(owners)
            fields = make(rng, tz_name)
            return owner, check_event(fields), fields

        # EXPLAIN of the candidate query, captured from list_calendar itself.
        owner, draft, _ = draft_of(single_fields)
        async with db.acquire() as conn:
            counting = CountingConn(conn)
            lower, upper = event_service._check_range(draft)
            await event_db.list_calendar(counting, owner, lower, upper)
            sql, qargs = counting.last
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *qargs)
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) of list_calendar (owner {owner}, "
                  f"[{lower.isoformat()}, {upper.isoformat()}), {counting.rows} rows):")
            print("\n".join("    " + r[0] for r in plan))
            owner, wdraft, _ = draft_of(weekly_fields)
            lower, upper = event_service._check_range(wdraft)
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, owner, lower, upper)
            print(f"\nthe same for a weekly endless draft (owner {owner}, [{lower:%Y-%m-%d}, {upper:%Y-%m-%d})):")
            print("\n".join("    " + r[0] for r in plan))

        print(f"\nmeasuring (one connection at a time, sequential; load average {os.getloadavg()[0]:.2f}):",
              flush=True)
        single, weekly = Result("single event, check (lock + _resolve, rolled back)"), \
            Result("weekly endless series, check (lock + _resolve, rolled back)")
        check_event_ms: list[float] = []

        async def single_step(i: int) -> None:
            owner, draft, _ = draft_of(single_fields)
            await timed_check(db, service, owner, draft, single if i >= 0 else None)
            if i >= 0:
                await candidates_of(db, service, owner, draft, single)

        cache_before = event_service._series.cache_info()
        await run_loop("single checks", args.samples, args.warmup, single_step)
        cache = event_service._series.cache_info()
        single_cache = (cache.hits - cache_before.hits, cache.misses - cache_before.misses, cache.maxsize)
        long_cache = (service.long_events.hits, service.long_events.misses, len(service.long_events))

        async def weekly_step(i: int) -> None:
            owner, tz_name = rng.choice(owners)
            fields = weekly_fields(rng, tz_name)
            began = time.perf_counter()
            draft = check_event(fields)
            if i >= 0:
                check_event_ms.append((time.perf_counter() - began) * 1000)
            await timed_check(db, service, owner, draft, weekly if i >= 0 else None)
            if i >= 0:
                await candidates_of(db, service, owner, draft, weekly)

        await run_loop("weekly series checks", recurring_n, min(args.warmup, 20), weekly_step)

        create = Result("EventService.create(owner, single, \"reject\")")
        created: list[int] = []
        create_error: str | None = None

        async def create_step(i: int) -> None:
            nonlocal create_error
            if create_error is not None:
                return
            owner, tz_name = rng.choice(owners)
            fields = single_fields(rng, tz_name)
            began = time.perf_counter()
            try:
                event, _ = await service.create(owner, fields, "reject")
                outcome = "written"
                created.append(event.id)
            except errors.SchedulingConflict:
                outcome = "rejected (conflict)"
            except Exception as exc:  # the service is being edited at the same time: say so
                create_error = f"{type(exc).__name__}: {exc}"
                return
            if i >= 0:
                ms = (time.perf_counter() - began) * 1000
                create.ms.append(ms)
                create.outcomes.setdefault(outcome, []).append(ms)

        try:
            await run_loop("creates", args.samples, args.warmup, create_step)
        finally:
            async with db.acquire() as conn:
                removed = await conn.fetchval(
                    "WITH d AS (DELETE FROM events WHERE id > $1 RETURNING 1) SELECT count(*) FROM d", max_seed_id)
            if removed:
                print(f"  removed the {removed:,} events the creates wrote")

        print(f"  load average after: {os.getloadavg()[0]:.2f} (other work on the machine skews the tail)")
        print(f"\nresults (ms, wall clock per transaction; {len(owners)} owners, "
              f"{args.events // len(owners):,} events each):\n")
        print(table([single, weekly, create]))
        if check_event_ms:
            print(f"\ncheck_event of the weekly draft (before the transaction): "
                  f"p50 {percentile(check_event_ms, 50):.2f} ms, p99 {percentile(check_event_ms, 99):.2f} ms")
        if create_error:
            print(f"EventService.create could not be measured: {create_error}")
        else:
            print("create outcomes: " + "; ".join(
                f"{k}: {len(v):,} (p50 {percentile(v, 50):.2f} ms, p99 {percentile(v, 99):.2f} ms)"
                for k, v in create.outcomes.items()))
        print(f"conflicts found per single check (allow): mean {statistics.mean(single.found):.2f}; "
              f"per weekly check: mean {statistics.mean(weekly.found or [math.nan]):.1f}")
        hits, misses, maxsize = single_cache
        print(f"series cache (services.events._series, lru maxsize {maxsize}) during the single checks: "
              f"{hits:,} hits, {misses:,} misses ({hits / max(1, hits + misses):.0%} hit rate)")
        hits, misses, size = long_cache
        print(f"long events cache (EventService.long_events, by id and version) up to the end of the single "
              f"checks, warm-up included: {hits:,} hits, {misses:,} misses, {size:,} held")
        for name, r in (("single", single), ("weekly", weekly)):
            if not r.ms:
                continue
            print(f"{name}: p99 {'<' if percentile(r.ms, 99) < 5 else '>='} 5 ms target "
                  f"({percentile(r.ms, 99):.2f} ms)")

        # Where the time goes: the same checks, phase by phase.
        print(f"\nbreakdown ({args.breakdown_samples} more checks per path, timers around each step):\n")
        cache_before = event_service._series.cache_info()
        for label, make, n in (("single event", single_fields, args.breakdown_samples),
                               ("weekly endless series", weekly_fields, min(args.breakdown_samples // 5, recurring_n))):
            if n == 0:
                continue
            phases: dict[str, list[float]] = {}
            counts = Result(label)
            with PhaseTimers(service) as timers:
                for i in range(n):
                    owner, draft, _ = draft_of(make)
                    await phased_check(db, service, owner, draft, phases, counts, timers)
            print(phase_table(f"{label} ({n} checks)", phases))
            print()
        cache = event_service._series.cache_info()
        print(f"series cache (services.events._series, lru maxsize {cache.maxsize}): "
              f"{cache.hits - cache_before.hits:,} hits, {cache.misses - cache_before.misses:,} misses "
              f"during the breakdown; {cache.currsize:,} cached")

        if args.profile:
            for label, make, n in (("single event", single_fields, min(args.samples, 1000)),
                                   ("weekly endless series", weekly_fields, min(recurring_n, 200))):
                if n == 0:
                    continue
                profile = cProfile.Profile()
                profile.enable()
                for i in range(n):
                    owner, draft, _ = draft_of(make)
                    await timed_check(db, service, owner, draft, None)
                profile.disable()
                print(f"\ncProfile, {n} checks of a {label} (cumulative):")
                print(profile_report(profile))
    finally:
        await db.close()


if __name__ == "__main__":
    try:
        import uvloop  # the service runs on uvloop (calsvc/__main__.py)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    sys.exit(asyncio.run(main()))
