"""The conflict check: the occurrences of a calendar in a range (long events cached per
version), whether a draft's occurrences meet them, and what `on_conflict` makes of it
(reject with 409, allow and report, shift to the earliest free slot). The caller holds the
calendar's lock."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
from typing import Any, Literal

import msgspec

from calsvc import conflicts, errors, recurrence
from calsvc.conflicts import Interval
from calsvc.db import events as event_db
from calsvc.db.tx import Tx
from calsvc.drafts import Draft
from calsvc.models import Event
from calsvc.occurrences import expand, occurrences_of, series_of

OnConflict = Literal["reject", "allow", "shift"]
Placed = tuple[Event, list[conflicts.Busy]]  # an event written, with the conflicts it was written with

CONFLICT_HORIZON = dt.timedelta(days=731)  # how far an endless rule is checked

SHIFT_HORIZON = dt.timedelta(days=30)

CHECK_LIMIT = 100_000

# A draft with more occurrences than this is checked in a thread (a weekly series over the
# two years of CONFLICT_HORIZON has 105: its check expands the calendar's series over those
# years, CPU work that would stall every other request of the process).
MANY_OCCURRENCES = 32

PIECES_ONE_BY_ONE = 200  # up to this many (merged) draft occurrences, series are tested piece by piece

PROBED_PIECES = 2000  # up to this many, the candidate query probes the calendar once per piece

PROBE_SPAN = dt.timedelta(days=31)  # ... of a batch, when they span more than this

# Threads of their own: a check waits for one inside its transaction, holding the calendar's
# lock and a connection, so it must not queue behind bcrypt or batch validation (the default
# executor's).
CHECK_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="calsvc-check")

# Conflicts listed for one change (a 409's, or the answer's under allow): a year-long event
# over ten hourly series would list 80,000.
LISTED = 1000

_DAY = dt.timedelta(days=1)


def draft_intervals(draft: Draft, lower: dt.datetime, upper: dt.datetime) -> list[Interval]:
    """The draft's occurrences overlapping [lower, upper) as intervals (cancelled ones aside);
    errors.Validation when there are more than a conflict check looks at."""
    try:
        occurrences = expand(
            draft.series,
            0,
            draft.title,
            draft.start_time,
            draft.end_time,
            draft.exceptions,
            lower,
            upper,
            cancelled=False,
            limit=CHECK_LIMIT,
        )
    except recurrence.RecurrenceError:
        raise errors.Validation.at(
            ("body", "recurrence"),
            f"the rule has more than {CHECK_LIMIT:,} occurrences in the {CONFLICT_HORIZON.days} days a conflict "
            "check covers (the whole series when it ends); use fewer occurrences",
        ) from None
    return [(o.start, o.end) for o in occurrences]


def check_range(draft: Draft) -> tuple[dt.datetime, dt.datetime]:
    first, last = draft.during
    horizon = draft.start_time + CONFLICT_HORIZON
    return first, horizon if last is None else last


def calendar_busy(
    events: list[Event],
    lower: dt.datetime,
    upper: dt.datetime,
    exclude: int | None,
    near: conflicts.Cover | None = None,
    limit: int | None = None,
) -> list[conflicts.Busy]:
    """The occurrences of `events` in [lower, upper) (but `exclude`'s); with `near`, only
    those that overlap it. recurrence.RecurrenceError as soon as there are more than `limit`."""
    busy: list[conflicts.Busy] = []
    for event in events:
        if limit is not None and len(busy) > limit:
            raise recurrence.RecurrenceError(f"more than {limit} occurrences")
        if event.id == exclude:
            continue
        if event.rrule is None:
            if near is not None and not near.meets(event.start_time, event.end_time):
                continue  # a single event: its one occurrence is its start and end
        elif not event.exceptions and not event.rdates:
            series = series_of(event)
            if not recurrence.may_occur(series, lower, upper):
                continue  # most series of a calendar, for a short range (no need to expand them)
            if near is not None and len(near.pieces) <= PIECES_ONE_BY_ONE and recurrence.is_plain(series):
                # a draft of many occurrences: this series only where it may meet one of them
                # (a weekly draft over two years meets a stand-up series at no occurrence: 105
                # tests without dateutil instead of expanding 520 occurrences). Only for rules
                # may_occur can judge: any other would be expanded once per piece.
                for start, end in near.pieces:
                    if start < upper and end > lower and recurrence.may_occur(series, start, end):
                        for occ in occurrences_of(
                            event, max(start, lower), min(end, upper), cancelled=False, limit=CHECK_LIMIT
                        ):
                            busy.append(conflicts.Busy(event.id, occ.title, occ.start, occ.end))
                continue
        for occ in occurrences_of(event, lower, upper, cancelled=False, limit=CHECK_LIMIT):
            if near is None or near.meets(occ.start, occ.end):
                busy.append(conflicts.Busy(event.id, occ.title, occ.start, occ.end))
    if limit is not None and len(busy) > limit:
        raise recurrence.RecurrenceError(f"more than {limit} occurrences")
    return busy


def conflicts_with(
    mine: list[Interval],
    events: list[Event],
    lower: dt.datetime,
    upper: dt.datetime,
    exclude: int | None,
    near: conflicts.Cover | None,
) -> list[conflicts.Busy]:
    """The conflicts of the intervals `mine` (covering `near`, when more than one) with the
    calendar `events` in [lower, upper): the first LISTED of them."""
    return conflicts.find_conflicts(mine, calendar_busy(events, lower, upper, exclude, near), LISTED)


def much_work(occurrences: int, candidates: list[Event], lower: dt.datetime, upper: dt.datetime) -> bool:
    """Whether deciding a check is more than a few milliseconds of CPU: a draft of many
    occurrences, many candidates, or series to expand over more than a couple of days (what
    a check costs grows with the calendar, not only with the draft)."""
    return (
        occurrences > MANY_OCCURRENCES
        or len(candidates) > 256
        or (upper - lower > 2 * _DAY and any(e.rrule is not None for e in candidates))
    )


def conflict_items(found: list[conflicts.Busy]) -> list[dict[str, Any]]:
    # times written as every answer writes them (msgspec: a zero offset is "Z")
    return [
        {
            "event_id": b.event_id,
            "title": b.title,
            "start_time": msgspec.to_builtins(b.start),
            "end_time": msgspec.to_builtins(b.end),
        }
        for b in found
    ]


def conflict_error(found: list[conflicts.Busy], listed: int | None = None) -> errors.SchedulingConflict:
    """The 409 of `found`; `listed`: at most that many were looked for."""
    many = f"{len(found)} occurrence(s)"
    if listed is not None and len(found) >= listed:
        many = f"at least {len(found)} occurrences (the first {len(found)} found are listed)"
    return errors.SchedulingConflict(
        f"the event overlaps {many} in the owner's calendar", conflicts=conflict_items(found)
    )


def _moved(draft: Draft, slot: dt.datetime) -> Draft:
    duration = draft.end_time - draft.start_time
    slot_end = (slot.astimezone(dt.UTC) + duration).astimezone(slot.tzinfo)
    return dataclasses.replace(
        draft, start_time=slot, end_time=slot_end, during=(slot, recurrence.extent_end(slot, slot_end))
    )


def shifted(draft: Draft, busy: list[Interval], found: list[conflicts.Busy]) -> Draft:
    """The draft moved to its earliest free slot within 30 days; errors.SchedulingConflict
    when there is none."""
    slot = conflicts.earliest_free_slot(draft.start_time, draft.end_time - draft.start_time, busy, SHIFT_HORIZON)
    if slot is None:
        raise errors.SchedulingConflict("no free slot of this length within 30 days", conflicts=conflict_items(found))
    return _moved(draft, slot)


def shift_window(draft: Draft) -> tuple[dt.datetime, dt.datetime]:
    return draft.start_time, draft.start_time + SHIFT_HORIZON + (draft.end_time - draft.start_time)


def check_on_conflict_applies(
    draft: Draft, on_conflict: str, loc: tuple[str | int, ...] = ("query", "on_conflict")
) -> None:
    """errors.Validation at `loc` when `on_conflict` cannot apply to the draft."""
    if on_conflict == "shift" and draft.rrule is not None:
        raise errors.Validation.at(loc, "shift applies to single events only")


BUSY = "busy"  # the title of a conflict with an event the caller cannot see (its id shown as 0)


async def as_seen_by(tx: Tx, user_id: int, owner_id: int, event_ids: list[int]) -> dict[int, bool | None]:
    """How an editor changing someone else's event may see each conflict found in the
    owner's calendar: True, an event they can see (listed as it is); False, one they cannot
    (listed as the owner being busy then, without what with: never reveal that an event
    exists); None, not at all, when the owner has not given them free/busy (an event they own
    shared with them): a transfer made by the editor is no such consent."""
    visible = await event_db.visible_among(tx.conn, user_id, event_ids)
    if set(event_ids) <= visible:
        return dict.fromkeys(event_ids, True)
    consented = bool(await event_db.users_sharing_with(tx.conn, user_id, [owner_id]))
    return {e: True if e in visible else (False if consented else None) for e in event_ids}


class LongEvents:
    """The long candidates of conflict checks (series, events over 24 hours) by (id, version).
    A version's content never changes, so a check reads again only what changed since the
    last; most candidates of a check are the calendar's series, the same at every check. One
    per service, so per database (ids are a database's own); the least recently used go first
    past `size`. Only what places an event in time is to be read from them: `owner_id` can
    change without a new version (a transfer) and `my_role` is empty."""

    def __init__(self, size: int = 32768) -> None:
        self.size = size
        self._events: dict[tuple[int, int], Event] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._events)

    def get(self, key: tuple[int, int]) -> Event | None:
        event = self._events.pop(key, None)
        if event is None:
            self.misses += 1
        else:
            self.hits += 1
            self._events[key] = event  # now the most recently used
        return event

    def put_all(self, events: list[Event]) -> None:
        for event in events:
            self.put(event)

    def put(self, event: Event) -> None:
        if len(self._events) >= self.size:
            del self._events[next(iter(self._events))]
        self._events[event.id, event.version] = event


async def hide_from_editor(tx: Tx, user_id: int, owner_id: int, found: list[conflicts.Busy]) -> list[conflicts.Busy]:
    """The conflicts found in `owner_id`'s calendar as `user_id` (an editor) may see them:
    see as_seen_by."""
    if owner_id == user_id or not found:
        return found
    shown = await as_seen_by(tx, user_id, owner_id, [b.event_id for b in found])
    return [
        b if shown[b.event_id] else dataclasses.replace(b, event_id=0, title=BUSY)
        for b in found
        if shown[b.event_id] is not None
    ]


async def hide_in_problem(tx: Tx, user_id: int, owner_id: int, exc: errors.SchedulingConflict) -> None:
    """A 409 of `owner_id`'s calendar rewritten as `user_id` (an editor) may see it."""
    items = exc.extra.get("conflicts")
    if owner_id == user_id or not isinstance(items, list):
        return
    shown = await as_seen_by(tx, user_id, owner_id, [c["event_id"] for c in items])
    exc.extra["conflicts"] = [
        c if shown[c["event_id"]] else {**c, "event_id": 0, "title": BUSY}
        for c in items
        if shown[c["event_id"]] is not None
    ]
    if len(exc.extra["conflicts"]) < len(items):
        exc.detail += (
            f" ({len(items) - len(exc.extra['conflicts'])} of them with events you cannot "
            "see, in a calendar whose busy times are not shown to you)"
        )


class ConflictChecker:
    """Checks drafts against calendars, for every writer of one database (the long events it
    caches are that database's)."""

    def __init__(self) -> None:
        self.long_events = LongEvents()

    async def calendar(
        self,
        conn: Any,
        user_id: int,
        lower: dt.datetime,
        upper: dt.datetime,
        tx: Tx | None = None,
        pieces: list[Interval] | None = None,
    ) -> list[Event]:
        """The live events of `user_id`'s calendar whose envelope overlaps [lower, upper)
        (see event_db.list_calendar), long ones from the cache when their version is known.
        Read inside `tx`, what was read is cached once it has committed: a version written
        earlier in the same transaction (POST /api/transactions) is not for the cache if the
        transaction rolls back, as its number would then be used again for other content."""
        events, long = await event_db.list_calendar(conn, user_id, lower, upper, pieces)
        missing = []
        for key in long:
            event = self.long_events.get(key)
            if event is None:
                missing.append(key[0])
            else:
                events.append(event)
        if missing:
            fetched = await event_db.calendar_events(conn, missing)
            events += fetched
            if tx is None:
                self.long_events.put_all(fetched)
            else:
                tx.call_after(lambda: self.long_events.put_all(fetched))
        return events

    async def check(
        self,
        tx: Tx,
        owner_id: int,
        draft: Draft,
        on_conflict: OnConflict,
        exclude: int | None,
        mine: list[Interval] | None = None,
    ) -> tuple[Draft, list[conflicts.Busy]]:
        """Check `draft` (or just the intervals `mine`) against the owner's calendar (the
        caller holds the calendar lock) and apply `on_conflict`: the draft to write (moved,
        under `shift`) and the conflicts it is written with (under `allow`).
        errors.SchedulingConflict under `reject`, or under `shift` without a free slot."""
        if mine is None:
            lower, upper = check_range(draft)
            mine = draft_intervals(draft, lower, upper)
        elif not mine:
            return draft, []
        else:
            lower, upper = min(s for s, _ in mine), max(e for _, e in mine)
        near = conflicts.Cover(mine) if len(mine) > 1 else None
        pieces = near.pieces if near is not None and len(near.pieces) <= PROBED_PIECES else None
        candidates = await self.calendar(tx.conn, owner_id, lower, upper, tx, pieces)
        if much_work(len(mine), candidates, lower, upper):  # off the event loop
            found = await asyncio.get_running_loop().run_in_executor(
                CHECK_THREADS, conflicts_with, mine, candidates, lower, upper, exclude, near
            )
        else:
            found = conflicts_with(mine, candidates, lower, upper, exclude, near)
        if not found or on_conflict == "allow":
            return draft, found
        if on_conflict == "shift":
            start, until = shift_window(draft)
            around = await self.calendar(tx.conn, owner_id, start, until, tx)
            busy = await asyncio.get_running_loop().run_in_executor(
                CHECK_THREADS, calendar_busy, around, start, until, exclude
            )
            return shifted(draft, [(b.start, b.end) for b in busy], found), []
        raise conflict_error(found, LISTED)
