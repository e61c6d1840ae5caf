"""Load benchmark of the API on one worker, side by side with the floor of its stack (issue 7).

    .venv/bin/python bench/load.py [--events 1000000] [--users 1000] [--series 300] [--duration 10]
                                   [--connections 32] [--only NAME[,NAME]] [--reseed] [--port 19000]
                                   [--markdown FILE]     # --help for the rest (--warmup, --heavy, ...)

On the project's 2-core machine the default seed takes about 2.5 minutes (once) and the runs about
4 (13 endpoints and 3 floor endpoints, 12 s each, plus the pauses). Exit status 1 if any answer
was not 2xx or a socket failed.

Seeds the database `calsvc_bench_load` once with bench/seed.py (the seed of conflict_check.py:
`--users` owners in 8 time zones, `--events` events owned round robin over 104 weeks from
2026-01-05, `--series` of them recurring series), plus, written as the service writes a share
(permission row with the event's copies, an access change `shared`, an `event.shared`
notification to each person shared with):

- teams: 5% of each owner's events shared with the next 1-3 owners (70% viewer, 30% editor),
  so an owner sees about 1,000 own and 100 shared events and has about 100 notifications;
- `bench_heavy`, who owns nothing and sees `--heavy` events (100,000; ids 1..N, which were
  assigned in random order, so all owners and the whole range), and `bench_light`, who sees
  `--light` (100). Both have a notification per event shared with them (unread).

Later runs reuse the seed while its markers match the options (`--reseed` forces a new one).
Then it starts `calsvc serve --workers 1` (rate limits off, log level WARNING) and the floor
(`../shared/bench/limit_app.py`: aiohttp + asyncpg + orjson doing the least work per endpoint,
its own schema `limit_bench` in the same database, 1,000 events of its user 1), logs in through
the API, and runs `wrk -t1 -c<connections> -d<duration>` (after a `--warmup` run that is not
counted) against each endpoint; wrk's Lua `done()` prints the exact percentiles:

| name | calsvc request | floor request |
|---|---|---|
| get_event | `GET /api/events/{id}`, ids rotating over 1,000 events the owner sees | `GET /auth/{id}` over its 1,000 |
| list50 | `GET /api/events?limit=50` as a typical owner (bench_owner_0000) | `GET /list` |
| list50_heavy | the same as bench_heavy (sees 100,000) | `GET /list` |
| list50_light | the same as bench_light (sees 100) | `GET /list` |
| list50_window | `GET /api/events?start&end&limit=50`, 13 weeks (2027-01-04 to 04-05), typical owner | |
| list50_window_heavy | the same as bench_heavy | |
| expand_month | `GET /api/events?start&end&expand=true`, March 2027, typical owner | |
| create | `POST /api/events` (conflict check `reject`), the typical owner, each at a free slot | `POST /create` |
| create_owners | the same for 32 owners in turn (creates of one owner queue on its calendar lock) | |
| batch500 | `POST /api/events/batch`, 500 events at free slots, atomic | |
| batch500_serial | the same with one connection: the time of one batch without queueing | |
| rollback | `POST /api/events/{id}/rollback/{v}`, 1,000 of the owner's events with two versions | |
| notifications | `GET /api/notifications` (50 and unread_count), typical owner | |
| notifications_heavy | the same as bench_heavy (100,000 unread) | |

Free slots: every create and batch item is a 30-minute event on a weekend from 2030 on, between
Saturday 08:00 and Sunday 13:00 UTC (a weekend in all 8 zones, and seeded series only meet
working days), never the same slot twice. So their check meets the owner's endless series (the
candidates every check meets) but none of the seeded single events. Rollbacks alternate each event between its versions
1 and 2 (the benchmark adds version 2, a new title, through the API the first time), so each
one writes a version; their times stay, so the check runs but cannot reject (an update that moves nothing).
The events that creates and batches wrote are deleted at the end (and at the start, if a run was
killed), so the seed stays the same; the rollbacks' versions and notifications stay.

Reported per endpoint: req/s, p50/p90/p99 latency (wrk's, from send to answer, so under -c32
they include the wait for the one worker), non-2xx answers and socket errors, calsvc/floor =
calsvc req/s over the floor's, the peak RSS of the server over the measured run (psutil, every
50 ms), and the CPU used during it in % of one core: the server, PostgreSQL, and "other" (the
machine's busy time minus the server, the floor, PostgreSQL, wrk and this script): work that is
not the benchmark's, so figures taken while it is high are noisy. PostgreSQL, the server and wrk
share the 2 cores. Between runs it waits for the server to go idle (writes queued when wrk
stopped still finish, and wrk's closing leaves some reading a body from a closed connection).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import psutil
from seed import PASSWORD, code_version, owner_name, seed, seeded, verify

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "calsvc_bench_load"
DB_URL = f"{PG}/{DB_NAME}"
FLOOR_APP = ROOT.parent / "shared" / "bench" / "limit_app.py"
MB = 2**20

SHARE_FRACTION = 0.05  # of each owner's events, shared with the next 1-3 owners
SEED_VERSION = 1  # of the additions below (bump when they change)
TYPICAL = 0  # the position of the owner who reads and writes
WINDOW = ("2027-01-04T00:00:00Z", "2027-04-05T00:00:00Z")  # 13 weeks inside the seeded range
MONTH = ("2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z")
ROTATE = 1000  # ids rotated over by get_event and rollback
BATCH = 500
# Free slots: Saturday 08:00 to Sunday 13:00 UTC, 30 minutes each (58 a weekend).
SLOT_SECONDS = 1800
SLOTS_PER_WEEKEND = 58
CREATE_FIRST_SLOT = 0  # weekends from 2030
BATCH_FIRST_SLOT = SLOTS_PER_WEEKEND * 52 * 20  # weekends from about 2050
OWNERS_FIRST_SLOT = SLOTS_PER_WEEKEND * 52 * 10  # weekends from about 2040 (create_owners)
OWNERS = 32  # owners create_owners writes for, in turn


def first_saturday(year: int) -> int:
    """Epoch seconds of the first Saturday of `year`, 08:00 UTC."""
    day = dt.date(year, 1, 1)
    day += dt.timedelta(days=(5 - day.weekday()) % 7)
    return int(dt.datetime.combine(day, dt.time(8), dt.UTC).timestamp())


SLOT_EPOCH = first_saturday(2030)


# -- the seed ---------------------------------------------------------------------------------


def load_params(args: argparse.Namespace) -> dict:
    return {
        "heavy": heavy_count(args),
        "light": light_count(args),
        "share_fraction": SHARE_FRACTION,
        "version": SEED_VERSION,
    }


def heavy_count(args: argparse.Namespace) -> int:
    return min(args.heavy, args.events // 2)


def light_count(args: argparse.Namespace) -> int:
    return min(args.light, args.events // 10)


async def add_people(conn: asyncpg.Connection, owner_ids: list[int], events: int, heavy: int, light: int) -> None:
    """The shares, bench_heavy and bench_light, each share written as the service writes it: a
    permission row copying the event's start, envelope and version (permissions._GRANT), an
    access change `shared` by the owner, and an `event.shared` notification with the personal
    summary to each person shared with (one share request per event, naming all its people)."""
    owners = len(owner_ids)
    people = await conn.fetch(
        """
        INSERT INTO users (username, email, password_hash, full_name)
        SELECT name, name || '@example.com', (SELECT password_hash FROM users WHERE id = $2), initcap(name)
        FROM unnest($1::text[]) AS name
        RETURNING id, username
        """,
        ["bench_heavy", "bench_light"],
        owner_ids[0],
    )
    ids = {r["username"]: r["id"] for r in people}
    await conn.execute("CREATE TEMP TABLE share_stage (event_id bigint, user_id bigint, role text)")
    if owners >= 2:
        # a share of each owner's events with the owners after them (random values drawn once a row)
        await conn.execute(
            """
            INSERT INTO share_stage
            SELECT s.id, o2.user_id, CASE WHEN random() < 0.3 THEN 'editor' ELSE 'viewer' END
            FROM (SELECT e.id, o.position, 1 + floor(random() * least(3, $2 - 1))::int AS k, random() AS pick
                  FROM events e JOIN bench_owners o ON o.user_id = e.owner_id) s
            CROSS JOIN LATERAL generate_series(1, s.k) AS j
            JOIN bench_owners o2 ON o2.position = (s.position + j) % $2
            WHERE s.pick < $1
            """,
            SHARE_FRACTION,
            owners,
        )
    await conn.execute(
        """
        INSERT INTO share_stage
        SELECT id, $1, CASE WHEN random() < 0.1 THEN 'editor' ELSE 'viewer' END FROM events WHERE id <= $2
        """,
        ids["bench_heavy"],
        heavy,
    )
    await conn.execute(
        "INSERT INTO share_stage SELECT id, $1, 'viewer' FROM events WHERE id > $2", ids["bench_light"], events - light
    )
    await conn.execute("""
        INSERT INTO event_permissions (event_id, user_id, role, granted_by, starts_at, during, version, live)
        SELECT s.event_id, s.user_id, s.role, e.owner_id, e.start_time, e.during, e.version, e.deleted_at IS NULL
        FROM share_stage s JOIN events e ON e.id = s.event_id
        ORDER BY s.event_id, s.user_id;

        INSERT INTO event_access_changes (event_id, action, user_id, old_role, new_role, actor_id)
        SELECT s.event_id, 'shared', s.user_id, NULL, s.role, e.owner_id
        FROM share_stage s JOIN events e ON e.id = s.event_id
        ORDER BY s.event_id, s.user_id;

        -- the personal line of a share: format('%1$s shared "<title>" with you as <role>', owner)
        INSERT INTO notifications (user_id, kind, event_id, actor_id, summary, created_at)
        SELECT s.user_id, 'event.shared', s.event_id, e.owner_id,
               a.username || ' shared "' || e.title || '" with you as ' || s.role, now()
        FROM share_stage s JOIN events e ON e.id = s.event_id JOIN users a ON a.id = e.owner_id
        ORDER BY s.event_id, s.user_id;
    """)
    shares = await conn.fetchval("SELECT count(*) FROM share_stage")
    print(
        f"  {shares:,} shares (permission rows, access changes, notifications); bench_heavy sees "
        f"{heavy:,} events, bench_light {light:,}",
        flush=True,
    )


async def ensure_seed(args: argparse.Namespace) -> None:
    params = load_params(args)
    if not args.reseed and await seeded(DB_URL, args.events, args.users, args.series):
        conn = await asyncpg.connect(DB_URL)
        try:
            ok = (
                await conn.fetchval("SELECT to_regclass('bench_load') IS NOT NULL")
                and json.loads(await conn.fetchval("SELECT params::text FROM bench_load")) == params
            )
            marker = await conn.fetchrow("SELECT seconds, seeded_at FROM bench_seed")
        finally:
            await conn.close()
        if ok:
            print(
                f"already seeded at {marker['seeded_at']:%Y-%m-%d %H:%M} in {marker['seconds']:.0f} s: "
                "seeding skipped (--reseed to seed again)",
                flush=True,
            )
            return

    async def extra(conn: asyncpg.Connection, owner_ids: list[int]) -> None:
        await add_people(conn, owner_ids, args.events, params["heavy"], params["light"])
        await conn.execute("CREATE TABLE bench_load (params jsonb NOT NULL)")
        await conn.execute("INSERT INTO bench_load VALUES ($1::jsonb)", json.dumps(params))

    print("seeding...", flush=True)
    seconds = await seed(DB_URL, args.events, args.users, args.series, extra=extra)
    print(f"seeded in {seconds:.1f} s", flush=True)


async def remove_written(events: int) -> None:
    """Delete what creates and batches wrote (events past the seed, with their rows) and the
    floor's created events, so the next run starts from the same data."""
    conn = await asyncpg.connect(DB_URL)
    try:
        began = time.perf_counter()
        async with conn.transaction():
            # Without the per-row foreign key triggers: a cascade from events would look for the
            # notifications of each deleted event (no index on notifications.event_id), so the rows
            # that point at events go first, one statement each.
            await conn.execute("SET LOCAL session_replication_role = replica")
            refs = await conn.fetch("""
                SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
                FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                WHERE c.confrelid = 'events'::regclass AND c.contype = 'f'""")
            for ref in refs:
                await conn.execute(f'DELETE FROM {ref["tbl"]} WHERE "{ref["col"]}" > $1', events)
            gone = await conn.fetchval(
                "WITH d AS (DELETE FROM events WHERE id > $1 RETURNING 1) SELECT count(*) FROM d", events
            )
        floor_gone = 0
        if await conn.fetchval("SELECT to_regclass('limit_bench.events') IS NOT NULL"):
            floor_gone = await conn.fetchval("""
                WITH gone AS (DELETE FROM limit_bench.events WHERE title LIKE 'load %' RETURNING id),
                     p AS (DELETE FROM limit_bench.perms WHERE event_id IN (SELECT id FROM gone)),
                     v AS (DELETE FROM limit_bench.versions WHERE event_id IN (SELECT id FROM gone))
                SELECT count(*) FROM gone""")
        if gone or floor_gone:
            await conn.execute("VACUUM (ANALYZE) events, event_permissions, event_versions, notifications")
            if floor_gone:
                await conn.execute("VACUUM (ANALYZE) limit_bench.events, limit_bench.perms, limit_bench.versions")
            print(
                f"removed {gone:,} events written by the benchmark (floor: {floor_gone:,}) and vacuumed "
                f"({time.perf_counter() - began:.1f} s)",
                flush=True,
            )
    finally:
        await conn.close()


