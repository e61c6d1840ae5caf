"""Occurrence exceptions and the batch calendar, without the database: check_event keeps the
exceptions that still fall on an occurrence and widens the envelope for moved ones; expand
applies them; conflicts.Calendar answers overlaps like a scan of everything would."""
from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import orjson
import pytest

from calsvc import conflicts, errors
from calsvc.drafts import check_event
from calsvc.models import OccurrenceChange, exceptions_from_json, exceptions_json
from calsvc.occurrences import expand

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def fields(**changes):
    base = {"title": "Daily", "description": "", "location": None,
            "start_time": dt.datetime(2026, 10, 23, 9, tzinfo=BERLIN), "end_time": dt.datetime(2026, 10, 23, 10, tzinfo=BERLIN),
            "timezone": "Europe/Berlin", "all_day": False, "recurrence": {"rrule": "FREQ=DAILY;COUNT=5"}}
    return {**base, **changes}


def at(day: int, hour: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 10, day, hour, minute, tzinfo=BERLIN)


def utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(UTC)


def occurrences(draft, lower=None, upper=None, cancelled=True):
    lower, upper = lower or at(1), upper or at(31)
    return expand(draft.series, 1, draft.title, draft.start_time, draft.end_time, draft.exceptions, lower, upper,
                  cancelled=cancelled)


def test_exceptions_round_trip_through_json():
    changes = (OccurrenceChange(utc(at(24)), True),
               OccurrenceChange(utc(at(25)), False, {"title": "x", "start_time": utc(at(25, 14)),
                                                     "end_time": utc(at(25, 15)), "location": None}))
    assert exceptions_from_json(orjson.dumps(exceptions_json(changes)).decode()) == changes


def test_expand_applies_moves_renames_and_cancellations():
    moved = OccurrenceChange(utc(at(24)), False, {"start_time": utc(at(27, 14)), "end_time": utc(at(27, 15))})
    renamed = OccurrenceChange(utc(at(26)), False, {"title": "Renamed"})
    cancelled = OccurrenceChange(utc(at(27)), True)
    draft = check_event(fields(exceptions=(moved, renamed, cancelled)))
    got = [(o.original_start, o.start, o.title, o.is_exception, o.cancelled) for o in occurrences(draft)]
    assert got == [
        (at(23), at(23), "Daily", False, False),
        (at(25), at(25), "Daily", False, False),   # 25 October: clocks go back, still 09:00
        (at(26), at(26), "Renamed", True, False),
        (at(27), at(27), "Daily", True, True),
        (at(24), at(27, 14), "Daily", True, False),
    ]
    assert [o.start for o in occurrences(draft, cancelled=False)] == [at(23), at(25), at(26), at(27, 14)]
    # a window that holds only the moved occurrence's new time finds it, and not its old slot
    assert [o.original_start for o in occurrences(draft, at(27, 13), at(27, 16))] == [at(24)]
    assert occurrences(draft, at(24, 8), at(24, 11)) == []


def test_exceptions_that_no_longer_fall_on_an_occurrence_are_dropped():
    kept = OccurrenceChange(utc(at(24)), True)
    gone = OccurrenceChange(utc(at(27)), True)              # past COUNT=3
    off_grid = OccurrenceChange(utc(at(24, 9, 30)), True)   # never an occurrence
    draft = check_event(fields(recurrence={"rrule": "FREQ=DAILY;COUNT=3"}, exceptions=(kept, gone, off_grid)))
    assert draft.exceptions == (kept,)
    exdated = check_event(fields(recurrence={"rrule": "FREQ=DAILY;COUNT=5", "exdates": [at(24)]}, exceptions=(kept,)))
    assert exdated.exceptions == ()
    single = check_event(fields(recurrence=None, exceptions=(kept,)))
    assert single.exceptions == () and single.during == (at(23), at(23, 10))


