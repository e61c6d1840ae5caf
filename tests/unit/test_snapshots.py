"""calsvc.snapshots: the field list is the one every form of an event's content follows."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import pathlib

import calsvc
from calsvc import snapshots
from calsvc.drafts import Draft, check_event
from calsvc.models import Event, OccurrenceChange
from calsvc.web import schemas

BERLIN_START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))
STORED = set(snapshots.FIELDS) - {"recurrence"} | {"rrule", "exdates", "rdates"}


def _fields() -> dict:
    return {
        "title": "Stand-up",
        "description": "daily",
        "location": "Room 1",
        "start_time": BERLIN_START,
        "end_time": BERLIN_START + dt.timedelta(minutes=15),
        "timezone": "Europe/Berlin",
        "all_day": False,
        "recurrence": {"rrule": "FREQ=DAILY;COUNT=10", "exdates": [], "rdates": []},
        "exceptions": (
            OccurrenceChange(BERLIN_START.astimezone(dt.UTC) + dt.timedelta(days=1), False, {"title": "Later"}),
        ),
    }


def test_the_field_list_is_pinned():
    # the order is that of changed_fields, and with it of notification summaries and history
    assert snapshots.FIELDS == (
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


def test_events_drafts_and_the_api_carry_every_field_and_no_other():
    assert {f.name for f in dataclasses.fields(Draft)} - {"during", "series"} == STORED
    metadata = {
        "id",
        "owner_id",
        "version",
        "created_at",
        "updated_at",
        "updated_by",
        "my_role",
        "last_start",
        "deleted",
    }
    assert set(Event.__struct_fields__) - metadata == STORED
    content = {name for name, member in vars(snapshots.Content).items() if isinstance(member, property)}
    assert content == STORED
    shown_event = set(schemas.Event.__struct_fields__)
    assert set(snapshots.FIELDS) - {"exceptions"} <= shown_event  # exceptions: their own routes
    assert set(snapshots.FIELDS) - {"exceptions"} <= set(schemas.EventIn.__struct_fields__)


def test_a_stored_snapshot_keeps_its_format():
    """The JSON every version row holds: keys in this order, times in the event's zone, the
    rule's dates in UTC. Old rows are read back with it, so it never changes silently."""
    snap = snapshots.snapshot(
        check_event(
            {
                **_fields(),
                "recurrence": {
                    "rrule": "FREQ=DAILY;COUNT=10",
                    "exdates": [BERLIN_START + dt.timedelta(days=2)],
                    "rdates": [],
                },
            }
        ),
        owner_id=7,
    )
    assert snap == {
        "title": "Stand-up",
        "description": "daily",
        "location": "Room 1",
        "start_time": "2026-03-02T09:00:00+01:00",
        "end_time": "2026-03-02T09:15:00+01:00",
        "timezone": "Europe/Berlin",
        "all_day": False,
        "rrule": "FREQ=DAILY;COUNT=10",
        "exdates": ["2026-03-04T08:00:00+00:00"],
        "rdates": [],
        "exceptions": {"2026-03-03T08:00:00+00:00": {"title": "Later"}},
        "owner_id": 7,
    }
    assert list(snap) == list(snapshots.snapshot(check_event(_fields()), owner_id=7))


# Lists of three or more content fields outside calsvc/snapshots.py, each a concept of its own
# (by the module and the top-level name they are written in).
OTHER_LISTS = {
    ("models.py", "ROW_COLUMNS"): "the columns of a row, as db queries select them (tests/db/test_columns.py)",
    ("models.py", "OVERRIDABLE_TEXT"): "what an exception may change of one occurrence",
    ("drafts.py", "Draft"): "the columns a draft is stored as (PLAIN plus the times, the rule and its dates)",
    ("services/events.py", "EventService"): "one occurrence's times and title, as an exception overrides them",
    ("services/conflict_check.py", "conflict_items"): "a conflict as answered, not an event",
    ("web/diff_page.py", "_LABELS"): "labels of the diff page",
}


def test_the_field_list_is_written_once():
    root = pathlib.Path(calsvc.__file__).parent
    names = set(snapshots.FIELDS) | {"rrule", "exdates", "rdates"}
    found = set()
    for path in root.rglob("*.py"):
        if path.name == "snapshots.py":
            continue
        for top in ast.parse(path.read_text()).body:
            name = getattr(top, "name", None) or next(
                (t.id for t in getattr(top, "targets", [getattr(top, "target", None)]) if isinstance(t, ast.Name)), None
            )
            for node in ast.walk(top):
                items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
                if isinstance(node, (ast.Dict, ast.Tuple, ast.List, ast.Set)) and items:
                    written = {i.value for i in items if isinstance(i, ast.Constant) and i.value in names}
                    if len(written) >= 3:
                        found.add((str(path.relative_to(root)), name))
    assert found == set(OTHER_LISTS), (found - set(OTHER_LISTS), set(OTHER_LISTS) - found)


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
    new = snapshots.snapshot(
        check_event(
            {**_fields(), "title": "Sync", "recurrence": {"rrule": "FREQ=DAILY;COUNT=5", "exdates": [], "rdates": []}}
        ),
        owner_id=8,
    )
    assert snapshots.changed_fields(old, new) == ["title", "rrule"]
    assert snapshots.api_fields(["title", "rrule", "exdates", "owner_id"]) == ["title", "recurrence"]
    assert snapshots.timing(old) != snapshots.timing(new)