async def describe_data(typical: int, heavy: int, light: int) -> list[str]:
    conn = await asyncpg.connect(DB_URL)
    try:
        s = await conn.fetchrow("""
            SELECT (SELECT count(*) FROM events) AS events,
                   (SELECT count(*) FROM events WHERE rrule IS NOT NULL) AS series,
                   (SELECT count(*) FROM users) AS users,
                   (SELECT count(*) FROM event_permissions) AS permissions,
                   (SELECT count(*) FROM notifications) AS notifications,
                   pg_size_pretty(pg_database_size(current_database())) AS size""")
        sees = {}
        for name, uid in (("typical owner", typical), ("bench_heavy", heavy), ("bench_light", light)):
            sees[name] = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM event_permissions WHERE user_id = $1 AND live) AS sees, "
                "(SELECT count(*) FROM notifications WHERE user_id = $1) AS notes",
                uid,
            )
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return [
        (
            f"data: {s['events']:,} events ({s['series']:,} series), {s['users']:,} users, {s['permissions']:,} "
            f"permission rows, {s['notifications']:,} notifications; database {s['size']} (PostgreSQL {version})"
        ),
        "sees / notifications: " + "; ".join(f"{n} {v['sees']:,} / {v['notes']:,}" for n, v in sees.items()),
    ]


