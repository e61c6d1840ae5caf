"""Recurrence rules as text: RRULE parsed, checked and normalised (upper case, parts in one
order, UNTIL in UTC), and written back. Pure: no SQL, no HTTP. Expanding a rule is
calsvc.recurrence's."""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from zoneinfo import ZoneInfo

UTC = dt.UTC
MAX_COUNT = 10_000
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # the most each month has

FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")


REFUSED_FREQUENCIES = ("MINUTELY", "SECONDLY")


WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


# Canonical order of the parts in a normalised rule.
PART_ORDER = (
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYMONTH",
    "BYWEEKNO",
    "BYYEARDAY",
    "BYMONTHDAY",
    "BYDAY",
    "BYHOUR",
    "BYMINUTE",
    "BYSECOND",
    "BYSETPOS",
    "WKST",
)


# re.ASCII: \d is 0-9 only (not "١" or "³", which int() reads or refuses)
_INT_LIST = re.compile(r"^[+-]?\d{1,3}(,[+-]?\d{1,3})*$", re.ASCII)


_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$", re.ASCII)


_UNTIL = re.compile(r"^(\d{8})(T(\d{6})(Z)?)?$", re.ASCII)


_LIST_RANGES = {
    "BYMONTH": (1, 12, False),
    "BYWEEKNO": (1, 53, True),
    "BYYEARDAY": (1, 366, True),
    "BYMONTHDAY": (1, 31, True),
    "BYHOUR": (0, 23, False),
    "BYMINUTE": (0, 59, False),
    "BYSECOND": (0, 60, False),
    "BYSETPOS": (1, 366, True),
}


class RecurrenceError(ValueError):
    """A rule, pattern or window that cannot be used; the message says why (a 422)."""


