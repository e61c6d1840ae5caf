"""Recurrence rules: parsing and normalising RRULE text and patterns, checked
series, and expansion in a window, against hand-checked calendars and, for random rules,
zones and windows, against a brute-force walk of dateutil's own rule from DTSTART."""
from __future__ import annotations

import datetime as dt
import itertools
import time
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule as du
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from calsvc import recurrence as recurrence_module
from calsvc import rules as rules_module
from calsvc.patterns import pattern_from_rule, rule_from_pattern
from calsvc.recurrence import MAX_OCCURRENCES, check_window, has_occurrence, may_occur, occurrence_starts, prepare
from calsvc.rules import RecurrenceError, format_rule, parse_rule, stored_parts

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")
ZULU = ZoneInfo("UTC")
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def offset(hours: float) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours))


def series_of(start: dt.datetime, rule: str | None, tz: ZoneInfo = BERLIN,
              duration: dt.timedelta = HOUR, **kw):
    return prepare(start, duration, tz, None if rule is None else parse_rule(rule, tz), **kw)


def expand(series, start: dt.datetime, end: dt.datetime, limit: int = MAX_OCCURRENCES):
    return occurrence_starts(series, start, end, limit)


def utc(values):
    return [v.astimezone(UTC) for v in values]


def wall(values):
    """(date, hh:mm, UTC offset in hours) of each start, for readable expectations."""
    return [(v.date().isoformat(), v.strftime("%H:%M"), v.utcoffset() / HOUR) for v in values]


def refused(text: str, tz: ZoneInfo = BERLIN) -> str:
    with pytest.raises(RecurrenceError) as info:
        parse_rule(text, tz)
    return str(info.value)


# -- normalisation ------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("FREQ=DAILY", "FREQ=DAILY"),
    ("RRULE:FREQ=DAILY", "FREQ=DAILY"),
    ("rrule:freq=daily", "FREQ=DAILY"),
    ("  RRULE:FREQ=WEEKLY;BYDAY=mo,we  ", "FREQ=WEEKLY;BYDAY=MO,WE"),
    ("RRULE:freq=weekly;byday=mo,we;interval=1;count=10", "FREQ=WEEKLY;COUNT=10;BYDAY=MO,WE"),
    ("BYDAY=FR;INTERVAL=2;FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"),
    ("BYSETPOS=-1;BYDAY=MO,TU,WE,TH,FR;FREQ=MONTHLY", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"),
    ("WKST=SU;BYMONTH=3;FREQ=YEARLY;BYMONTHDAY=1", "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1;WKST=SU"),
    ("FREQ=DAILY;INTERVAL=1", "FREQ=DAILY"),
    ("FREQ=DAILY;INTERVAL=001", "FREQ=DAILY"),
    ("FREQ=DAILY;INTERVAL=02", "FREQ=DAILY;INTERVAL=2"),
    ("FREQ=DAILY;COUNT=007", "FREQ=DAILY;COUNT=7"),
    ("FREQ=DAILY;", "FREQ=DAILY"),
    (" FREQ = DAILY ; INTERVAL = 3 ", "FREQ=DAILY;INTERVAL=3"),
    ("FREQ=MONTHLY;BYDAY=+1MO,-1FR", "FREQ=MONTHLY;BYDAY=1MO,-1FR"),
    ("FREQ=MONTHLY;BYDAY=01MO", "FREQ=MONTHLY;BYDAY=1MO"),
    ("FREQ=WEEKLY;BYDAY=MO,MO,TU", "FREQ=WEEKLY;BYDAY=MO,TU"),
    ("FREQ=MONTHLY;BYMONTHDAY=1,+1,15", "FREQ=MONTHLY;BYMONTHDAY=1,15"),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYMONTHDAY=-1"),
    ("FREQ=YEARLY;BYDAY=20MO", "FREQ=YEARLY;BYDAY=20MO"),
    ("FREQ=YEARLY;BYWEEKNO=-1;BYDAY=MO", "FREQ=YEARLY;BYWEEKNO=-1;BYDAY=MO"),
    ("FREQ=HOURLY;INTERVAL=6", "FREQ=HOURLY;INTERVAL=6"),
])
def test_normalised_text(text, expected):
    parts = parse_rule(text, BERLIN)
    assert format_rule(parts) == expected
    # normalising is idempotent, and format_rule gives the canonical part order
    assert parse_rule(format_rule(parts), BERLIN) == parts
    assert list(parts) == [p for p in ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYMONTH", "BYWEEKNO",
                                       "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYHOUR", "BYMINUTE",
                                       "BYSECOND", "BYSETPOS", "WKST") if p in parts]


@pytest.mark.parametrize("tz,text,expected", [
    (ZULU, "FREQ=DAILY;UNTIL=20261231T235959Z", "20261231T235959Z"),
    (BERLIN, "FREQ=DAILY;UNTIL=20261231T235959Z", "20261231T235959Z"),  # already UTC: kept
    (BERLIN, "FREQ=DAILY;until=20261231t120000z", "20261231T120000Z"),
    (BERLIN, "FREQ=DAILY;UNTIL=20261231T120000", "20261231T110000Z"),   # CET, +01:00
    (BERLIN, "FREQ=DAILY;UNTIL=20260701T120000", "20260701T100000Z"),   # CEST, +02:00
    (NEW_YORK, "FREQ=DAILY;UNTIL=20260115T090000", "20260115T140000Z"),
    (NEW_YORK, "FREQ=DAILY;UNTIL=20260715T090000", "20260715T130000Z"),
    (KOLKATA, "FREQ=DAILY;UNTIL=20260715T090000", "20260715T033000Z"),
    (LORD_HOWE, "FREQ=DAILY;UNTIL=20260715T090000", "20260714T223000Z"),  # +10:30 in winter
    # a date: through the end of that day in the event's zone
    (BERLIN, "FREQ=DAILY;UNTIL=20260701", "20260701T215959Z"),
    (BERLIN, "FREQ=DAILY;UNTIL=20261231", "20261231T225959Z"),
    (NEW_YORK, "FREQ=DAILY;UNTIL=20261231", "20270101T045959Z"),
    (ZULU, "FREQ=DAILY;UNTIL=20261231", "20261231T235959Z"),
    (KOLKATA, "FREQ=DAILY;UNTIL=20261231", "20261231T182959Z"),
    # a local time in the spring-forward gap takes the offset before the gap
    (BERLIN, "FREQ=DAILY;UNTIL=20260329T023000", "20260329T013000Z"),
    # an ambiguous local time takes its first instance
    (BERLIN, "FREQ=DAILY;UNTIL=20261025T023000", "20261025T003000Z"),
    (NEW_YORK, "FREQ=DAILY;UNTIL=20261101T013000", "20261101T053000Z"),
])
def test_until_is_stored_in_utc(tz, text, expected):
    assert parse_rule(text, tz)["UNTIL"] == expected


