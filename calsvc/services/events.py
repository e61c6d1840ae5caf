"""Events: validate a whole event; create, read, change and delete events and occurrences,
each change checked against the owner's calendar and written as a new version."""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import heapq
from typing import Any, Awaitable, Callable, Iterable, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import msgspec
import orjson

from calsvc import conflicts, errors, recurrence
from calsvc.db import events as event_db
from calsvc.db import history as history_db
from calsvc.db.pool import Database, off_loop
from calsvc.services import history
from calsvc.db.tx import Tx, run_in_tx
from calsvc.services.idempotency import Recorder
from calsvc.services.offload import Offload
from calsvc.services.notifications import ACTOR, Notifications, quoted
from calsvc.models import Event, OccurrenceChange, with_article, exceptions_from_json, exceptions_json

T = TypeVar("T")
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
    series: recurrence.Series | None = None  # with the exceptions' original starts excluded
    exceptions: tuple[OccurrenceChange, ...] = ()

    def row(self, owner_id: int, snap: dict[str, Any] | None = None) -> dict[str, Any]:
        """The columns to store (JSON-ready, as db.events takes them), with the version
        snapshot (`snap`, when the caller has it already)."""
        return {
            "title": self.title, "description": self.description, "location": self.location,
            "start_time": self.start_time.isoformat(), "end_time": self.end_time.isoformat(),
            "timezone": self.timezone, "all_day": self.all_day, "rrule": self.rrule,
            "exdates": [d.isoformat() for d in self.exdates], "rdates": [d.isoformat() for d in self.rdates],
            "exceptions": exceptions_json(self.exceptions),
            "last_start": None if self.series is None or self.series.last_start is None
            else self.series.last_start.isoformat(),
            "lower": self.during[0].isoformat(),
            "upper": None if self.during[1] is None else self.during[1].isoformat(),
            "snapshot": snapshot(self, owner_id) if snap is None else snap,
        }


def snapshot(event: Event | Draft, owner_id: int) -> dict[str, Any]:
    """What a version keeps of an event: every field a rollback restores, times in the
    event's zone (the owner is kept for the record)."""
    tz = _zone(event.timezone)
    return {
        "title": event.title, "description": event.description, "location": event.location,
        "start_time": event.start_time.astimezone(tz).isoformat(),
        "end_time": event.end_time.astimezone(tz).isoformat(),
        "timezone": event.timezone, "all_day": event.all_day, "rrule": event.rrule,
        "exdates": [d.astimezone(dt.timezone.utc).isoformat() for d in event.exdates],
        "rdates": [d.astimezone(dt.timezone.utc).isoformat() for d in event.rdates],
        "exceptions": exceptions_json(event.exceptions), "owner_id": owner_id,
    }


_TIMING = ("start_time", "end_time", "timezone", "rrule", "exdates", "rdates")


def _timing(snap: dict[str, Any]) -> tuple[Any, ...]:
    """What decides when the occurrences are, from a snapshot."""
    # exceptions that only rename (or re-describe) an occurrence leave it where it was
    moved = sorted((k, v.get("cancelled"), v.get("start_time"), v.get("end_time"))
                   for k, v in snap["exceptions"].items() if v.get("cancelled") or "start_time" in v)
    return tuple(str(snap[k]) for k in _TIMING) + (str(moved),)


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [key for key in new if key != "owner_id" and not history.same(key, old.get(key), new[key])]


def zone(name: str, loc: tuple[str, ...] = ("body", "timezone")) -> ZoneInfo:
    """The IANA zone `name`; errors.Validation at `loc` when there is none. Only the names of
    the time zone database: not the files beside them (`localtime`, `posixrules`, `posix/...`,
    `right/...`), which mean what the host says."""
    try:
        if name not in _iana_names():
            raise ValueError(name)
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise errors.Validation.at(loc, f"{name!r} is not an IANA time zone (like Europe/Berlin)") from None


@functools.cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime"}  # Debian links it into the database folder


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    if name != name.strip() or "\x00" in name:
        raise ValueError(name)
    return ZoneInfo(name)


def check_event(fields: dict[str, Any], exceptions_on_rule: bool = False) -> Draft:
    """Check a whole event (after merging a partial update into the stored one).
    errors.Validation naming the field otherwise. `exceptions_on_rule`: the exceptions are
    known to fall on occurrences of this rule (one occurrence of a stored series changed:
    the rule and times are those stored, each exception was checked when it was written),
    so they are not tested again."""
    tz = zone(fields["timezone"])
    start, end = fields["start_time"], fields["end_time"]
    _check_times(start, end)
    start, end = start.astimezone(tz), end.astimezone(tz)
    if fields["all_day"] and any(t.timetz().replace(tzinfo=None) != dt.time(0) for t in (start, end)):
        raise errors.Validation.at(("body", "start_time"),
                                   "an all-day event starts and ends at midnight in its time zone")
    if fields["all_day"] and end == start:
        raise errors.Validation.at(("body", "end_time"), "an all-day event lasts at least one day")
    rrule, exdates, rdates, series = None, (), (), None
    rec = fields.get("recurrence")
    kept: tuple[OccurrenceChange, ...] = ()
    if rec is not None:
        # the length in elapsed time: both ends share the zone now, and Python would subtract wall clocks
        duration = end.astimezone(dt.timezone.utc) - start.astimezone(dt.timezone.utc)
        days = (end.date() - start.date()).days if fields["all_day"] else 0  # of the calendar
        rrule, exdates, rdates, series = _check_recurrence(rec, start, duration, tz, days)
        kept = fields.get("exceptions", ())
        if not exceptions_on_rule:
            kept = _kept_exceptions(series, kept)
        series = with_exceptions(series, (c.original for c in kept))
    if series is None:
        during = (start, recurrence.extent_end(start, end))
    else:
        during = _envelope(series, kept)
    return Draft(fields["title"], fields["description"], fields["location"], start, end,
                 fields["timezone"], fields["all_day"], rrule, exdates, rdates, during, series, kept)


def _kept_exceptions(series: recurrence.Series,
                     changes: tuple[OccurrenceChange, ...]) -> tuple[OccurrenceChange, ...]:
    """The exceptions that still fall on an occurrence of `series` (changing a series' rule
    or times drops the others). Many exceptions close together are tested against one
    expansion of the span they cover; sparse ones (or few) one by one."""
    tiny = dt.timedelta(microseconds=1)
    utc = dt.timezone.utc
    if len(changes) > 8:
        first, last = min(c.original for c in changes), max(c.original for c in changes)
        try:
            starts = {s.astimezone(utc) for s in recurrence.occurrence_starts(
                series, first, last + tiny, limit=4 * len(changes) + 100)}
        except recurrence.RecurrenceError:
            pass  # far apart: fewer walks one by one
        else:
            return tuple(c for c in changes if c.original in starts)
    return tuple(c for c in changes
                 if c.original in {s.astimezone(utc) for s in
                                   recurrence.occurrence_starts(series, c.original, c.original + tiny)})


def with_exceptions(series: recurrence.Series, replaced: Iterable[dt.datetime]) -> recurrence.Series:
    """`series` without the occurrences its exceptions replace (their original starts); `expand`
    adds them back, moved or cancelled."""
    keys = set(replaced)
    if not keys:
        return series
    return dataclasses.replace(series, exdates=tuple(sorted(set(series.exdates) | keys)))


def _envelope(series: recurrence.Series,
              changes: tuple[OccurrenceChange, ...]) -> tuple[dt.datetime, dt.datetime | None]:
    """The series' envelope widened to hold its moved occurrences."""
    first, last = series.envelope()
    for change in changes:
        if "start_time" in change.overrides:
            first = min(first, change.overrides["start_time"])
            if last is not None:
                last = max(last, recurrence.extent_end(change.overrides["start_time"], change.overrides["end_time"]))
    return first, last