# -- the servers ------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind (TIME_WAIT is fine)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_ready(proc: subprocess.Popen, url: str, log: Path, what: str) -> None:
    for _ in range(600):
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited ({proc.returncode}); see {log}") from None
            time.sleep(0.1)
    raise SystemExit(f"{what} did not become ready; see {log}")


def start_calsvc(port: int, log: Path, workers: int = 1) -> subprocess.Popen:
    env = dict(
        os.environ,
        CALSVC_DATABASE_URL=DB_URL,
        CALSVC_AUTH_SECRET=secrets.token_hex(32),
        CALSVC_RATE_LIMIT_AUTH_PER_MINUTE="0",
        CALSVC_RATE_LIMIT_USER_PER_MINUTE="0",
        CALSVC_SERVER_LOG_LEVEL="WARNING",
        CALSVC_AUTH_ACCESS_TOKEN_MINUTES="600",
    )
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "calsvc", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_ready(proc, f"http://127.0.0.1:{port}/readyz", log, "calsvc")
    return proc


def start_floor(app: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(app), DB_URL, str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_ready(proc, f"http://127.0.0.1:{port}/raw/1", log, "the floor")
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()  # SIGTERM: a clean stop
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """The process and its children (`calsvc serve --workers N`: a supervisor and N workers)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in tree(proc):
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


class RssSampler(threading.Thread):
    """Peak RSS of each process, every 50 ms: since the last reset() and over the whole run."""

    def __init__(self, procs: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.procs = {name: psutil.Process(pid) for name, pid in procs.items()}
        self.window = dict.fromkeys(procs, 0)
        self.peak = dict.fromkeys(procs, 0)
        self.done = threading.Event()

    def reset(self) -> None:
        self.window = dict.fromkeys(self.procs, 0)

    def run(self) -> None:
        while not self.done.is_set():
            for name, proc in self.procs.items():
                try:
                    rss = sum(p.memory_info().rss for p in tree(proc))  # of all workers
                except psutil.Error:
                    continue
                self.window[name] = max(self.window[name], rss)
                self.peak[name] = max(self.peak[name], rss)
            time.sleep(0.05)


class CpuMeter:
    """CPU used over a wrk run, in % of one core: the server measured, PostgreSQL (all of its
    processes), wrk, and the rest of the machine ("other": work that is not this benchmark's,
    such as another process profiling calsvc at the same time)."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]  # the measured server first

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0)

    @staticmethod
    def _postgres() -> dict[int, float]:
        times = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            if proc.info["name"] == "postgres" and proc.info["cpu_times"] is not None:
                times[proc.pid] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
        return times

    def _snapshot(self) -> tuple:
        own = [tree_cpu(p) for p in self.procs]
        me = resource.getrusage(resource.RUSAGE_SELF)
        wrk = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has been waited for
        return (
            time.monotonic(),
            self._busy(),
            self._postgres(),
            me.ru_utime + me.ru_stime,
            wrk.ru_utime + wrk.ru_stime,
            *own,
        )

    def start(self) -> None:
        self.began = self._snapshot()

    def stop(self) -> dict[str, float]:
        end = self._snapshot()
        # backends that ended in between took their time with them: count those present at the end
        pg = sum(t - self.began[2].get(pid, 0.0) for pid, t in end[2].items())
        d = [b - a for a, b in zip(self.began[:2] + self.began[3:], end[:2] + end[3:])]
        wall, busy, me, wrk, server, *rest = d
        other = busy - pg - me - wrk - server - sum(rest)
        return {
            k: 100 * v / wall
            for k, v in (("server", server), ("postgres", pg), ("wrk", wrk), ("other", max(0.0, other)))
        }


