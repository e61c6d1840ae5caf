"""Drafts: an event's fields checked as a whole (times, zone, all-day, rule, exceptions)
and made ready to store; the bounds on a series' changed occurrences. Pure: no SQL, no
HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from calsvc import errors, patterns, recurrence, rules
from calsvc.models import OVERRIDABLE_TEXT, Event, OccurrenceChange, exceptions_json
from calsvc.occurrences import EARLIEST, LATEST, with_exceptions
from calsvc.snapshots import PLAIN, snapshot
from calsvc.zones import zone

MAX_DURATION = dt.timedelta(days=366)


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
            **{f: getattr(self, f) for f in PLAIN},
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat(),
            "rrule": self.rrule,
            "exdates": [d.isoformat() for d in self.exdates],
            "rdates": [d.isoformat() for d in self.rdates],
            "exceptions": exceptions_json(self.exceptions),
            "last_start": None
            if self.series is None or self.series.last_start is None
            else self.series.last_start.isoformat(),
            "lower": self.during[0].isoformat(),
            "upper": None if self.during[1] is None else self.during[1].isoformat(),
            "snapshot": snapshot(self, owner_id) if snap is None else snap,
        }


def check_event(fields: dict[str, Any], exceptions_on_rule: bool = False) -> Draft:
    """Check a whole event (after merging a partial update into the stored one).
    errors.Validation naming the field otherwise. `exceptions_on_rule`: the exceptions are
    known to fall on occurrences of this rule (one occurrence of a stored series changed:
    the rule and times are those stored, each exception was checked when it was written),
    so they are not tested again."""
    tz = zone(fields["timezone"])
    start, end = fields["start_time"], fields["end_time"]
    check_times(start, end)
    start, end = start.astimezone(tz), end.astimezone(tz)
    if fields["all_day"] and any(t.timetz().replace(tzinfo=None) != dt.time(0) for t in (start, end)):
        raise errors.Validation.at(
            ("body", "start_time"), "an all-day event starts and ends at midnight in its time zone"
        )
    if fields["all_day"] and end == start:
        raise errors.Validation.at(("body", "end_time"), "an all-day event lasts at least one day")
    rrule, exdates, rdates, series = None, (), (), None
    rec = fields.get("recurrence")
    kept: tuple[OccurrenceChange, ...] = ()
    if rec is not None:
        # the length in elapsed time: both ends share the zone now, and Python would subtract wall clocks
        duration = end.astimezone(dt.UTC) - start.astimezone(dt.UTC)
        days = (end.date() - start.date()).days if fields["all_day"] else 0  # of the calendar
        rrule, exdates, rdates, series = _check_recurrence(rec, start, duration, tz, days)
        kept = fields.get("exceptions", ())
        if not exceptions_on_rule:
            kept = _kept_exceptions(series, kept)
        series = with_exceptions(series, (c.original for c in kept))
    during: tuple[dt.datetime, dt.datetime | None]
    if series is None:
        during = (start, recurrence.extent_end(start, end))
    else:
        during = _envelope(series, kept)
    return Draft(
        fields["title"],
        fields["description"],
        fields["location"],
        start,
        end,
        fields["timezone"],
        fields["all_day"],
        rrule,
        exdates,
        rdates,
        during,
        series,
        kept,
    )


def _kept_exceptions(series: recurrence.Series, changes: tuple[OccurrenceChange, ...]) -> tuple[OccurrenceChange, ...]:
    """The exceptions that still fall on an occurrence of `series` (changing a series' rule
    or times drops the others). Many exceptions close together are tested against one
    expansion of the span they cover; sparse ones (or few) one by one."""
    tiny = dt.timedelta(microseconds=1)
    utc = dt.UTC
    if len(changes) > 8:
        first, last = min(c.original for c in changes), max(c.original for c in changes)
        try:
            starts = {
                s.astimezone(utc)
                for s in recurrence.occurrence_starts(series, first, last + tiny, limit=4 * len(changes) + 100)
            }
        except recurrence.RecurrenceError:
            pass  # far apart: fewer walks one by one
        else:
            return tuple(c for c in changes if c.original in starts)
    return tuple(
        c
        for c in changes
        if c.original
        in {s.astimezone(utc) for s in recurrence.occurrence_starts(series, c.original, c.original + tiny)}
    )


def _envelope(
    series: recurrence.Series, changes: tuple[OccurrenceChange, ...]
) -> tuple[dt.datetime, dt.datetime | None]:
    """The series' envelope widened to hold its moved occurrences."""
    first, last = series.envelope()
    for change in changes:
        if "start_time" in change.overrides:
            first = min(first, change.overrides["start_time"])
            if last is not None:
                last = max(last, recurrence.extent_end(change.overrides["start_time"], change.overrides["end_time"]))
    return first, last


