"""Scheduling conflicts: exact overlap of expanded occurrences, free/busy merging,
shift-to-free-slot and the calendar's overlapping pairs, on hand-checked examples and, for
random occurrences in several zones around a DST change, against brute force."""
from __future__ import annotations

import datetime as dt
import random
import time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calsvc.conflicts import (
    SHIFT_HORIZON,
    Busy,
    Overlap,
    earliest_free_slot,
    find_conflicts,
    merge_intervals,
    overlapping_pairs,
)

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(weeks=1)


def at(hour: float, day: int = 1, tz: dt.tzinfo = UTC) -> dt.datetime:
    """A time on 2026-12-<day> (no DST change near) in `tz`."""
    return dt.datetime(2026, 12, day, tzinfo=tz) + dt.timedelta(hours=hour)


def busy(event_id: int, start: dt.datetime, end: dt.datetime, title: str = "") -> Busy:
    return Busy(event_id, title or f"event {event_id}", start, end)


def instants(values):
    return [v.timestamp() for v in values]


# -- examples -----------------------------------------------------------------------------

def test_back_to_back_is_no_conflict():
    before = busy(1, at(8), at(9))
    after = busy(2, at(10), at(11))
    assert find_conflicts([(at(9), at(10))], [before, after]) == []


def test_containment_both_ways_and_identical_conflict():
    outer = busy(1, at(9), at(12))
    assert find_conflicts([(at(10), at(11))], [outer]) == [outer]
    inner = busy(2, at(10), at(11))
    assert find_conflicts([(at(9), at(12))], [inner]) == [inner]
    same = busy(3, at(9), at(10))
    assert find_conflicts([(at(9), at(10))], [same]) == [same]


def test_partial_overlap_by_one_minute_conflicts():
    other = busy(1, at(9), at(10))
    assert find_conflicts([(at(10) - MINUTE, at(11))], [other]) == [other]
    assert find_conflicts([(at(8), at(9) + MINUTE)], [other]) == [other]


def test_a_single_event_meets_the_third_occurrence_of_a_weekly_series():
    # Weekly 09:00-10:00 in Berlin from Monday 2026-10-12: the 3rd, 2026-10-26, is the first
    # after the clocks went back, so it is 08:00-09:00Z where the first two were 07:00-08:00Z.
    series = [busy(7, dt.datetime(2026, 10, 12, 9, tzinfo=BERLIN) + WEEK * k,
                   dt.datetime(2026, 10, 12, 10, tzinfo=BERLIN) + WEEK * k, "standup") for k in range(5)]
    third = series[2]
    assert third.start.astimezone(UTC) == dt.datetime(2026, 10, 26, 8, tzinfo=UTC)
    single = (dt.datetime(2026, 10, 26, 8, 30, tzinfo=UTC), dt.datetime(2026, 10, 26, 9, 30, tzinfo=UTC))
    assert find_conflicts([single], series) == [third]
    # 07:00-08:00Z would be the series' time had the offset stayed +02:00: back to back now.
    summer_slot = (dt.datetime(2026, 10, 26, 7, tzinfo=UTC), dt.datetime(2026, 10, 26, 8, tzinfo=UTC))
    assert find_conflicts([summer_slot], series) == []


def test_different_zones_naming_overlapping_instants():
    meeting = busy(1, at(9, tz=BERLIN), at(10, tz=BERLIN))          # 08:00-09:00Z
    call = (at(3.5, tz=NEW_YORK), at(4.5, tz=NEW_YORK))              # 08:30-09:30Z
    assert find_conflicts([call], [meeting]) == [meeting]
    # 14:30 in Kolkata (+05:30) is 09:00Z: back to back with the meeting.
    assert find_conflicts([(at(14.5, tz=KOLKATA), at(15.5, tz=KOLKATA))], [meeting]) == []


