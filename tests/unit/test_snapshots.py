"""calsvc.snapshots: the field list is the one every form of an event's content follows."""
from __future__ import annotations

import dataclasses
import datetime as dt


from calsvc import snapshots
from calsvc.drafts import Draft, check_event
from calsvc.models import Event, OccurrenceChange
from calsvc.web import schemas

BERLIN_START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))
STORED = set(snapshots.FIELDS) - {"recurrence"} | {"rrule", "exdates", "rdates"}


def _fields() -> dict:
    return {"title": "Stand-up", "description": "daily", "location": "Room 1", "start_time": BERLIN_START,
            "end_time": BERLIN_START + dt.timedelta(minutes=15), "timezone": "Europe/Berlin", "all_day": False,
            "recurrence": {"rrule": "FREQ=DAILY;COUNT=10", "exdates": [], "rdates": []},
            "exceptions": (OccurrenceChange(BERLIN_START.astimezone(dt.timezone.utc) + dt.timedelta(days=1), False,
                                            {"title": "Later"}),)}


def test_events_drafts_and_the_api_carry_every_field():
    assert STORED <= {f.name for f in dataclasses.fields(Draft)}
    assert STORED <= set(Event.__struct_fields__)
    shown_event = set(schemas.Event.__struct_fields__)
    assert set(snapshots.FIELDS) - {"exceptions"} <= shown_event  # exceptions: their own routes
    assert set(snapshots.FIELDS) - {"exceptions"} <= set(schemas.EventIn.__struct_fields__)


def test_a_snapshot_round_trips_through_every_form():
    draft = check_event(_fields())
    snap = snapshots.snapshot(draft, owner_id=7)
    assert set(snap) == STORED | {"owner_id"}
    again = check_event(snapshots.fields_of_snapshot(snap))
    assert snapshots.snapshot(again, owner_id=7) == snap
    assert check_event(snapshots.fields_of(draft)) == draft
    shown = snapshots.shown(snap)
    assert list(shown) == list(snapshots.FIELDS)
    assert shown["recurrence"]["rrule"] == draft.rrule and shown["exceptions"][0]["title"] == "Later"


def test_old_snapshots_read_with_the_defaults_of_later_fields():
    snap = snapshots.snapshot(check_event(_fields()), owner_id=7)
    for later in ("description", "location", "all_day", "exdates", "rdates", "exceptions"):
        del snap[later]
    shown = snapshots.shown(snap)
    assert (shown["description"], shown["location"], shown["all_day"], shown["exceptions"]) == ("", None, False, [])
    assert check_event(snapshots.fields_of_snapshot(snap)).description == ""


def test_changed_fields_name_stored_keys_and_the_api_names_them():
    old = snapshots.snapshot(check_event(_fields()), owner_id=7)
    new = snapshots.snapshot(check_event({**_fields(), "title": "Sync", "recurrence": {
        "rrule": "FREQ=DAILY;COUNT=5", "exdates": [], "rdates": []}}), owner_id=8)
    assert snapshots.changed_fields(old, new) == ["title", "rrule"]
    assert snapshots.api_fields(["title", "rrule", "exdates", "owner_id"]) == ["title", "recurrence"]
    assert snapshots.timing(old) != snapshots.timing(new)
