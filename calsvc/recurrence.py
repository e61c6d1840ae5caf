"""Recurrence: a series (a rule from calsvc.rules, with its start, length, zone and dates)
expanded in a window. Pure: no SQL, no HTTP.

Expansion happens in the event's time zone, so an occurrence keeps its wall-clock time
across DST changes. A time that falls in a DST gap is taken with the offset before the gap
(RFC 5545 3.3.5), which moves it forward by the gap's length; an ambiguous time takes its
first instance. Expanding far from DTSTART is cheap: the rule is restarted at a whole
number of periods before the window instead of being walked from DTSTART, and a rule with
COUNT is expanded as the same rule ending at its last occurrence (computed once).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule as du
from dateutil.relativedelta import relativedelta

from calsvc.rules import WEEKDAYS, RecurrenceError, check_reachable, format_rule, format_until

UTC = dt.UTC
MAX_WINDOW = dt.timedelta(days=731)
MAX_OCCURRENCES = 5_000
# What an occurrence that lasts no time (a deadline, a reminder) marks in window tests: the
# microsecond after its start, so that a window [W, U) holds it when W <= start < U.
INSTANT = dt.timedelta(microseconds=1)


def extent_end(start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """The end (UTC) of what the occurrence [start, end) marks in window tests: `end`, or the
    microsecond after `start` when it lasts no time."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    return end if end > start else start + INSTANT


FIRST_OCCURRENCE_HORIZON = relativedelta(years=10)
COUNT_HORIZON = relativedelta(years=100)

_FREQ_CONST = {"YEARLY": du.YEARLY, "MONTHLY": du.MONTHLY, "WEEKLY": du.WEEKLY, "DAILY": du.DAILY, "HOURLY": du.HOURLY}
_PERIOD = {
    "YEARLY": relativedelta(years=1),
    "MONTHLY": relativedelta(months=1),
    "WEEKLY": relativedelta(weeks=1),
    "DAILY": relativedelta(days=1),
    "HOURLY": relativedelta(hours=1),
}
_PERIOD_SPAN = {
    "YEARLY": dt.timedelta(days=366),
    "MONTHLY": dt.timedelta(days=31),
    "WEEKLY": dt.timedelta(weeks=1),
    "DAILY": dt.timedelta(days=1),
    "HOURLY": dt.timedelta(hours=1),
}


# -- series and expansion -----------------------------------------------------------------


def _build(parts: dict[str, str], dtstart: dt.datetime) -> du.rrule:
    # Parsing the rule text is most of the cost of a short expansion (dateutil reads UNTIL with
    # its general date parser): parse each rule once, then only swap in the start. Parts that
    # DTSTART implies (BYDAY of a weekly rule, ...) are derived again from the new start.
    # Not for HOURLY rules: dateutil keeps only the BYHOUR values an interval reaches from the
    # template's start, so the template would not fit another start.
    text = format_rule(parts)
    try:
        template = _template(text) if parts["FREQ"] != "HOURLY" else None
        if template is not None:
            return template.replace(dtstart=dtstart)
        return du.rrulestr(text, dtstart=dtstart)
    except (ValueError, TypeError) as exc:
        raise RecurrenceError(f"invalid rule: {exc}") from None