def test_the_repeated_hour_when_clocks_go_back_compares_by_instant():
    # 2026-10-25 in Berlin: 02:00-03:00 happens twice (fold 0 is CEST, fold 1 is CET). Python
    # compares two datetimes sharing a tzinfo by wall clock, ignoring fold.
    first = busy(1, dt.datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN), dt.datetime(2026, 10, 25, 2, 50, tzinfo=BERLIN))
    second = (dt.datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=BERLIN),
              dt.datetime(2026, 10, 25, 2, 50, fold=1, tzinfo=BERLIN))
    assert find_conflicts([second], [first]) == []
    assert merge_intervals([(first.start, first.end), second]) == [
        (dt.datetime(2026, 10, 25, 0, 10, tzinfo=UTC), dt.datetime(2026, 10, 25, 0, 50, tzinfo=UTC)),
        (dt.datetime(2026, 10, 25, 1, 10, tzinfo=UTC), dt.datetime(2026, 10, 25, 1, 50, tzinfo=UTC)),
    ]
    # A 40-minute slot from 02:10 CEST fits only after the second 02:50 (CET): 01:50Z.
    slot = earliest_free_slot(first.start, 40 * MINUTE, [(first.start, first.end), second])
    assert slot.astimezone(UTC) == dt.datetime(2026, 10, 25, 1, 50, tzinfo=UTC)
    assert slot.tzinfo is BERLIN and slot.fold == 1


def test_conflicts_are_unique_and_ordered_by_start_then_event():
    a = busy(5, at(10), at(11))
    b = busy(2, at(10), at(12))
    c = busy(9, at(9), at(13))
    a_again = busy(5, at(11, tz=BERLIN), at(12, tz=BERLIN), "the same occurrence, in Berlin")
    candidate = [(at(10), at(10.5)), (at(10.25), at(10.75)), (at(12.5), at(14))]
    assert find_conflicts(candidate, [a, b, c, a_again]) == [c, b, a]


def test_nothing_to_check():
    assert find_conflicts([], [busy(1, at(9), at(10))]) == []
    assert find_conflicts([(at(9), at(10))], []) == []
    assert overlapping_pairs([]) == []
    assert merge_intervals([]) == []


def test_empty_intervals_overlap_nothing():
    point = busy(1, at(10), at(10))
    backwards = busy(2, at(11), at(10))
    assert find_conflicts([(at(9), at(12))], [point, backwards]) == []
    # Ignored as if not given: a real occurrence with the same (event, start) still counts.
    real = busy(1, at(10), at(11))
    assert find_conflicts([(at(9), at(12))], [point, real]) == [real]
    assert overlapping_pairs([point, real, busy(2, at(10), at(12))]) == [Overlap(1, 2, at(10), at(11))]
    assert find_conflicts([(at(10), at(10))], [busy(3, at(9), at(12))]) == []
    assert merge_intervals([(at(10), at(10)), (at(11), at(10))]) == []


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        find_conflicts([(dt.datetime(2026, 12, 1, 9), dt.datetime(2026, 12, 1, 10))], [busy(1, at(9), at(10))])
    with pytest.raises(ValueError):
        earliest_free_slot(dt.datetime(2026, 12, 1, 9), HOUR, [])


def test_merge_joins_touching_and_overlapping_intervals_in_utc():
    merged = merge_intervals([(at(12, tz=BERLIN), at(13, tz=BERLIN)),  # 11:00-12:00Z
                              (at(9), at(10)), (at(10), at(10.5)), (at(9.5), at(9.75)),
                              (at(11), at(11.5))])
    assert merged == [(at(9), at(10.5)), (at(11), at(12))]
    assert all(s.tzinfo is UTC and e.tzinfo is UTC for s, e in merged)


def test_shift_with_nothing_busy_keeps_the_start():
    start = at(9, tz=BERLIN)
    assert earliest_free_slot(start, HOUR, []) is start


def test_shift_keeps_a_free_start_and_fits_a_gap_before_a_busy_block():
    start = at(9)
    assert earliest_free_slot(start, HOUR, [(at(10), at(11)), (at(7), at(9))]) == at(9)


def test_shift_past_a_run_of_busy_blocks():
    blocks = [(at(12.5), at(13)), (at(9), at(10)), (at(10.5), at(12)), (at(10), at(11))]
    # Busy 09:00-12:00 without a break, free 12:00-12:30, busy to 13:00.
    assert earliest_free_slot(at(9), HOUR, blocks) == at(13)
    assert earliest_free_slot(at(9), 30 * MINUTE, blocks) == at(12)
    # Starting inside a block that began earlier.
    assert earliest_free_slot(at(9.5), 30 * MINUTE, blocks) == at(12)


def test_shift_answers_in_the_zone_of_the_start():
    start = at(9, tz=NEW_YORK)  # 14:00Z
    slot = earliest_free_slot(start, HOUR, [(at(13), at(15.5))])
    assert slot == at(15.5) and slot.tzinfo is NEW_YORK and slot.hour == 10


