"""Scheduling conflicts: exact decisions over already-expanded occurrences.
Pure: no SQL, no HTTP.

An occurrence is the half-open interval [start, end) of two aware datetimes. Two intervals
overlap when they share an instant: max(starts) < min(ends). So back-to-back (one ends
when the other starts) is no conflict, and an empty interval (end <= start) overlaps
nothing: it is ignored everywhere, as if it had not been given. One occurrence is one
(event_id, start instant): given twice (say, in two zones), it counts once, the first wins.

Every comparison and every sum is done on UTC instants. Python compares (and subtracts,
and adds durations to) two datetimes that share a tzinfo object by their wall-clock times,
ignoring `fold`, so 02:30 CEST and 02:30 CET on the night clocks go back would otherwise
compare equal. A naive datetime is a ValueError.

Sorting plus one sweep keeps each function O((n + m) log(n + m)) (plus the size of the
answer for `overlapping_pairs`), so a candidate series of thousands of occurrences is
checked against a calendar of thousands more without comparing every pair.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import heapq
import itertools
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

UTC = dt.UTC
SHIFT_HORIZON = dt.timedelta(days=30)

Interval = tuple[dt.datetime, dt.datetime]
_MICROSECOND = dt.timedelta(microseconds=1)


@dataclasses.dataclass(frozen=True, slots=True)
class Busy:
    """One occurrence of an event in a calendar, times as the event shows them."""

    event_id: int
    title: str
    start: dt.datetime  # aware
    end: dt.datetime  # aware; exclusive


@dataclasses.dataclass(frozen=True, slots=True)
class Overlap:
    """Where an occurrence of one event overlaps an occurrence of another: [start, end)
    in UTC, `first_id` < `second_id`."""

    first_id: int
    second_id: int
    start: dt.datetime
    end: dt.datetime


def _utc(value: dt.datetime) -> dt.datetime:
    if value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no offset: conflicts compare instants")
    return value.astimezone(UTC)


def _unique(busy: Iterable[Busy]) -> list[tuple[dt.datetime, dt.datetime, Busy]]:
    """(UTC start, UTC end, occurrence) of the non-empty occurrences, each (event_id,
    start instant) once (the first given wins), ordered by (start, event_id)."""
    seen: dict[tuple[int, dt.datetime], tuple[dt.datetime, dt.datetime, Busy]] = {}
    for item in busy:
        start, end = _utc(item.start), _utc(item.end)
        if start < end:
            seen.setdefault((item.event_id, start), (start, end, item))
    return sorted(seen.values(), key=lambda entry: (entry[0], entry[2].event_id))


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of the intervals as disjoint [start, end) pairs in UTC, sorted. Touching
    intervals join ([a, b) and [b, c) become [a, c)), as free/busy shows them; empty ones
    are dropped. An empty list when nothing is left."""
    ordered = sorted((s, e) for s, e in ((_utc(a), _utc(b)) for a, b in intervals) if s < e)
    merged: list[Interval] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


class Cover:
    """The union of some intervals, asked whether an occurrence overlaps it in O(log n): a
    check of a draft with many occurrences (a series over two years) keeps only what meets
    one of them before deciding, instead of every occurrence of its calendar in those years."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        self.pieces = merge_intervals(intervals)
        self.starts = [start for start, _ in self.pieces]

    def meets(self, start: dt.datetime, end: dt.datetime) -> bool:
        # Disjoint and sorted: of the pieces starting before `end`, the last ends last. The
        # pieces are in UTC, so each comparison is between instants (two times of one zone
        # compare as wall-clock times: 02:45 CEST is after 02:00 CET, an hour earlier).
        i = bisect.bisect_left(self.starts, end) - 1
        return i >= 0 and self.pieces[i][1] > start


def find_conflicts(candidate: Iterable[Interval], busy: Iterable[Busy], limit: int | None = None) -> list[Busy]:
    """The busy occurrences that overlap any occurrence of the candidate, each (event_id,
    start instant) once, ordered by (start, event_id) (the first `limit` of them); unchanged,
    so their times keep the zone they came in. An empty list when nothing overlaps (or either
    side is empty). Leave the candidate's own event out of `busy` when checking an update."""
    merged = merge_intervals(candidate)
    if not merged:
        return []
    # Disjoint and sorted: the only piece that can meet an occurrence is the first one
    # ending after the occurrence starts. Joining touching pieces changes no answer, since
    # the union is the same set of instants.
    ends = [end for _, end in merged]
    found = []
    for start, end, item in _unique(busy):
        i = bisect.bisect_right(ends, start)
        if i < len(merged) and merged[i][0] < end:
            found.append(item)
            if limit is not None and len(found) >= limit:
                break
    return found


def earliest_free_slot(
    start: dt.datetime, duration: dt.timedelta, busy: Iterable[Interval], horizon: dt.timedelta = SHIFT_HORIZON
) -> dt.datetime | None:
    """The earliest t >= start with [t, t + duration) overlapping no busy interval and
    t < start + horizon (the `shift` strategy), shown in `start`'s zone; `start` itself when
    it is free. None when no such t exists. Busy intervals may overlap and come in any order.
    Durations are elapsed time (UTC arithmetic), not wall-clock time. ValueError for a
    duration that is not positive."""
    if duration <= dt.timedelta(0):
        raise ValueError("the duration must be positive")
    begin = _utc(start)
    limit = begin + horizon
    t = begin
    # The answer is `start` or the end of a busy stretch: walk the merged stretches once.
    for busy_start, busy_end in merge_intervals(busy):
        if t >= limit:
            return None
        if busy_end <= t:
            continue
        if t + duration <= busy_start:
            break
        t = busy_end
    if t >= limit:
        return None
    return start if t == begin else t.astimezone(start.tzinfo)