def _check_recurrence(rec: dict[str, Any], start: dt.datetime, duration: dt.timedelta, tz: ZoneInfo, days: int = 0):
    if rec.get("rrule") is not None and rec.get("pattern") is not None:
        raise errors.Validation.at(("body", "recurrence"), "give either rrule or pattern, not both")
    for name in ("exdates", "rdates"):
        for index, value in enumerate(rec.get(name, ())):
            if not EARLIEST <= value < LATEST:
                raise errors.Validation.at(
                    ("body", "recurrence", name, index), "times must lie between the years 1900 and 9000"
                )
    where: tuple[str, ...] = ("body", "recurrence", "rrule")
    try:
        if rec.get("rrule") is not None:
            parts = rules.parse_rule(rec["rrule"], tz)
        elif rec.get("pattern") is not None:
            where = ("body", "recurrence", "pattern")
            parts = patterns.rule_from_pattern(rec["pattern"], tz)
        else:
            raise errors.Validation.at(("body", "recurrence", "rrule"), "give rrule or pattern (or recurrence: null)")
        where = ("body", "recurrence")
        series = recurrence.prepare(start, duration, tz, parts, rec.get("exdates", ()), rec.get("rdates", ()), days)
    except recurrence.RecurrenceError as exc:
        raise errors.Validation.at(where, str(exc)) from None
    return rules.format_rule(parts), series.exdates, series.rdates, series


def check_times(start: dt.datetime, end: dt.datetime) -> None:
    if not (EARLIEST <= start < LATEST and EARLIEST <= end < LATEST):
        raise errors.Validation.at(("body", "start_time"), "times must lie between the years 1900 and 9000")
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)  # elapsed time
    if end < start:
        raise errors.Validation.at(("body", "end_time"), "end_time must not be before start_time")
    if end - start > MAX_DURATION:
        raise errors.Validation.at(("body", "end_time"), "an event lasts at most 366 days")


def exception_of(event: Event, original: dt.datetime) -> dict[str, Any]:
    for change in event.exceptions:
        if change.original == original and not change.cancelled:
            return dict(change.overrides)
    return {}


MAX_EXCEPTIONS = 1000  # changed and cancelled occurrences of one series


# Characters of text in them: every version keeps them all, so 1,000 descriptions of 10,000
# characters would write 30 MB a change.
MAX_EXCEPTION_TEXT = 100_000


def replace_exception(event: Event, change: OccurrenceChange) -> tuple[OccurrenceChange, ...]:
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
            "keeps; split it: end this series before the occurrence and continue the rule as a new event",
        )
    changed = tuple(sorted((*others, change), key=lambda c: c.original))
    text = _exception_text(changed)
    if text > MAX_EXCEPTION_TEXT and text > _exception_text(event.exceptions):
        raise errors.Validation.at(
            ("body",),
            f"the changed occurrences of one series hold at most {MAX_EXCEPTION_TEXT:,} characters of "
            "titles, descriptions and locations; shorten them, or split the series",
        )
    return changed


def _exception_text(changes: tuple[OccurrenceChange, ...]) -> int:
    return sum(len(v) for c in changes for k, v in c.overrides.items() if k in OVERRIDABLE_TEXT and isinstance(v, str))