def test_shift_with_no_slot_within_30_days():
    start = at(9)
    assert earliest_free_slot(start, HOUR, [(start - HOUR, start + SHIFT_HORIZON)]) is None
    # Free a minute before the horizon: a slot starting there may run past it.
    assert earliest_free_slot(start, HOUR, [(start, start + SHIFT_HORIZON - MINUTE)]) == start + SHIFT_HORIZON - MINUTE
    # Gaps too short for the length do not count.
    daily = [(at(9) + DAY * k, at(9) + DAY * k + 23 * HOUR) for k in range(31)]  # free 08:00-09:00Z
    assert earliest_free_slot(start, 2 * HOUR, daily) is None
    assert earliest_free_slot(start, HOUR, daily) == at(8, 2)
    assert earliest_free_slot(start, HOUR, [], horizon=dt.timedelta(0)) is None


def test_shift_refuses_a_length_that_is_not_positive():
    with pytest.raises(ValueError):
        earliest_free_slot(at(9), dt.timedelta(0), [])


def test_overlapping_pairs_of_a_calendar():
    a1 = busy(3, at(9), at(11))
    a2 = busy(3, at(10), at(12))     # the same event overlapping itself: no pair
    b = busy(1, at(10.5), at(13))
    c = busy(2, at(11), at(11.5))    # touches a1's end
    d = busy(4, at(13), at(14))      # touches b's end
    assert overlapping_pairs([d, c, b, a2, a1]) == [
        Overlap(1, 3, at(10.5), at(11)),   # b with a1
        Overlap(1, 3, at(10.5), at(12)),   # b with a2
        Overlap(1, 2, at(11), at(11.5)),   # b with c
        Overlap(2, 3, at(11), at(11.5)),   # c with a2
    ]


def test_overlapping_pairs_are_in_utc_across_zones():
    pairs = overlapping_pairs([busy(1, at(9, tz=BERLIN), at(10, tz=BERLIN)),
                               busy(2, at(3.5, tz=NEW_YORK), at(4.5, tz=NEW_YORK))])
    assert pairs == [Overlap(1, 2, at(8.5), at(9))]
    assert pairs[0].start.tzinfo is UTC and pairs[0].end.tzinfo is UTC


def test_thousands_of_occurrences_take_a_sweep_not_every_pair():
    # 20,000 half-hour occurrences against 20,000 more: 4e8 pairs would take minutes.
    candidate = [(at(0) + k * HOUR, at(0) + k * HOUR + 30 * MINUTE) for k in range(20_000)]
    others = [busy(k % 50, at(0) + k * HOUR + 15 * MINUTE, at(0) + k * HOUR + 45 * MINUTE)
              for k in range(20_000)]
    began = time.perf_counter()
    assert len(find_conflicts(candidate, others)) == 20_000
    assert len(overlapping_pairs(others + [busy(99, s, e) for s, e in candidate])) == 20_000
    assert earliest_free_slot(at(0), HOUR, candidate + [(b.start, b.end) for b in others]) is None
    assert earliest_free_slot(at(0), 15 * MINUTE, candidate + [(b.start, b.end) for b in others]) == at(0.75)
    assert time.perf_counter() - began < 5


# -- against brute force ------------------------------------------------------------------

# Around 2026-10-25 01:00Z, when Berlin goes back an hour (New York a week later).
BASE = dt.datetime(2026, 10, 24, 22, tzinfo=UTC)
STEP = dt.timedelta(minutes=15)
ZONES = [UTC, ZoneInfo("UTC"), BERLIN, NEW_YORK, KOLKATA, dt.timezone(dt.timedelta(hours=-3))]

zones = st.sampled_from(ZONES)


@st.composite
def instants_at(draw, low: int = 0, high: int = 40):
    """A time on a quarter-hour grid near BASE, shown in a random zone."""
    return (BASE + STEP * draw(st.integers(low, high))).astimezone(draw(zones))


@st.composite
def intervals(draw, allow_empty: bool = True):
    start = draw(st.integers(0, 40))
    length = draw(st.integers(-2 if allow_empty else 1, 12))
    return ((BASE + STEP * start).astimezone(draw(zones)),
            (BASE + STEP * (start + length)).astimezone(draw(zones)))


@st.composite
def occurrences(draw):
    start, end = draw(intervals())
    return Busy(draw(st.integers(1, 5)), "", start, end)


def overlaps(a_start, a_end, b_start, b_end) -> bool:
    return max(a_start.timestamp(), b_start.timestamp()) < min(a_end.timestamp(), b_end.timestamp())