def settle(pid: int, limit: float = 180.0) -> float:
    """Wait until the process has used under 5% of a core for 0.5 s (writes still queued when wrk
    stopped are being finished); the seconds waited."""
    proc, began, quiet = psutil.Process(pid), time.monotonic(), 0
    used = tree_cpu(proc)
    while time.monotonic() - began < limit:
        time.sleep(0.25)
        now = tree_cpu(proc)
        quiet = quiet + 1 if (now - used) / 0.25 < 0.05 else 0
        used = now
        if quiet >= 2:
            break
    return time.monotonic() - began


# -- talking to the API -----------------------------------------------------------------------


async def login(base: str, username: str) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{base}/api/auth/login", json={"username": username, "password": PASSWORD}) as r,
    ):
        body = await r.json(content_type=None)
        if r.status != 200:
            raise SystemExit(f"login of {username}: {r.status} {body}")
        return body["access_token"]


async def probe(base: str, path: str, token: str) -> tuple[int, str]:
    """One GET as wrk will send it: the status and what the answer holds."""
    async with aiohttp.ClientSession() as s, s.get(base + path, headers={"Authorization": f"Bearer {token}"}) as r:
        raw = await r.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return r.status, f"{len(raw)} bytes"
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            more = ", more" if body.get("next_cursor") else ""
            return r.status, f"{len(body['items'])} items{more}, {len(raw):,} bytes"
        return r.status, f"{len(raw):,} bytes" if r.status < 300 else raw[:200].decode(errors="replace")


async def user_ids() -> dict[str, int]:
    conn = await asyncpg.connect(DB_URL)
    try:
        rows = await conn.fetch(
            "SELECT username, id FROM users WHERE username = ANY($1::text[])",
            [owner_name(TYPICAL), "bench_heavy", "bench_light"],
        )
        return {r["username"]: r["id"] for r in rows}
    finally:
        await conn.close()


async def visible_ids(user_id: int) -> list[int]:
    conn = await asyncpg.connect(DB_URL)
    try:
        return [
            r[0]
            for r in await conn.fetch(
                "SELECT event_id FROM event_permissions WHERE user_id = $1 AND live ORDER BY event_id LIMIT $2",
                user_id,
                ROTATE,
            )
        ]
    finally:
        await conn.close()


async def floor_ids() -> list[int]:
    conn = await asyncpg.connect(DB_URL)
    try:
        return [
            r[0]
            for r in await conn.fetch(
                "SELECT id FROM limit_bench.events WHERE owner_id = 1 ORDER BY id LIMIT $1", ROTATE
            )
        ]
    finally:
        await conn.close()


_ROLLBACK_EVENTS = """
-- the owner's seeded single events, and the titles of their versions 1 and 2
SELECT e.id, e.title, e.version, v1.snapshot->>'title' AS first, v2.snapshot->>'title' AS second
FROM events e
JOIN event_versions v1 ON v1.event_id = e.id AND v1.version = 1
LEFT JOIN event_versions v2 ON v2.event_id = e.id AND v2.version = 2
WHERE e.owner_id = $1 AND e.rrule IS NULL AND e.deleted_at IS NULL AND e.id <= $2
ORDER BY e.id
LIMIT $3
"""