def _check_recurrence(rec: dict[str, Any], start: dt.datetime, duration: dt.timedelta, tz: ZoneInfo,
                      days: int = 0):
    if rec.get("rrule") is not None and rec.get("pattern") is not None:
        raise errors.Validation.at(("body", "recurrence"), "give either rrule or pattern, not both")
    for name in ("exdates", "rdates"):
        for index, value in enumerate(rec.get(name, ())):
            if not EARLIEST <= value < LATEST:
                raise errors.Validation.at(("body", "recurrence", name, index),
                                           "times must lie between the years 1900 and 9000")
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
        series = recurrence.prepare(start, duration, tz, parts, rec.get("exdates", ()), rec.get("rdates", ()), days)
    except recurrence.RecurrenceError as exc:
        raise errors.Validation.at(where, str(exc)) from None
    return recurrence.format_rule(parts), series.exdates, series.rdates, series


@functools.lru_cache(maxsize=4096)
def pattern_of(rrule: str) -> dict[str, Any] | None:
    """The structured pattern of a stored (normalised, UTC) rule, or None."""
    return recurrence.pattern_from_rule(recurrence.parse_rule(rrule, ZoneInfo("UTC")))


@functools.lru_cache(maxsize=65536)
def _series(event_id: int, version: int, start: dt.datetime, end: dt.datetime, timezone: str,
            rrule: str, exdates: tuple[dt.datetime, ...], rdates: tuple[dt.datetime, ...],
            replaced: tuple[dt.datetime, ...], last_start: dt.datetime | None, all_day: bool) -> recurrence.Series:
    tz = _zone(timezone)
    parts = _parsed(rrule, timezone)
    days = (end.astimezone(tz).date() - start.astimezone(tz).date()).days if all_day else 0
    if last_start is None and ("COUNT" in parts or "UNTIL" in parts):
        # written before last_start was stored: work it out again
        series = recurrence.prepare(start.astimezone(tz), end - start, tz, dict(parts), exdates, rdates, days)
    else:
        # checked when it was written: rebuild it without walking the rule
        series = recurrence.Series(start.astimezone(tz), end - start, tz, parts,
                                   tuple(sorted(d.astimezone(dt.timezone.utc) for d in exdates)),
                                   tuple(sorted(d.astimezone(dt.timezone.utc) for d in rdates)),
                                   None if last_start is None else last_start.astimezone(tz), days)
    return with_exceptions(series, replaced)


@functools.lru_cache(maxsize=16384)
def _parsed(rrule: str, timezone: str) -> dict[str, str]:
    """The parts of a stored rule (shared: never change the dict). A stored rule is
    normalised (`recurrence.format_rule`), so reading it back is a split, not a parse."""
    return recurrence.stored_parts(rrule)


def series_of(event: Event) -> recurrence.Series:
    """The stored series of a recurring event, its exceptions' original starts left out
    (cached per event version)."""
    return _series(event.id, event.version, event.start_time, event.end_time, event.timezone,
                   event.rrule, event.exdates, event.rdates, tuple(c.original for c in event.exceptions),
                   event.last_start, event.all_day)


def in_window(event: Event, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """Whether an occurrence of `event` (cancelled ones aside) overlaps the window (None:
    open on that side)."""
    if event.rrule is None:
        return ((start is None or recurrence.extent_end(event.start_time, event.end_time) > start)
                and (end is None or event.start_time < end))
    for change in event.exceptions:
        if "start_time" in change.overrides and not change.cancelled:
            s, e = change.overrides["start_time"], change.overrides["end_time"]
            if (start is None or recurrence.extent_end(s, e) > start) and (end is None or s < end):
                return True
    return recurrence.has_occurrence(series_of(event), start, end)


@dataclasses.dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence as shown: `original_start` names it; times in the event's zone."""

    event_id: int
    original_start: dt.datetime
    start: dt.datetime
    end: dt.datetime
    title: str
    is_exception: bool = False
    cancelled: bool = False


def order_key(occ: Occurrence) -> tuple[dt.datetime, int, dt.datetime]:
    """How occurrences are listed: by start instant, event id, original start instant."""
    utc = dt.timezone.utc
    return occ.start.astimezone(utc), occ.event_id, occ.original_start.astimezone(utc)


def expand(series: recurrence.Series | None, event_id: int, title: str, start: dt.datetime,
           end: dt.datetime, changes: tuple[OccurrenceChange, ...], lower: dt.datetime,
           upper: dt.datetime, *, cancelled: bool, limit: int = recurrence.MAX_OCCURRENCES) -> list[Occurrence]:
    """The occurrences of an event (a single one when `series` is None) overlapping
    [lower, upper), exceptions applied (cancelled ones only when `cancelled`), ordered by
    start. RecurrenceError past `limit`."""
    # Every comparison on UTC instants: two datetimes in one zone compare by wall clock.
    utc = dt.timezone.utc
    lower, upper = lower.astimezone(utc), upper.astimezone(utc)
    if series is None:
        overlaps = start.astimezone(utc) < upper and recurrence.extent_end(start, end) > lower
        return [Occurrence(event_id, start, start, end, title)] if overlaps else []
    tz, end_of = series.tz, series.end_of
    found = [Occurrence(event_id, s, s, end_of(s).astimezone(tz), title)
             for s in recurrence.occurrence_starts(series, lower, upper, limit=limit)]
    reach = series.reach + recurrence.INSTANT
    for change in changes:
        o = change.overrides
        if "start_time" not in o and (change.original >= upper or change.original + reach <= lower):
            continue  # in its natural place, out of the window (most of a long series' exceptions)
        original = change.original.astimezone(tz)
        if change.cancelled:
            natural_end = end_of(change.original).astimezone(tz)
            if cancelled and change.original < upper and series.extent_end(change.original) > lower:
                found.append(Occurrence(event_id, original, original, natural_end, title, True, True))
            continue
        s = o.get("start_time", change.original).astimezone(tz)
        e = o.get("end_time", end_of(change.original)).astimezone(tz)
        if s.astimezone(utc) < upper and recurrence.extent_end(s, e) > lower:
            found.append(Occurrence(event_id, original, s, e, o.get("title", title), True, False))
    if changes:
        found.sort(key=order_key)
        if len(found) > limit:
            raise recurrence.RecurrenceError(
                f"more than {limit} occurrences in the window; ask for a shorter window")
    return found


def occurrences_of(event: Event, start: dt.datetime, end: dt.datetime, *, cancelled: bool = True,
                   limit: int = recurrence.MAX_OCCURRENCES) -> list[Occurrence]:
    """The occurrences of `event` overlapping [start, end), exceptions applied, in order;
    errors.Validation (at the query) when the window is too long or holds too many."""
    tz = _zone(event.timezone)
    series = series_of(event) if event.rrule is not None else None
    try:
        return expand(series, event.id, event.title, event.start_time.astimezone(tz),
                      event.end_time.astimezone(tz), event.exceptions, start, end,
                      cancelled=cancelled, limit=limit)
    except recurrence.RecurrenceError as exc:
        raise errors.Validation.at(("query", "end"), str(exc)) from None


def check_bounds(**times: dt.datetime | None) -> None:
    """errors.Validation at the query parameter whose time lies outside the years 1900-9000
    (where events can be)."""
    for name, value in times.items():
        if value is not None and not EARLIEST <= value < LATEST:
            raise errors.Validation.at(("query", name), f"{name} must lie between the years 1900 and 9000")


def check_window(start: dt.datetime, end: dt.datetime) -> None:
    check_bounds(start=start, end=end)
    try:
        recurrence.check_window(start, end)
    except recurrence.RecurrenceError as exc:
        raise errors.Validation.at(("query", "end"), str(exc)) from None


CONFLICT_HORIZON = dt.timedelta(days=731)  # how far an endless rule is checked (SPEC 4)
SHIFT_HORIZON = dt.timedelta(days=30)
CHECK_LIMIT = 100_000
# A draft with more occurrences than this is checked in a thread (a weekly series over the
# two years of CONFLICT_HORIZON has 105: its check expands the calendar's series over those
# years, 50-100 ms of CPU that would stall every other request of the process).
MANY_OCCURRENCES = 32
PIECES_ONE_BY_ONE = 200  # up to this many (merged) draft occurrences, series are tested piece by piece
PROBED_PIECES = 2000     # up to this many, the candidate query probes the calendar once per piece
PROBE_SPAN = dt.timedelta(days=31)  # ... of a batch, when they span more than this
# Threads of their own: a check waits for one inside its transaction, holding the calendar's
# lock and a connection, so it must not queue behind bcrypt or batch validation (the default
# executor's).
_CHECKS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="calsvc-check")