def deduplicated(items):
    """Each (event_id, start instant) once, the first given winning; empty occurrences are
    ignored before that, as if they had not been given."""
    seen, kept = set(), []
    for item in items:
        if item.start.timestamp() >= item.end.timestamp():
            continue
        key = (item.event_id, item.start.timestamp())
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


@settings(max_examples=400, deadline=None)
@given(st.lists(intervals(), max_size=8), st.lists(occurrences(), max_size=15))
def test_find_conflicts_matches_pairwise_checks(candidate, calendar):
    expected = [b for b in deduplicated(calendar)
                if any(overlaps(s, e, b.start, b.end) for s, e in candidate)]
    expected.sort(key=lambda b: (b.start.timestamp(), b.event_id))
    assert [id(b) for b in find_conflicts(candidate, calendar)] == [id(b) for b in expected]


@settings(max_examples=400, deadline=None)
@given(st.lists(intervals(), max_size=15))
def test_merge_intervals_matches_the_covered_quarter_hours(given_intervals):
    covered = sorted({k for s, e in given_intervals
                      for k in range(round((s - BASE) / STEP), round((e - BASE) / STEP))})
    runs: list[list[int]] = []
    for k in covered:
        if runs and runs[-1][1] == k:
            runs[-1][1] = k + 1
        else:
            runs.append([k, k + 1])
    merged = merge_intervals(given_intervals)
    assert [(s.timestamp(), e.timestamp()) for s, e in merged] == [
        ((BASE + STEP * a).timestamp(), (BASE + STEP * b).timestamp()) for a, b in runs]
    assert all(s.tzinfo is UTC and e.tzinfo is UTC for s, e in merged)


@settings(max_examples=500, deadline=None)
@given(instants_at(), st.integers(1, 10), st.lists(intervals(), max_size=12),
       st.one_of(st.just(SHIFT_HORIZON), st.integers(0, 30).map(lambda n: STEP * n)))
def test_earliest_free_slot_matches_trying_every_busy_end(start, quarters, blocks, horizon):
    duration = STEP * quarters
    limit = start.timestamp() + horizon.total_seconds()

    def free(t: dt.datetime) -> bool:
        return not any(overlaps(t, t + duration, s, e) for s, e in blocks)

    tries = [start] + [e for _, e in blocks if e.timestamp() >= start.timestamp()]
    fits = [t for t in tries if t.timestamp() < limit and free(t.astimezone(UTC))]
    expected = min(fits, key=lambda t: t.timestamp(), default=None)
    slot = earliest_free_slot(start, duration, blocks, horizon)
    if expected is None:
        assert slot is None
    else:
        assert slot is not None and slot.timestamp() == expected.timestamp()
        assert slot.tzinfo is start.tzinfo


@settings(max_examples=400, deadline=None)
@given(st.lists(occurrences(), max_size=15))
def test_overlapping_pairs_match_every_pair(calendar):
    unique = deduplicated(calendar)
    expected = []
    for i, a in enumerate(unique):
        for b in unique[i + 1:]:
            if a.event_id != b.event_id and overlaps(a.start, a.end, b.start, b.end):
                expected.append((min(a.event_id, b.event_id), max(a.event_id, b.event_id),
                                 max(a.start.timestamp(), b.start.timestamp()),
                                 min(a.end.timestamp(), b.end.timestamp())))
    # two occurrences of one event overlapping another alike give one item
    expected = sorted(set(expected), key=lambda p: (p[2], p[0], p[1], p[3]))
    pairs = overlapping_pairs(calendar)
    assert [(p.first_id, p.second_id, p.start.timestamp(), p.end.timestamp()) for p in pairs] == expected
    assert all(p.start.tzinfo is UTC and p.end.tzinfo is UTC for p in pairs)


@pytest.mark.parametrize("seed", range(20))
def test_overlapping_pairs_page_by_page_is_the_whole_list(seed):
    """Asked for the pairs after a key, at most so many, the sweep stops early: page after
    page, the same list as asked for all at once."""
    rng = random.Random(seed)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    busy = []
    for i in range(rng.randint(0, 80)):
        start = base + dt.timedelta(minutes=15 * rng.randint(0, 200))
        busy.append(Busy(i % 25, f"e{i}", start, start + dt.timedelta(minutes=15 * rng.randint(0, 12))))
    whole = overlapping_pairs(busy)
    size = rng.randint(1, 7)
    paged, after = [], None
    while True:
        page = overlapping_pairs(busy, after, size + 1)
        paged += page[:size]
        if len(page) <= size:
            break
        last = page[size - 1]
        after = (last.start, last.first_id, last.second_id, last.end)
    assert paged == whole
