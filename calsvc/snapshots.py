"""An event's content and the snapshot a version keeps of it: the field list, written once,
and every form it takes (the fields check_event takes, the stored snapshot, the snapshot as
the API shows it). History, diffs, merges and rollbacks all read versions through here."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import orjson

from calsvc.models import OccurrenceChange, exceptions_from_json, exceptions_json
from calsvc.zones import known_zone

# The content of an event, as the API names its fields: what a version keeps, a rollback
# restores, a diff compares and a merge settles field by field.
FIELDS = (
    "title",
    "description",
    "location",
    "start_time",
    "end_time",
    "timezone",
    "all_day",
    "recurrence",
    "exceptions",
)
# Those kept, stored and shown as they are (the others are times, a rule with its dates, and
# a map of changed occurrences, each with a form of its own).
PLAIN = tuple(f for f in FIELDS if f not in ("start_time", "end_time", "recurrence", "exceptions"))
# What an old snapshot may lack (written before the field existed).
_DEFAULTS: dict[str, Any] = {"description": "", "location": None, "all_day": False}
# How a snapshot stores `recurrence`: three keys of its own.
_DATES = ("exdates", "rdates")
_RECURRENCE_KEYS = ("rrule", *_DATES)
UTC = dt.UTC


class Content(Protocol):
    """What an event and a checked draft have in common: the fields of FIELDS (recurrence as
    its rule and dates)."""

    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def location(self) -> str | None: ...
    @property
    def start_time(self) -> dt.datetime: ...
    @property
    def end_time(self) -> dt.datetime: ...
    @property
    def timezone(self) -> str: ...
    @property
    def all_day(self) -> bool: ...
    @property
    def rrule(self) -> str | None: ...
    @property
    def exdates(self) -> tuple[dt.datetime, ...]: ...
    @property
    def rdates(self) -> tuple[dt.datetime, ...]: ...
    @property
    def exceptions(self) -> tuple[OccurrenceChange, ...]: ...


def snapshot(event: Content, owner_id: int) -> dict[str, Any]:
    """What a version keeps of an event (stored as JSON): every field a rollback restores, the
    times in the event's zone, the rule's dates in UTC; the owner for the record."""
    tz = known_zone(event.timezone)
    snap: dict[str, Any] = {}
    for f in FIELDS:
        if f in ("start_time", "end_time"):
            snap[f] = getattr(event, f).astimezone(tz).isoformat()
        elif f == "recurrence":
            snap["rrule"] = event.rrule
            snap["exdates"] = [d.astimezone(UTC).isoformat() for d in event.exdates]
            snap["rdates"] = [d.astimezone(UTC).isoformat() for d in event.rdates]
        elif f == "exceptions":
            snap[f] = exceptions_json(event.exceptions)
        else:
            snap[f] = getattr(event, f)
    snap["owner_id"] = owner_id
    return snap


def fields_of(event: Content) -> dict[str, Any]:
    """An event's (or a checked draft's) fields as check_event takes them."""
    fields = {f: getattr(event, f) for f in FIELDS if f != "recurrence"}
    fields["recurrence"] = (
        None
        if event.rrule is None
        else {"rrule": event.rrule, "exdates": list(event.exdates), "rdates": list(event.rdates)}
    )
    return fields


def fields_of_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    """A stored snapshot as check_event takes it (a rollback, or the base of a merge)."""
    fields = _plain_of_snapshot(snap)
    for f in ("start_time", "end_time"):
        fields[f] = dt.datetime.fromisoformat(snap[f])
    fields["recurrence"] = (
        None
        if snap.get("rrule") is None
        else {"rrule": snap["rrule"], **{k: [dt.datetime.fromisoformat(d) for d in snap.get(k, [])] for k in _DATES}}
    )
    fields["exceptions"] = exceptions_from_json(orjson.dumps(snap.get("exceptions", {})).decode())
    return fields


def shown(snap: dict[str, Any]) -> dict[str, Any]:
    """A stored snapshot as the API shows a version: the fields of FIELDS, in that order."""
    fields = _plain_of_snapshot(snap)
    fields["start_time"], fields["end_time"] = snap["start_time"], snap["end_time"]
    fields["recurrence"] = (
        None if snap.get("rrule") is None else {"rrule": snap["rrule"], **{k: snap.get(k, []) for k in _DATES}}
    )
    fields["exceptions"] = [
        {
            "occurrence_start": key,
            "cancelled": bool(value.get("cancelled")),
            **{k: v for k, v in value.items() if k != "cancelled"},
        }
        for key, value in sorted(snap.get("exceptions", {}).items())
    ]
    return {f: fields[f] for f in FIELDS}


def _plain_of_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    return {f: snap.get(f, _DEFAULTS.get(f)) for f in PLAIN}


def same(field: str, a: Any, b: Any) -> bool:
    """Whether two values of a field are the same: times are the same instant, whatever the
    offset they are written with (a new time zone rewrites them, it does not move them)."""
    if field in ("start_time", "end_time") and isinstance(a, str) and isinstance(b, str):
        return dt.datetime.fromisoformat(a) == dt.datetime.fromisoformat(b)
    return a == b


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys of two stored snapshots that differ (as a version row records them)."""
    return [key for key in new if key != "owner_id" and not same(key, old.get(key), new[key])]


def api_fields(stored_keys: list[str]) -> list[str]:
    """Snapshot keys (as version rows record changed fields) named as the API names them."""
    return list(dict.fromkeys("recurrence" if k in _RECURRENCE_KEYS else k for k in stored_keys if k != "owner_id"))


_TIMING = ("start_time", "end_time", "timezone", *_RECURRENCE_KEYS)


def timing(snap: dict[str, Any]) -> tuple[Any, ...]:
    """What decides when the occurrences are, from a stored snapshot."""
    # exceptions that only rename (or re-describe) an occurrence leave it where it was
    moved = sorted(
        (k, v.get("cancelled"), v.get("start_time"), v.get("end_time"))
        for k, v in snap["exceptions"].items()
        if v.get("cancelled") or "start_time" in v
    )
    return tuple(str(snap[k]) for k in _TIMING) + (str(moved),)
