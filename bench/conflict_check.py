"""Conflict check of one event against a calendar table of 1,000,000 events.

    .venv/bin/python bench/conflict_check.py [--events 1000000] [--owners 100] [--samples 2000]
                                             [--reseed] [--profile]

Seeds the database `calsvc_bench_conflicts` once (set-based SQL plus one COPY; skipped when
its marker row says it already holds the same data), then times, in process and with the
service's own code (calsvc.db.pool.Database, ConflictChecker.check, EventService.create):

- single: lock_calendar + ConflictChecker.check(tx, owner, draft, "allow", None) of a 30-90 min single
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
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from seed import FIRST_DAY, WEEKDAYS, WEEKS, code_version, seed, seeded, verify

from calsvc import conflicts, errors, occurrences
from calsvc.config import Settings
from calsvc.db import events as event_db
from calsvc.db.pool import Database
from calsvc.db.tx import run_in_tx
from calsvc.drafts import check_event
from calsvc.notify.broker import Broker
from calsvc.services import conflict_check
from calsvc.services.conflict_check import ConflictChecker
from calsvc.services.events import EventService
from calsvc.services.notifications import Notifications

DB_NAME = "calsvc_bench_conflicts"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"


# -- drafts -------------------------------------------------------------------------------


def random_start(rng: random.Random, tz_name: str) -> dt.datetime:
    """A working day of the seeded range, 07:00-19:00 local on the quarter hour."""
    day = FIRST_DAY + dt.timedelta(weeks=rng.randrange(WEEKS), days=rng.randrange(5))
    clock = dt.time(7 + rng.randrange(12), rng.choice((0, 15, 30, 45)))
    return dt.datetime.combine(day, clock, ZoneInfo(tz_name))


def single_fields(rng: random.Random, tz_name: str) -> dict[str, Any]:
    start = random_start(rng, tz_name)
    return {
        "title": "Bench draft",
        "description": "",
        "location": None,
        "start_time": start,
        "end_time": start + dt.timedelta(minutes=rng.choice((30, 45, 60, 75, 90))),
        "timezone": tz_name,
        "all_day": False,
        "recurrence": None,
    }


def weekly_fields(rng: random.Random, tz_name: str) -> dict[str, Any]:
    fields = single_fields(rng, tz_name)
    fields["title"] = "Bench weekly draft"
    fields["recurrence"] = {
        "rrule": "FREQ=WEEKLY;BYDAY=" + WEEKDAYS[fields["start_time"].weekday()],
        "exdates": [],
        "rdates": [],
    }
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
        box.append(await service.checker.check(tx, owner, draft, "allow", None))
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


PHASES = (
    "acquire+BEGIN",
    "advisory lock",
    "SQL round trips (conn.fetch)",
    "decode rows + cache of long events",
    "draft occurrences",
    "candidate expansion (calendar_busy)",
    "decision (find_conflicts)",
    "rest of the check",
    "ROLLBACK+release",
)


class PhaseTimers:
    """Timers around the module-level functions ConflictChecker.check calls (looked up at
    call time, so wrapping them times the real check); installed only for the breakdown."""

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
        """Times ConflictChecker.calendar (the candidate query, the cache of long events and,
        on a miss, the query for what the cache lacks): database time vs the rest."""
        checker = self.service.checker
        original = checker.calendar

        async def timed(conn, *args, **kwargs):
            counting = CountingConn(conn)
            began = time.perf_counter()
            try:
                return await original(counting, *args, **kwargs)
            finally:
                total = time.perf_counter() - began
                self.add(PHASES[2], counting.fetch_s)
                self.add(PHASES[3], total - counting.fetch_s)

        checker.calendar = timed  # type: ignore[method-assign]  # an instance attribute over the method
        self._restore.append((checker, "calendar", None))

    def __enter__(self) -> PhaseTimers:
        self.wrap_calendar()
        self.wrap(conflict_check, "draft_intervals", "draft occurrences")
        self.wrap(conflict_check, "calendar_busy", "candidate expansion (calendar_busy)")
        self.wrap(conflicts, "find_conflicts", "decision (find_conflicts)")
        return self

    def __exit__(self, *exc: Any) -> None:
        for module, name, original in reversed(self._restore):
            if original is None:
                delattr(module, name)
            else:
                setattr(module, name, original)


async def phased_check(
    db: Database,
    service: EventService,
    owner: int,
    draft,
    phases: dict[str, list[float]],
    counts: Result,
    timers: PhaseTimers,
) -> None:
    """One check as timed_check does it (run_in_tx, lock_calendar, the real check), with
    the time split into phases."""
    marks: dict[str, float] = {}
    timers.spent.clear()
    box: list = []

    async def check(tx):
        marks["in"] = time.perf_counter()
        await event_db.lock_calendar(tx.conn, owner)
        marks["locked"] = time.perf_counter()
        box.append(await service.checker.check(tx, owner, draft, "allow", None))
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
        "rest of the check": (marks["resolved"] - marks["locked"]) - inner,
        "ROLLBACK+release": ended - marks["resolved"],
    }
    for name in PHASES:
        phases.setdefault(name, []).append(spans[name] * 1000)
    phases.setdefault("total", []).append((ended - began) * 1000)
    counts.ms.append((ended - began) * 1000)
    counts.found.append(len(box[0][1]))


def table(results: list[Result]) -> str:
    lines = [
        "| path | samples | p50 ms | p95 ms | p99 ms | max ms | mean ms | candidate rows (mean) "
        "| of which series (mean) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if not r.ms:
            lines.append(f"| {r.name} | 0 | - | - | - | - | - | - | - |")
            continue
        cand = f"{statistics.mean(r.candidates):,.1f}" if r.candidates else "-"
        series = f"{statistics.mean(r.series):,.1f}" if r.series else "-"
        lines.append(
            f"| {r.name} | {len(r.ms):,} | {percentile(r.ms, 50):.2f} | {percentile(r.ms, 95):.2f} | "
            f"{percentile(r.ms, 99):.2f} | {max(r.ms):.2f} | {statistics.mean(r.ms):.2f} | {cand} "
            f"| {series} |"
        )
    return "\n".join(lines)


def phase_table(title: str, phases: dict[str, list[float]]) -> str:
    total_mean = statistics.mean(phases["total"])
    lines = [f"{title}", "| phase | mean ms | p50 ms | p99 ms | share of mean |", "|---|---:|---:|---:|---:|"]
    for name in (*PHASES, "total"):
        v = phases[name]
        lines.append(
            f"| {name} | {statistics.mean(v):.3f} | {percentile(v, 50):.3f} | {percentile(v, 99):.3f} | "
            f"{statistics.mean(v) / total_mean:.0%} |"
        )
    return "\n".join(lines)


async def candidates_of(db: Database, service: EventService, owner: int, draft, result: Result) -> None:
    async with db.acquire() as conn:
        lower, upper = conflict_check.check_range(draft)
        mine = conflict_check.draft_intervals(draft, lower, upper)
        # the rows the check reads: a draft of many occurrences probes once per occurrence
        pieces = conflicts.Cover(mine).pieces if len(mine) > 1 else None
        if pieces is not None and len(pieces) > conflict_check.PROBED_PIECES:
            pieces = None
        found = await service.checker.calendar(conn, owner, lower, upper, pieces=pieces)
    result.candidates.append(len(found))
    result.series.append(sum(1 for e in found if e.rrule is not None))


async def run_loop(label: str, n: int, warmup: int, step: Callable[[int], Awaitable[None]]) -> None:
    began = time.perf_counter()
    for i in range(warmup + n):
        await step(i - warmup)  # negative: warm-up, not recorded
    print(f"  {label}: {warmup} warm-up + {n} timed in {time.perf_counter() - began:.1f} s", flush=True)


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
    parser.add_argument(
        "--recurring-samples",
        type=int,
        default=300,
        help="timed weekly-series checks, after 20 warm-up (each takes about half a second)",
    )
    parser.add_argument(
        "--breakdown-samples", type=int, default=500, help="single checks timed phase by phase (weekly: a fifth of it)"
    )
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each path")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the drafts")
    args = parser.parse_args()
    recurring_n = args.recurring_samples

    print(f"database {DB_NAME}: {args.events:,} events, {args.owners} owners; code: {code_version()}", flush=True)
    if not args.reseed and await seeded(DB_URL, args.events, args.owners):
        conn = await asyncpg.connect(DB_URL)
        marker = await conn.fetchrow("SELECT * FROM bench_seed")
        await conn.close()
        print(
            f"already seeded at {marker['seeded_at']:%Y-%m-%d %H:%M} in {marker['seconds']:.1f} s: seeding skipped "
            "(--reseed to seed again)"
        )
    else:
        print("seeding...", flush=True)
        seconds = await seed(DB_URL, args.events, args.owners)
        print(f"seeded in {seconds:.1f} s")

    settings = Settings().replace(
        database={"url": DB_URL, "pool_min_size": 1, "pool_max_size": 2, "command_timeout": 60}
    )
    db = await Database.connect(DB_URL, settings.database)
    # creates announce nothing: a broker that wakes nobody is enough here
    service = EventService(db, Notifications(db, Broker(None)), ConflictChecker())  # type: ignore[arg-type]
    try:
        async with db.acquire() as conn:
            stats = await conn.fetchrow("""
                SELECT count(*) AS events, count(*) FILTER (WHERE rrule IS NOT NULL) AS series,
                       count(*) FILTER (WHERE rrule IS NOT NULL AND upper_inf(during)) AS endless,
                       count(*) FILTER (WHERE all_day) AS all_day,
                       min(lower(during)) AS first, max(upper(during)) AS last
                FROM events WHERE deleted_at IS NULL""")
            print(
                f"events: {stats['events']:,} ({stats['series']:,} series, {stats['endless']:,} endless; "
                f"{stats['all_day']:,} all-day), {stats['first']:%Y-%m-%d} .. {stats['last']:%Y-%m-%d}"
            )
            size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
            print(f"database size: {size}")
            owners = [
                (r["user_id"], r["tz"])
                for r in await conn.fetch("SELECT user_id, tz FROM bench_owners ORDER BY position")
            ]
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
            lower, upper = conflict_check.check_range(draft)
            await event_db.list_calendar(counting, owner, lower, upper)
            sql, qargs = counting.last
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *qargs)
            print(
                f"\nEXPLAIN (ANALYZE, BUFFERS) of list_calendar (owner {owner}, "
                f"[{lower.isoformat()}, {upper.isoformat()}), {counting.rows} rows):"
            )
            print("\n".join("    " + r[0] for r in plan))
            owner, wdraft, _ = draft_of(weekly_fields)
            lower, upper = conflict_check.check_range(wdraft)
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, owner, lower, upper)
            print(f"\nthe same for a weekly endless draft (owner {owner}, [{lower:%Y-%m-%d}, {upper:%Y-%m-%d})):")
            print("\n".join("    " + r[0] for r in plan))

        print(f"\nmeasuring (one connection at a time, sequential; load average {os.getloadavg()[0]:.2f}):", flush=True)
        single, weekly = (
            Result("single event, check (lock + check, rolled back)"),
            Result("weekly endless series, check (lock + check, rolled back)"),
        )
        check_event_ms: list[float] = []

        async def single_step(i: int) -> None:
            owner, draft, _ = draft_of(single_fields)
            await timed_check(db, service, owner, draft, single if i >= 0 else None)
            if i >= 0:
                await candidates_of(db, service, owner, draft, single)

        cache_before = occurrences._series.cache_info()
        await run_loop("single checks", args.samples, args.warmup, single_step)
        cache = occurrences._series.cache_info()
        single_cache = (cache.hits - cache_before.hits, cache.misses - cache_before.misses, cache.maxsize)
        long_events = service.checker.long_events
        long_cache = (long_events.hits, long_events.misses, len(long_events))

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

        create = Result('EventService.create(owner, single, "reject")')
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
                    "WITH d AS (DELETE FROM events WHERE id > $1 RETURNING 1) SELECT count(*) FROM d", max_seed_id
                )
            if removed:
                print(f"  removed the {removed:,} events the creates wrote")

        print(f"  load average after: {os.getloadavg()[0]:.2f} (other work on the machine skews the tail)")
        print(
            f"\nresults (ms, wall clock per transaction; {len(owners)} owners, "
            f"{args.events // len(owners):,} events each):\n"
        )
        print(table([single, weekly, create]))
        if check_event_ms:
            print(
                f"\ncheck_event of the weekly draft (before the transaction): "
                f"p50 {percentile(check_event_ms, 50):.2f} ms, p99 {percentile(check_event_ms, 99):.2f} ms"
            )
        if create_error:
            print(f"EventService.create could not be measured: {create_error}")
        else:
            print(
                "create outcomes: "
                + "; ".join(
                    f"{k}: {len(v):,} (p50 {percentile(v, 50):.2f} ms, p99 {percentile(v, 99):.2f} ms)"
                    for k, v in create.outcomes.items()
                )
            )
        print(
            f"conflicts found per single check (allow): mean {statistics.mean(single.found):.2f}; "
            f"per weekly check: mean {statistics.mean(weekly.found or [math.nan]):.1f}"
        )
        hits, misses, maxsize = single_cache
        print(
            f"series cache (occurrences._series, lru maxsize {maxsize}) during the single checks: "
            f"{hits:,} hits, {misses:,} misses ({hits / max(1, hits + misses):.0%} hit rate)"
        )
        hits, misses, size = long_cache
        print(
            f"long events cache (ConflictChecker.long_events, by id and version) up to the end of the single "
            f"checks, warm-up included: {hits:,} hits, {misses:,} misses, {size:,} held"
        )
        for name, r in (("single", single), ("weekly", weekly)):
            if not r.ms:
                continue
            print(
                f"{name}: p99 {'<' if percentile(r.ms, 99) < 5 else '>='} 5 ms target ({percentile(r.ms, 99):.2f} ms)"
            )

        # Where the time goes: the same checks, phase by phase.
        print(f"\nbreakdown ({args.breakdown_samples} more checks per path, timers around each step):\n")
        cache_before = occurrences._series.cache_info()
        for label, make, n in (
            ("single event", single_fields, args.breakdown_samples),
            ("weekly endless series", weekly_fields, min(args.breakdown_samples // 5, recurring_n)),
        ):
            if n == 0:
                continue
            phases: dict[str, list[float]] = {}
            counts = Result(label)
            with PhaseTimers(service) as timers:
                for _i in range(n):
                    owner, draft, _ = draft_of(make)
                    await phased_check(db, service, owner, draft, phases, counts, timers)
            print(phase_table(f"{label} ({n} checks)", phases))
            print()
        cache = occurrences._series.cache_info()
        print(
            f"series cache (occurrences._series, lru maxsize {cache.maxsize}): "
            f"{cache.hits - cache_before.hits:,} hits, {cache.misses - cache_before.misses:,} misses "
            f"during the breakdown; {cache.currsize:,} cached"
        )

        if args.profile:
            for label, make, n in (
                ("single event", single_fields, min(args.samples, 1000)),
                ("weekly endless series", weekly_fields, min(recurring_n, 200)),
            ):
                if n == 0:
                    continue
                profile = cProfile.Profile()
                profile.enable()
                for _i in range(n):
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