def test_the_envelope_holds_moved_occurrences():
    early = OccurrenceChange(utc(at(24)), False, {"start_time": utc(at(20)), "end_time": utc(at(20, 1))})
    late = OccurrenceChange(utc(at(25)), False, {"start_time": utc(at(30)), "end_time": utc(at(30, 23))})
    draft = check_event(fields(exceptions=(early, late)))
    assert draft.during == (utc(at(20)), utc(at(30, 23)))
    endless = check_event(fields(recurrence={"rrule": "FREQ=DAILY"}, exceptions=(early,)))
    assert endless.during == (utc(at(20)), None)


def test_batch_item_problem_moves_locations_under_the_item():
    inner = errors.Validation.at(("body", "end_time"), "end_time must be after start_time")
    problem = errors.BatchItem.of(3, inner)
    assert (problem.status, problem.type, problem.extra["index"]) == (422, "/problems/batch-item", 3)
    assert problem.errors[0]["loc"] == ["body", "events", 3, "end_time"]
    conflict = errors.BatchItem.of(0, errors.SchedulingConflict("overlaps", conflicts=[{"event_id": 1}]))
    assert conflict.status == 409 and conflict.extra["conflicts"] == [{"event_id": 1}]
    assert conflict.errors == [{"loc": ["body", "events", 0], "msg": "overlaps", "type": "scheduling-conflict"}]
    query = errors.BatchItem.of(1, errors.Validation.at(("query", "on_conflict"), "no"))
    assert query.errors[0]["loc"] == ["query", "on_conflict"]


