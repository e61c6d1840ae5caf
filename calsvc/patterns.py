"""The structured recurrence pattern (`{frequency, interval, by_weekday, by_month_day, count,
until}`): the form of a rule that needs no RRULE syntax, read into rule parts and written
back from them when a rule has one. Pure."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from calsvc.rules import UTC, RecurrenceError, format_until, parse_rule


def rule_from_pattern(pattern: dict[str, Any], tz: ZoneInfo) -> dict[str, str]:
    """`{frequency, interval?, by_weekday?, by_month_day?, count?, until?}` as rule parts.
    `until` is an aware datetime (or a date, meaning the end of that day in `tz`)."""
    frequency = str(pattern.get("frequency", "")).upper()
    pieces = [f"FREQ={frequency}"]
    if pattern.get("interval") is not None:
        pieces.append(f"INTERVAL={pattern['interval']}")
    if pattern.get("count") is not None:
        pieces.append(f"COUNT={pattern['count']}")
    until = pattern.get("until")
    if until is not None:
        if isinstance(until, dt.datetime):
            if until.tzinfo is None:
                raise RecurrenceError("pattern.until needs an offset")
            pieces.append(f"UNTIL={format_until(until)}")
        else:
            pieces.append(f"UNTIL={until.strftime('%Y%m%d')}")
    if pattern.get("by_month_day"):
        days = pattern["by_month_day"]
        days = days if isinstance(days, (list, tuple)) else [days]
        pieces.append("BYMONTHDAY=" + ",".join(str(d) for d in days))
    if pattern.get("by_weekday"):
        pieces.append("BYDAY=" + ",".join(str(d).upper() for d in pattern["by_weekday"]))
    return parse_rule(";".join(pieces), tz)


def pattern_from_rule(parts: dict[str, str]) -> dict[str, Any] | None:
    """The structured pattern describing these parts, or None when it cannot."""
    allowed = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY"}
    if set(parts) - allowed:
        return None
    if "BYDAY" in parts and any(not d.isalpha() for d in parts["BYDAY"].split(",")):
        return None
    until = None
    if "UNTIL" in parts:
        until = dt.datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return {
        "frequency": parts["FREQ"].lower(),
        "interval": int(parts.get("INTERVAL", 1)),
        "by_weekday": parts["BYDAY"].split(",") if "BYDAY" in parts else [],
        "by_month_day": [int(d) for d in parts["BYMONTHDAY"].split(",")] if "BYMONTHDAY" in parts else [],
        "count": int(parts["COUNT"]) if "COUNT" in parts else None,
        "until": until,
    }