EDITOR_ROLES = ("owner", "editor")


def _draft_busy(draft: Draft, lower: dt.datetime, upper: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The draft's occurrences overlapping [lower, upper) as intervals (cancelled ones aside);
    errors.Validation when there are more than a conflict check looks at."""
    try:
        found = expand(draft.series, 0, draft.title, draft.start_time, draft.end_time, draft.exceptions,
                       lower, upper, cancelled=False, limit=CHECK_LIMIT)
    except recurrence.RecurrenceError:
        raise errors.Validation.at(
            ("body", "recurrence"),
            f"the rule has more than {CHECK_LIMIT:,} occurrences in the {CONFLICT_HORIZON.days} days a conflict "
            "check covers (the whole series when it ends); use fewer occurrences") from None
    return [(o.start, o.end) for o in found]


def _check_range(draft: Draft) -> tuple[dt.datetime, dt.datetime]:
    first, last = draft.during
    horizon = draft.start_time + CONFLICT_HORIZON
    return first, horizon if last is None else last


def _busy(events: list[Event], lower: dt.datetime, upper: dt.datetime,
          exclude: int | None, near: conflicts.Cover | None = None, limit: int | None = None) -> list[conflicts.Busy]:
    """The occurrences of `events` in [lower, upper) (but `exclude`'s); with `near`, only
    those that overlap it. recurrence.RecurrenceError as soon as there are more than `limit`."""
    busy: list[conflicts.Busy] = []
    for event in events:
        if limit is not None and len(busy) > limit:
            raise recurrence.RecurrenceError(f"more than {limit} occurrences")
        if event.id == exclude:
            continue
        if event.rrule is None:
            if near is not None and not near.meets(event.start_time, event.end_time):
                continue  # a single event: its one occurrence is its start and end
        elif not event.exceptions and not event.rdates:
            series = series_of(event)
            if not recurrence.may_occur(series, lower, upper):
                continue  # most series of a calendar, for a short range (no need to expand them)
            if near is not None and len(near.pieces) <= PIECES_ONE_BY_ONE and recurrence.is_plain(series):
                # a draft of many occurrences: this series only where it may meet one of them
                # (a weekly draft over two years meets a stand-up series at no occurrence: 105
                # tests without dateutil instead of expanding 520 occurrences). Only for rules
                # may_occur can judge: any other would be expanded once per piece.
                for start, end in near.pieces:
                    if start < upper and end > lower and recurrence.may_occur(series, start, end):
                        for occ in occurrences_of(event, max(start, lower), min(end, upper), cancelled=False,
                                                  limit=CHECK_LIMIT):
                            busy.append(conflicts.Busy(event.id, occ.title, occ.start, occ.end))
                continue
        for occ in occurrences_of(event, lower, upper, cancelled=False, limit=CHECK_LIMIT):
            if near is None or near.meets(occ.start, occ.end):
                busy.append(conflicts.Busy(event.id, occ.title, occ.start, occ.end))
    if limit is not None and len(busy) > limit:
        raise recurrence.RecurrenceError(f"more than {limit} occurrences")
    return busy


def _decide(mine: list[tuple[dt.datetime, dt.datetime]], events: list[Event], lower: dt.datetime,
            upper: dt.datetime, exclude: int | None, near: conflicts.Cover | None) -> list[conflicts.Busy]:
    """The conflicts of the intervals `mine` (covering `near`, when more than one) with the
    calendar `events` in [lower, upper): the first LISTED of them."""
    return conflicts.find_conflicts(mine, _busy(events, lower, upper, exclude, near), LISTED)


def _much_work(occurrences: int, candidates: list[Event], lower: dt.datetime, upper: dt.datetime) -> bool:
    """Whether deciding a check is more than a few milliseconds of CPU: a draft of many
    occurrences, many candidates, or series to expand over more than a couple of days (what
    a check costs grows with the calendar, not only with the draft)."""
    return (occurrences > MANY_OCCURRENCES or len(candidates) > 256
            or (upper - lower > 2 * _DAY and any(e.rrule is not None for e in candidates)))


def _costly(rows: list[Event]) -> bool:
    """Whether deciding which of `rows` a window holds, or expanding them, may take more than
    a few milliseconds: many series, or one whose occurrences may_occur cannot place (a rule
    such as 29 February on a Monday is walked day by day over decades)."""
    series = [e for e in rows if e.rrule is not None]
    return len(series) > 16 or any(not recurrence.is_plain(series_of(e)) for e in series)


def _in_window_of(rows: list[Event], start: dt.datetime | None, end: dt.datetime | None) -> list[Event]:
    return [e for e in rows if in_window(e, start, end)]


def _occurrences_in(rows: list[Event], start: dt.datetime, end: dt.datetime, limit: int) -> list[Occurrence]:
    """The occurrences of `rows` in the window, each expansion only as far as `limit` still
    allows; errors.Validation past it."""
    found: list[Occurrence] = []
    for event in rows:
        try:
            found += occurrences_of(event, start, end, cancelled=False, limit=limit - len(found))
        except errors.Validation:
            raise errors.Validation.at(
                ("query", "end"), f"more than {recurrence.MAX_OCCURRENCES} occurrences in the window; "
                                  "ask for a shorter window") from None
    return found


async def _window_work(work: Callable[[], T]) -> T:
    """`work()` (expanding the calendars of a window) in a thread; errors.Validation when
    the window holds more occurrences than CHECK_LIMIT."""
    try:
        return await off_loop(work)
    except recurrence.RecurrenceError:
        raise errors.Validation.at(
            ("query", "end"), f"more than {CHECK_LIMIT:,} occurrences in the window; ask for a shorter window "
                              "(or fewer users)") from None


def _require(event: Event, roles: tuple[str, ...]) -> None:
    if event.my_role not in roles:
        need = "the owner" if roles == ("owner",) else "an editor or the owner"
        raise errors.Forbidden(f"only {need} may do this; you are {with_article(event.my_role)}")


def _require_match(event: Event, if_match: str | None) -> None:
    if not matches(if_match, event):
        raise errors.PreconditionFailed(
            f"the event is at version {event.version}, not the one the change is based on "
            "(If-Match, or if_version in a transaction)", current=event)


def _check_times(start: dt.datetime, end: dt.datetime) -> None:
    if not (EARLIEST <= start < LATEST and EARLIEST <= end < LATEST):
        raise errors.Validation.at(("body", "start_time"), "times must lie between the years 1900 and 9000")
    start, end = start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)  # elapsed time
    if end < start:
        raise errors.Validation.at(("body", "end_time"), "end_time must not be before start_time")
    if end - start > MAX_DURATION:
        raise errors.Validation.at(("body", "end_time"), "an event lasts at most 366 days")


def _exception_of(event: Event, original: dt.datetime) -> dict[str, Any]:
    for change in event.exceptions:
        if change.original == original and not change.cancelled:
            return dict(change.overrides)
    return {}


MAX_EXCEPTIONS = 1000  # changed and cancelled occurrences of one series
# Characters of text in them: every version keeps them all, so 1,000 descriptions of 10,000
# characters would write 30 MB a change.
MAX_EXCEPTION_TEXT = 100_000


def _replace_exception(event: Event, change: OccurrenceChange) -> tuple[OccurrenceChange, ...]:
    """The event's exceptions with `change` in place of any earlier one of its occurrence
    (an exception that overrides nothing is dropped); errors.Validation when that would make
    more than MAX_EXCEPTIONS."""
    others = tuple(c for c in event.exceptions if c.original != change.original)
    if not change.cancelled and not change.overrides:
        return others
    if len(others) >= MAX_EXCEPTIONS:
        raise errors.Validation.at(
            ("path", "occurrence_start"),
            f"the series already has {MAX_EXCEPTIONS:,} changed or cancelled occurrences, the most one series "
            "keeps; split it: end this series before the occurrence and continue the rule as a new event")
    changed = tuple(sorted((*others, change), key=lambda c: c.original))
    text = _exception_text(changed)
    if text > MAX_EXCEPTION_TEXT and text > _exception_text(event.exceptions):
        raise errors.Validation.at(
            ("body",), f"the changed occurrences of one series hold at most {MAX_EXCEPTION_TEXT:,} characters of "
                       "titles, descriptions and locations; shorten them, or split the series")
    return changed


def _exception_text(changes: tuple[OccurrenceChange, ...]) -> int:
    return sum(len(v) for c in changes for k, v in c.overrides.items()
               if k in ("title", "description", "location") and isinstance(v, str))


BUSY = "busy"  # the title of a conflict with an event the caller cannot see (its id shown as 0)


async def _as_seen_by(tx: Tx, user_id: int, owner_id: int, event_ids: list[int]) -> dict[int, bool | None]:
    """How an editor changing someone else's event may see each conflict found in the
    owner's calendar: True, an event they can see (listed as it is); False, one they cannot
    (listed as the owner being busy then, without what with: never reveal that an event
    exists); None, not at all, when the owner has not given them free/busy (an event they own
    shared with them): a transfer made by the editor is no such consent."""
    visible = await event_db.visible_among(tx.conn, user_id, event_ids)
    if set(event_ids) <= visible:
        return dict.fromkeys(event_ids, True)
    consented = bool(await event_db.users_sharing_with(tx.conn, user_id, [owner_id]))
    return {e: True if e in visible else (False if consented else None) for e in event_ids}


def conflict_items(found: list[conflicts.Busy]) -> list[dict[str, Any]]:
    # times written as every answer writes them (msgspec: a zero offset is "Z")
    return [{"event_id": b.event_id, "title": b.title, "start_time": msgspec.to_builtins(b.start),
             "end_time": msgspec.to_builtins(b.end)} for b in found]


def _conflict(found: list[conflicts.Busy], listed: int | None = None) -> errors.SchedulingConflict:
    """The 409 of `found`; `listed`: at most that many were looked for."""
    many = f"{len(found)} occurrence(s)"
    if listed is not None and len(found) >= listed:
        many = f"at least {len(found)} occurrences (the first {len(found)} found are listed)"
    return errors.SchedulingConflict(f"the event overlaps {many} in the owner's calendar",
                                     conflicts=conflict_items(found))


def _moved(draft: Draft, slot: dt.datetime) -> Draft:
    duration = draft.end_time - draft.start_time
    slot_end = (slot.astimezone(dt.timezone.utc) + duration).astimezone(slot.tzinfo)
    return dataclasses.replace(draft, start_time=slot, end_time=slot_end,
                               during=(slot, recurrence.extent_end(slot, slot_end)))


def _shift(draft: Draft, busy: list[tuple[dt.datetime, dt.datetime]],
           found: list[conflicts.Busy]) -> Draft:
    """The draft moved to its earliest free slot within 30 days; errors.SchedulingConflict
    when there is none."""
    slot = conflicts.earliest_free_slot(draft.start_time, draft.end_time - draft.start_time, busy,
                                        SHIFT_HORIZON)
    if slot is None:
        raise errors.SchedulingConflict("no free slot of this length within 30 days",
                                        conflicts=conflict_items(found))
    return _moved(draft, slot)


def _shift_window(draft: Draft) -> tuple[dt.datetime, dt.datetime]:
    return draft.start_time, draft.start_time + SHIFT_HORIZON + (draft.end_time - draft.start_time)


def _check_strategy(draft: Draft, strategy: str, loc: tuple[str | int, ...] = ("query", "on_conflict")) -> None:
    if strategy == "shift" and draft.rrule is not None:
        raise errors.Validation.at(loc, "shift applies to single events only")


MERGED = ("title", "description", "location", "start_time", "end_time", "timezone", "all_day", "recurrence",
          "exceptions")


async def merged_fields(tx: Tx, event: Event, changes: dict[str, Any], base_version: int,
                        prefer: str | None) -> dict[str, Any]:
    """A three-way merge (SPEC 7), field by field: `changes` applied to version
    `base_version` is "mine", the event as it is now "theirs". A field only one side changed
    takes that side's value; one both changed differently is an errors.EditConflict naming
    them all, unless `prefer` settles it. Fields compare as a version keeps them."""
    if base_version > event.version:
        raise errors.Validation.at(("query", "base_version"), f"the event is at version {event.version}")
    found = await history_db.snapshots(tx.conn, event.id, [base_version])
    if base_version not in found:
        raise errors.Validation.at(("query", "base_version"), "the event has no such version")
    base_snapshot = orjson.loads(found[base_version].snapshot)
    mine_draft = await checked({**snapshot_fields(base_snapshot), **changes})
    base, theirs, mine = (history.shown(snap) for snap in (
        base_snapshot, snapshot(event, event.owner_id), snapshot(mine_draft, event.owner_id)))
    mine_fields, theirs_fields = stored_fields(mine_draft), stored_fields(event)
    merged, clashes = {}, []
    for field in MERGED:
        mine_changed = not history.same(field, mine[field], base[field])
        theirs_changed = not history.same(field, theirs[field], base[field])
        if mine_changed and theirs_changed and not history.same(field, mine[field], theirs[field]):
            clashes.append(field)
            take_mine = prefer == "mine"
        else:
            take_mine = mine_changed
        merged[field] = (mine_fields if take_mine else theirs_fields)[field]
    if clashes and prefer is None:
        raise errors.EditConflict(
            f"changed on both sides since version {base_version}: {', '.join(clashes)}; "
            "send prefer=mine or prefer=theirs, or edit the current version", fields=clashes)
    return merged


def snapshot_fields(snap: dict[str, Any]) -> dict[str, Any]:
    """A version's snapshot (see `snapshot`) as check_event takes it."""
    rec = None
    if snap.get("rrule") is not None:
        rec = {"rrule": snap["rrule"], "exdates": [dt.datetime.fromisoformat(d) for d in snap.get("exdates", [])],
               "rdates": [dt.datetime.fromisoformat(d) for d in snap.get("rdates", [])]}
    return {"title": snap["title"], "description": snap.get("description", ""), "location": snap.get("location"),
            "start_time": dt.datetime.fromisoformat(snap["start_time"]),
            "end_time": dt.datetime.fromisoformat(snap["end_time"]), "timezone": snap["timezone"],
            "all_day": snap.get("all_day", False), "recurrence": rec,
            "exceptions": exceptions_from_json(orjson.dumps(snap.get("exceptions", {})).decode())}


def stored_fields(event: Event | Draft) -> dict[str, Any]:
    """An event's (or a checked draft's) fields as check_event takes them."""
    rec = None
    if event.rrule is not None:
        rec = {"rrule": event.rrule, "exdates": list(event.exdates), "rdates": list(event.rdates)}
    return {"title": event.title, "description": event.description, "location": event.location,
            "start_time": event.start_time, "end_time": event.end_time, "timezone": event.timezone,
            "all_day": event.all_day, "recurrence": rec, "exceptions": event.exceptions}


async def checked(fields: dict[str, Any], exceptions_on_rule: bool = False) -> Draft:
    """check_event, in a thread when a recurrence makes it CPU work."""
    if fields.get("recurrence") is not None:
        return await off_loop(check_event, fields, exceptions_on_rule)
    return check_event(fields, exceptions_on_rule)


def matches(if_match: str | None, event: Event) -> bool:
    """If-Match (RFC 9110 13.1.1): strong comparison, so a weak tag never matches; `*` does."""
    if if_match is None:
        return True
    tags = {t.strip() for t in if_match.split(",")}
    return "*" in tags or f'"{event.version}"' in tags


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What a change of an event writes: the new draft, the version kind, and the intervals to
    check against the calendar (None: the draft's own occurrences; empty: no check)."""

    draft: Draft
    kind: str
    check: list[tuple[dt.datetime, dt.datetime]] | None = None
    summary: str | None = None  # what the others read (services.notifications); None: the fields changed


# Conflicts listed for one change (a 409's, or the answer's under allow): a year-long event
# over ten hourly series would list 80,000.
LISTED = 1000
_DAY = dt.timedelta(days=1)
# Conflicts listed for one item of a batch (its 409's, or its answer's under allow): 500 items
# that all overlap would otherwise list each other's occurrences, 90 million of them.
BATCH_LISTED = 100
BATCH_OCCURRENCES = 500_000  # occurrences a batch may bring to its conflict check
MANY_SERIES = 32  # series in a batch from which its check runs in a process of its own
HEAVY_OCCURRENCES = 20_000  # or occurrences (roughly counted)


@dataclasses.dataclass(frozen=True, slots=True)
class BatchPlan:
    """A batch's valid items with their occurrences over the span each is checked in, and
    where the calendar must be read for them."""

    drafts: list[Draft | errors.Problem]
    mine: dict[int, list[tuple[dt.datetime, dt.datetime]]]  # item index -> its occurrences
    lower: dt.datetime
    upper: dt.datetime
    near: conflicts.Cover  # every occurrence of every item (and where `shift` may move one)
    pieces: list[tuple[dt.datetime, dt.datetime]] | None  # for the candidates' query


def _plan_batch(drafts: list[Draft | errors.Problem], strategy: str, atomic: bool) -> BatchPlan:
    """Expand each valid item over its check range (an item with too many occurrences gets
    its problem, raised as errors.BatchItem when `atomic`); errors.Validation when the batch
    brings more than BATCH_OCCURRENCES."""
    drafts = list(drafts)
    mine: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
    reach: list[tuple[dt.datetime, dt.datetime]] = []
    total = 0
    for index, draft in enumerate(drafts):
        if not isinstance(draft, Draft):
            continue
        lower, upper = _check_range(draft)
        try:
            mine[index] = busy = _draft_busy(draft, lower, upper)
        except errors.Problem as exc:
            if atomic:
                raise errors.BatchItem.of(index, exc) from None
            drafts[index] = exc
            continue
        total += len(busy)
        if total > BATCH_OCCURRENCES:
            raise errors.Validation.at(
                ("body", "events"),
                f"the batch has more than {BATCH_OCCURRENCES:,} occurrences to check against the calendar (an "
                f"endless rule counts its first {CONFLICT_HORIZON.days} days); send it in smaller batches")
        reach.append((lower, upper))
        if strategy == "shift":
            reach.append(_shift_window(draft))
    # Each item's occurrences come in order: merged in order, the sort in Cover finds them
    # sorted (one sort of 365,000 unsorted intervals held the interpreter lock for 150 ms,
    # and every other request with it)
    near = conflicts.Cover(heapq.merge(reach if strategy == "shift" else (), *mine.values(),
                                       key=lambda interval: interval[0].astimezone(dt.timezone.utc)))
    lower, upper = (min(r[0] for r in reach), max(r[1] for r in reach)) if reach else (EARLIEST, EARLIEST)
    # probing the calendar once per piece pays when the pieces are few in a long range (series
    # over two years); a batch of events within weeks reads the range at once
    probe = len(near.pieces) <= PROBED_PIECES and upper - lower > PROBE_SPAN
    return BatchPlan(drafts, mine, lower, upper, near, near.pieces if probe else None)


def _heavy_batch(drafts: list[Draft | errors.Problem]) -> bool:
    """Whether checking a batch is seconds of work (for services.offload): many series, or
    occurrences that a rough count puts past HEAVY_OCCURRENCES."""
    series = [d for d in drafts if isinstance(d, Draft) and d.series is not None]
    if len(series) > MANY_SERIES:
        return True
    return sum(recurrence.rough_count(d.series, *_check_range(d)) for d in series) > HEAVY_OCCURRENCES


def _batch_range(drafts: list[Draft | errors.Problem], strategy: str) -> tuple[dt.datetime, dt.datetime]:
    """What _plan_batch's plan would span, without expanding anything."""
    reach = [_check_range(d) for d in drafts if isinstance(d, Draft)]
    if strategy == "shift":
        reach += [_shift_window(d) for d in drafts if isinstance(d, Draft)]
    return min(r[0] for r in reach), max(r[1] for r in reach)


def _check_batch(drafts: list[Draft | errors.Problem], candidates: list[Event], strategy: str, atomic: bool,
                 owner_id: int) -> tuple[list[Any], str]:
    """_plan_batch then _place_batch, in one call (for services.offload)."""
    return _place_batch(_plan_batch(drafts, strategy, atomic), candidates, strategy, atomic, owner_id)


def _place_batch(plan: BatchPlan, candidates: list[Event], strategy: str, atomic: bool,
                 owner_id: int) -> tuple[list[Any], str]:
    """Each item, in request order, checked against the calendar and the items placed before
    it: its draft (moved, under `shift`) and conflicts, or its problem; and the rows of those
    placed, as insert_events takes them. With `atomic`, the first problem is raised as
    errors.BatchItem."""
    calendar = conflicts.Calendar(_busy(candidates, plan.lower, plan.upper, None, plan.near))
    results: list[Any] = list(plan.drafts)
    for index, draft in enumerate(plan.drafts):
        if not isinstance(draft, Draft):
            continue
        try:
            results[index] = _place(calendar, index, draft, plan.mine[index], strategy)
        except errors.Problem as exc:
            if atomic:
                raise errors.BatchItem.of(index, exc) from None
            results[index] = exc
    rows = orjson.dumps([r[0].row(owner_id) for r in results if isinstance(r, tuple)]).decode()
    return results, rows


def _name_placed(results: list[Any], placed: list[tuple[int, Any]], events: list[Event]) -> None:
    """Put the written events in `results`, and name the items of the batch that conflicts
    list (by their stand-in ids, -1 - index) by their new ids, in the conflicts of the items
    placed and of those refused (atomic: false)."""
    ids = {-1 - index: event.id for (index, _), event in zip(placed, events)}
    for (index, (_, found)), event in zip(placed, events):
        results[index] = (event, [conflicts.Busy(ids[b.event_id], b.title, b.start, b.end) if b.event_id < 0 else b
                                  for b in found])
    for result in results:
        if isinstance(result, errors.Problem) and isinstance(result.extra.get("conflicts"), list):
            for item in result.extra["conflicts"]:
                item["event_id"] = ids.get(item["event_id"], item["event_id"])


def _place(calendar: conflicts.Calendar, index: int, draft: Draft, mine: list[tuple[dt.datetime, dt.datetime]],
           strategy: str) -> tuple[Draft, list[conflicts.Busy]]:
    """Check one batch item against the calendar (which holds the items placed before it),
    apply the strategy and add the item to the calendar."""
    found = calendar.conflicts_of(mine, BATCH_LISTED)
    if found and strategy == "reject":
        raise _conflict(found, BATCH_LISTED)
    if found and strategy == "shift":
        start, until = _shift_window(draft)
        draft = _shift(draft, [(b.start, b.end) for b in calendar.overlapping(start, until)], found)
        mine, found = [(draft.start_time, draft.end_time)], []
    # Items of a batch have no id yet: a negative stand-in keeps them apart in the calendar.
    calendar.add(conflicts.Busy(-1 - index, draft.title, s, e) for s, e in mine)
    return draft, found


class LongEvents:
    """The long candidates of conflict checks (series, events over 24 hours) by (id, version).
    A version's content never changes, so a check reads again only what changed since the
    last; most candidates of a check are the calendar's series, the same at every check. One
    per service, so per database (ids are a database's own); the least recently used go first
    past `size`. Only what places an event in time is to be read from them: `owner_id` can
    change without a new version (a transfer) and `my_role` is empty."""

    def __init__(self, size: int = 32768) -> None:
        self.size = size
        self._events: dict[tuple[int, int], Event] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._events)

    def get(self, key: tuple[int, int]) -> Event | None:
        event = self._events.pop(key, None)
        if event is None:
            self.misses += 1
        else:
            self.hits += 1
            self._events[key] = event  # now the most recently used
        return event

    def put(self, event: Event) -> None:
        if len(self._events) >= self.size:
            del self._events[next(iter(self._events))]
        self._events[event.id, event.version] = event


class EventService:
    def __init__(self, db: Database, notifications: Notifications, offload: Offload | None = None) -> None:
        self.db = db
        self.notifications = notifications
        self.offload = offload or Offload()  # the process that checks large batches
        self.long_events = LongEvents()

    async def _calendar(self, conn, user_id: int, lower: dt.datetime, upper: dt.datetime,
                        tx: Tx | None = None, pieces: list[tuple[dt.datetime, dt.datetime]] | None = None,
                        ) -> list[Event]:
        """The live events of `user_id`'s calendar whose envelope overlaps [lower, upper)
        (see event_db.list_calendar), long ones from the cache when their version is known.
        Read inside `tx`, what was read is cached once it has committed: a version written
        earlier in the same transaction (POST /api/transactions) is not for the cache if the
        transaction rolls back, as its number would then be used again for other content."""
        events, long = await event_db.list_calendar(conn, user_id, lower, upper, pieces)
        missing = []
        for key in long:
            event = self.long_events.get(key)
            if event is None:
                missing.append(key[0])
            else:
                events.append(event)
        if missing:
            fetched = await event_db.calendar_events(conn, missing)
            events += fetched
            if tx is None:
                for event in fetched:
                    self.long_events.put(event)
            else:
                tx.call_after(lambda: [self.long_events.put(event) for event in fetched])
        return events

    # -- create ---------------------------------------------------------------------------

    async def create(self, user_id: int, fields: dict[str, Any], strategy: str = "reject",
                     record: Recorder | None = None) -> tuple[Event, list[conflicts.Busy]]:
        """The new event and the conflicts it was written with (only under `allow`).
        errors.Validation for an invalid event; errors.SchedulingConflict under `reject`, or
        under `shift` when no free slot comes within 30 days. `record` (Idempotency-Key)
        claims its key first and keeps the answer, in the same transaction."""
        draft = await checked(fields)
        _check_strategy(draft, strategy)
        return await run_in_tx(self.db, "create_event", self._insert, user_id, draft, strategy, record)

    async def _resolve(self, tx: Tx, owner_id: int, draft: Draft, strategy: str, exclude: int | None,
                       mine: list[tuple[dt.datetime, dt.datetime]] | None = None) -> tuple[Draft, list[conflicts.Busy]]:
        """Check `draft` (or just the intervals `mine`) against the owner's calendar (the
        caller holds the calendar lock) and apply the strategy: the draft to write (moved,
        under `shift`) and the conflicts."""
        if mine is None:
            lower, upper = _check_range(draft)
            mine = _draft_busy(draft, lower, upper)
        elif not mine:
            return draft, []
        else:
            lower, upper = min(s for s, _ in mine), max(e for _, e in mine)
        near = conflicts.Cover(mine) if len(mine) > 1 else None
        pieces = near.pieces if near is not None and len(near.pieces) <= PROBED_PIECES else None
        candidates = await self._calendar(tx.conn, owner_id, lower, upper, tx, pieces)
        if _much_work(len(mine), candidates, lower, upper):  # off the event loop
            found = await asyncio.get_running_loop().run_in_executor(
                _CHECKS, _decide, mine, candidates, lower, upper, exclude, near)
        else:
            found = _decide(mine, candidates, lower, upper, exclude, near)
        if not found or strategy == "allow":
            return draft, found
        if strategy == "shift":
            start, until = _shift_window(draft)
            around = await self._calendar(tx.conn, owner_id, start, until, tx)
            busy = await asyncio.get_running_loop().run_in_executor(_CHECKS, _busy, around, start, until, exclude)
            return _shift(draft, [(b.start, b.end) for b in busy], found), []
        raise _conflict(found, LISTED)

    async def _insert(self, tx: Tx, user_id: int, draft: Draft, strategy: str,
                      record: Recorder | None) -> tuple[Event, list[conflicts.Busy]]:
        if record is not None:
            await record.claim(tx)
        await event_db.lock_calendar(tx.conn, user_id)
        draft, found = await self._resolve(tx, user_id, draft, strategy, exclude=None)
        [event] = await event_db.insert_events(tx.conn, user_id, orjson.dumps([draft.row(user_id)]).decode())
        result = (event, found)
        if record is not None:
            await record.save(tx, result)
        return result

    async def create_many(self, user_id: int, items: list[dict[str, Any] | errors.Problem],
                          strategy: str, atomic: bool,
                          record: Recorder | None = None) -> list[tuple[Event, list[conflicts.Busy]] | errors.Problem]:
        """A batch (SPEC 5): each item checked alone, then against the calendar and the items
        before it, all written by one statement in one transaction. Each result is the event
        and its conflicts, or the problem of that item. When `atomic`, the first problem is
        raised as errors.BatchItem instead and nothing is written."""
        drafts = await off_loop(self._check_items, items, strategy)
        if atomic:
            self._raise_first(drafts)
        if not _heavy_batch(drafts):
            return await run_in_tx(self.db, "create_events", self._insert_many, user_id, drafts, strategy,
                                   atomic, record, False)
        async with self.offload.turn():  # before the transaction: waiting, it holds nothing
            return await run_in_tx(self.db, "create_events", self._insert_many, user_id, drafts, strategy,
                                   atomic, record, True)

    @staticmethod
    def _check_items(items: list[dict[str, Any] | errors.Problem], strategy: str) -> list[Draft | errors.Problem]:
        out: list[Draft | errors.Problem] = []
        for item in items:
            if isinstance(item, errors.Problem):
                out.append(item)
                continue
            try:
                draft = check_event(item)
                _check_strategy(draft, strategy, ("body", "on_conflict"))
            except errors.Problem as exc:
                out.append(exc)
            else:
                out.append(draft)
        return out

    @staticmethod
    def _raise_first(results: list[Any]) -> None:
        for index, result in enumerate(results):
            if isinstance(result, errors.Problem):
                raise errors.BatchItem.of(index, result)

    async def _insert_many(self, tx: Tx, user_id: int, drafts: list[Draft | errors.Problem], strategy: str,
                           atomic: bool, record: Recorder | None,
                           heavy: bool) -> list[tuple[Event, list[conflicts.Busy]] | errors.Problem]:
        if record is not None:
            await record.claim(tx)
        await event_db.lock_calendar(tx.conn, user_id)
        results: list[Any] = list(drafts)
        rows = None
        if any(isinstance(d, Draft) for d in drafts):
            # CPU work (expanding every item, the calendar's series, the placement) in a thread:
            # the loop only reads the candidates in between
            loop = asyncio.get_running_loop()
            if heavy:
                # seconds of work: in a process of its own, the calendar read over the whole range
                lower, upper = _batch_range(drafts, strategy)
                candidates = await self._calendar(tx.conn, user_id, lower, upper, tx)
                results, rows = await self.offload.run(_check_batch, drafts, candidates, strategy, atomic, user_id)
            else:
                # events without a rule (most batches): a few milliseconds, not worth a thread
                single = all(d.series is None for d in drafts if isinstance(d, Draft))
                plan = _plan_batch(drafts, strategy, atomic) if single else (
                    await loop.run_in_executor(_CHECKS, _plan_batch, drafts, strategy, atomic))
                candidates = await self._calendar(tx.conn, user_id, plan.lower, plan.upper, tx,
                                                  plan.pieces) if plan.mine else []
                if single and not _much_work(0, candidates, plan.lower, plan.upper):
                    results, rows = _place_batch(plan, candidates, strategy, atomic, user_id)
                else:
                    results, rows = await loop.run_in_executor(_CHECKS, _place_batch, plan, candidates, strategy,
                                                               atomic, user_id)
        placed = [(i, r) for i, r in enumerate(results) if isinstance(r, tuple)]
        if placed:
            events = await event_db.insert_events(tx.conn, user_id, rows)
            if sum(len(found) for _, (_, found) in placed) > 1000:
                # tens of thousands of conflicts to rename when the items overlap: in a thread
                await asyncio.get_running_loop().run_in_executor(_CHECKS, _name_placed, results, placed, events)
            else:
                _name_placed(results, placed, events)
        if record is not None:
            if placed:
                await record.save(tx, results)
            else:  # nothing was written: the key stays free for the corrected request
                await record.release(tx)
        return results

    # -- change ---------------------------------------------------------------------------

    async def update(self, user_id: int, event_id: int, changes: dict[str, Any], *,
                     if_match: str | None = None, strategy: str = "reject",
                     merge: tuple[int, str | None] | None = None) -> tuple[Event, list[conflicts.Busy]]:
        """Apply the given fields (a partial update) and write the next version; the merged
        event is checked as a whole and against the owner's calendar. An update that changes
        nothing writes nothing and answers the event as it is. `merge` (base version,
        prefer): the changes were made to that version; see merged_fields."""
        if "description" in changes and changes["description"] is None:
            changes = {**changes, "description": ""}

        async def build(tx: Tx, event: Event) -> Change | None:
            fields = {**stored_fields(event), **changes}
            if merge is not None:
                fields = await merged_fields(tx, event, changes, *merge)
            draft = await checked(fields)
            _check_strategy(draft, strategy)
            return Change(draft, "updated")

        return await self._change(user_id, event_id, EDITOR_ROLES, if_match, build, strategy)

    async def change_occurrence(self, user_id: int, event_id: int, original: dt.datetime,
                                changes: dict[str, Any], *, if_match: str | None = None,
                                strategy: str = "reject") -> tuple[Event, Occurrence, list[conflicts.Busy]]:
        """Store `changes` (times, title, description, location) as an exception of the
        occurrence that starts at `original`; it is checked against the calendar like an update."""
        async def build(tx: Tx, event: Event) -> Change | None:
            current = self._occurrence(event, original)
            overrides = _exception_of(event, current.original_start)
            merged = {"start_time": current.start, "end_time": current.end, "title": current.title,
                      **{k: overrides.get(k, getattr(event, k)) for k in ("description", "location")},
                      **changes}
            if merged["description"] is None:
                merged["description"] = ""
            _check_times(merged["start_time"], merged["end_time"])
            utc = dt.timezone.utc
            start, end = merged["start_time"].astimezone(utc), merged["end_time"].astimezone(utc)
            first = current.original_start.astimezone(utc)
            natural = {"title": event.title, "description": event.description, "location": event.location}
            kept = {k: merged[k] for k in natural if merged[k] != natural[k]}
            if (start, end) != (first, series_of(event).end_of(first)):
                kept.update(start_time=start, end_time=end)
            change = OccurrenceChange(first, False, kept)
            draft = await checked({**stored_fields(event), "exceptions": _replace_exception(event, change)},
                                  exceptions_on_rule=True)
            return Change(draft, "occurrence_changed", [(start, end)],
                          f"{ACTOR} changed the occurrence of {quoted(draft.title)} at {current.original_start.isoformat()}")

        if strategy == "shift":
            raise errors.Validation.at(("query", "on_conflict"), "shift applies to single events only")
        event, found = await self._change(user_id, event_id, EDITOR_ROLES, if_match, build, strategy)
        return event, self._occurrence(event, original), found

    async def cancel_occurrence(self, user_id: int, event_id: int, original: dt.datetime, *,
                                if_match: str | None = None) -> Event:
        """Cancel the occurrence that starts at `original` (listed as cancelled from now on)."""
        async def build(tx: Tx, event: Event) -> Change | None:
            current = self._occurrence(event, original)
            if current.cancelled:
                return None
            change = OccurrenceChange(current.original_start.astimezone(dt.timezone.utc), True)
            draft = await checked({**stored_fields(event), "exceptions": _replace_exception(event, change)},
                                  exceptions_on_rule=True)
            return Change(draft, "occurrence_cancelled", [],
                          f"{ACTOR} cancelled the occurrence of {quoted(draft.title)} at {current.original_start.isoformat()}")

        event, _ = await self._change(user_id, event_id, EDITOR_ROLES, if_match, build, "allow")
        return event

    @staticmethod
    def _occurrence(event: Event, original: dt.datetime) -> Occurrence:
        """The occurrence of `event` whose original start is the instant `original`;
        errors.NotFound when there is none (errors.Validation for a single event)."""
        if event.rrule is None:
            raise errors.Validation.at(("path", "occurrence_start"),
                                       "the event does not recur; change the event itself")
        tiny = dt.timedelta(microseconds=1)
        # UTC on both sides: an ambiguous wall-clock time (the hour clocks fall back) never
        # equals a time with a fixed offset in Python, even naming the same instant (PEP 495)
        original = original.astimezone(dt.timezone.utc)
        for occ in occurrences_of(event, original, original + tiny, limit=CHECK_LIMIT):
            if occ.original_start.astimezone(dt.timezone.utc) == original:
                return occ
        for change in event.exceptions:  # moved far from its original start
            if change.original == original:
                [occ] = [o for o in occurrences_of(
                    event, change.overrides.get("start_time", original),
                    change.overrides.get("end_time", original) + tiny, limit=CHECK_LIMIT)
                    if o.original_start.astimezone(dt.timezone.utc) == original]
                return occ
        raise errors.NotFound("no occurrence of this event starts at that time")

    async def rollback(self, user_id: int, event_id: int, number: int, *, if_match: str | None = None,
                       strategy: str = "reject") -> tuple[Event, list[conflicts.Busy]]:
        """A new version whose content is that of version `number` (SPEC 7), checked against
        the calendar like an update; a deleted event (its owner alone finds it) is restored.
        Rolling back to what the event already is writes nothing."""
        async def build(tx: Tx, event: Event) -> Change | None:
            found = await history_db.snapshots(tx.conn, event.id, [number]) if 1 <= number < 2**31 else {}
            if number not in found:
                raise errors.NotFound("the event has no such version")
            draft = await checked(snapshot_fields(orjson.loads(found[number].snapshot)))
            _check_strategy(draft, strategy)
            if event.deleted:
                return Change(draft, "rolled_back", summary=f"{ACTOR} restored {quoted(draft.title)} (version {number})")
            return Change(draft, "rolled_back", summary=f"{ACTOR} rolled {quoted(draft.title)} back to version {number}")

        return await self._change(user_id, event_id, EDITOR_ROLES, if_match, build, strategy, deleted_ok=True)

    async def delete(self, user_id: int, event_id: int, *, if_match: str | None = None) -> None:
        """Soft-delete: gone from every read; the version row keeps what it was."""
        await run_in_tx(self.db, "delete_event", self._delete, user_id, event_id, if_match)

    async def _delete(self, tx: Tx, user_id: int, event_id: int, if_match: str | None) -> None:
        event = await self._locked(tx, user_id, event_id, ("owner",), lock_calendar=False)
        _require_match(event, if_match)
        await self.delete_locked(tx, user_id, [event])

    async def delete_locked(self, tx: Tx, user_id: int, events: list[Event]) -> None:
        """Soft-delete `events` (live, their rows locked by the caller) on behalf of `user_id`,
        each as DELETE /api/events/{id} deletes one: a `deleted` version keeping what it was
        and an `event.deleted` notification to everyone else with access; all in one
        statement (give it a few hundred at a time: the loop waits while they are encoded)."""
        rows = [(e.id, e.version, orjson.dumps(snapshot(e, e.owner_id)).decode()) for e in events]
        if await event_db.delete_events(tx.conn, rows, user_id) != len(events):
            raise AssertionError("a locked event changed")
        for event in events:
            self.notifications.note(tx, "event.deleted", event.id, user_id, f"{ACTOR} deleted {quoted(event.title)}")

    async def _locked(self, tx: Tx, user_id: int, event_id: int, roles: tuple[str, ...],
                      lock_calendar: bool = True, deleted_ok: bool = False) -> Event:
        """The event as the user sees it, its row locked, then (every writer takes the locks in
        this order: event rows, then calendars) its owner's calendar locked. errors.NotFound
        when the user cannot see it (`deleted_ok`: its owner sees it deleted); errors.Forbidden
        when their role is not one of `roles`, found before any lock is taken (a viewer must
        hold nothing of the owner's) and again once the row is held (a role can change while
        the lock is awaited). Holding the row, the owner cannot change (a transfer takes it),
        and a writer waiting for it holds no calendar meanwhile."""
        if not 1 <= event_id < 2**63:
            raise errors.NotFound("no such event")
        event = await event_db.find_event(tx.conn, event_id, user_id, deleted_ok)
        if event is None:
            raise errors.NotFound("no such event")
        _require(event, roles)
        event = await event_db.lock_event(tx.conn, event_id, user_id, deleted_ok)
        if event is None:
            raise errors.NotFound("no such event")
        _require(event, roles)
        if lock_calendar:
            await event_db.lock_calendar(tx.conn, event.owner_id)
        return event

    async def _change(self, user_id: int, event_id: int, roles: tuple[str, ...], if_match: str | None,
                      build: Callable[[Tx, Event], Awaitable[Change | None]],
                      strategy: str, deleted_ok: bool = False) -> tuple[Event, list[conflicts.Busy]]:
        """In one transaction: lock the owner's calendar and the event, check the caller's
        role and If-Match, build the change from the event as it is, check it against the
        calendar and write the next version. Concurrent writers of one event queue on its row,
        so without If-Match the last one wins and no version number is used twice."""
        return await run_in_tx(self.db, "change_event", self._change_tx, user_id, event_id, roles, if_match,
                               build, strategy, deleted_ok)

    async def _change_tx(self, tx: Tx, user_id: int, event_id: int, roles: tuple[str, ...], if_match: str | None,
                         build: Callable[[Tx, Event], Awaitable[Change | None]],
                         strategy: str, deleted_ok: bool = False) -> tuple[Event, list[conflicts.Busy]]:
        event = await self._locked(tx, user_id, event_id, roles, deleted_ok=deleted_ok)
        _require_match(event, if_match)
        change = await build(tx, event)
        if change is None:
            return event, []
        old, new = snapshot(event, event.owner_id), snapshot(change.draft, event.owner_id)
        fields = changed_fields(old, new)
        if not fields and not event.deleted:
            return event, []
        if _timing(old) == _timing(new) and not event.deleted:
            # Same occurrences as before (a new title, say): an overlap it already had is
            # reported under `allow` but blocks nothing.
            strategy = "allow"
        try:
            draft, found = await self._resolve(tx, event.owner_id, change.draft, strategy, exclude=event.id,
                                               mine=change.check)
        except errors.SchedulingConflict as exc:
            if event.owner_id != user_id and isinstance(exc.extra.get("conflicts"), list):
                items = exc.extra["conflicts"]
                shown = await _as_seen_by(tx, user_id, event.owner_id, [c["event_id"] for c in items])
                exc.extra["conflicts"] = [c if shown[c["event_id"]] else {**c, "event_id": 0, "title": BUSY}
                                          for c in items if shown[c["event_id"]] is not None]
                if len(exc.extra["conflicts"]) < len(items):
                    exc.detail += (f" ({len(items) - len(exc.extra['conflicts'])} of them with events you cannot "
                                   "see, in a calendar whose busy times are not shown to you)")
            raise
        if event.owner_id != user_id and found:
            shown = await _as_seen_by(tx, user_id, event.owner_id, [b.event_id for b in found])
            found = [b if shown[b.event_id] else dataclasses.replace(b, event_id=0, title=BUSY)
                     for b in found if shown[b.event_id] is not None]
        if draft is not change.draft:  # moved by shift
            new = snapshot(draft, event.owner_id)
            fields = changed_fields(old, new)
        row = orjson.dumps(draft.row(event.owner_id, new)).decode()
        updated = await event_db.update_event(tx.conn, event.id, event.version, event.owner_id, user_id, row,
                                              change.kind, fields, event.my_role, restore=event.deleted)
        if updated is None:
            raise AssertionError("a locked event changed")
        summary = change.summary or (
            f"{ACTOR} updated {quoted(updated.title)} ({', '.join(history.api_fields(fields))})")
        self.notifications.note(tx, "event.restored" if event.deleted else "event.updated", event.id, user_id,
                                summary)
        return updated, found

    # -- read -----------------------------------------------------------------------------

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
                if window is not None:
                    rows_in = await off_loop(_in_window_of, rows, start, end) if _costly(rows) else (
                        _in_window_of(rows, start, end))
                else:
                    rows_in = rows
                for event in rows_in:
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
                left = recurrence.MAX_OCCURRENCES - len(found)
                found += await off_loop(_occurrences_in, rows, start, end, left) if _costly(rows) else (
                    _occurrences_in(rows, start, end, left))
                if len(rows) < 500:
                    break
                after = (rows[-1].start_time, rows[-1].id)
        found.sort(key=order_key)
        return found

    async def overlapping_pairs(self, user_id: int, start: dt.datetime, end: dt.datetime,
                                after: tuple[dt.datetime, int, int, dt.datetime] | None,
                                limit: int) -> list[conflicts.Overlap]:
        """The first `limit` pairs (after the key `after`) of events in the user's calendar with
        overlapping occurrences in the window (see conflicts.overlapping_pairs)."""
        check_window(start, end)
        async with self.db.acquire() as conn:
            events = await self._calendar(conn, user_id, start, end)

        def work() -> list[conflicts.Overlap]:
            return conflicts.overlapping_pairs(_busy(events, start, end, None, limit=CHECK_LIMIT), after, limit)

        return await _window_work(work)

    async def free_busy(self, user_id: int, others: list[int], start: dt.datetime,
                        end: dt.datetime) -> list[tuple[int, list[tuple[dt.datetime, dt.datetime]]]]:
        """Merged busy intervals (clipped to the window) of each user; errors.NotFound when one
        of them has not given the caller access to an event they own. All the calendars
        together may hold CHECK_LIMIT occurrences in the window (errors.Validation past it)."""
        check_window(start, end)
        async with self.db.acquire() as conn:
            strangers = set(others) - {user_id}
            if strangers and await event_db.users_sharing_with(conn, user_id, sorted(strangers)) != strangers:
                raise errors.NotFound("no such user among the people you share events with")
            calendars = [await self._calendar(conn, other, start, end) for other in others]

        def work() -> list[tuple[int, list[tuple[dt.datetime, dt.datetime]]]]:
            answer, left = [], CHECK_LIMIT
            for other, events in zip(others, calendars):
                busy = _busy(events, start, end, None, limit=left)
                left -= len(busy)
                answer.append((other, conflicts.merge_intervals((max(b.start, start), min(b.end, end)) for b in busy)))
            return answer

        return await _window_work(work)

    async def get(self, user_id: int, event_id: int) -> Event:
        """errors.NotFound when the event is unknown, deleted or not visible to the user."""
        if not 1 <= event_id < 2**63:
            raise errors.NotFound("no such event")
        async with self.db.acquire() as conn:
            event = await event_db.find_event(conn, event_id, user_id)
        if event is None:
            raise errors.NotFound("no such event")
        return event