def overlapping_pairs(
    occurrences: Iterable[Busy],
    after: tuple[dt.datetime, int, int, dt.datetime] | None = None,
    limit: int | None = None,
) -> list[Overlap]:
    """Every overlap between occurrences of two different events (GET /api/events/conflicts):
    one item per overlapping pair of occurrences, ordered by (start, first_id, second_id,
    end), identical items (two occurrences of one series overlapping another event over the
    same interval) once; only those after the key `after`, and the first `limit` of them.
    Occurrences of the same event never pair; duplicates of one (event_id, start instant)
    count once. An empty list when nothing overlaps."""
    # Sweep by start, keeping the occurrences still running grouped by event, so an event
    # whose own occurrences overlap each other costs nothing per pair. An overlap starts where
    # the later of its two occurrences does, so the pairs come in order of start: each start's
    # few are ordered as they come, and the sweep stops once the page is full (a calendar of
    # series overlapping at every hour has a million pairs; one sort of them all held the
    # interpreter lock for a second).
    running: dict[int, dict[int, dt.datetime]] = {}  # event_id -> seq -> end
    ending: list[tuple[dt.datetime, int, int]] = []  # heap of (end, seq, event_id)
    out: list[Overlap] = []
    group: set[Overlap] = set()
    counter = itertools.count()

    def flush() -> bool:
        out.extend(p for p in sorted(group, key=_pair_key) if after is None or _pair_key(p) > after)
        group.clear()
        return limit is not None and len(out) >= limit

    for start, end, item in _unique(occurrences):
        if group and next(iter(group)).start != start and flush():
            return out[:limit]
        while ending and ending[0][0] <= start:
            _, seq, event_id = heapq.heappop(ending)
            running_group = running[event_id]
            del running_group[seq]
            if not running_group:
                del running[event_id]
        for event_id, running_group in running.items():
            if event_id == item.event_id:
                continue
            low, high = sorted((event_id, item.event_id))
            for other_end in running_group.values():
                group.add(Overlap(low, high, start, min(end, other_end)))
        seq = next(counter)
        running.setdefault(item.event_id, {})[seq] = end
        heapq.heappush(ending, (end, seq, item.event_id))
    flush()
    return out if limit is None else out[:limit]


def _pair_key(pair: Overlap) -> tuple[dt.datetime, int, int, dt.datetime]:
    return pair.start, pair.first_id, pair.second_id, pair.end


class Calendar:
    """Busy occurrences for many questions against one calendar that grows (a batch checks
    each item against the calendar and the items accepted before it). Kept in sorted lists by
    start, one per class of length (lengths within a factor of two of each other), so a
    question looks only at the occurrences of each class that start at most that class's
    longest length before it: a bisection per class plus about what it returns, however many
    occurrences the calendar holds and however long its longest one is. A whole batch is then
    near-linear in its occurrences, where one sorted list with the longest length of all went
    quadratic on a batch of daily series."""

    def __init__(self, busy: Iterable[Busy] = ()) -> None:
        # class c holds lengths of 2**(c-1) to 2**c - 1 microseconds
        self._classes: dict[int, SortedList] = {}
        self._seq = itertools.count()
        self.add(busy)

    def add(self, busy: Iterable[Busy]) -> None:
        grouped: dict[int, list[tuple[dt.datetime, int, dt.datetime, Busy]]] = {}
        for item in busy:
            start, end = _utc(item.start), _utc(item.end)
            if start < end:
                length = (end - start) // _MICROSECOND
                grouped.setdefault(length.bit_length(), []).append((start, next(self._seq), end, item))
        for size, entries in grouped.items():
            kept = self._classes.get(size)
            if kept is None:
                self._classes[size] = SortedList(entries)
            elif len(entries) == 1:
                kept.add(entries[0])
            else:
                kept.update(entries)

    def _overlapping(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, int, Busy]]:
        """(UTC start, sequence, occurrence) of those overlapping [start, end) (UTC), class by class."""
        for size, entries in self._classes.items():
            longest = dt.timedelta(microseconds=(1 << size) - 1)
            for s, seq, e, item in entries.irange((start - longest,), (end,), inclusive=(True, False)):
                if e > start:
                    yield s, seq, item

    def overlapping(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        """The occurrences overlapping [start, end), in start order."""
        return [item for _, _, item in sorted(self._overlapping(_utc(start), _utc(end)), key=lambda f: f[:2])]

    def conflicts_of(self, intervals: Iterable[Interval], limit: int | None = None) -> list[Busy]:
        """What find_conflicts(intervals, <every occurrence here>) answers, asked piece by piece
        of the intervals' union: at most `limit` of them (the first found, going through the
        pieces in time order), ordered by (start, event_id)."""
        found: dict[tuple[int, dt.datetime], Busy] = {}
        if not self._classes:
            return []
        intervals = list(intervals)
        pieces = (
            merge_intervals(intervals)
            if len(intervals) > 1
            else [(_utc(s), _utc(e)) for s, e in intervals if _utc(s) < _utc(e)]
        )
        for start, end in pieces:
            for s, _, item in self._overlapping(start, end):
                found.setdefault((item.event_id, s), item)
                if limit is not None and len(found) >= limit:
                    break
            else:
                continue
            break
        return [item for (_, _), item in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