@pytest.mark.parametrize("seed", range(20))
def test_calendar_overlapping_agrees_with_a_scan(seed):
    rng = random.Random(seed)
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    busy = []
    for i in range(rng.randint(0, 60)):
        start = base + dt.timedelta(minutes=15 * rng.randint(0, 400))
        end = start + dt.timedelta(minutes=15 * rng.randint(0, 40))  # empty ones included
        busy.append(conflicts.Busy(i, f"e{i}", start.astimezone(BERLIN) if i % 2 else start, end))
    calendar = conflicts.Calendar(busy[: len(busy) // 2])
    calendar.add(busy[len(busy) // 2:])
    for _ in range(50):
        lo = base + dt.timedelta(minutes=15 * rng.randint(-10, 420))
        hi = lo + dt.timedelta(minutes=15 * rng.randint(1, 50))
        expected = sorted((b for b in busy if b.start < b.end and b.start < hi and b.end > lo),
                          key=lambda b: (utc(b.start), b.event_id))
        got = calendar.overlapping(lo, hi)
        assert sorted(got, key=lambda b: (utc(b.start), b.event_id)) == expected
        assert [utc(b.start) for b in got] == sorted(utc(b.start) for b in got)


@pytest.mark.parametrize("spacing,count", [(1, 300), (1, 9), (37, 40), (400, 12)])
def test_many_exceptions_are_kept_as_one_by_one_would(spacing, count):
    """check_event tests many exceptions against one expansion of their span, few or sparse
    ones one by one; both keep exactly those on an occurrence of the new rule (here every
    second day, across the DST change, some exceptions a minute off)."""
    rng = random.Random(spacing * 1000 + count)
    start = dt.datetime(2026, 3, 1, 9, tzinfo=BERLIN)
    changes = []
    for i in range(count):
        original = (start + dt.timedelta(days=i * spacing)).astimezone(UTC)
        if rng.random() < 0.2:
            original += dt.timedelta(minutes=1)  # never an occurrence
        changes.append(OccurrenceChange(original, rng.random() < 0.5, {} if rng.random() < 0.5 else {"title": "x"}))
    changes = tuple(sorted({c.original: c for c in changes}.values(), key=lambda c: c.original))
    draft = check_event(fields(start_time=start, end_time=start + dt.timedelta(hours=1),
                               recurrence={"rrule": "FREQ=DAILY;INTERVAL=2"}, exceptions=changes))
    wanted = []
    for c in changes:
        local = c.original.astimezone(BERLIN)
        on_rule = (local.date() - start.date()).days % 2 == 0 and local.time() == dt.time(9)
        if on_rule:
            wanted.append(c)
    assert draft.exceptions == tuple(wanted)
    assert len(wanted) < len(changes)  # some were dropped


@pytest.mark.parametrize("seed", range(30))
def test_calendar_conflicts_of_agrees_with_find_conflicts(seed):
    """Lengths from a second to a month (many classes), some occurrences given twice or
    empty: asking the calendar piece by piece answers what find_conflicts over everything
    answers; with a limit, that many of them."""
    rng = random.Random(seed)
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    busy = []
    for i in range(rng.randint(0, 200)):
        start = base + dt.timedelta(seconds=rng.randint(0, 90 * 86400))
        end = start + dt.timedelta(seconds=rng.choice([0, 1, 59, 900, 3600, 86400, 30 * 86400]) * rng.random())
        busy.append(conflicts.Busy(i % 150, f"e{i}", start.astimezone(BERLIN) if i % 3 else start, end))
    calendar = conflicts.Calendar(busy[:50])
    calendar.add(busy[50:])
    for _ in range(20):
        mine = []
        for _ in range(rng.randint(0, 8)):
            lo = base + dt.timedelta(seconds=rng.randint(-86400, 91 * 86400))
            mine.append((lo, lo + dt.timedelta(seconds=rng.randint(0, 3 * 86400))))
        expected = conflicts.find_conflicts(mine, busy)
        assert calendar.conflicts_of(mine) == expected
        limit = rng.randint(1, 5)
        limited = calendar.conflicts_of(mine, limit)
        assert len(limited) == min(limit, len(expected)) and set(limited) <= set(expected)
        assert limited == sorted(limited, key=lambda b: (utc(b.start), b.event_id))


@pytest.mark.parametrize("seed", range(10))
def test_expand_in_a_window_is_the_whole_expansion_cut_to_it(seed):
    """expand skips the exceptions that stay in their place outside the window without
    looking further; what it lists in any window is what the whole series lists there
    (moved ones found wherever they went, cancelled ones at their place)."""
    rng = random.Random(seed)
    draft = check_event(fields(recurrence={"rrule": "FREQ=DAILY;COUNT=120"}))
    changes = []
    for day in rng.sample(range(120), 60):
        original = (draft.start_time + dt.timedelta(days=day)).astimezone(UTC)
        kind = rng.choice(["cancel", "rename", "move"])
        if kind == "cancel":
            changes.append(OccurrenceChange(original, True))
        elif kind == "rename":
            changes.append(OccurrenceChange(original, False, {"title": f"day {day}"}))
        else:
            moved = original + dt.timedelta(days=rng.randint(-90, 90), minutes=rng.randint(0, 600))
            changes.append(OccurrenceChange(original, False, {"start_time": moved, "end_time": moved + dt.timedelta(hours=1)}))
    changes.sort(key=lambda c: c.original)
    draft = check_event(fields(recurrence={"rrule": "FREQ=DAILY;COUNT=120"}, exceptions=tuple(changes)))
    every = expand(draft.series, 1, "Daily", draft.start_time, draft.end_time, draft.exceptions,
                   draft.start_time - dt.timedelta(days=200), draft.start_time + dt.timedelta(days=400), cancelled=True)
    for _ in range(30):
        lo = draft.start_time + dt.timedelta(hours=rng.randint(-24 * 100, 24 * 220))
        hi = lo + dt.timedelta(hours=rng.randint(1, 24 * 20))
        got = expand(draft.series, 1, "Daily", draft.start_time, draft.end_time, draft.exceptions, lo, hi,
                     cancelled=True)
        assert got == [o for o in every if utc(o.start) < utc(hi) and utc(o.end) > utc(lo)]


def test_the_stored_form_of_exceptions_is_a_new_dict_each_time():
    changes = tuple(OccurrenceChange(dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(days=i), True) for i in range(40))
    first = exceptions_json(changes)
    first.clear()
    assert len(exceptions_json(changes)) == 40