async def rollback_targets(base: str, token: str, owner: int, events: int) -> list[tuple[int, int]]:
    """(event id, version to roll back to first) for up to ROTATE of the owner's events, each
    given a version 2 (a new title, by PATCH through the API) if it has only one. The first
    target is the version whose content the event does not have now."""
    conn = await asyncpg.connect(DB_URL)
    try:
        rows = await conn.fetch(_ROLLBACK_EVENTS, owner, events, ROTATE)
        fresh = [r for r in rows if r["second"] is None]
        if fresh:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
                limit = asyncio.Semaphore(16)

                async def patch(row: asyncpg.Record) -> None:
                    async with (
                        limit,
                        s.patch(f"{base}/api/events/{row['id']}", json={"title": row["title"] + " (edited)"}) as r,
                    ):
                        if r.status != 200:
                            raise SystemExit(f"PATCH {row['id']}: {r.status} {await r.text()}")

                await asyncio.gather(*(patch(r) for r in fresh))
            print(f"  rollback: {len(fresh)} events given a version 2 through PATCH", flush=True)
            rows = await conn.fetch(_ROLLBACK_EVENTS, owner, events, ROTATE)
    finally:
        await conn.close()
    return [(r["id"], 2 if r["title"] == r["first"] else 1) for r in rows if r["first"] != r["second"]]


# -- wrk --------------------------------------------------------------------------------------

_LUA_COMMON = """
-- written by bench/load.py
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
sent = 0            -- requests made by request() in this thread
statuses = {}       -- answers by status (only where response() is defined)
first_error = nil   -- the first answer over 299
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function tally(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status > 299 and first_error == nil then first_error = status .. " " .. body:sub(1, 400) end
end

local function slot_times(s)  -- free slot s: a weekend from %(year)d, Sat 08:00 to Sun 13:00 UTC
  local t = %(epoch)d + math.floor(s / %(per_weekend)d) * 604800 + (s %% %(per_weekend)d) * %(step)d
  return os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ", t), os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ", t + %(step)d)
end

function done(summary, latency, requests)
  local made, codes, err = 0, {}, ""
  for _, t in ipairs(threads) do
    made = made + (t:get("sent") or 0)
    for k, v in pairs(t:get("statuses") or {}) do codes[k] = (codes[k] or 0) + v end
    local e = t:get("first_error")
    if e ~= nil and err == "" then err = e end
  end
  local parts = {}
  for k, v in pairs(codes) do table.insert(parts, string.format('"%%d": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%.0f, "duration_us": %%.0f, "bytes": %%.0f, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "mean_us": %%.1f, "stdev_us": %%.1f, "min_us": %%.0f, ' ..
    '"max_us": %%.0f, "p50_us": %%.0f, "p90_us": %%.0f, "p99_us": %%.0f, "p999_us": %%.0f, "sent": %%d, ' ..
    '"statuses": {%%s}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.min, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), made, table.concat(parts, ", ")))
  if err ~= "" then io.write("WRKERR " .. (err:gsub("\\n", " ")) .. "\\n") end
end
"""

_LUA_ROTATE = """
local ids = {%(ids)s}
function request()
  sent = sent + 1
  return wrk.format(nil, "%(prefix)s" .. ids[(sent %% #ids) + 1])
end
"""

_LUA_CREATE = """
function request()
  local s = %(first)d + sent
  sent = sent + 1
  local a, b = slot_times(s)
  return wrk.format("POST", "%(path)s", nil,
    string.format('{"title":"load create %%d","start_time":"%%s","end_time":"%%s"}', s, a, b))
end
response = tally
"""

_LUA_CREATE_OWNERS = """
local tokens = {%(tokens)s}
function request()
  local s = %(first)d + sent
  sent = sent + 1
  local a, b = slot_times(s)
  local headers = {["Authorization"] = "Bearer " .. tokens[(sent %% #tokens) + 1],
                   ["Content-Type"] = "application/json"}
  return wrk.format("POST", "/api/events", headers,
    string.format('{"title":"load create %%d","start_time":"%%s","end_time":"%%s"}', s, a, b))
end
response = tally
"""

_LUA_BATCH = """
function request()
  local first = %(first)d + sent * %(size)d
  sent = sent + 1
  local items = {}
  for i = 0, %(size)d - 1 do
    local a, b = slot_times(first + i)
    items[#items + 1] = string.format('{"title":"load batch %%d","start_time":"%%s","end_time":"%%s"}',
                                      first + i, a, b)
  end
  return wrk.format("POST", "/api/events/batch", nil, '{"events":[' .. table.concat(items, ",") .. ']}')
end
response = tally
"""

_LUA_ROLLBACK = """
local ids = {%(ids)s}
local targets = {%(targets)s}
function request()
  local i = (sent %% #ids) + 1
  sent = sent + 1
  local v = targets[i]
  targets[i] = 3 - v   -- the next time: the other version
  return wrk.format("POST", "/api/events/" .. ids[i] .. "/rollback/" .. v, nil, "")
end
response = tally
"""


def lua(token: str, body: str = "", **params: object) -> str:
    common = _LUA_COMMON % {
        "token": token,
        "epoch": SLOT_EPOCH,
        "per_weekend": SLOTS_PER_WEEKEND,
        "step": SLOT_SECONDS,
        "year": 2030,
    }
    return common + (body % params if params else body)


@dataclass
class Run:
    """One wrk run's figures (latencies in ms)."""

    rps: float
    p50: float
    p90: float
    p99: float
    mean: float
    max: float
    requests: int
    non2xx: int
    socket_errors: int
    sent: int
    statuses: dict[str, int]
    first_error: str
    rss: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CpuMeter's figures


