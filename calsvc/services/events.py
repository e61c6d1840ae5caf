"""Events: validate a whole event, create it, read it."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from calsvc import conflicts, errors, recurrence
from calsvc.db import events as event_db
from calsvc.db.pool import Database
from calsvc.db.tx import Tx, run_in_tx
from calsvc.models import Event

MAX_DURATION = dt.timedelta(days=366)
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True, slots=True)
class Draft:
    """An event's fields, checked as a whole and ready to store."""

    title: str
    description: str
    location: str | None
    start_time: dt.datetime
    end_time: dt.datetime
    timezone: str
    all_day: bool
    rrule: str | None
    exdates: tuple[dt.datetime, ...]
    rdates: tuple[dt.datetime, ...]
    during: tuple[dt.datetime, dt.datetime | None]
    series: recurrence.Series | None = None

    def snapshot(self, owner_id: int) -> dict[str, Any]:
        return {
            "title": self.title, "description": self.description, "location": self.location,
            "start_time": self.start_time.isoformat(), "end_time": self.end_time.isoformat(),
            "timezone": self.timezone, "all_day": self.all_day, "rrule": self.rrule,
            "exdates": [d.isoformat() for d in self.exdates], "rdates": [d.isoformat() for d in self.rdates],
            "owner_id": owner_id,
        }


def zone(name: str, loc: tuple[str, ...] = ("body", "timezone")) -> ZoneInfo:
    """The IANA zone `name`; errors.Validation at `loc` when there is none."""
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise errors.Validation.at(loc, f"{name!r} is not an IANA time zone (like Europe/Berlin)") from None


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    if name != name.strip() or "\x00" in name:
        raise ValueError(name)
    return ZoneInfo(name)


def check_event(fields: dict[str, Any]) -> Draft:
    """Check a whole event (after merging a partial update into the stored one).
    errors.Validation naming the field otherwise."""
    tz = zone(fields["timezone"])
    start, end = fields["start_time"], fields["end_time"]
    if not (EARLIEST <= start < LATEST and EARLIEST <= end < LATEST):
        raise errors.Validation.at(("body", "start_time"), "times must lie between the years 1900 and 9000")
    if end <= start:
        raise errors.Validation.at(("body", "end_time"), "end_time must be after start_time")
    if end - start > MAX_DURATION:
        raise errors.Validation.at(("body", "end_time"), "an event lasts at most 366 days")
    start, end = start.astimezone(tz), end.astimezone(tz)
    if fields["all_day"] and any(t.timetz().replace(tzinfo=None) != dt.time(0) for t in (start, end)):
        raise errors.Validation.at(("body", "start_time"),
                                   "an all-day event starts and ends at midnight in its time zone")
    rrule, exdates, rdates, series = None, (), (), None
    rec = fields.get("recurrence")
    if rec is not None:
        rrule, exdates, rdates, series = _check_recurrence(rec, start, end - start, tz)
    if series is None:
        during = (start, end)
    else:
        during = series.envelope()
    return Draft(fields["title"], fields["description"], fields["location"], start, end,
                 fields["timezone"], fields["all_day"], rrule, exdates, rdates, during, series)


def _check_recurrence(rec: dict[str, Any], start: dt.datetime, duration: dt.timedelta, tz: ZoneInfo):
    if rec.get("rrule") is not None and rec.get("pattern") is not None:
        raise errors.Validation.at(("body", "recurrence"), "give either rrule or pattern, not both")
    try:
        if rec.get("rrule") is not None:
            where = ("body", "recurrence", "rrule")
            parts = recurrence.parse_rule(rec["rrule"], tz)
        elif rec.get("pattern") is not None:
            where = ("body", "recurrence", "pattern")
            parts = recurrence.rule_from_pattern(rec["pattern"], tz)
        else:
            raise errors.Validation.at(("body", "recurrence", "rrule"), "give rrule or pattern (or recurrence: null)")
        where = ("body", "recurrence")
        series = recurrence.prepare(start, duration, tz, parts, rec.get("exdates", ()), rec.get("rdates", ()))
    except recurrence.RecurrenceError as exc:
        raise errors.Validation.at(where, str(exc)) from None
    return recurrence.format_rule(parts), series.exdates, series.rdates, series


@functools.lru_cache(maxsize=4096)
def pattern_of(rrule: str) -> dict[str, Any] | None:
    """The structured pattern of a stored (normalised, UTC) rule, or None."""
    return recurrence.pattern_from_rule(recurrence.parse_rule(rrule, ZoneInfo("UTC")))


@functools.lru_cache(maxsize=4096)
def _series(event_id: int, version: int, start: dt.datetime, end: dt.datetime, timezone: str,
            rrule: str, exdates: tuple[dt.datetime, ...], rdates: tuple[dt.datetime, ...]) -> recurrence.Series:
    tz = _zone(timezone)
    return recurrence.prepare(start.astimezone(tz), end - start, tz, recurrence.parse_rule(rrule, tz),
                              exdates, rdates)


def series_of(event: Event) -> recurrence.Series:
    """The stored series of a recurring event (cached per event version)."""
    return _series(event.id, event.version, event.start_time, event.end_time, event.timezone,
                   event.rrule, event.exdates, event.rdates)