@pytest.mark.parametrize("text,words", [
    ("", "empty"),
    ("   ", "empty"),
    ("RRULE:", "empty"),
    ("FREQ", "NAME=VALUE"),
    ("FREQ=", "NAME=VALUE"),
    ("=DAILY", "NAME=VALUE"),
    ("FREQ=DAILY;;COUNT=2", "NAME=VALUE"),
    ("COUNT=3", "FREQ is required"),
    ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
    ("FREQ=DAILY;COUNT=2;count=3", "COUNT is given twice"),
    ("FREQ=WEEKLY;BYDAY=MO;BYDAY=TU", "BYDAY is given twice"),
    ("FREQ=DAILY;COUNT=3;UNTIL=20270101T000000Z", "COUNT and UNTIL"),
    ("FREQ=MINUTELY", "not supported"),
    ("freq=secondly", "not supported"),
    ("FREQ=MINUTELY;INTERVAL=60", "HOURLY"),
    ("FREQ=FORTNIGHTLY", "not a frequency"),
    ("FREQ=DAYLY", "not a frequency"),
    ("FREQ=DAILY;X-FOO=1", "X-FOO is not a recurrence rule part"),
    ("FREQ=DAILY;DTSTART=20260101T000000Z", "DTSTART is not a recurrence rule part"),
    ("FREQ=DAILY;BYEASTER=0", "BYEASTER is not a recurrence rule part"),
    ("FREQ=DAILY\nEXDATE:20260101T000000Z", "separate"),
    ("DTSTART:20260101T000000Z\r\nRRULE:FREQ=DAILY", "separate"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be"),
    ("FREQ=DAILY;INTERVAL=-2", "INTERVAL must be"),
    ("FREQ=DAILY;INTERVAL=+2", "INTERVAL must be"),
    ("FREQ=DAILY;INTERVAL=1001", "INTERVAL must be"),
    ("FREQ=DAILY;INTERVAL=two", "INTERVAL must be"),
    ("FREQ=DAILY;COUNT=0", "COUNT must be"),
    ("FREQ=DAILY;COUNT=10001", "COUNT must be"),
    ("FREQ=DAILY;COUNT=1.5", "COUNT must be"),
    ("FREQ=DAILY;UNTIL=2026", "UNTIL must look like"),
    ("FREQ=DAILY;UNTIL=2026-12-31", "UNTIL must look like"),
    ("FREQ=DAILY;UNTIL=20261231T2359", "UNTIL must look like"),
    ("FREQ=DAILY;UNTIL=20260230", "not a valid date"),
    ("FREQ=DAILY;UNTIL=20261231T250000Z", "not a valid date"),
    ("FREQ=YEARLY;BYMONTH=0", "BYMONTH value 0 is out of range"),
    ("FREQ=YEARLY;BYMONTH=13", "BYMONTH value 13 is out of range"),
    ("FREQ=YEARLY;BYMONTH=-1", "BYMONTH value -1 is out of range"),
    ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value 0 is out of range"),
    ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY value 32 is out of range"),
    ("FREQ=MONTHLY;BYMONTHDAY=-32", "BYMONTHDAY value -32 is out of range"),
    ("FREQ=MONTHLY;BYMONTHDAY=1,,2", "comma-separated list"),
    ("FREQ=MONTHLY;BYMONTHDAY=1000", "comma-separated list"),
    ("FREQ=DAILY;BYHOUR=24", "BYHOUR value 24 is out of range"),
    ("FREQ=DAILY;BYMINUTE=60", "BYMINUTE value 60 is out of range"),
    ("FREQ=DAILY;BYSECOND=61", "BYSECOND value 61 is out of range"),
    ("FREQ=YEARLY;BYWEEKNO=54", "BYWEEKNO value 54 is out of range"),
    ("FREQ=YEARLY;BYWEEKNO=0", "BYWEEKNO value 0 is out of range"),
    ("FREQ=YEARLY;BYYEARDAY=367", "BYYEARDAY value 367 is out of range"),
    ("FREQ=YEARLY;BYYEARDAY=-367", "BYYEARDAY value -367 is out of range"),
    ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0", "BYSETPOS value 0 is out of range"),
    ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=367", "BYSETPOS value 367 is out of range"),
    ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS needs another BYxxx part"),
    ("FREQ=WEEKLY;BYDAY=MONDAY", "BYDAY value 'MONDAY'"),
    ("FREQ=WEEKLY;BYDAY=XX", "BYDAY value 'XX'"),
    ("FREQ=WEEKLY;BYDAY=MO,", "BYDAY value ''"),
    ("FREQ=MONTHLY;BYDAY=0MO", "ordinal must be"),
    ("FREQ=YEARLY;BYDAY=54MO", "ordinal must be"),
    ("FREQ=YEARLY;BYDAY=-54MO", "ordinal must be"),
    ("FREQ=WEEKLY;BYDAY=1MO", "needs FREQ=MONTHLY or YEARLY"),
    ("FREQ=DAILY;BYDAY=-1FR", "needs FREQ=MONTHLY or YEARLY"),
    ("FREQ=HOURLY;BYDAY=2TU", "needs FREQ=MONTHLY or YEARLY"),
    ("FREQ=MONTHLY;BYDAY=6MO", "at most 5"),
    ("FREQ=MONTHLY;BYDAY=-6FR", "at most 5"),
    ("FREQ=YEARLY;BYMONTH=3;BYDAY=6MO", "at most 5"),
    ("FREQ=DAILY;WKST=XX", "WKST must be one of"),
    ("FREQ=MONTHLY;BYWEEKNO=1", "BYWEEKNO needs FREQ=YEARLY"),
    ("FREQ=MONTHLY;BYYEARDAY=1", "BYYEARDAY cannot be used"),
    ("FREQ=DAILY;BYYEARDAY=1", "BYYEARDAY cannot be used"),
    ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY cannot be used"),
])
def test_refused_rules(text, words):
    message = refused(text)
    assert words.lower() in message.lower()


# Rules no calendar date satisfies. dateutil would look for them until the year 9999.
IMPOSSIBLE = [
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31",
    "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30,31",
    "FREQ=MONTHLY;BYMONTH=4,6,9,11;BYMONTHDAY=31",
    "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31",
    "FREQ=HOURLY;BYMONTH=6;BYMONTHDAY=31",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-30",
    "FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1",
    "FREQ=YEARLY;BYYEARDAY=1;BYMONTHDAY=2",
    "FREQ=YEARLY;BYWEEKNO=20;BYMONTH=1",
    # an ordinal weekday only falls on some days of the month
    "FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=5MO",
    "FREQ=MONTHLY;BYMONTHDAY=31;BYDAY=1MO,2TU",
    "FREQ=MONTHLY;BYMONTHDAY=1,2,3,4,5,6,7;BYDAY=-1MO",
    "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=-8;BYDAY=-1MO",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=21;BYDAY=-1MO",
    # BYSETPOS beyond what one period holds (dateutil would walk every hour to 9999: minutes)
    "FREQ=HOURLY;BYMINUTE=0;BYSETPOS=2",
    "FREQ=HOURLY;BYSETPOS=2;BYHOUR=9",
    "FREQ=HOURLY;BYMINUTE=0,30;BYSECOND=0,30;BYSETPOS=-5",
    "FREQ=DAILY;BYSETPOS=2;BYHOUR=9",
    "FREQ=DAILY;BYHOUR=9,10;BYMINUTE=0,30;BYSETPOS=5",
    "FREQ=WEEKLY;BYDAY=MO;BYSETPOS=2",
    "FREQ=WEEKLY;BYDAY=MO,TU;BYHOUR=9;BYMONTH=2;BYSETPOS=3",
    "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6",
    "FREQ=MONTHLY;BYDAY=1MO,-1FR;BYSETPOS=3",
    "FREQ=MONTHLY;BYMONTHDAY=1,15;BYSETPOS=-3",
    "FREQ=MONTHLY;BYHOUR=9;BYSETPOS=2",
]


# Rules that never occur from this DTSTART (a Tuesday, 09:00), or not within 10 years:
# they are refused, and quickly (not by a walk to the year 9999).
NEVER_FROM_START = [
    "FREQ=DAILY;INTERVAL=7;BYDAY=MO",
    "FREQ=DAILY;INTERVAL=14;BYDAY=WE",
    "FREQ=DAILY;INTERVAL=7;BYDAY=MO;BYHOUR=9,10;BYSETPOS=2",
    "FREQ=HOURLY;INTERVAL=7;BYDAY=MO;BYHOUR=9",
    "FREQ=HOURLY;INTERVAL=168;BYDAY=WE",  # every week on Tuesday
    "FREQ=HOURLY;INTERVAL=336;BYDAY=WE,FR,SU;BYMINUTE=0,30",  # every other Tuesday
    "FREQ=HOURLY;INTERVAL=12;BYHOUR=10,22",  # 09:00 and 21:00 only
    "FREQ=MONTHLY;INTERVAL=12;BYMONTH=4",
    "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",  # 2026, 2030, ...: never a leap year
]


@pytest.mark.parametrize("text", IMPOSSIBLE + NEVER_FROM_START)
def test_rules_without_occurrence_are_refused_quickly(text):
    began = time.perf_counter()
    with pytest.raises(RecurrenceError, match="no occurrence"):
        series_of(dt.datetime(2026, 3, 3, 9, tzinfo=BERLIN), text)
    assert time.perf_counter() - began < 0.5


def _reference_first(text: str, start: dt.datetime, tz: ZoneInfo = BERLIN) -> list[dt.datetime]:
    """The first three occurrences of dateutil's own rule, as real instants in `tz`."""
    walk = du.rrulestr(format_rule(parse_rule(text, tz)), dtstart=start.astimezone(tz))
    return [v.astimezone(UTC).astimezone(tz) for v in itertools.islice(walk, 3)]


@pytest.mark.parametrize("text", [
    # next to the refused ones above: these do occur
    "FREQ=HOURLY;BYMINUTE=0,30;BYSETPOS=2",
    "FREQ=DAILY;BYHOUR=9,10;BYMINUTE=0,30;BYSETPOS=4",
    "FREQ=WEEKLY;BYDAY=MO,TU;BYHOUR=9;BYMONTH=2;BYSETPOS=2",
    "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5",
    "FREQ=MONTHLY;BYDAY=1MO,-1FR;BYSETPOS=2",
    "FREQ=MONTHLY;BYHOUR=9,17;BYSETPOS=2",
    "FREQ=MONTHLY;BYMONTHDAY=29;BYDAY=5MO",
    "FREQ=MONTHLY;BYMONTHDAY=-1;BYDAY=-1MO",
    "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=22;BYDAY=-1MO",
    "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=-8;BYDAY=-2MO",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=-1TU",  # 2028
    "FREQ=YEARLY;BYYEARDAY=59;BYMONTHDAY=-1",  # 28 February in a common year
    "FREQ=YEARLY;BYWEEKNO=1;BYMONTH=12",       # week 1 of 2030 begins on 30 December 2029
    "FREQ=YEARLY;BYWEEKNO=53;BYMONTH=1",       # 1-3 January 2027 are in week 53 of 2026
    "FREQ=YEARLY;BYWEEKNO=-1;BYMONTH=1",
    "FREQ=DAILY;INTERVAL=7;BYDAY=TU",
    "FREQ=DAILY;INTERVAL=6;BYDAY=MO",
    "FREQ=DAILY;INTERVAL=14;BYDAY=TU,WE",
    "FREQ=HOURLY;INTERVAL=5;BYDAY=MO;BYHOUR=9",
    "FREQ=HOURLY;INTERVAL=24;BYDAY=MO",
    "FREQ=HOURLY;INTERVAL=48;BYDAY=MO",
    "FREQ=HOURLY;INTERVAL=12;BYHOUR=21",
])
def test_rare_rules_next_to_impossible_ones_are_accepted(text):
    start = dt.datetime(2026, 3, 3, 9, tzinfo=BERLIN)  # a Tuesday
    began = time.perf_counter()
    series = series_of(start, text)
    assert time.perf_counter() - began < 0.5
    expected = _reference_first(text, start)
    assert expected, "the reference finds an occurrence"
    assert expand(series, start, expected[-1] + DAY)[:3] == expected


@pytest.mark.parametrize("text", [
    "FREQ=DAILY;UNTIL=20260302T235959Z",   # the day before the start
    "FREQ=DAILY;UNTIL=20260303T075959Z",   # one second before the start (08:00Z = 09:00 CET)
    "FREQ=DAILY;UNTIL=20260302",           # a date, before the start's date
    "FREQ=WEEKLY;BYDAY=FR;UNTIL=20260305", # the first Friday is after UNTIL
])
def test_until_before_the_first_occurrence_is_refused(text):
    with pytest.raises(RecurrenceError, match="no occurrence"):
        series_of(dt.datetime(2026, 3, 3, 9, tzinfo=BERLIN), text)


def test_until_exactly_at_the_start_keeps_one_occurrence():
    start = dt.datetime(2026, 3, 3, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY;UNTIL=20260303T080000Z")
    assert series.last_start == start
    assert expand(series, start - DAY, start + 30 * DAY) == [start]


def test_rare_but_possible_rules_are_accepted():
    start = dt.datetime(2036, 3, 4, 9, tzinfo=BERLIN)
    # February with five Mondays: a leap year whose February starts on a Monday (2044)
    series = series_of(start, "FREQ=YEARLY;BYMONTH=2;BYDAY=5MO")
    assert wall(expand(series, dt.datetime(2044, 1, 1, tzinfo=UTC), dt.datetime(2045, 1, 1, tzinfo=UTC))) == [
        ("2044-02-29", "09:00", 1.0)]
    # the 29th of February on a Monday: 2044 again
    series = series_of(start, "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO")
    assert expand(series, start, dt.datetime(2045, 1, 1, tzinfo=UTC))[0].date() == dt.date(2044, 2, 29)


def test_first_occurrence_more_than_10_years_away_is_refused():
    # February with five Mondays: next in 2044, 18 years after the start
    with pytest.raises(RecurrenceError, match="within 10 years"):
        series_of(dt.datetime(2026, 3, 3, 9, tzinfo=BERLIN), "FREQ=YEARLY;BYMONTH=2;BYDAY=5MO")


# -- the structured pattern ---------------------------------------------------------------

def test_pattern_to_rule_and_back():
    pattern = {"frequency": "weekly", "interval": 2, "by_weekday": ["mo", "WE"], "count": 10}
    parts = rule_from_pattern(pattern, BERLIN)
    assert format_rule(parts) == "FREQ=WEEKLY;INTERVAL=2;COUNT=10;BYDAY=MO,WE"
    assert pattern_from_rule(parts) == {"frequency": "weekly", "interval": 2, "by_weekday": ["MO", "WE"],
                                        "by_month_day": [], "count": 10, "until": None}


def test_pattern_interval_one_and_month_days():
    parts = rule_from_pattern({"frequency": "monthly", "interval": 1, "by_month_day": [1, -1]}, BERLIN)
    assert format_rule(parts) == "FREQ=MONTHLY;BYMONTHDAY=1,-1"
    assert pattern_from_rule(parts)["by_month_day"] == [1, -1]
    assert pattern_from_rule(parts)["interval"] == 1
    assert format_rule(rule_from_pattern({"frequency": "monthly", "by_month_day": 15}, BERLIN)) == \
        "FREQ=MONTHLY;BYMONTHDAY=15"


def test_pattern_until_datetime_and_date():
    until = dt.datetime(2026, 12, 31, 18, 0, tzinfo=offset(-5))
    parts = rule_from_pattern({"frequency": "daily", "until": until}, BERLIN)
    assert parts["UNTIL"] == "20261231T230000Z"
    assert pattern_from_rule(parts)["until"] == until
    assert pattern_from_rule(parts)["until"].tzinfo == UTC
    parts = rule_from_pattern({"frequency": "daily", "until": dt.date(2026, 7, 1)}, BERLIN)
    assert parts["UNTIL"] == "20260701T215959Z"  # the end of 1 July in Berlin


@pytest.mark.parametrize("pattern,words", [
    ({"frequency": "daily", "until": dt.datetime(2026, 12, 31, 18, 0)}, "offset"),
    ({"frequency": "minutely"}, "not supported"),
    ({"frequency": "sometimes"}, "not a frequency"),
    ({"frequency": "daily", "interval": 0}, "INTERVAL"),
    ({"frequency": "daily", "count": 3, "until": dt.date(2027, 1, 1)}, "COUNT and UNTIL"),
    ({"frequency": "weekly", "by_weekday": ["XX"]}, "BYDAY"),
    ({"frequency": "weekly", "by_month_day": [1]}, "BYMONTHDAY cannot be used"),
    ({"frequency": "monthly", "by_month_day": [32]}, "out of range"),
])
def test_bad_patterns_are_refused(pattern, words):
    with pytest.raises(RecurrenceError, match=words):
        rule_from_pattern(pattern, BERLIN)


@pytest.mark.parametrize("text", [
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1",
    "FREQ=YEARLY;BYMONTH=3",
    "FREQ=DAILY;BYHOUR=9,17",
    "FREQ=WEEKLY;WKST=SU",
])
def test_rules_no_pattern_describes(text):
    assert pattern_from_rule(parse_rule(text, BERLIN)) is None


# -- DST: wall-clock times kept in the event's zone ----------------------------------------

@pytest.mark.parametrize("tz,first,expected", [
    # Berlin: CET +01:00 until 29 March 2026, CEST +02:00 until 25 October 2026
    (BERLIN, dt.datetime(2026, 3, 16, 9), [
        ("2026-03-16", "09:00", 1.0), ("2026-03-23", "09:00", 1.0), ("2026-03-30", "09:00", 2.0),
        ("2026-04-06", "09:00", 2.0)]),
    (BERLIN, dt.datetime(2026, 10, 12, 9), [
        ("2026-10-12", "09:00", 2.0), ("2026-10-19", "09:00", 2.0), ("2026-10-26", "09:00", 1.0),
        ("2026-11-02", "09:00", 1.0)]),
    # New York: EST -05:00 until 8 March 2026, EDT -04:00 until 1 November 2026
    (NEW_YORK, dt.datetime(2026, 2, 23, 9), [
        ("2026-02-23", "09:00", -5.0), ("2026-03-02", "09:00", -5.0), ("2026-03-09", "09:00", -4.0),
        ("2026-03-16", "09:00", -4.0)]),
    (NEW_YORK, dt.datetime(2026, 10, 19, 9), [
        ("2026-10-19", "09:00", -4.0), ("2026-10-26", "09:00", -4.0), ("2026-11-02", "09:00", -5.0),
        ("2026-11-09", "09:00", -5.0)]),
])
def test_weekly_keeps_its_wall_clock_time_across_dst(tz, first, expected):
    start = first.replace(tzinfo=tz)
    series = series_of(start, "FREQ=WEEKLY", tz)
    got = expand(series, start, start + 28 * DAY)
    assert wall(got) == expected
    assert all(v.tzinfo == tz for v in got)
    # the UTC time moves by the change of offset
    assert got[2].astimezone(UTC).time() != got[1].astimezone(UTC).time()


def test_weekly_across_both_changes_in_one_window():
    start = dt.datetime(2026, 1, 5, 9, tzinfo=BERLIN)  # a Monday
    series = series_of(start, "FREQ=WEEKLY;BYDAY=MO", duration=dt.timedelta(minutes=15))
    got = expand(series, dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert len(got) == 52
    assert {v.strftime("%H:%M") for v in got} == {"09:00"}
    assert {v.utcoffset() / HOUR for v in got if dt.date(2026, 3, 29) < v.date() < dt.date(2026, 10, 25)} == {2.0}
    assert {v.utcoffset() / HOUR for v in got if not dt.date(2026, 3, 29) < v.date() < dt.date(2026, 10, 25)} == {1.0}


@pytest.mark.parametrize("tz,first,expected", [
    # 02:30 does not exist on 29 March 2026 in Berlin: the offset before the gap (+01:00)
    # makes it 01:30Z, which is 03:30+02:00
    (BERLIN, dt.datetime(2026, 3, 27, 2, 30), [
        ("2026-03-27", "02:30", 1.0), ("2026-03-28", "02:30", 1.0), ("2026-03-29", "03:30", 2.0),
        ("2026-03-30", "02:30", 2.0)]),
    (NEW_YORK, dt.datetime(2026, 3, 6, 2, 30), [
        ("2026-03-06", "02:30", -5.0), ("2026-03-07", "02:30", -5.0), ("2026-03-08", "03:30", -4.0),
        ("2026-03-09", "02:30", -4.0)]),
    # Lord Howe moves by half an hour (02:00 -> 02:30 on 4 October 2026)
    (LORD_HOWE, dt.datetime(2026, 10, 2, 2, 15), [
        ("2026-10-02", "02:15", 10.5), ("2026-10-03", "02:15", 10.5), ("2026-10-04", "02:45", 11.0),
        ("2026-10-05", "02:15", 11.0)]),
])
def test_time_in_the_spring_gap_moves_forward(tz, first, expected):
    start = first.replace(tzinfo=tz)
    series = series_of(start, "FREQ=DAILY", tz)
    assert wall(expand(series, start, start + 4 * DAY - HOUR)) == expected


def test_gap_time_on_the_first_day():
    """DTSTART given as the instant of 03:30+02:00 (the only real 03:30 on the day)."""
    start = dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    series = series_of(start, "FREQ=YEARLY;COUNT=2")
    assert wall(expand(series, start - DAY, start + 400 * DAY)) == [
        ("2026-03-29", "03:30", 2.0), ("2027-03-29", "03:30", 2.0)]


@pytest.mark.parametrize("tz,first,ambiguous_utc", [
    # 02:30 happens twice on 25 October 2026 in Berlin: first at +02:00 (00:30Z)
    (BERLIN, dt.datetime(2026, 10, 23, 2, 30), dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    # 01:30 happens twice on 1 November 2026 in New York: first at -04:00 (05:30Z)
    (NEW_YORK, dt.datetime(2026, 10, 30, 1, 30), dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    # 01:45 happens twice on 5 April 2026 at Lord Howe: first at +11:00 (14:45Z)
    (LORD_HOWE, dt.datetime(2026, 4, 3, 1, 45), dt.datetime(2026, 4, 4, 14, 45, tzinfo=UTC)),
])
def test_ambiguous_time_takes_the_first_instance(tz, first, ambiguous_utc):
    start = first.replace(tzinfo=tz)
    series = series_of(start, "FREQ=DAILY", tz, duration=dt.timedelta(minutes=10))
    got = expand(series, start, start + 4 * DAY - HOUR)
    assert len(got) == 4
    assert {v.strftime("%H:%M") for v in got} == {first.strftime("%H:%M")}
    assert got[2].astimezone(UTC) == ambiguous_utc
    assert got[2].fold == 0
    # a window covering only the second instance finds nothing
    second = ambiguous_utc + (got[2].utcoffset() - got[3].utcoffset())
    assert second - ambiguous_utc in (HOUR, dt.timedelta(minutes=30))
    assert expand(series, second, second + dt.timedelta(minutes=5)) == []


@pytest.mark.parametrize("tz,day,hours_utc", [
    # daily at 09:00 local, one day before, on and after each change
    (BERLIN, dt.date(2026, 3, 28), [8, 7, 7]),
    (BERLIN, dt.date(2026, 10, 24), [7, 8, 8]),
    (NEW_YORK, dt.date(2026, 3, 7), [14, 13, 13]),
    (NEW_YORK, dt.date(2026, 10, 31), [13, 14, 14]),
])
def test_daily_across_the_change(tz, day, hours_utc):
    start = dt.datetime.combine(day - dt.timedelta(days=20), dt.time(9), tzinfo=tz)
    series = series_of(start, "FREQ=DAILY", tz)
    window_start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    got = expand(series, window_start, window_start + 3 * DAY)
    assert [v.astimezone(UTC).hour for v in got] == hours_utc
    assert {v.hour for v in got} == {9}


def test_gap_time_earlier_on_the_wall_clock_than_the_window():
    # 02:30 (in the gap) becomes 03:30+02:00 = 01:30Z: inside a window that begins at
    # 03:15+02:00 although 02:30 is earlier on the wall clock, and earlier than the
    # rule's time of day (03:00) from which the expansion may restart.
    series = series_of(dt.datetime(2026, 3, 20, 3, 0, tzinfo=BERLIN), "FREQ=DAILY;BYHOUR=2,4;BYMINUTE=30",
                       duration=dt.timedelta(minutes=10))
    got = expand(series, dt.datetime(2026, 3, 29, 1, 15, tzinfo=UTC), dt.datetime(2026, 3, 29, 1, 45, tzinfo=UTC))
    assert wall(got) == [("2026-03-29", "03:30", 2.0)]


def test_gap_time_later_on_the_wall_clock_but_earlier_in_time():
    # Lord Howe, 4 October 2026: 02:00 -> 02:30. 02:20 (in the gap) is 15:50Z, 02:40 is
    # 15:40Z: the walk meets them in wall-clock order, 02:20 first, and must not stop there.
    series = series_of(dt.datetime(2026, 9, 30, 2, 20, tzinfo=LORD_HOWE), "FREQ=DAILY;BYHOUR=2;BYMINUTE=20,40",
                       LORD_HOWE, duration=dt.timedelta(minutes=1))
    got = expand(series, dt.datetime(2026, 10, 3, 15, 30, tzinfo=UTC), dt.datetime(2026, 10, 3, 15, 45, tzinfo=UTC))
    assert wall(got) == [("2026-10-04", "02:40", 11.0)]
    got = expand(series, dt.datetime(2026, 10, 3, 15, 30, tzinfo=UTC), dt.datetime(2026, 10, 3, 16, 0, tzinfo=UTC))
    assert wall(got) == [("2026-10-04", "02:40", 11.0), ("2026-10-04", "02:50", 11.0)]


def test_hourly_across_the_changes():
    start = dt.datetime(2026, 3, 28, 0, 0, tzinfo=BERLIN)
    series = series_of(start, "FREQ=HOURLY", duration=dt.timedelta(minutes=30))
    got = expand(series, dt.datetime(2026, 3, 29, 0, tzinfo=UTC), dt.datetime(2026, 3, 29, 3, tzinfo=UTC))
    # 01:00 CET, then 02:00 (does not exist: 01:00Z = 03:00 CEST, once), 03:00, 04:00
    assert [v.strftime("%H:%M%z") for v in got] == ["01:00+0100", "03:00+0200", "04:00+0200"]
    start = dt.datetime(2026, 10, 24, 0, 0, tzinfo=BERLIN)
    series = series_of(start, "FREQ=HOURLY", duration=dt.timedelta(minutes=30))
    got = expand(series, dt.datetime(2026, 10, 24, 23, tzinfo=UTC), dt.datetime(2026, 10, 25, 3, tzinfo=UTC))
    # wall-clock hours: 02:00 is taken once, at its first instance
    assert [v.strftime("%H:%M%z") for v in got] == ["01:00+0200", "02:00+0200", "03:00+0100"]


# -- calendar corner cases ----------------------------------------------------------------

def test_29_february_yearly_only_in_leap_years():
    start = dt.datetime(2096, 2, 29, 12, tzinfo=BERLIN)
    series = series_of(start, "FREQ=YEARLY")
    got = expand(series, start - DAY, dt.datetime(2114, 1, 1, tzinfo=UTC))
    assert [v.date() for v in got] == [dt.date(y, 2, 29) for y in (2096, 2104, 2108, 2112)]  # 2100: not leap
    # and from a start in a common year
    series = series_of(dt.datetime(2023, 1, 10, 12, tzinfo=BERLIN), "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29")
    got = expand(series, dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2033, 1, 1, tzinfo=UTC))
    assert [v.date() for v in got] == [dt.date(y, 2, 29) for y in (2024, 2028, 2032)]


def test_29_february_yearly_window_far_away():
    series = series_of(dt.datetime(2024, 2, 29, 12, tzinfo=BERLIN), "FREQ=YEARLY")
    got = expand(series, dt.datetime(2095, 6, 1, tzinfo=UTC), dt.datetime(2097, 6, 1, tzinfo=UTC))
    assert [v.date() for v in got] == [dt.date(2096, 2, 29)]
    assert expand(series, dt.datetime(2099, 6, 1, tzinfo=UTC), dt.datetime(2101, 6, 1, tzinfo=UTC)) == []


def test_monthly_on_the_31st():
    start = dt.datetime(2026, 1, 31, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=MONTHLY")
    got = expand(series, start, dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert [v.month for v in got] == [1, 3, 5, 7, 8, 10, 12]
    assert {v.day for v in got} == {31}
    # far from DTSTART too: 2036
    got = expand(series, dt.datetime(2036, 1, 1, tzinfo=UTC), dt.datetime(2037, 1, 1, tzinfo=UTC))
    assert [v.month for v in got] == [1, 3, 5, 7, 8, 10, 12]


def test_last_day_of_each_month():
    start = dt.datetime(2027, 1, 31, 18, tzinfo=NEW_YORK)
    series = series_of(start, "FREQ=MONTHLY;BYMONTHDAY=-1", NEW_YORK)
    got = expand(series, start, dt.datetime(2028, 4, 1, tzinfo=UTC))
    assert [v.date().isoformat() for v in got] == [
        "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31", "2027-06-30", "2027-07-31",
        "2027-08-31", "2027-09-30", "2027-10-31", "2027-11-30", "2027-12-31", "2028-01-31",
        "2028-02-29", "2028-03-31"]
    assert {v.hour for v in got} == {18}


def test_last_friday_of_each_month():
    start = dt.datetime(2026, 1, 30, 16, tzinfo=BERLIN)
    series = series_of(start, "FREQ=MONTHLY;BYDAY=-1FR")
    got = expand(series, start, dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert [v.date().isoformat() for v in got] == [
        "2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24", "2026-05-29", "2026-06-26",
        "2026-07-31", "2026-08-28", "2026-09-25", "2026-10-30", "2026-11-27", "2026-12-25"]
    got = expand(series, dt.datetime(2040, 1, 1, tzinfo=UTC), dt.datetime(2040, 4, 1, tzinfo=UTC))
    assert [v.date().isoformat() for v in got] == ["2040-01-27", "2040-02-24", "2040-03-30"]


def test_bysetpos_last_weekday_of_the_month():
    start = dt.datetime(2026, 1, 30, 17, tzinfo=BERLIN)
    series = series_of(start, "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1")
    got = expand(series, start, dt.datetime(2026, 7, 1, tzinfo=UTC))
    assert [v.date().isoformat() for v in got] == [
        "2026-01-30", "2026-02-27", "2026-03-31", "2026-04-30", "2026-05-29", "2026-06-30"]
    got = expand(series, dt.datetime(2031, 5, 1, tzinfo=UTC), dt.datetime(2031, 9, 1, tzinfo=UTC))
    assert [v.date().isoformat() for v in got] == ["2031-05-30", "2031-06-30", "2031-07-31", "2031-08-29"]


def test_bysetpos_second_and_last():
    # the 2nd and the last of Tuesdays and Thursdays, every other month
    start = dt.datetime(2026, 1, 1, 10, tzinfo=ZULU)
    series = series_of(start, "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU,TH;BYSETPOS=2,-1", ZULU)
    got = expand(series, start, dt.datetime(2026, 7, 1, tzinfo=UTC))
    assert [v.date().isoformat() for v in got] == [
        "2026-01-06", "2026-01-29", "2026-03-05", "2026-03-31", "2026-05-07", "2026-05-28"]


def test_yearly_nth_weekday():
    # US Thanksgiving: the 4th Thursday of November
    start = dt.datetime(2026, 11, 26, 15, tzinfo=NEW_YORK)
    series = series_of(start, "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", NEW_YORK)
    got = expand(series, dt.datetime(2030, 1, 1, tzinfo=UTC), dt.datetime(2031, 12, 31, tzinfo=UTC))
    assert [v.date().isoformat() for v in got] == ["2030-11-28", "2031-11-27"]


# -- EXDATE and RDATE -----------------------------------------------------------------------

def test_exdate_removes_an_occurrence_named_with_any_offset():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)  # a Monday, CEST
    exdates = [dt.datetime(2026, 5, 11, 7, tzinfo=UTC),                    # 09:00+02:00
               dt.datetime(2026, 5, 18, 12, 30, tzinfo=offset(5.5)),       # 09:00+02:00
               dt.datetime(2026, 5, 25, 9, tzinfo=BERLIN),
               dt.datetime(2026, 6, 1, 9, 0, 1, tzinfo=BERLIN)]            # not an occurrence: no effect
    series = series_of(start, "FREQ=WEEKLY", exdates=exdates)
    got = expand(series, start, start + 35 * DAY)
    assert [v.date().isoformat() for v in got] == ["2026-05-04", "2026-06-01"]


def test_exdate_of_a_gap_shifted_occurrence():
    start = dt.datetime(2026, 3, 27, 2, 30, tzinfo=BERLIN)
    # the 29 March occurrence is 03:30+02:00; 02:30+01:00 names the same instant
    series = series_of(start, "FREQ=DAILY", exdates=[dt.datetime(2026, 3, 29, 2, 30, tzinfo=offset(1))])
    assert wall(expand(series, start, start + 4 * DAY - HOUR)) == [
        ("2026-03-27", "02:30", 1.0), ("2026-03-28", "02:30", 1.0), ("2026-03-30", "02:30", 2.0)]


def test_rdate_adds_an_occurrence():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    extra = dt.datetime(2026, 5, 6, 14, tzinfo=NEW_YORK)        # 20:00 in Berlin
    same = dt.datetime(2026, 5, 11, 7, tzinfo=UTC)              # an occurrence already
    series = series_of(start, "FREQ=WEEKLY;COUNT=3", rdates=[extra, same])
    got = expand(series, start - DAY, start + 60 * DAY)
    assert utc(got) == utc([start, extra, same, start + 14 * DAY])
    assert got[1] == extra and got[1].tzinfo == BERLIN and got[1].hour == 20
    assert series.envelope() == (start, start + 14 * DAY + HOUR)


def test_rdate_outside_the_rule_and_before_the_start():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    before = dt.datetime(2026, 4, 1, 9, tzinfo=BERLIN)
    after = dt.datetime(2027, 1, 1, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY;COUNT=2", rdates=[after, before])
    assert utc(expand(series, before - DAY, after + DAY)) == utc([before, start, start + DAY, after])
    first, last = series.envelope()
    assert first == before and last == after + HOUR


def test_exdate_also_removes_an_rdate():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    extra = dt.datetime(2026, 5, 6, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=WEEKLY;COUNT=2", rdates=[extra], exdates=[extra.astimezone(UTC)])
    assert expand(series, start, start + 30 * DAY) == [start, start + 7 * DAY]


def test_count_counts_before_exdate():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY;COUNT=5", exdates=[start + 2 * DAY, start + 4 * DAY])
    got = expand(series, start - DAY, start + 30 * DAY)
    assert got == [start, start + DAY, start + 3 * DAY]
    assert series.last_start == start + 4 * DAY  # the envelope does not shrink
    assert series.envelope() == (start, start + 4 * DAY + HOUR)


def test_single_event_with_exdate_and_rdate():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    other = start + 3 * DAY
    assert expand(series_of(start, None), start - DAY, start + DAY) == [start]
    assert expand(series_of(start, None, exdates=[start]), start - DAY, start + DAY) == []
    assert expand(series_of(start, None, rdates=[other]), start - DAY, other + DAY) == [start, other]


# -- window semantics -----------------------------------------------------------------------

def test_partly_overlapping_occurrences_are_included():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY", duration=2 * HOUR)  # 09:00-11:00 each day
    day = start + 10 * DAY
    assert expand(series, day + HOUR, day + dt.timedelta(minutes=61)) == [day]  # inside
    assert expand(series, day - HOUR, day + dt.timedelta(seconds=1)) == [day]   # starts near the end
    assert expand(series, day + 2 * HOUR - dt.timedelta(seconds=1), day + 5 * HOUR) == [day]  # ends near the start
    assert expand(series, day - HOUR, day + 5 * HOUR) == [day]  # covered


def test_back_to_back_is_not_an_overlap():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY", duration=2 * HOUR)
    day = start + 10 * DAY
    assert expand(series, day + 2 * HOUR, day + 5 * HOUR) == []   # one ends at the window's start
    assert expand(series, day - 3 * HOUR, day) == []               # one starts at the window's end
    assert expand(series, day + 2 * HOUR, day + DAY) == []         # between two
    assert expand(series, day + 2 * HOUR, day + DAY + dt.timedelta(seconds=1)) == [day + DAY]
    # the same with the window in another zone
    assert expand(series, (day + 2 * HOUR).astimezone(offset(-7)), (day + DAY).astimezone(offset(9))) == []


def test_window_before_the_start_and_after_the_end():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY;COUNT=3")
    assert expand(series, start - 30 * DAY, start) == []
    assert expand(series, start - 30 * DAY, start + dt.timedelta(seconds=1)) == [start]
    assert expand(series, start + 2 * DAY + HOUR, start + 400 * DAY) == []
    assert expand(series, start + 2 * DAY + HOUR - dt.timedelta(seconds=1), start + 400 * DAY) == [start + 2 * DAY]


def test_occurrences_longer_than_the_period_overlap_the_window():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY", duration=dt.timedelta(days=3, hours=1))
    day = start + 100 * DAY
    # occurrences that began up to 3 days earlier still overlap
    assert expand(series, day, day + HOUR) == [day - 3 * DAY, day - 2 * DAY, day - DAY, day]


def test_duration_is_real_time_across_spring_forward():
    # 01:30 CET on 29 March 2026 is 00:30Z; two hours later it is 02:30Z (04:30 CEST)
    start = dt.datetime(2026, 3, 27, 1, 30, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY", duration=2 * HOUR)
    day = dt.datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)
    assert expand(series, dt.datetime(2026, 3, 29, 1, 45, tzinfo=UTC), dt.datetime(2026, 3, 29, 2, tzinfo=UTC)) == [day]
    assert expand(series, dt.datetime(2026, 3, 29, 2, 30, tzinfo=UTC), dt.datetime(2026, 3, 29, 3, tzinfo=UTC)) == []
    # the same with the window in the event's zone
    assert expand(series, dt.datetime(2026, 3, 29, 3, 45, tzinfo=BERLIN),
                  dt.datetime(2026, 3, 29, 4, tzinfo=BERLIN)) == [day]


def test_duration_is_real_time_across_fall_back():
    # 01:30 CEST on 25 October 2026 is 23:30Z the day before; two hours later it is 01:30Z
    start = dt.datetime(2026, 10, 23, 1, 30, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY", duration=2 * HOUR)
    day = dt.datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN)
    end = dt.datetime(2026, 10, 25, 2, tzinfo=UTC)
    assert expand(series, dt.datetime(2026, 10, 25, 1, 15, tzinfo=UTC), end) == [day]
    assert expand(series, dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC), end) == []


def test_limit():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY")
    window = (start, start + 10 * DAY)
    assert len(expand(series, *window, limit=10)) == 10
    with pytest.raises(RecurrenceError, match="more than 9 occurrences.*shorter window"):
        expand(series, *window, limit=9)
    # the default limit: 5,000
    hourly = series_of(start, "FREQ=HOURLY", duration=dt.timedelta(minutes=5))
    assert len(expand(hourly, start, start + 5000 * HOUR)) == 5000
    with pytest.raises(RecurrenceError, match="5000"):
        expand(hourly, start, start + 5001 * HOUR)


def test_limit_counts_what_is_returned():
    start = dt.datetime(2026, 5, 4, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY", exdates=[start + DAY], rdates=[start + dt.timedelta(hours=5)])
    window = (start, start + 10 * DAY)
    assert len(expand(series, *window, limit=10)) == 10  # 10 - 1 exdate + 1 rdate
    with pytest.raises(RecurrenceError):
        expand(series, *window, limit=9)
    series = series_of(start, "FREQ=DAILY", exdates=[start + DAY])
    assert len(expand(series, *window, limit=9)) == 9


def test_check_window():
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    check_window(start, start + dt.timedelta(seconds=1))
    check_window(start, start + dt.timedelta(days=731))
    check_window(start.astimezone(offset(-10)), start + dt.timedelta(days=731))
    with pytest.raises(RecurrenceError, match="after its start"):
        check_window(start, start)
    with pytest.raises(RecurrenceError, match="after its start"):
        check_window(start, start - DAY)
    with pytest.raises(RecurrenceError, match="2 years"):
        check_window(start, start + dt.timedelta(days=731, seconds=1))
    with pytest.raises(RecurrenceError, match="2 years"):
        check_window(start, start + dt.timedelta(days=3650))


# -- last_start and envelope ----------------------------------------------------------------

def test_count_last_start_and_envelope():
    start = dt.datetime(2026, 3, 2, 9, tzinfo=BERLIN)  # a Monday
    series = series_of(start, "FREQ=WEEKLY;BYDAY=MO,FR;COUNT=10", duration=dt.timedelta(minutes=45))
    assert series.bounded
    assert series.last_start == dt.datetime(2026, 4, 3, 9, tzinfo=BERLIN)  # CEST by then
    assert series.last_start.tzinfo == BERLIN
    assert series.envelope() == (start, dt.datetime(2026, 4, 3, 9, 45, tzinfo=BERLIN))
    got = expand(series, start - DAY, start + 365 * DAY)
    assert len(got) == 10 and got[-1] == series.last_start


def test_count_far_from_the_start():
    start = dt.datetime(2026, 1, 1, 8, tzinfo=NEW_YORK)
    series = series_of(start, "FREQ=DAILY;COUNT=10000", NEW_YORK)
    last = dt.datetime(2026, 1, 1, 8, tzinfo=NEW_YORK) + dt.timedelta(days=9999)
    assert series.last_start == last.astimezone(UTC).astimezone(NEW_YORK)
    got = expand(series, last - 3 * DAY + HOUR, last + 30 * DAY)  # the one at last - 3 days ends at the start
    assert [v.date() for v in got] == [(last - 2 * DAY).date(), (last - DAY).date(), last.date()]
    assert {v.hour for v in got} == {8}


def test_until_last_start_and_envelope():
    start = dt.datetime(2026, 3, 2, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=WEEKLY;UNTIL=20260330T070000Z")  # exactly 09:00 CEST, a Monday
    assert series.last_start == dt.datetime(2026, 3, 30, 9, tzinfo=BERLIN)
    assert series.envelope() == (start, dt.datetime(2026, 3, 30, 10, tzinfo=BERLIN))
    series = series_of(start, "FREQ=WEEKLY;UNTIL=20260330T065959Z")  # a second before
    assert series.last_start == dt.datetime(2026, 3, 23, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=WEEKLY;UNTIL=20260330")  # a local date: that whole day
    assert series.last_start == dt.datetime(2026, 3, 30, 9, tzinfo=BERLIN)


def test_until_far_away_and_sparse():
    start = dt.datetime(2026, 3, 3, 9, tzinfo=BERLIN)
    began = time.perf_counter()
    series = series_of(start, "FREQ=DAILY;BYMONTH=1;UNTIL=20990601")
    assert series.last_start == dt.datetime(2099, 1, 31, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=WEEKLY;BYDAY=MO,TU;UNTIL=20460304")  # a Sunday
    assert series.last_start == dt.datetime(2046, 2, 27, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;UNTIL=99991231")
    assert series.last_start == dt.datetime(9996, 2, 29, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY;BYMONTH=1;UNTIL=99990601")
    assert series.last_start == dt.datetime(9999, 1, 31, 9, tzinfo=BERLIN)
    assert time.perf_counter() - began < 0.5


def test_unbounded_envelope():
    start = dt.datetime(2026, 3, 2, 9, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY")
    assert not series.bounded
    assert series.last_start is None
    assert series.envelope() == (start, None)
    early = start - 10 * DAY
    assert series_of(start, "FREQ=DAILY", rdates=[early]).envelope() == (early, None)


def test_single_event_envelope():
    start = dt.datetime(2026, 3, 2, 9, tzinfo=BERLIN)
    series = series_of(start, None, duration=dt.timedelta(minutes=30))
    assert series.bounded
    assert series.envelope() == (start, start + dt.timedelta(minutes=30))


def test_envelope_end_is_real_time_across_dst():
    # the last occurrence starts at 01:30 CET on 29 March 2026 (00:30Z) and lasts 2 hours
    start = dt.datetime(2026, 3, 27, 1, 30, tzinfo=BERLIN)
    for series in (series_of(start, "FREQ=DAILY;COUNT=3", duration=2 * HOUR),
                   series_of(start, "FREQ=DAILY;UNTIL=20260329T003000Z", duration=2 * HOUR),
                   series_of(start + 2 * DAY, None, duration=2 * HOUR)):
        assert series.envelope()[1] == dt.datetime(2026, 3, 29, 2, 30, tzinfo=UTC)


# -- DTSTART is always the first occurrence --------------------------------------------------

def test_start_at_the_second_instance_of_an_ambiguous_time():
    # 02:30+01:00 on 25 October 2026 is the second 02:30 in Berlin (01:30Z)
    start = dt.datetime(2026, 10, 25, 2, 30, tzinfo=offset(1))
    series = series_of(start, "FREQ=WEEKLY;COUNT=3")
    got = expand(series, start - DAY, start + 30 * DAY)
    assert utc(got) == utc([start, dt.datetime(2026, 11, 1, 2, 30, tzinfo=BERLIN),
                            dt.datetime(2026, 11, 8, 2, 30, tzinfo=BERLIN)])
    assert series.envelope()[0] == start


def test_start_with_microseconds():
    start = dt.datetime(2026, 5, 4, 9, 0, 0, 500000, tzinfo=BERLIN)
    series = series_of(start, "FREQ=DAILY;COUNT=3")
    got = expand(series, start - DAY, start + 30 * DAY)
    assert len(got) == 3
    assert got[0] == start


# -- the brute-force reference ----------------------------------------------------------------

ZONES = [ZULU, BERLIN, NEW_YORK, LORD_HOWE, KOLKATA]
WEEKDAY_CODES = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def reference(start: dt.datetime, duration: dt.timedelta, tz: ZoneInfo, parts: dict[str, str],
              window_start: dt.datetime, window_end: dt.datetime) -> list[dt.datetime]:
    """Every occurrence of dateutil's own rule walked from DTSTART, as a real instant in
    `tz`, that starts no earlier than the series and overlaps the window."""
    stop = window_end.astimezone(tz).replace(tzinfo=None) + DAY  # the walk is in wall-clock order
    first, low, high = start.astimezone(UTC), window_start.astimezone(UTC), window_end.astimezone(UTC)
    found = set()
    wall_start = start.astimezone(tz).replace(tzinfo=None)
    for value in du.rrulestr(format_rule(parts), dtstart=start.astimezone(tz)):
        if value.replace(tzinfo=None) > stop:
            break
        # DTSTART is the first occurrence as given: dateutil drops its fold (the second 01:30
        # of a night the clocks fall back), every other ambiguous time takes its first instance
        instant = first if value.replace(tzinfo=None) == wall_start else value.astimezone(UTC)
        if first <= instant < high and instant + duration > low:
            found.add(instant)
    return [v.astimezone(tz) for v in sorted(found)]


def reference_last(start: dt.datetime, tz: ZoneInfo, parts: dict[str, str]) -> dt.datetime:
    *_, last = du.rrulestr(format_rule(parts), dtstart=start.astimezone(tz))
    return last.astimezone(UTC).astimezone(tz)


def reference_first(start: dt.datetime, tz: ZoneInfo, parts: dict[str, str], horizon: dt.datetime):
    """The first occurrence no later than `horizon` (None: none)."""
    unbounded = {k: v for k, v in parts.items() if k not in ("COUNT", "UNTIL")}
    text = format_rule(unbounded) + ";UNTIL=" + horizon.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        rule = du.rrulestr(text, dtstart=start.astimezone(tz))
    except ValueError as exc:  # dateutil finds that BYHOUR and INTERVAL never meet
        assert "empty set" in str(exc)
        return None
    return next(iter(rule), None)


@st.composite
def rules(draw):
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY"]))
    pieces = [f"FREQ={freq}"]
    interval = draw(st.integers(1, 5))
    if interval > 1:
        pieces.append(f"INTERVAL={interval}")
    if draw(st.integers(0, 2)) == 0:
        if freq in ("MONTHLY", "YEARLY") and draw(st.booleans()):
            ordinal = draw(st.sampled_from([1, 2, 3, 4, -1, -2]))
            days = [f"{ordinal}{draw(st.sampled_from(WEEKDAY_CODES))}"]
        else:
            days = draw(st.lists(st.sampled_from(WEEKDAY_CODES), min_size=1, max_size=4, unique=True))
        pieces.append("BYDAY=" + ",".join(days))
    if freq != "WEEKLY" and draw(st.integers(0, 3)) == 0:
        days = draw(st.lists(st.sampled_from([1, 2, 10, 15, 28, 29, 30, 31, -1, -2]), min_size=1, max_size=3,
                             unique=True))
        pieces.append("BYMONTHDAY=" + ",".join(map(str, days)))
    if draw(st.integers(0, 3)) == 0:
        months = draw(st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True))
        pieces.append("BYMONTH=" + ",".join(map(str, months)))
    if freq in ("DAILY", "HOURLY") and draw(st.integers(0, 4)) == 0:
        hours = draw(st.lists(st.integers(0, 23), min_size=1, max_size=3, unique=True))
        pieces.append("BYHOUR=" + ",".join(map(str, hours)))
    if freq in ("MONTHLY", "YEARLY") and "BYDAY=" in ";".join(pieces) and draw(st.integers(0, 4)) == 0:
        pieces.append(f"BYSETPOS={draw(st.sampled_from([1, 2, -1]))}")
    if draw(st.integers(0, 2)) == 0:
        pieces.append("WKST=" + draw(st.sampled_from(["MO", "SU", "WE"])))
    bound = draw(st.sampled_from(["none", "count", "until"]))
    return pieces, bound


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), rule=rules(), tz=st.sampled_from(ZONES),
       local=st.datetimes(min_value=dt.datetime(1985, 1, 1), max_value=dt.datetime(2045, 12, 31)),
       minutes=st.integers(1, 3 * 24 * 60))
def test_expansion_matches_a_walk_from_dtstart(data, rule, tz, local, minutes):
    pieces, bound = rule
    freq = pieces[0][5:]
    local = local.replace(second=0, microsecond=0)
    # the wall-clock start taken like the rule's times: a gap time moves forward
    start = local.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    duration = dt.timedelta(minutes=minutes)
    horizon_years = 2 if freq == "HOURLY" else 30  # an hourly walk from DTSTART is long
    if bound == "count":
        pieces.append(f"COUNT={data.draw(st.integers(1, 60), label='count')}")
    elif bound == "until":
        days = data.draw(st.integers(0, 365 * min(horizon_years, 20)), label="until_days")
        until = start + dt.timedelta(days=days, minutes=data.draw(st.integers(-60, 24 * 60), label="until_min"))
        pieces.append("UNTIL=" + until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
    try:
        parts = parse_rule(";".join(pieces), tz)
    except RecurrenceError as exc:
        assert "no occurrence" in str(exc) or "ordinal" in str(exc) or "at most 5" in str(exc), exc
        assume(False)
    stored = format_rule(parts)  # what the service stores and later reads back with stored_parts
    assert stored_parts(stored) == parse_rule(stored, tz) == parts
    try:
        series = prepare(start, duration, tz, parts)
    except RecurrenceError as exc:
        if "is not reached within 100 years" in str(exc):
            # refused: the COUNT-th occurrence really lies past 100 years (or never comes)
            walked = list(du.rrulestr(format_rule(parts), dtstart=start.astimezone(tz)))
            limit = start.astimezone(tz) + relativedelta(years=100)
            assert len(walked) < int(parts["COUNT"]) or walked[-1] > limit, format_rule(parts)
            assume(False)
        # refused: really no occurrence within 10 years (or by UNTIL)
        horizon = min(start.astimezone(tz) + dt.timedelta(days=3650),
                      dt.datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                      if "UNTIL" in parts else dt.datetime.max.replace(tzinfo=UTC) - dt.timedelta(days=2))
        assert "no occurrence" in str(exc) or "empty set" in str(exc), exc
        if "no occurrence" in str(exc):
            first = reference_first(start, tz, parts, horizon)
            assert first is None or first.astimezone(UTC).astimezone(tz) < start, (format_rule(parts), first)
        assume(False)
    if "COUNT" in parts or "UNTIL" in parts:
        assert series.last_start.astimezone(UTC) == reference_last(start, tz, parts).astimezone(UTC)
        assert series.last_start.tzinfo == tz
        assert series.envelope() == (start, series.last_start.astimezone(UTC) + duration)
    else:
        assert series.last_start is None and series.envelope() == (start, None)

    # windows anywhere from before the start to 30 years after (2 for HOURLY), and often
    # near the start or the end, where a bounded rule's occurrences are
    anchor = data.draw(st.sampled_from(["start", "anywhere", "end"]), label="window_anchor")
    if anchor == "start" or (anchor == "end" and series.last_start is None):
        low, high, origin = -60, 400, start
    elif anchor == "end":
        low, high, origin = -60, 10, series.last_start
    else:
        low, high, origin = -60, horizon_years * 365, start
    offset_minutes = data.draw(st.integers(low * 24 * 60, high * 24 * 60), label="window_offset")
    length_minutes = max(1, data.draw(st.integers(0, 60), label="window_days") * 24 * 60
                         + data.draw(st.integers(0, 24 * 60 - 1), label="window_minutes"))
    window_zone = data.draw(st.sampled_from([UTC, tz, offset(-3.5)]), label="window_zone")
    window_start = (origin + dt.timedelta(minutes=offset_minutes)).astimezone(window_zone)
    window_end = window_start + dt.timedelta(minutes=length_minutes)

    expected = reference(start, duration, tz, parts, window_start, window_end)
    got = occurrence_starts(series, window_start, window_end)
    event(f"{freq}: {'no' if not expected else 'some'} occurrences in the window")
    assert utc(got) == utc(expected), format_rule(parts)
    assert got == expected
    assert all(v.tzinfo == tz for v in got)

    # EXDATEs (named in UTC) take out exactly those occurrences
    if expected:
        removed = data.draw(st.lists(st.sampled_from(expected), max_size=3, unique=True), label="exdates")
        with_exdates = prepare(start, duration, tz, parts, exdates=[v.astimezone(UTC) for v in removed])
        assert occurrence_starts(with_exdates, window_start, window_end) == [v for v in expected if v not in removed]


# -- expansion does not walk from DTSTART -----------------------------------------------------

@pytest.mark.parametrize("rule", ["FREQ=DAILY", "FREQ=DAILY;COUNT=10000", "FREQ=WEEKLY;BYDAY=MO,WE,FR",
                                  "FREQ=HOURLY;INTERVAL=3"])
def test_far_windows_walk_no_further_than_near_ones(rule):
    """The rule a window is expanded with starts shortly before it: the occurrences dateutil
    walks through before reaching a window ten years on are as few as for one two weeks on
    (walking from DTSTART they would be ~3,650 daily or ~29,000 three-hourly ones). Counted,
    not timed: a count does not depend on how busy the machine is."""
    start = dt.datetime(2026, 1, 5, 9, tzinfo=BERLIN)
    series = series_of(start, rule)

    def walked(window_start: dt.datetime) -> int:
        lower = window_start.astimezone(UTC) - series.reach
        expansion = recurrence_module._expansion_rule(series, lower)
        first = next(iter(expansion))
        return len(expansion.between(first, lower.astimezone(series.tz), inc=True))

    near, far = walked(start + 14 * DAY), walked(start + 3650 * DAY)
    assert far <= max(near, 1) * 3 and far < 30, (near, far)
    assert len(occurrence_starts(series, start + 3650 * DAY, start + 3657 * DAY)) > 0


# -- the quick refusals are exact ------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(freq=st.sampled_from(["DAILY", "HOURLY"]), interval=st.integers(1, 400),
       weekdays=st.lists(st.sampled_from(WEEKDAY_CODES), max_size=3, unique=True),
       hours=st.lists(st.integers(0, 23), max_size=3, unique=True), tz=st.sampled_from(ZONES),
       local=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 12, 31)))
def test_interval_reachability_refusal_is_exact(freq, interval, weekdays, hours, tz, local):
    if freq == "DAILY":
        hours = []  # BYHOUR adds times to a day reached; it does not limit the days
    assume(weekdays or hours)
    pieces = [f"FREQ={freq}", f"INTERVAL={interval}"]
    if weekdays:
        pieces.append("BYDAY=" + ",".join(weekdays))
    if hours:
        pieces.append("BYHOUR=" + ",".join(map(str, hours)))
    start = local.replace(second=0, microsecond=0, tzinfo=tz).astimezone(UTC).astimezone(tz)
    # dateutil counts INTERVAL on the wall clock; 168 steps reach every hour of the week
    # there is to reach (and within 10 years, for these intervals)
    step = dt.timedelta(days=interval) if freq == "DAILY" else dt.timedelta(hours=interval)
    days = {WEEKDAY_CODES.index(d) for d in weekdays} or set(range(7))
    wall_start = start.replace(tzinfo=None)
    reachable = any((wall_start + step * n).weekday() in days and (not hours or (wall_start + step * n).hour in hours)
                    for n in range(168))
    event("reachable" if reachable else "never reached")
    try:
        prepare(start, HOUR, tz, parse_rule(";".join(pieces), tz))
    except RecurrenceError as exc:
        assert not reachable, (pieces, start, str(exc))
        assert "no occurrence" in str(exc)
    else:
        assert reachable, (pieces, start)


def _month_shapes(months: list[int]) -> set[tuple[int, int]]:
    """(length, weekday of the 1st) of these months over the 400-year Gregorian cycle."""
    return {(monthrange_length(y, m), dt.date(y, m, 1).weekday()) for y in range(2000, 2400) for m in months}


def monthrange_length(year: int, month: int) -> int:
    return ((dt.date(year + month // 12, month % 12 + 1, 1)) - dt.date(year, month, 1)).days


@settings(max_examples=200, deadline=None)
@given(yearly=st.booleans(), months=st.lists(st.integers(1, 12), max_size=3, unique=True),
       month_days=st.lists(st.integers(-31, 31).filter(bool), min_size=1, max_size=3, unique=True),
       ordinals=st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, -1, -2, -3, -4, -5]), st.integers(0, 6)),
                         min_size=1, max_size=2, unique=True))
def test_month_day_and_ordinal_weekday_refusal_is_exact(yearly, months, month_days, ordinals):
    if yearly and not months:
        months = [2]
    pieces = ["FREQ=YEARLY" if yearly else "FREQ=MONTHLY"]
    if months:
        pieces.append("BYMONTH=" + ",".join(map(str, months)))
    pieces.append("BYMONTHDAY=" + ",".join(map(str, month_days)))
    pieces.append("BYDAY=" + ",".join(f"{n}{WEEKDAY_CODES[w]}" for n, w in ordinals))
    possible = False
    for length, first_weekday in _month_shapes(months or list(range(1, 13))):
        for d in month_days:
            day = d if d > 0 else length + 1 + d
            if not 1 <= day <= length:
                continue
            weekday = (first_weekday + day - 1) % 7
            for n, w in ordinals:
                if w == weekday and (n == (day - 1) // 7 + 1 or -n == (length - day) // 7 + 1):
                    possible = True
    event("possible" if possible else "impossible")
    try:
        parse_rule(";".join(pieces), BERLIN)
    except RecurrenceError as exc:
        assert not possible, (pieces, str(exc))
        assert "no occurrence" in str(exc)
    else:
        assert possible, pieces


@pytest.mark.parametrize("week", [1, 2, 26, 51, 52, 53, -1, -2, -52, -53])
@pytest.mark.parametrize("month", [1, 2, 11, 12])
@pytest.mark.parametrize("wkst", ["MO", "SU"])
def test_week_numbers_and_months_are_refused_only_when_they_never_meet(week, month, wkst):
    # ISO week 1 can begin on 29-31 December, and the last week of a year can end on
    # 1-3 January: dateutil counts those days, so a rule naming them does occur.
    text = f"FREQ=YEARLY;BYWEEKNO={week};BYMONTH={month};WKST={wkst}"
    dtstart = dt.datetime(9000, 1, 1, 9)  # 999 years: more than the 400-year cycle of the calendar
    walk = du.rrulestr(text, dtstart=dtstart).xafter(dtstart, inc=True)  # to 9999 if none
    occurs = next(walk, None) is not None
    try:
        parse_rule(text, ZULU)
    except RecurrenceError as exc:
        assert not occurs, f"refused, but dateutil finds {text} occurring: {exc}"
        assert "no occurrence" in str(exc)


@settings(max_examples=150, deadline=None)
@given(year_days=st.lists(st.one_of(st.sampled_from([1, 31, 32, 59, 60, 61, 365, 366, -1, -306, -307, -308, -366]),
                                     st.integers(-366, 366).filter(bool)), max_size=2, unique=True),
       weeks=st.lists(st.sampled_from([1, 2, 9, 22, 27, 35, 48, 51, 52, 53, -1, -2, -53]), max_size=2, unique=True),
       months=st.lists(st.integers(1, 12), max_size=2, unique=True),
       month_days=st.lists(st.sampled_from([1, 2, 3, 28, 29, 30, 31, -1, -2, -3, -29, -31]), max_size=2, unique=True),
       weekdays=st.lists(st.sampled_from(WEEKDAY_CODES), max_size=2, unique=True))
def test_yearly_refusals_only_for_rules_that_never_occur(year_days, weeks, months, month_days, weekdays):
    pieces = ["FREQ=YEARLY"]
    for name, values in (("BYYEARDAY", year_days), ("BYWEEKNO", weeks), ("BYMONTH", months),
                         ("BYMONTHDAY", month_days), ("BYDAY", weekdays)):
        if values:
            pieces.append(f"{name}=" + ",".join(map(str, values)))
    text = ";".join(pieces)
    try:
        parse_rule(text, ZULU)
    except RecurrenceError as exc:
        dtstart = dt.datetime(9000, 1, 1, 9)  # 999 years: more than the 400-year cycle of the calendar
        found = next(du.rrulestr(text, dtstart=dtstart).xafter(dtstart, inc=True), None)
        event("refused")
        assert found is None, f"refused ({exc}), but {text} occurs on {found}"
        assert "no occurrence" in str(exc)


@pytest.mark.parametrize("text", [
    "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;COUNT=10000",
    "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=29;COUNT=10000",
    "FREQ=YEARLY;COUNT=10000",
])
def test_a_count_reached_only_after_100_years_is_refused_quickly(text):
    began = time.perf_counter()
    with pytest.raises(RecurrenceError, match="not reached within 100 years"):
        series_of(dt.datetime(2026, 1, 5, 9, tzinfo=BERLIN), text)
    assert time.perf_counter() - began < 0.5


def test_a_count_reached_within_100_years_is_kept():
    series = series_of(dt.datetime(2026, 1, 5, 9, tzinfo=BERLIN), "FREQ=YEARLY;COUNT=100")
    assert series.last_start == dt.datetime(2125, 1, 5, 9, tzinfo=BERLIN)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), freq=st.sampled_from(["DAILY", "WEEKLY"]), interval=st.integers(1, 3),
       days=st.lists(st.sampled_from(WEEKDAY_CODES), max_size=3, unique=True),
       wkst=st.sampled_from([None, "MO", "SU", "WE"]), bound=st.sampled_from(["none", "count", "until"]),
       tz=st.sampled_from(ZONES), day=st.integers(0, 3 * 365), minute=st.integers(0, 24 * 60 - 1),
       minutes=st.integers(1, 2 * 24 * 60))
def test_may_occur_never_skips_an_occurrence(data, freq, interval, days, wkst, bound, tz, day, minute, minutes):
    """The shortcut that spares expanding plain rules: wherever it says "cannot occur", a walk
    from DTSTART finds nothing; and the expansion (which uses it) equals that walk."""
    pieces = [f"FREQ={freq}", f"INTERVAL={interval}"]
    if days:
        pieces.append("BYDAY=" + ",".join(days))
    if wkst:
        pieces.append(f"WKST={wkst}")
    # starts around DST changes (late March, late October, early April/November) and elsewhere
    local = dt.datetime(2026, 3, 1) + dt.timedelta(days=day, minutes=minute)
    start = local.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    if bound == "count":
        pieces.append(f"COUNT={data.draw(st.integers(1, 40), label='count')}")
    elif bound == "until":
        until = start + dt.timedelta(days=data.draw(st.integers(0, 200), label="until_days"))
        pieces.append("UNTIL=" + until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
    duration = dt.timedelta(minutes=minutes)
    try:
        series = prepare(start, duration, tz, parse_rule(";".join(pieces), tz))
    except RecurrenceError:
        assume(False)
    offset_minutes = data.draw(st.integers(-3 * 24 * 60, 400 * 24 * 60), label="window_offset")
    window_start = start + dt.timedelta(minutes=offset_minutes)
    window_end = window_start + dt.timedelta(minutes=data.draw(st.integers(1, 2 * 24 * 60), label="window_len"))
    walked = []
    # On UTC instants only: two datetimes of one zone compare (and add) by wall clock, so
    # DTSTART plus a duration ending in a DST gap would not compare by instant.
    lower, upper, first = window_start.astimezone(UTC), window_end.astimezone(UTC), start.astimezone(UTC)
    for value in du.rrulestr(format_rule(series.parts), dtstart=start):
        instant = first if value.replace(tzinfo=None) == start.replace(tzinfo=None, microsecond=0) \
            else value.astimezone(UTC)
        if instant >= upper + dt.timedelta(hours=3):
            break
        if instant < upper and instant + duration > lower and instant >= first:
            walked.append(instant)
    if not may_occur(series, window_start, window_end):
        assert walked == [], (format_rule(series.parts), start, window_start, window_end)
        event("skipped")
    assert [s.astimezone(UTC) for s in occurrence_starts(series, window_start, window_end)] == walked


@pytest.mark.parametrize("rule", ["FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,MO;WKST=SU", "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,MO",
                                  "FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,WE,SA;WKST=WE", "FREQ=DAILY;INTERVAL=3;BYDAY=MO,FR",
                                  "FREQ=WEEKLY;INTERVAL=2;WKST=SU"])
@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
def test_may_occur_counts_weeks_from_wkst(rule, tz):
    """Every start weekday, windows every 5 hours over 10 weeks (a DST change among them)."""
    for first_day in range(7):
        start = dt.datetime(2026, 3, 1 + first_day, 23, 30, 0, 250_000 * (first_day % 2), tzinfo=tz)
        duration = dt.timedelta(hours=2)
        series = prepare(start, duration, tz, parse_rule(rule, tz))
        starts = [v.astimezone(UTC) for v in itertools.islice(du.rrulestr(rule, dtstart=start), 80)]
        window = start - dt.timedelta(days=1)
        while window < start + dt.timedelta(weeks=10):
            end = window + dt.timedelta(hours=3)
            overlapping = [s for s in starts if s < end and s + duration > window]
            assert may_occur(series, window, end) or not overlapping, (rule, start, window)
            window += dt.timedelta(hours=5)


@pytest.mark.parametrize("start", [
    dt.datetime(2026, 12, 1, 9, 0, 0, 250_000, tzinfo=BERLIN),      # sub-second: later ones start on the second
    dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN),       # the second 02:30: later ones take the first
])
def test_may_occur_uses_the_time_dateutil_repeats(start):
    series = prepare(start, dt.timedelta(minutes=30), BERLIN, parse_rule("FREQ=DAILY", BERLIN))
    later = [s for s in occurrence_starts(series, start + dt.timedelta(days=369), start + dt.timedelta(days=372))]
    assert later
    for occurrence in later:
        tiny = dt.timedelta(microseconds=1)
        assert may_occur(series, occurrence, occurrence + tiny)
        assert occurrence_starts(series, occurrence, occurrence + tiny) == [occurrence]


@settings(max_examples=300, deadline=None)
@given(rule=st.sampled_from(["FREQ=DAILY", "FREQ=DAILY;INTERVAL=3;BYDAY=MO,TH", "FREQ=WEEKLY;BYDAY=SA",
                             "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
                             "FREQ=WEEKLY;INTERVAL=2;COUNT=5", "FREQ=DAILY;UNTIL=20270301T000000Z",
                             "FREQ=HOURLY;INTERVAL=7;BYHOUR=1,2,3"]),
       tz=st.sampled_from(ZONES), day=st.integers(0, 365), minute=st.integers(0, 24 * 60 - 1),
       minutes=st.integers(1, 3 * 24 * 60), offset=st.integers(-30, 700), length=st.integers(1, 400 * 24 * 60),
       exdate=st.booleans())
def test_has_occurrence_agrees_with_the_expansion(rule, tz, day, minute, minutes, offset, length, exdate):
    """One walk from the window's start (has_occurrence) answers as expanding the window does."""
    start = (dt.datetime(2026, 3, 1) + dt.timedelta(days=day, minutes=minute)).replace(tzinfo=tz)
    start = start.astimezone(UTC).astimezone(tz)
    try:
        series = prepare(start, dt.timedelta(minutes=minutes), tz, parse_rule(rule, tz))
    except RecurrenceError:
        assume(False)
    if exdate:  # leave out the first occurrence at or after the window's start
        window = start + dt.timedelta(days=offset)
        nearby = occurrence_starts(series, window, window + dt.timedelta(days=60), limit=10**6)
        if nearby:
            series = prepare(start, series.duration, tz, dict(series.parts), exdates=[nearby[0]])
    window_start = start.astimezone(UTC) + dt.timedelta(days=offset)
    window_end = window_start + dt.timedelta(minutes=length)
    expected = bool(occurrence_starts(series, window_start, window_end, limit=10**6))
    assert has_occurrence(series, window_start, window_end) == expected
    if expected:  # an open end holds that window
        assert has_occurrence(series, window_start, None)


def test_a_rule_that_occurs_once_in_decades_is_found_with_one_walk():
    """29 February on a Monday: 2044, then 2072. An open-ended window from 2045 used to walk
    the rule once per 30 days for 10 years (seconds); now once."""
    series = series_of(dt.datetime(2035, 1, 1, 9, tzinfo=BERLIN), "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO")
    began = time.perf_counter()
    assert not has_occurrence(series, dt.datetime(2045, 1, 1, tzinfo=UTC), None)
    assert has_occurrence(series, dt.datetime(2043, 1, 1, tzinfo=UTC), None)
    assert time.perf_counter() - began < 0.5


@pytest.mark.parametrize("rule", ["FREQ=DAILY", "FREQ=HOURLY;COUNT=500", "FREQ=WEEKLY;BYDAY=MO,WE,FR",
                                  "FREQ=MONTHLY;BYDAY=1MO,3MO", "FREQ=MONTHLY;BYMONTHDAY=1,15,-1",
                                  "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=DAILY;BYHOUR=9,12,15;BYMINUTE=0,30",
                                  "FREQ=WEEKLY;INTERVAL=3", "FREQ=DAILY;BYMONTH=2,3;BYDAY=MO"])
def test_a_rough_count_is_never_below_the_real_one(rule):
    tz = ZoneInfo("Europe/Berlin")
    start = dt.datetime(2026, 1, 5, 9, tzinfo=tz)
    series = recurrence_module.prepare(start, dt.timedelta(minutes=30), tz, rules_module.parse_rule(rule, tz))
    for days in (1, 30, 731):
        upper = start + dt.timedelta(days=days)
        real = len(recurrence_module.occurrence_starts(series, start, upper, limit=100_000))
        rough = recurrence_module.rough_count(series, start, upper)
        assert real <= rough, (days, real, rough)
        if "BYMONTH=" not in rule:  # only filters make it much rougher
            assert rough <= 4 * real + 40, (days, real, rough)
