"""Occurrences of stored events: each event's series (built once per version), the
occurrences in a window with the exceptions applied, and the query windows they are asked
for. Pure: no SQL, no HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from calsvc import errors, patterns, recurrence, rules
from calsvc.models import Event, OccurrenceChange
from calsvc.zones import known_zone

EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


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
    utc = dt.UTC
    return occ.start.astimezone(utc), occ.event_id, occ.original_start.astimezone(utc)


def with_exceptions(series: recurrence.Series, replaced: Iterable[dt.datetime]) -> recurrence.Series:
    """`series` without the occurrences its exceptions replace (their original starts); `expand`
    adds them back, moved or cancelled."""
    keys = set(replaced)
    if not keys:
        return series
    return dataclasses.replace(series, exdates=tuple(sorted(set(series.exdates) | keys)))


@functools.lru_cache(maxsize=4096)
def pattern_of(rrule: str) -> dict[str, Any] | None:
    """The structured pattern of a stored (normalised, UTC) rule, or None."""
    return patterns.pattern_from_rule(rules.parse_rule(rrule, ZoneInfo("UTC")))


@functools.lru_cache(maxsize=65536)
def _series(
    event_id: int,
    version: int,
    start: dt.datetime,
    end: dt.datetime,
    timezone: str,
    rrule: str,
    exdates: tuple[dt.datetime, ...],
    rdates: tuple[dt.datetime, ...],
    replaced: tuple[dt.datetime, ...],
    last_start: dt.datetime | None,
    all_day: bool,
) -> recurrence.Series:
    tz = known_zone(timezone)
    parts = _parsed(rrule, timezone)
    days = (end.astimezone(tz).date() - start.astimezone(tz).date()).days if all_day else 0
    if last_start is None and ("COUNT" in parts or "UNTIL" in parts):
        # written before last_start was stored: work it out again
        series = recurrence.prepare(start.astimezone(tz), end - start, tz, dict(parts), exdates, rdates, days)
    else:
        # checked when it was written: rebuild it without walking the rule
        series = recurrence.Series(
            start.astimezone(tz),
            end - start,
            tz,
            parts,
            tuple(sorted(d.astimezone(dt.UTC) for d in exdates)),
            tuple(sorted(d.astimezone(dt.UTC) for d in rdates)),
            None if last_start is None else last_start.astimezone(tz),
            days,
        )
    return with_exceptions(series, replaced)


@functools.lru_cache(maxsize=16384)
def _parsed(rrule: str, timezone: str) -> dict[str, str]:
    """The parts of a stored rule (shared: never change the dict). A stored rule is
    normalised (`rules.format_rule`), so reading it back is a split, not a parse."""
    return rules.stored_parts(rrule)


def series_of(event: Event) -> recurrence.Series:
    """The stored series of a recurring event, its exceptions' original starts left out
    (cached per event version)."""
    return _series(
        event.id,
        event.version,
        event.start_time,
        event.end_time,
        event.timezone,
        event.rrule,
        event.exdates,
        event.rdates,
        tuple(c.original for c in event.exceptions),
        event.last_start,
        event.all_day,
    )


def in_window(event: Event, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """Whether an occurrence of `event` (cancelled ones aside) overlaps the window (None:
    open on that side)."""
    if event.rrule is None:
        return (start is None or recurrence.extent_end(event.start_time, event.end_time) > start) and (
            end is None or event.start_time < end
        )
    for change in event.exceptions:
        if "start_time" in change.overrides and not change.cancelled:
            s, e = change.overrides["start_time"], change.overrides["end_time"]
            if (start is None or recurrence.extent_end(s, e) > start) and (end is None or s < end):
                return True
    return recurrence.has_occurrence(series_of(event), start, end)


def expand(
    series: recurrence.Series | None,
    event_id: int,
    title: str,
    start: dt.datetime,
    end: dt.datetime,
    changes: tuple[OccurrenceChange, ...],
    lower: dt.datetime,
    upper: dt.datetime,
    *,
    cancelled: bool,
    limit: int = recurrence.MAX_OCCURRENCES,
) -> list[Occurrence]:
    """The occurrences of an event (a single one when `series` is None) overlapping
    [lower, upper), exceptions applied (cancelled ones only when `cancelled`), ordered by
    start. RecurrenceError past `limit`."""
    # Every comparison on UTC instants: two datetimes in one zone compare by wall clock.
    utc = dt.UTC
    lower, upper = lower.astimezone(utc), upper.astimezone(utc)
    if series is None:
        overlaps = start.astimezone(utc) < upper and recurrence.extent_end(start, end) > lower
        return [Occurrence(event_id, start, start, end, title)] if overlaps else []
    tz, end_of = series.tz, series.end_of
    found = [
        Occurrence(event_id, s, s, end_of(s).astimezone(tz), title)
        for s in recurrence.occurrence_starts(series, lower, upper, limit=limit)
    ]
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
            raise recurrence.RecurrenceError(f"more than {limit} occurrences in the window; ask for a shorter window")
    return found


def occurrences_of(
    event: Event,
    start: dt.datetime,
    end: dt.datetime,
    *,
    cancelled: bool = True,
    limit: int = recurrence.MAX_OCCURRENCES,
) -> list[Occurrence]:
    """The occurrences of `event` overlapping [start, end), exceptions applied, in order;
    errors.Validation (at the query) when the window is too long or holds too many."""
    tz = known_zone(event.timezone)
    series = series_of(event) if event.rrule is not None else None
    try:
        return expand(
            series,
            event.id,
            event.title,
            event.start_time.astimezone(tz),
            event.end_time.astimezone(tz),
            event.exceptions,
            start,
            end,
            cancelled=cancelled,
            limit=limit,
        )
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


def costly(rows: list[Event]) -> bool:
    """Whether deciding which of `rows` a window holds, or expanding them, may take more than
    a few milliseconds: many series, or one whose occurrences may_occur cannot place (a rule
    such as 29 February on a Monday is walked day by day over decades)."""
    series = [e for e in rows if e.rrule is not None]
    return len(series) > 16 or any(not recurrence.is_plain(series_of(e)) for e in series)


def in_window_of(rows: list[Event], start: dt.datetime | None, end: dt.datetime | None) -> list[Event]:
    return [e for e in rows if in_window(e, start, end)]


def occurrences_in(rows: list[Event], start: dt.datetime, end: dt.datetime, limit: int) -> list[Occurrence]:
    """The occurrences of `rows` in the window, each expansion only as far as `limit` still
    allows; errors.Validation past it."""
    found: list[Occurrence] = []
    for event in rows:
        try:
            found += occurrences_of(event, start, end, cancelled=False, limit=limit - len(found))
        except errors.Validation:
            raise errors.Validation.at(
                ("query", "end"),
                f"more than {recurrence.MAX_OCCURRENCES} occurrences in the window; ask for a shorter window",
            ) from None
    return found


def occurrence_at(event: Event, original: dt.datetime, limit: int) -> Occurrence:
    """The occurrence of `event` whose original start is the instant `original`;
    errors.NotFound when there is none (errors.Validation for a single event). `limit`: the
    occurrences a window around it may hold."""
    if event.rrule is None:
        raise errors.Validation.at(("path", "occurrence_start"), "the event does not recur; change the event itself")
    tiny = dt.timedelta(microseconds=1)
    # UTC on both sides: an ambiguous wall-clock time (the hour clocks fall back) never
    # equals a time with a fixed offset in Python, even naming the same instant (PEP 495)
    original = original.astimezone(dt.UTC)
    for occ in occurrences_of(event, original, original + tiny, limit=limit):
        if occ.original_start.astimezone(dt.UTC) == original:
            return occ
    for change in event.exceptions:  # moved far from its original start
        if change.original == original:
            [occ] = [
                o
                for o in occurrences_of(
                    event,
                    change.overrides.get("start_time", original),
                    change.overrides.get("end_time", original) + tiny,
                    limit=limit,
                )
                if o.original_start.astimezone(dt.UTC) == original
            ]
            return occ
    raise errors.NotFound("no occurrence of this event starts at that time")