def in_window(event: Event, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """Whether an occurrence of `event` overlaps the window (None: open on that side)."""
    if event.rrule is None:
        return (start is None or event.end_time > start) and (end is None or event.start_time < end)
    return recurrence.has_occurrence(series_of(event), start, end)


@dataclasses.dataclass(frozen=True, slots=True)
class Occurrence:
    event: Event
    original_start: dt.datetime
    start: dt.datetime
    end: dt.datetime


def occurrences_of(event: Event, start: dt.datetime, end: dt.datetime) -> list[Occurrence]:
    """The occurrences of `event` overlapping [start, end), in order; errors.Validation
    (at the query) when the window is too long or holds too many."""
    tz = _zone(event.timezone)
    duration = event.end_time - event.start_time
    if event.rrule is None:
        starts = [event.start_time.astimezone(tz)] if event.start_time < end and event.end_time > start else []
    else:
        try:
            starts = recurrence.occurrence_starts(series_of(event), start, end)
        except recurrence.RecurrenceError as exc:
            raise errors.Validation.at(("query", "end"), str(exc)) from None
    return [Occurrence(event, s, s, (s.astimezone(dt.timezone.utc) + duration).astimezone(tz)) for s in starts]


def check_window(start: dt.datetime, end: dt.datetime) -> None:
    try:
        recurrence.check_window(start, end)
    except recurrence.RecurrenceError as exc:
        raise errors.Validation.at(("query", "end"), str(exc)) from None


CONFLICT_HORIZON = dt.timedelta(days=731)  # how far an endless rule is checked (SPEC 4)
SHIFT_HORIZON = dt.timedelta(days=30)
CHECK_LIMIT = 100_000


def _intervals(series: recurrence.Series | None, start: dt.datetime, end: dt.datetime,
               lower: dt.datetime, upper: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    if series is None:
        return [(start, end)] if start < upper and end > lower else []
    duration = series.duration
    return [(s, (s.astimezone(dt.timezone.utc) + duration).astimezone(s.tzinfo))
            for s in recurrence.occurrence_starts(series, lower, upper, limit=CHECK_LIMIT)]


def _check_range(draft: Draft) -> tuple[dt.datetime, dt.datetime]:
    first, last = draft.during
    horizon = draft.start_time + CONFLICT_HORIZON
    return first, horizon if last is None else last


def _busy(events: list[Event], lower: dt.datetime, upper: dt.datetime,
          exclude: int | None) -> list[conflicts.Busy]:
    busy = []
    for event in events:
        if event.id == exclude:
            continue
        series = series_of(event) if event.rrule is not None else None
        tz = _zone(event.timezone)
        for s, e in _intervals(series, event.start_time.astimezone(tz), event.end_time.astimezone(tz),
                               lower, upper):
            busy.append(conflicts.Busy(event.id, event.title, s, e))
    return busy


def conflict_items(found: list[conflicts.Busy]) -> list[dict[str, Any]]:
    return [{"event_id": b.event_id, "title": b.title, "start_time": b.start.isoformat(),
             "end_time": b.end.isoformat()} for b in found]


class EventService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, user_id: int, fields: dict[str, Any],
                     strategy: str = "reject") -> tuple[Event, list[conflicts.Busy]]:
        """The new event and the conflicts it was written with (only under `allow`).
        errors.Validation for an invalid event; errors.SchedulingConflict under `reject`, or
        under `shift` when no free slot comes within 30 days."""
        if fields.get("recurrence") is not None:
            draft = await asyncio.to_thread(check_event, fields)  # expansion is CPU work
        else:
            draft = check_event(fields)
        if strategy == "shift" and draft.rrule is not None:
            raise errors.Validation.at(("query", "on_conflict"), "shift applies to single events only")
        return await run_in_tx(self.db, "create_event", self._insert, user_id, draft, strategy)

    async def _resolve(self, tx: Tx, owner_id: int, draft: Draft, strategy: str,
                       exclude: int | None) -> tuple[Draft, list[conflicts.Busy]]:
        """Check `draft` against the owner's calendar (the caller holds the calendar lock)
        and apply the strategy: the draft to write (moved, under `shift`) and the conflicts."""
        lower, upper = _check_range(draft)
        candidates = await event_db.list_calendar(tx.conn, owner_id, lower, upper)
        mine = _intervals(draft.series, draft.start_time, draft.end_time, lower, upper)
        found = conflicts.find_conflicts(mine, _busy(candidates, lower, upper, exclude))
        if not found or strategy == "allow":
            return draft, found
        if strategy == "shift":
            duration = draft.end_time - draft.start_time
            until = draft.start_time + SHIFT_HORIZON + duration
            around = await event_db.list_calendar(tx.conn, owner_id, draft.start_time, until)
            busy = [(b.start, b.end) for b in _busy(around, draft.start_time, until, exclude)]
            slot = conflicts.earliest_free_slot(draft.start_time, duration, busy, SHIFT_HORIZON)
            if slot is not None:
                slot_end = (slot.astimezone(dt.timezone.utc) + duration).astimezone(slot.tzinfo)
                return dataclasses.replace(draft, start_time=slot, end_time=slot_end,
                                           during=(slot, slot_end)), []
            raise errors.SchedulingConflict("no free slot of this length within 30 days",
                                            conflicts=conflict_items(found))
        raise errors.SchedulingConflict(
            f"the event overlaps {len(found)} occurrence(s) in the owner's calendar",
            conflicts=conflict_items(found))

    async def _insert(self, tx: Tx, user_id: int, draft: Draft,
                      strategy: str) -> tuple[Event, list[conflicts.Busy]]:
        await event_db.lock_calendar(tx.conn, user_id)
        draft, found = await self._resolve(tx, user_id, draft, strategy, exclude=None)
        snapshot = orjson.dumps(draft.snapshot(user_id)).decode()
        event = await event_db.insert_event(
            tx.conn, user_id, draft.title, draft.description, draft.location, draft.start_time,
            draft.end_time, draft.timezone, draft.all_day, draft.rrule, list(draft.exdates),
            list(draft.rdates), draft.during, snapshot,
        )
        return event, found

    async def list(self, user_id: int, *, start: dt.datetime | None, end: dt.datetime | None,
                   role: str | None, q: str | None, after: tuple[dt.datetime, int] | None,
                   limit: int) -> tuple[list[Event], bool]:
        """A page of the events the user can see with an occurrence in the window, and
        whether more follow. Series whose envelope overlaps but no occurrence does are
        skipped, fetching further rows until the page is full."""
        window = None if start is None and end is None else (start, end)
        page: list[Event] = []
        async with self.db.acquire() as conn:
            while True:
                rows = await event_db.list_visible(conn, user_id, role=role, window=window, q=q,
                                                   after=after, limit=limit + 1)
                for event in rows:
                    if window is None or in_window(event, start, end):
                        page.append(event)
                        if len(page) > limit:
                            return page[:limit], True
                if len(rows) <= limit:
                    return page, False
                after = (rows[-1].start_time, rows[-1].id)

    async def expand(self, user_id: int, start: dt.datetime, end: dt.datetime, role: str | None,
                     q: str | None) -> list[Occurrence]:
        """Every occurrence in the window of every event the user can see, by (start, event id);
        errors.Validation when the window is over 2 years or holds over 5,000 occurrences."""
        check_window(start, end)
        found: list[Occurrence] = []
        after = None
        async with self.db.acquire() as conn:
            while True:
                rows = await event_db.list_visible(conn, user_id, role=role, window=(start, end), q=q,
                                                   after=after, limit=500)
                for event in rows:
                    found.extend(occurrences_of(event, start, end))
                if len(found) > recurrence.MAX_OCCURRENCES:
                    raise errors.Validation.at(
                        ("query", "end"),
                        f"more than {recurrence.MAX_OCCURRENCES} occurrences in the window; ask for a shorter window")
                if len(rows) < 500:
                    break
                after = (rows[-1].start_time, rows[-1].id)
        found.sort(key=lambda o: (o.start, o.event.id))
        return found

    async def _calendar_busy(self, conn, user_id: int, start: dt.datetime,
                             end: dt.datetime) -> list[conflicts.Busy]:
        events = await event_db.list_calendar(conn, user_id, start, end)
        busy = _busy(events, start, end, exclude=None)
        if len(busy) > CHECK_LIMIT:
            raise errors.Validation.at(("query", "end"), "too many occurrences; ask for a shorter window")
        return busy

    async def overlapping_pairs(self, user_id: int, start: dt.datetime,
                                end: dt.datetime) -> list[conflicts.Overlap]:
        """Pairs of events in the user's calendar with overlapping occurrences in the window."""
        check_window(start, end)
        async with self.db.acquire() as conn:
            busy = await self._calendar_busy(conn, user_id, start, end)
        return conflicts.overlapping_pairs(busy)

    async def free_busy(self, user_id: int, others: list[int], start: dt.datetime,
                        end: dt.datetime) -> list[tuple[int, list[tuple[dt.datetime, dt.datetime]]]]:
        """Merged busy intervals (clipped to the window) of each user; errors.NotFound when one
        of them shares no event with the caller."""
        check_window(start, end)
        async with self.db.acquire() as conn:
            strangers = set(others) - {user_id}
            if strangers and await event_db.users_sharing_with(conn, user_id, sorted(strangers)) != strangers:
                raise errors.NotFound("no such user among the people you share events with")
            answer = []
            for other in others:
                busy = await self._calendar_busy(conn, other, start, end)
                merged = conflicts.merge_intervals((max(b.start, start), min(b.end, end)) for b in busy)
                answer.append((other, merged))
        return answer

    async def get(self, user_id: int, event_id: int) -> Event:
        """errors.NotFound when the event is unknown, deleted or not visible to the user."""
        if not 1 <= event_id < 2**63:
            raise errors.NotFound("no such event")
        async with self.db.acquire() as conn:
            event = await event_db.find_event(conn, event_id, user_id)
        if event is None:
            raise errors.NotFound("no such event")
        return event