_TEMPLATE_START = dt.datetime(2000, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=16384)
def _template(text: str) -> du.rrule | None:
    try:
        return du.rrulestr(text, dtstart=_TEMPLATE_START)
    except (ValueError, TypeError):
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """An event's start, length, zone and recurrence: what expansion needs."""

    start: dt.datetime  # aware; the first occurrence's start (DTSTART)
    duration: dt.timedelta
    tz: ZoneInfo
    parts: dict[str, str] | None = None  # normalised rule parts, None for a single event
    exdates: tuple[dt.datetime, ...] = ()
    rdates: tuple[dt.datetime, ...] = ()
    last_start: dt.datetime | None = None  # of a bounded rule: set by `prepare`
    # all-day occurrences last whole days of the calendar (midnight to midnight in `tz`, 23 or
    # 25 hours across a DST change), not `duration` of elapsed time; 0 for other events
    days: int = 0
    # what may_occur needs, worked out at its first call (_plain_of; _NOT_PLAIN when it cannot tell)
    plain: Any = dataclasses.field(default=None, init=False, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled without `plain`, a cache whose marker object would not survive the trip
        return Series, (
            self.start,
            self.duration,
            self.tz,
            self.parts,
            self.exdates,
            self.rdates,
            self.last_start,
            self.days,
        )

    @property
    def local_start(self) -> dt.datetime:
        return self.start.astimezone(self.tz)

    @property
    def reach(self) -> dt.timedelta:
        """The longest an occurrence lasts (a day of the calendar can be 25 hours, or more
        where a zone changed its offset by more than an hour)."""
        return self.duration + dt.timedelta(hours=3) if self.days else self.duration

    def end_of(self, start: dt.datetime) -> dt.datetime:
        """The end (UTC) of the occurrence that starts at `start`."""
        if not self.days:
            return start.astimezone(UTC) + self.duration
        local = start.astimezone(self.tz).replace(tzinfo=None) + dt.timedelta(days=self.days)
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    def extent_end(self, start: dt.datetime) -> dt.datetime:
        """The end (UTC) of what the occurrence that starts at `start` marks in window tests:
        its end, or the next microsecond when it lasts no time."""
        end = self.end_of(start)
        return end if self.duration or self.days else end + INSTANT

    @property
    def bounded(self) -> bool:
        return self.parts is None or "COUNT" in self.parts or "UNTIL" in self.parts

    def envelope(self) -> tuple[dt.datetime, dt.datetime | None]:
        """First start to last end (None: unbounded), RDATEs included, for the range index."""
        first = min((self.start, *self.rdates))
        if self.parts is None:
            last = max((self.start, *self.rdates))
            return first, self.extent_end(last)
        if self.last_start is None:
            return first, None
        return first, self.extent_end(max((self.last_start, *self.rdates), key=lambda d: d.astimezone(UTC)))


def prepare(
    start: dt.datetime,
    duration: dt.timedelta,
    tz: ZoneInfo,
    parts: dict[str, str] | None,
    exdates: Iterable[dt.datetime] = (),
    rdates: Iterable[dt.datetime] = (),
    days: int = 0,
) -> Series:
    """A checked series: the rule compiles, has an occurrence within 10 years of the start,
    and a bounded rule's last occurrence is known. RecurrenceError otherwise. `days`: the
    occurrences are all-day, that many days of the calendar long."""
    exdates = tuple(sorted({d.astimezone(UTC) for d in exdates}))
    rdates = tuple(sorted({d.astimezone(UTC) for d in rdates}))
    if parts is None:
        return Series(start, duration, tz, None, exdates, rdates, days=days)
    local = start.astimezone(tz)
    check_reachable(parts, local)
    rule = _build(parts, local)
    # dateutil compares UNTIL only with dates that pass the rule's filters: a rule that never
    # matches is walked to the year 9999, which the checks in parse_rule and
    # check_reachable prevent.
    first = next(iter(rule), None)
    until = None
    if "UNTIL" in parts:
        until = dt.datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if first is None:
            raise RecurrenceError("the rule has no occurrence: UNTIL is before the first one")
    if first is None or first > local + FIRST_OCCURRENCE_HORIZON:
        raise RecurrenceError("the rule has no occurrence (within 10 years of the start)")
    last = None
    if "COUNT" in parts:
        # Walk the COUNT occurrences, but refuse a count that is only reached far in the
        # future (or never: dateutil gives up at the year 9999 and silently cuts the series).
        horizon = local + COUNT_HORIZON
        seen, last = 0, None
        for last in rule:
            seen += 1
            if last > horizon:
                break
        if last is None or last > horizon or seen < int(parts["COUNT"]):
            raise RecurrenceError(
                f"COUNT={parts['COUNT']} is not reached within 100 years of the start; use a smaller COUNT or an UNTIL"
            )
    elif until is not None:
        # Search back from UNTIL over a growing stretch, so the cost follows the distance from
        # the last occurrence to UNTIL, not from DTSTART to UNTIL.
        reach = _PERIOD_SPAN[parts["FREQ"]] * 2
        while until - start > reach:
            last = _expansion_rule(Series(start, duration, tz, parts), until - reach).before(until, inc=True)
            if last is not None:
                break
            reach *= 2
        else:
            last = rule.before(until, inc=True)
    return Series(start, duration, tz, parts, exdates, rdates, None if last is None else _normal(last, tz, local), days)


def _normal(value: dt.datetime, tz: ZoneInfo, local_start: dt.datetime | None = None) -> dt.datetime:
    """A wall-clock time of the rule as a real instant shown in `tz` (resolves DST gaps).
    The value at DTSTART's wall-clock time is DTSTART itself: dateutil drops its fold (the
    second instance of an ambiguous time) and its microseconds."""
    if local_start is not None and value.replace(tzinfo=None) == local_start.replace(tzinfo=None, microsecond=0):
        return local_start
    return value.astimezone(UTC).astimezone(tz)


def _expansion_rule(series: Series, not_before: dt.datetime) -> du.rrule:
    """The series' rule restarted at a whole number of periods before `not_before`, with
    what DTSTART implied made explicit, so the walk to the window is short."""
    parts = dict(series.parts or {})
    local = series.local_start
    if "COUNT" in parts and series.last_start is not None:  # known for every rule with COUNT
        del parts["COUNT"]
        parts["UNTIL"] = format_until(series.last_start)
    freq = parts["FREQ"]
    interval = int(parts.get("INTERVAL", 1))
    has_day = any(p in parts for p in ("BYMONTHDAY", "BYDAY", "BYYEARDAY", "BYWEEKNO"))
    if freq == "MONTHLY" and not has_day:
        parts["BYMONTHDAY"] = str(local.day)
    if freq == "YEARLY" and not has_day:
        parts.setdefault("BYMONTH", str(local.month))
        parts["BYMONTHDAY"] = str(local.day)
    if freq == "WEEKLY" and "BYDAY" not in parts:
        parts["BYDAY"] = WEEKDAYS[local.weekday()]
    target = not_before.astimezone(series.tz).replace(tzinfo=None)
    naive_start = local.replace(tzinfo=None)
    periods = _whole_periods(freq, naive_start, target) // interval * interval
    periods -= interval  # one period of slack before the window
    if periods > 0:
        # A whole number of intervals keeps the alignment (weeks from WKST, months, years).
        if freq in _STEP:
            naive_start = naive_start + _STEP[freq] * periods
        else:
            naive_start = naive_start + _PERIOD[freq] * periods
    dtstart = naive_start.replace(tzinfo=series.tz)
    return _build(parts, dtstart)


_STEP = {"WEEKLY": dt.timedelta(weeks=1), "DAILY": dt.timedelta(days=1), "HOURLY": dt.timedelta(hours=1)}
_SIMPLE_PARTS = frozenset(("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "WKST"))
_ONE_DAY = dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    """A plain DAILY or WEEKLY rule (one time of day, whole weekdays) as may_occur reads it."""

    daily: bool
    weekdays: frozenset[int] | None  # None: every day
    interval: int
    wkst: int
    start_day: dt.date
    start_week: int
    clock: dt.time  # the local time of every occurrence but the first
    first: dt.datetime  # UTC
    last: dt.datetime | None  # UTC; None: endless
    duration: dt.timedelta
    tz: ZoneInfo

    def week(self, day: dt.date) -> int:
        """Weeks counted from a WKST, as dateutil steps them."""
        return (day.toordinal() - (day.weekday() - self.wkst) % 7) // 7


_NOT_PLAIN = object()


def _plain_of(series: Series) -> _Plain | None:
    parts = series.parts
    if (
        parts is None
        or parts["FREQ"] not in ("DAILY", "WEEKLY")
        or not parts.keys() <= _SIMPLE_PARTS
        or series.duration > 2 * _ONE_DAY
        or series.days
    ):
        return None
    byday = parts.get("BYDAY")
    local = series.local_start
    if byday is None:
        weekdays = None if parts["FREQ"] == "DAILY" else frozenset((local.weekday(),))
    elif all(code in WEEKDAYS for code in byday.split(",")):
        weekdays = frozenset(WEEKDAYS.index(code) for code in byday.split(","))
    else:
        return None  # ordinal weekdays (1MO) are not for a plain rule
    wkst = WEEKDAYS.index(parts.get("WKST", "MO"))
    start_day = local.date()
    plain = _Plain(
        parts["FREQ"] == "DAILY",
        weekdays,
        int(parts.get("INTERVAL", 1)),
        wkst,
        start_day,
        0,
        local.time().replace(microsecond=0, fold=0),  # as dateutil repeats DTSTART's time
        series.start.astimezone(UTC),
        None if series.last_start is None else series.last_start.astimezone(UTC),
        max(series.duration, INSTANT),
        series.tz,
    )  # the length window tests use
    return dataclasses.replace(plain, start_week=plain.week(start_day))


def _plain(series: Series) -> Any:
    plain = series.plain
    if plain is None:
        plain = _plain_of(series) or _NOT_PLAIN
        object.__setattr__(series, "plain", plain)  # a cache: frozen for everything else
    return plain


def is_plain(series: Series) -> bool:
    """Whether may_occur can tell anything of this rule (a plain DAILY or WEEKLY rule)."""
    return _plain(series) is not _NOT_PLAIN


def may_occur(series: Series, window_start: dt.datetime, window_end: dt.datetime) -> bool:
    """False only when no occurrence of the rule (RDATEs aside) can overlap the short window:
    a test of the few local days around it against a plain DAILY or WEEKLY rule (one time of
    day, whole weekdays), without dateutil. True whenever it cannot tell. A conflict check
    meets every series of a calendar whose envelope covers the new event and most have no
    occurrence there, so this spares their expansion; what it needs of the rule is worked out
    once per series."""
    if window_end - window_start > 2 * _ONE_DAY:
        return True
    plain = _plain(series)
    if plain is _NOT_PLAIN:
        return True
    tz, duration, first, last = plain.tz, plain.duration, plain.first, plain.last
    lower, upper = window_start.astimezone(UTC), window_end.astimezone(UTC)
    if upper <= first or (last is not None and lower >= last + duration):
        return False
    weekdays, interval, start_day = plain.weekdays, plain.interval, plain.start_day
    day = max((lower - duration).astimezone(tz).date() - _ONE_DAY, start_day)
    end_day = upper.astimezone(tz).date() + _ONE_DAY
    while day <= end_day:
        if weekdays is None or day.weekday() in weekdays:
            if interval == 1:
                aligned = True
            elif plain.daily:
                aligned = (day - start_day).days % interval == 0
            else:
                aligned = (plain.week(day) - plain.start_week) % interval == 0
            if aligned:
                # a wall-clock time in a DST gap is read with the offset before it, as _normal does
                begin = first if day == start_day else dt.datetime.combine(day, plain.clock, tz).astimezone(UTC)
                if begin < upper and begin + duration > lower and begin >= first and (last is None or begin <= last):
                    return True
        day += _ONE_DAY
    return False


def _whole_periods(freq: str, start: dt.datetime, target: dt.datetime) -> int:
    if target <= start:
        return 0
    if freq == "YEARLY":
        return target.year - start.year - 1
    if freq == "MONTHLY":
        return (target.year - start.year) * 12 + target.month - start.month - 1
    if freq == "WEEKLY":
        return (target - start).days // 7
    if freq == "DAILY":
        return (target - start).days
    return int((target - start).total_seconds() // 3600)


_ROUGH_PERIOD = {
    "YEARLY": dt.timedelta(days=365),
    "MONTHLY": dt.timedelta(days=28),
    "WEEKLY": dt.timedelta(days=7),
    "DAILY": dt.timedelta(days=1),
    "HOURLY": dt.timedelta(hours=1),
}


def rough_count(series: Series, lower: dt.datetime, upper: dt.datetime) -> int:
    """About how many occurrences `series` has in [lower, upper), at most (each BY list that
    can multiply a period's occurrences counted as if it did), without walking the rule: how
    much work expanding it is."""
    if series.parts is None:
        return 1 + len(series.rdates)
    parts = series.parts
    periods = (upper - lower) / (_ROUGH_PERIOD[parts["FREQ"]] * int(parts.get("INTERVAL", 1)))
    per_period = 1
    for name in ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE", "BYSECOND", "BYMONTH"):
        if name in parts:
            per_period *= len(parts[name].split(","))
    count = int(periods + 1) * per_period + len(series.rdates)
    return min(count, int(parts["COUNT"])) if "COUNT" in parts else count


def check_window(start: dt.datetime, end: dt.datetime) -> None:
    if end <= start:
        raise RecurrenceError("the window's end must be after its start")
    if end - start > MAX_WINDOW:
        raise RecurrenceError("the window is longer than 2 years; ask for a shorter window")


def occurrence_starts(
    series: Series, window_start: dt.datetime, window_end: dt.datetime, limit: int = MAX_OCCURRENCES
) -> list[dt.datetime]:
    """Original starts (shown in the series' zone) of the occurrences overlapping
    [window_start, window_end), EXDATEs removed and RDATEs added, in order.
    RecurrenceError when there are more than `limit`."""
    # Compare real instants, in UTC: with the zone's own tzinfo on both sides Python compares
    # (and adds durations to) wall-clock times.
    window_start, window_end = window_start.astimezone(UTC), window_end.astimezone(UTC)
    lower = window_start - series.reach  # an occurrence starting after this may still overlap
    end_of = series.extent_end
    excluded = set(series.exdates)
    found: set[dt.datetime] = set()
    if series.parts is None:
        candidates: Iterable[dt.datetime] = (series.start,)
    elif not may_occur(series, window_start, window_end):
        candidates = ()
    else:
        rule = _expansion_rule(series, lower)
        local_lower = lower.astimezone(series.tz) - dt.timedelta(hours=3)  # DST slack
        candidates = rule.xafter(local_lower, inc=True)
    tz = series.tz
    local_start = series.local_start
    for value in candidates:
        start = _normal(value, tz, local_start).astimezone(UTC)
        if start >= window_end:
            # Gap-resolved times move forward by at most a few hours; stop well past the end.
            if start - window_end > dt.timedelta(hours=3):
                break
            continue
        if end_of(start) > window_start and start >= series.start and start not in excluded:
            found.add(start)
            if len(found) > limit:
                raise RecurrenceError(f"more than {limit} occurrences in the window; ask for a shorter window")
    for extra in series.rdates:
        if extra < window_end and end_of(extra) > window_start and extra not in excluded:
            found.add(extra)
    result = [s.astimezone(tz) for s in sorted(found)]
    if len(result) > limit:
        raise RecurrenceError(f"more than {limit} occurrences in the window; ask for a shorter window")
    return result


def has_occurrence(series: Series, window_start: dt.datetime | None, window_end: dt.datetime | None) -> bool:
    """Whether any occurrence (RDATEs included, EXDATEs left out) overlaps the window (a None
    bound is open; an open end looks 10 years past the start). One walk of the rule from the
    window's start to its first occurrence there, whatever the window's length: a rule that
    occurs once in decades (29 February on a Monday) costs one walk, not one per month."""
    end_of, reach = series.extent_end, series.reach
    first, last = series.envelope()
    lower = first.astimezone(UTC) if window_start is None else max(window_start.astimezone(UTC), first.astimezone(UTC))
    if window_end is not None:
        upper = window_end.astimezone(UTC)
    else:
        upper = last.astimezone(UTC) if last is not None else lower + dt.timedelta(days=3660)
    if lower >= upper:
        return False
    excluded = set(series.exdates)
    start = series.start.astimezone(UTC)
    if any(extra < upper and end_of(extra) > lower and extra not in excluded for extra in series.rdates):
        return True
    if series.parts is None:
        return start < upper and end_of(start) > lower and start not in excluded
    if not may_occur(series, lower, upper):
        return False
    tz, local_start = series.tz, series.local_start
    rule = _expansion_rule(series, lower - reach)
    for value in rule.xafter((lower - reach).astimezone(tz) - dt.timedelta(hours=3), inc=True):
        instant = _normal(value, tz, local_start).astimezone(UTC)
        if instant >= upper:
            if instant - upper > dt.timedelta(hours=3):  # past any gap-resolved time
                return False
            continue
        if end_of(instant) > lower and instant >= start and instant not in excluded:
            return True
    return False