def parse_rule(text: str, tz: ZoneInfo) -> dict[str, str]:
    """The parts of an RRULE value (with or without `RRULE:`), checked and normalised:
    upper case, UNTIL in UTC (a local UNTIL is taken in `tz`), INTERVAL=1 dropped."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body:
        raise RecurrenceError("the rule is empty")
    if "\n" in body or "\r" in body:
        raise RecurrenceError("give one RRULE value (DTSTART, EXDATE and RDATE are separate fields)")
    parts: dict[str, str] = {}
    for item in body.strip(";").split(";"):
        name, sep, value = item.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise RecurrenceError(f"{item!r} is not NAME=VALUE")
        if name not in PART_ORDER:
            raise RecurrenceError(f"{name} is not a recurrence rule part")
        if name in parts:
            raise RecurrenceError(f"{name} is given twice")
        parts[name] = value
    freq = parts.get("FREQ")
    if freq is None:
        raise RecurrenceError("FREQ is required")
    if freq in REFUSED_FREQUENCIES:
        raise RecurrenceError(f"FREQ={freq} is not supported: the finest frequency is HOURLY")
    if freq not in FREQUENCIES:
        raise RecurrenceError(f"FREQ={freq} is not a frequency (YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY)")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("COUNT and UNTIL cannot both be given")
    if "INTERVAL" in parts:
        interval = _positive_int(parts["INTERVAL"], "INTERVAL", 1000)
        if interval == 1:
            del parts["INTERVAL"]
        else:
            parts["INTERVAL"] = str(interval)
    if "COUNT" in parts:
        parts["COUNT"] = str(_positive_int(parts["COUNT"], "COUNT", MAX_COUNT))
    if "UNTIL" in parts:
        parts["UNTIL"] = format_until(_parse_until(parts["UNTIL"], tz))
    for name, (low, high, signed) in _LIST_RANGES.items():
        if name in parts:
            parts[name] = _int_list(parts[name], name, low, high, signed)
    if "BYDAY" in parts:
        days = []
        for day in parts["BYDAY"].split(","):
            match = _BYDAY.match(day)
            if not match:
                raise RecurrenceError(f"BYDAY value {day!r} is not like MO, 1MO or -1FR")
            if match.group(1) is not None:
                n = int(match.group(1))
                if n == 0 or abs(n) > 53:
                    raise RecurrenceError(f"BYDAY value {day!r}: the ordinal must be 1-53 or -53 to -1")
                if freq not in ("MONTHLY", "YEARLY"):
                    raise RecurrenceError("BYDAY with an ordinal (like 1MO) needs FREQ=MONTHLY or YEARLY")
                day = f"{n}{match.group(2)}"
            days.append(day)
        parts["BYDAY"] = ",".join(dict.fromkeys(days))
    if "WKST" in parts and parts["WKST"] not in WEEKDAYS:
        raise RecurrenceError(f"WKST must be one of {', '.join(WEEKDAYS)}")
    if "BYWEEKNO" in parts and freq != "YEARLY":
        raise RecurrenceError("BYWEEKNO needs FREQ=YEARLY")
    if "BYYEARDAY" in parts and freq in ("MONTHLY", "WEEKLY", "DAILY"):
        raise RecurrenceError("BYYEARDAY cannot be used with FREQ=MONTHLY, WEEKLY or DAILY")
    if "BYMONTHDAY" in parts and freq == "WEEKLY":
        raise RecurrenceError("BYMONTHDAY cannot be used with FREQ=WEEKLY")
    if "BYSETPOS" in parts and not any(p.startswith("BY") and p != "BYSETPOS" for p in parts):
        raise RecurrenceError("BYSETPOS needs another BYxxx part")
    _check_possible(parts)
    return {name: parts[name] for name in PART_ORDER if name in parts}


def _ints(parts: dict[str, str], name: str) -> list[int]:
    return [int(v) for v in parts[name].split(",")] if name in parts else []


def _check_possible(parts: dict[str, str]) -> None:
    """Refuse combinations no calendar date can ever satisfy. (dateutil would search for
    them up to the year 9999, for seconds.)"""
    months = _ints(parts, "BYMONTH") or list(range(1, 13))
    month_days = _ints(parts, "BYMONTHDAY")
    if month_days and not any(abs(d) <= _MONTH_DAYS[m - 1] for m in months for d in month_days):
        raise RecurrenceError("the rule has no occurrence: no month it names has the days it names")
    year_days = _ints(parts, "BYYEARDAY")
    if year_days:
        possible = set()
        for leap in (False, True):
            first = dt.date(2024 if leap else 2023, 1, 1)
            length = 366 if leap else 365
            for n in year_days:
                if abs(n) <= length:
                    day = first + dt.timedelta(days=(n - 1) if n > 0 else (length + n))
                    possible.add((day.month, day.day, calendar.monthrange(day.year, day.month)[1]))
        if not any(
            m in months and (not month_days or d in month_days or d - 1 - month_length in month_days)
            for m, d, month_length in possible
        ):
            raise RecurrenceError("the rule has no occurrence: its BYYEARDAY days fall outside its months")
    weeks = _ints(parts, "BYWEEKNO")
    if weeks and "BYMONTH" in parts:
        reachable = set()
        for n in weeks:
            index = n if n > 0 else 54 + n
            for offset in range(-10, 11):
                day = dt.date(2023, 1, 1) + dt.timedelta(days=(index - 1) * 7 + offset)
                if day.year == 2023:
                    reachable.add(day.month)
            # the last week of a year can take the first days of January, and week 1 the
            # last days of December (dateutil counts both in the year they number)
            if index >= 52:
                reachable.update((12, 1))
            if index <= 1:
                reachable.update((1, 12))
        if not reachable & set(months):
            raise RecurrenceError("the rule has no occurrence: its weeks fall outside its months")
    if parts["FREQ"] == "MONTHLY" or (parts["FREQ"] == "YEARLY" and "BYMONTH" in parts):
        for code in parts.get("BYDAY", "").split(","):
            match = _BYDAY.match(code) if code else None
            if match and match.group(1) and abs(int(match.group(1))) > 5:
                raise RecurrenceError(f"BYDAY value {code}: a month has at most 5 of each weekday")
    # An ordinal weekday falls on a known stretch of days of the month (the 1st Monday on the
    # 1st to the 7th, the last one on the last seven days): BYMONTHDAY must meet one.
    ordinals = [m for d in parts.get("BYDAY", "").split(",") if d and (m := _BYDAY.match(d)) and m.group(1)]
    if (
        month_days
        and ordinals
        and len(ordinals) == len(parts["BYDAY"].split(","))
        and (parts["FREQ"] == "MONTHLY" or (parts["FREQ"] == "YEARLY" and "BYMONTH" in parts))
    ):
        lengths = {length for m in months for length in ((28, 29) if m == 2 else (_MONTH_DAYS[m - 1],))}
        if not any(
            (d if d > 0 else length + 1 + d)
            in (range(7 * n - 6, 7 * n + 1) if n > 0 else range(length + 7 * n + 1, length + 7 * n + 8))
            for length in lengths
            for d in month_days
            if abs(d) <= length
            for n in (int(m.group(1)) for m in ordinals)
        ):
            raise RecurrenceError("the rule has no occurrence: its month days never fall on its weekdays")
    # BYSETPOS picks from the occurrences of one period (an hour, a day, a week, a month):
    # asking for more than the period can hold never matches.
    setpos = _ints(parts, "BYSETPOS")
    if setpos and parts["FREQ"] != "YEARLY":
        size = (len(_ints(parts, "BYMINUTE")) or 1) * (len(_ints(parts, "BYSECOND")) or 1)
        if parts["FREQ"] != "HOURLY":
            size *= len(_ints(parts, "BYHOUR")) or 1
        days = parts.get("BYDAY", "").split(",") if "BYDAY" in parts else []
        if parts["FREQ"] == "WEEKLY":
            size *= len(days) or 1
        elif parts["FREQ"] == "MONTHLY" and (month_days or days):
            size *= min(len(month_days) or 31, sum(1 if d[0] in "+-0123456789" else 5 for d in days) or 31)
        if min(abs(p) for p in setpos) > size:
            raise RecurrenceError(
                f"the rule has no occurrence: BYSETPOS asks for more than the {size} occurrence(s) one period can hold"
            )


def check_reachable(parts: dict[str, str], local: dt.datetime) -> None:
    """Refuse a DAILY or HOURLY rule whose INTERVAL, counted from DTSTART, never lands on
    its BYDAY/BYHOUR (dateutil would look for one up to the year 9999, for minutes)."""
    freq, interval = parts["FREQ"], int(parts.get("INTERVAL", 1))
    if freq not in ("DAILY", "HOURLY") or not ("BYDAY" in parts or (freq == "HOURLY" and "BYHOUR" in parts)):
        return
    weekdays = {WEEKDAYS.index(d) for d in parts["BYDAY"].split(",")} if "BYDAY" in parts else set(range(7))
    if freq == "DAILY":  # the weekdays reached, counting INTERVAL days from DTSTART
        reached = {((local.weekday() + interval * n) % 7, 0) for n in range(7)}
        hours = {0}
    else:  # the hours of the week reached (wall-clock hours, as dateutil counts them)
        step = math.gcd(interval, 168)
        slots = {(local.weekday() * 24 + local.hour + step * n) % 168 for n in range(168 // step)}
        reached = {divmod(slot, 24) for slot in slots}
        hours = set(_ints(parts, "BYHOUR")) or set(range(24))
    if not any(day in weekdays and hour in hours for day, hour in reached):
        raise RecurrenceError(
            "the rule has no occurrence: counted from the start, its INTERVAL never reaches the days or hours it names"
        )


def stored_parts(text: str) -> dict[str, str]:
    """The parts of a rule `format_rule` wrote (already checked and normalised): what
    parse_rule would give for it, without checking it again."""
    return dict(part.split("=", 1) for part in text.split(";"))


def format_rule(parts: dict[str, str]) -> str:
    return ";".join(f"{name}={parts[name]}" for name in PART_ORDER if name in parts)


def _positive_int(text: str, name: str, maximum: int) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:  # not "³", not "١"
        raise RecurrenceError(f"{name} must be a whole number from 1 to {maximum}")
    return int(text)


def _int_list(text: str, name: str, low: int, high: int, signed: bool) -> str:
    if not _INT_LIST.match(text):
        raise RecurrenceError(f"{name} must be a comma-separated list of numbers")
    values = []
    for item in text.split(","):
        n = int(item)
        if (n < 0 and not signed) or not low <= abs(n) <= high:
            allowed = f"{low}..{high}" + (f" or -{high}..-{low}" if signed else "")
            raise RecurrenceError(f"{name} value {item} is out of range ({allowed})")
        values.append(str(n))
    return ",".join(dict.fromkeys(values))


def _parse_until(text: str, tz: ZoneInfo) -> dt.datetime:
    match = _UNTIL.match(text)
    if not match:
        raise RecurrenceError("UNTIL must look like 20261231T235959Z (or a local time or a date)")
    try:
        day = dt.datetime.strptime(match.group(1), "%Y%m%d")
        if match.group(3):
            clock = dt.datetime.strptime(match.group(3), "%H%M%S").time()
        else:  # a date: through the end of that day in the event's zone
            clock = dt.time(23, 59, 59)
    except ValueError:
        raise RecurrenceError(f"UNTIL={text} is not a valid date and time") from None
    value = dt.datetime.combine(day.date(), clock)
    if match.group(4):
        return value.replace(tzinfo=UTC)
    return value.replace(tzinfo=tz).astimezone(UTC)


def format_until(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