def run_wrk(url: str, script: str, duration: float, connections: int, timeout: float, workdir: Path, name: str) -> Run:
    path = workdir / f"{name}.lua"
    path.write_text(script)
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "--timeout",
        f"{timeout:g}s",
        "-s",
        str(path),
        url,
    ]
    # its own session, as the servers': Ctrl-C reaches this script only, which stops them in order
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, start_new_session=True)
    found = [line for line in out.stdout.splitlines() if line.startswith("WRKJSON ")]
    if out.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout[-500:]}")
    r = json.loads(found[0][len("WRKJSON ") :])
    errors = [line[len("WRKERR ") :] for line in out.stdout.splitlines() if line.startswith("WRKERR ")]
    seconds = r["duration_us"] / 1e6
    return Run(
        rps=r["requests"] / seconds,
        p50=r["p50_us"] / 1000,
        p90=r["p90_us"] / 1000,
        p99=r["p99_us"] / 1000,
        mean=r["mean_us"] / 1000,
        max=r["max_us"] / 1000,
        requests=int(r["requests"]),
        non2xx=r["status"],
        socket_errors=r["connect"] + r["read"] + r["write"] + r["timeout"],
        sent=r["sent"],
        statuses=r["statuses"],
        first_error=errors[0] if errors else "",
    )


# -- the endpoints ----------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    what: str  # the request, for the table
    url: str  # path (and query) wrk is started with
    token: str
    script: str = ""  # request() and response() of the Lua script
    floor: str | None = None  # key of the floor figure it is compared with
    connections: int | None = None  # None: --connections
    slots: int = 0  # free slots each request takes (creates)
    first_slot: int = 0
    params: dict = field(default_factory=dict)
    probe: str | None = None  # a GET to try first (default: url, for a plain GET)
    refresh: Callable[[], dict] | None = None  # new params before each wrk run

    def lua(self) -> str:
        if self.slots:
            return lua(self.token, self.script, first=self.first_slot, **self.params)
        return lua(self.token, self.script, **self.params)


NAMES = (
    "get_event",
    "list50",
    "list50_heavy",
    "list50_light",
    "list50_window",
    "list50_window_heavy",
    "expand_month",
    "create",
    "create_owners",
    "batch500",
    "batch500_serial",
    "rollback",
    "notifications",
    "notifications_heavy",
)


def endpoints(tokens: dict, seen: list[int], rollback: Callable[[], dict]) -> list[Endpoint]:
    typical, heavy, light = tokens["typical"], tokens["heavy"], tokens["light"]
    window = f"start={WINDOW[0]}&end={WINDOW[1]}"
    month = f"start={MONTH[0]}&end={MONTH[1]}"
    return [
        Endpoint(
            "get_event",
            "GET /api/events/{id} (1,000 ids rotating)",
            "/api/events/",
            typical,
            _LUA_ROTATE,
            "get",
            params={"ids": ",".join(map(str, seen)), "prefix": "/api/events/"},
            probe=f"/api/events/{seen[0]}",
        ),
        Endpoint("list50", "GET /api/events?limit=50 (typical owner)", "/api/events?limit=50", typical, floor="list"),
        Endpoint("list50_heavy", "the same, as bench_heavy", "/api/events?limit=50", heavy, floor="list"),
        Endpoint("list50_light", "the same, as bench_light", "/api/events?limit=50", light, floor="list"),
        Endpoint(
            "list50_window", "GET /api/events?start&end&limit=50 (13 weeks)", f"/api/events?{window}&limit=50", typical
        ),
        Endpoint("list50_window_heavy", "the same, as bench_heavy", f"/api/events?{window}&limit=50", heavy),
        Endpoint(
            "expand_month",
            "GET /api/events?start&end&expand=true (a month)",
            f"/api/events?{month}&expand=true&limit=50",
            typical,
        ),
        Endpoint(
            "create",
            "POST /api/events (on_conflict reject, free slots)",
            "/api/events",
            typical,
            _LUA_CREATE,
            "create",
            slots=1,
            first_slot=CREATE_FIRST_SLOT,
            params={"path": "/api/events"},
        ),
        Endpoint(
            "create_owners",
            f"the same, {OWNERS} owners in turn",
            "/api/events",
            typical,
            _LUA_CREATE_OWNERS,
            slots=1,
            first_slot=OWNERS_FIRST_SLOT,
            params={"tokens": ",".join(f'"{t}"' for t in tokens["owners"])},
        ),
        Endpoint(
            "batch500",
            f"POST /api/events/batch ({BATCH} events, atomic)",
            "/api/events/batch",
            typical,
            _LUA_BATCH,
            slots=BATCH,
            first_slot=BATCH_FIRST_SLOT,
            params={"size": BATCH},
        ),
        Endpoint(
            "batch500_serial",
            "the same, one connection",
            "/api/events/batch",
            typical,
            _LUA_BATCH,
            connections=1,
            slots=BATCH,
            first_slot=BATCH_FIRST_SLOT,
            params={"size": BATCH},
        ),
        Endpoint(
            "rollback",
            "POST /api/events/{id}/rollback/{v} (1 and 2 in turn)",
            "/api/events/",
            typical,
            _LUA_ROLLBACK,
            refresh=rollback,
        ),
        Endpoint("notifications", "GET /api/notifications (typical owner)", "/api/notifications", typical),
        Endpoint("notifications_heavy", "the same, as bench_heavy", "/api/notifications", heavy),
    ]


def floor_endpoints(token: str, ids: list[int]) -> dict[str, Endpoint]:
    return {
        "get": Endpoint(
            "floor get",
            "GET /auth/{id}",
            "/auth/",
            token,
            _LUA_ROTATE,
            params={"ids": ",".join(map(str, ids)), "prefix": "/auth/"},
        ),
        "list": Endpoint("floor list", "GET /list", "/list", token),
        "create": Endpoint(
            "floor create",
            "POST /create",
            "/create",
            token,
            _LUA_CREATE,
            slots=1,
            first_slot=CREATE_FIRST_SLOT,
            params={"path": "/create"},
        ),
    }


# -- the run ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.next_slot: dict[str, int] = {}  # per slot range: the next free slot
        self.sampler: RssSampler | None = None
        self.pids: list[int] = []  # both servers

    def measure(self, ep: Endpoint, base: str, pid: int, who: str) -> Run:
        """A warm-up run, then the measured one; slots used by either are not used again."""
        args = self.args
        connections = ep.connections or args.connections
        key = f"{who}:{ep.first_slot}"
        run = None
        for label, seconds in (("warm-up", args.warmup), ("run", args.duration)):
            if seconds <= 0:
                continue
            if label == "run":
                self.sampler.reset()
                meter = CpuMeter([pid, *(p for p in self.pids if p != pid)])
                meter.start()
            if ep.slots:
                ep.first_slot = self.next_slot.get(key, ep.first_slot)
            if ep.refresh is not None:
                ep.params = ep.refresh()
            run = run_wrk(
                base + ep.url, ep.lua(), seconds, connections, args.timeout, self.workdir, ep.name.replace(" ", "_")
            )
            if label == "run":
                run.cpu = meter.stop()
            if ep.slots:
                self.next_slot[key] = ep.first_slot + run.sent * ep.slots
            waited = settle(pid)
            if label == "run":
                run.rss = self.sampler.window[who]
            if args.verbose:
                print(
                    f"    {who} {label}: {run.rps:,.1f} req/s, p50 {run.p50:.2f} ms, p99 {run.p99:.2f} ms "
                    f"(settled in {waited:.1f} s)",
                    flush=True,
                )
        return run


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return ""
    return f"{x:,.{digits}f}"


def table(rows: list[tuple[Endpoint, Run, Run | None]]) -> list[str]:
    lines = [
        (
            "| endpoint | calsvc req/s | p50 ms | p90 ms | p99 ms | floor req/s | floor p50 ms | floor p99 ms "
            "| calsvc/floor | non-2xx, errors | peak RSS MB | CPU % server / PG / other |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ep, run, floor in rows:
        ratio = f"{run.rps / floor.rps:.2f}" if floor else ""
        bad = f"{run.non2xx}, {run.socket_errors}" if run.non2xx or run.socket_errors else "0"
        lines.append(
            f"| {ep.name} | {fmt(run.rps)} | {fmt(run.p50, 2)} | {fmt(run.p90, 2)} | {fmt(run.p99, 2)} | "
            f"{fmt(floor.rps) if floor else ''} | {fmt(floor.p50, 2) if floor else ''} | "
            f"{fmt(floor.p99, 2) if floor else ''} | {ratio} | {bad} | {run.rss / MB:.0f} | "
            f"{run.cpu['server']:.0f} / {run.cpu['postgres']:.0f} / {run.cpu['other']:.0f} |"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    asyncio.run(ensure_seed(args))
    asyncio.run(remove_written(args.events))
    asyncio.run(check_seed())
    for port in (args.port, args.port + 1):
        if not port_free(port):
            raise SystemExit(f"port {port} is in use: pick another --port")
    only = set(args.only.split(",")) if args.only else set(NAMES)

    workdir = Path(tempfile.mkdtemp(prefix="calsvc_load_"))
    base, floor_base = f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{args.port + 1}"
    server = floor = sampler = None
    bench = Bench(args, workdir)
    results: list[tuple[Endpoint, Run, Run | None]] = []
    began = time.time()
    try:
        server = start_calsvc(args.port, workdir / "calsvc.log", args.workers)
        floor = start_floor(args.floor_app, args.port + 1, workdir / "floor.log")
        sampler = RssSampler({"calsvc": server.pid, "floor": floor.pid})
        sampler.start()
        bench.sampler = sampler
        bench.pids = [server.pid, floor.pid]
        rss_start = {name: sampler.procs[name].memory_info().rss for name in sampler.procs}
        ids = asyncio.run(user_ids())
        typical = ids[owner_name(TYPICAL)]
        tokens = {
            "typical": asyncio.run(login(base, owner_name(TYPICAL))),
            "heavy": asyncio.run(login(base, "bench_heavy")),
            "light": asyncio.run(login(base, "bench_light")),
            "owners": [
                asyncio.run(login(base, owner_name(TYPICAL + 1 + k))) for k in range(min(OWNERS, args.users - 1))
            ],
        }
        floor_token = subprocess.run(
            [sys.executable, str(args.floor_app), "token"], capture_output=True, text=True, check=True
        ).stdout.strip()
        data = asyncio.run(describe_data(typical, ids["bench_heavy"], ids["bench_light"]))
        for line in data:
            print(line)
        seen = asyncio.run(visible_ids(typical))

        def rollback() -> dict:  # each wrk run starts from the events as they are then
            pairs = asyncio.run(rollback_targets(base, tokens["typical"], typical, args.events))
            return {"ids": ",".join(str(i) for i, _ in pairs), "targets": ",".join(str(v) for _, v in pairs)}

        floors = floor_endpoints(floor_token, asyncio.run(floor_ids()))
        floor_runs: dict[str, Run] = {}
        header = (
            f"code {code_version()}; {os.cpu_count()} cores; calsvc --workers {args.workers}; "
            f"wrk -t1 -c{args.connections} "
            f"-d{args.duration:g}s after a {args.warmup:g} s warm-up; load average "
            f"{os.getloadavg()[0]:.2f} at the start"
        )
        print(header, flush=True)
        for ep in endpoints(tokens, seen, rollback):
            if ep.name not in only:
                continue
            if ep.probe or not ep.script:  # a GET: one request first, to see what it answers
                status, answer = asyncio.run(probe(base, ep.probe or ep.url, ep.token))
                print(f"  {ep.name}: probe {status}, {answer}", flush=True)
                if status != 200:
                    print(f"  {ep.name}: skipped (answers {status})", flush=True)
                    continue
            result = bench.measure(ep, base, server.pid, "calsvc")
            floor_run = None
            if ep.floor is not None:
                floor_run = floor_runs.get(ep.floor)
                if floor_run is None:
                    floor_run = floor_runs[ep.floor] = bench.measure(floors[ep.floor], floor_base, floor.pid, "floor")
            results.append((ep, result, floor_run))
            extra = ""
            if floor_run is not None:
                extra = (
                    f"; floor {floor_run.rps:,.1f} req/s, p99 {floor_run.p99:.2f} ms ({result.rps / floor_run.rps:.2f})"
                )
            statuses = f", statuses {result.statuses}" if result.statuses else ""
            print(
                f"  {ep.name}: {result.rps:,.1f} req/s, p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms, "
                f"non-2xx {result.non2xx}, socket errors {result.socket_errors}{statuses}{extra} "
                f"(CPU % server {result.cpu['server']:.0f}, PostgreSQL {result.cpu['postgres']:.0f}, "
                f"wrk {result.cpu['wrk']:.0f}, other {result.cpu['other']:.0f})",
                flush=True,
            )
            if result.first_error:
                print(f"    first non-2xx answer: {result.first_error}", flush=True)
        elapsed = time.time() - began
        lines = [header, *data, "", *table(results), ""]
        for ep, result, _ in results:
            if ep.name.startswith("batch"):
                lines.append(
                    f"{ep.name}: {result.rps * BATCH:,.0f} events/s; per batch of {BATCH} "
                    f"(wrk latency, -c{ep.connections or args.connections}): mean {result.mean:.0f} ms, "
                    f"p50 {result.p50:.0f} ms, p99 {result.p99:.0f} ms, max {result.max:.0f} ms"
                )
        floor_rss = f"{sampler.peak['floor'] / MB:.0f} MB" if floor_runs else "not measured"
        lines.append(
            f"peak RSS over the whole run: calsvc {sampler.peak['calsvc'] / MB:.0f} MB (after start "
            f"{rss_start['calsvc'] / MB:.0f} MB), floor {floor_rss} (after start "
            f"{rss_start['floor'] / MB:.0f} MB); load average at the end {os.getloadavg()[0]:.2f}; "
            f"{elapsed:.0f} s of servers and wrk"
        )
        print("\n" + "\n".join(lines))
        if args.markdown:
            Path(args.markdown).write_text("\n".join(lines) + "\n")
            print(f"written to {args.markdown}")
        errors = any(r.non2xx or r.socket_errors for _, r, _ in results)
        return 1 if errors else 0
    finally:
        if sampler is not None:
            sampler.done.set()
        stop(server)
        stop(floor)
        asyncio.run(remove_written(args.events))
        print(f"server logs: {workdir}/calsvc.log, {workdir}/floor.log")


async def check_seed() -> None:
    conn = await asyncpg.connect(DB_URL)
    try:
        await verify(conn, sample=200)
    finally:
        await conn.close()


def set_database(name: str) -> None:
    global DB_NAME, DB_URL
    DB_NAME, DB_URL = name, f"{PG}/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1000, help="owners (plus bench_heavy and bench_light)")
    parser.add_argument("--series", type=int, default=300, help="recurring series among the events")
    parser.add_argument("--heavy", type=int, default=100_000, help="events bench_heavy sees (at most half)")
    parser.add_argument("--light", type=int, default=100, help="events bench_light sees")
    parser.add_argument("--duration", type=float, default=10, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of the uncounted run before it")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=60, help="wrk's: slower answers count as errors")
    parser.add_argument("--only", help="comma-separated: " + ", ".join(NAMES))
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--port", type=int, default=19000, help="calsvc's; the floor gets the next one")
    parser.add_argument("--floor-app", type=Path, default=FLOOR_APP)
    parser.add_argument("--markdown", help="also write the results to this file")
    parser.add_argument("--workers", type=int, default=1, help="calsvc's worker processes (the floor has one)")
    parser.add_argument("--database", default="calsvc_bench_load", help="a database of its own per seed size")
    parser.add_argument("--verbose", action="store_true", help="a line per wrk run")
    args = parser.parse_args()
    if args.users < 1 or args.events < args.users:
        parser.error("need at least one user and as many events as users")
    unknown = set(args.only.split(",")) - set(NAMES) if args.only else set()
    if unknown:
        parser.error(f"unknown endpoint(s) {', '.join(sorted(unknown))}; known: {', '.join(NAMES)}")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the servers as Ctrl-C does

    signal.signal(signal.SIGTERM, interrupted)
    set_database(args.database)
    print(f"database {DB_NAME}: {args.events:,} events, {args.users:,} owners, {args.series:,} series", flush=True)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
