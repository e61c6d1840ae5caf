"""POST /api/events/batch: up to 500 events checked one by one, then against the calendar and
the items placed before them (near-linear: every occurrence goes into one sorted calendar),
and written by one statement in one transaction. A batch of many series or occurrences is
checked in a process of its own (services.offload), a smaller one in a check thread, one of
single events on the loop."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import heapq
from typing import Any

import orjson

from calsvc import conflicts, errors, recurrence
from calsvc.db import events as event_db
from calsvc.db.pool import Database, off_loop
from calsvc.db.tx import Tx, run_in_tx
from calsvc.drafts import Draft, check_event
from calsvc.models import Event
from calsvc.occurrences import EARLIEST
from calsvc.services.conflict_check import (
    CHECK_THREADS,
    CONFLICT_HORIZON,
    PROBE_SPAN,
    PROBED_PIECES,
    ConflictChecker,
    Interval,
    OnConflict,
    Placed,
    calendar_busy,
    check_on_conflict_applies,
    check_range,
    conflict_error,
    draft_intervals,
    much_work,
    shift_window,
    shifted,
)
from calsvc.services.idempotency import Recorder
from calsvc.services.offload import Offload

# Conflicts listed for one item of a batch (its 409's, or its answer's under allow): 500 items
# that all overlap would otherwise list each other's occurrences, 90 million of them.
BATCH_LISTED = 100

BATCH_OCCURRENCES = 500_000  # occurrences a batch may bring to its conflict check

MANY_SERIES = 32  # series in a batch from which its check runs in a process of its own

HEAVY_OCCURRENCES = 20_000  # or occurrences (roughly counted)


@dataclasses.dataclass(frozen=True, slots=True)
class BatchPlan:
    """A batch's valid items with their occurrences over the span each is checked in, and
    where the calendar must be read for them."""

    drafts: list[Draft | errors.Problem]
    mine: dict[int, list[Interval]]  # item index -> its occurrences
    lower: dt.datetime
    upper: dt.datetime
    near: conflicts.Cover  # every occurrence of every item (and where `shift` may move one)
    pieces: list[Interval] | None  # for the candidates' query


def plan_batch(drafts: list[Draft | errors.Problem], on_conflict: OnConflict, atomic: bool) -> BatchPlan:
    """Expand each valid item over its check range (an item with too many occurrences gets
    its problem, raised as errors.BatchItem when `atomic`); errors.Validation when the batch
    brings more than BATCH_OCCURRENCES."""
    drafts = list(drafts)
    mine: dict[int, list[Interval]] = {}
    reach: list[Interval] = []
    total = 0
    for index, draft in enumerate(drafts):
        if not isinstance(draft, Draft):
            continue
        lower, upper = check_range(draft)
        try:
            mine[index] = busy = draft_intervals(draft, lower, upper)
        except errors.Problem as exc:
            if atomic:
                raise errors.BatchItem.of(index, exc) from None
            drafts[index] = exc
            continue
        total += len(busy)
        if total > BATCH_OCCURRENCES:
            raise errors.Validation.at(
                ("body", "events"),
                f"the batch has more than {BATCH_OCCURRENCES:,} occurrences to check against the calendar (an "
                f"endless rule counts its first {CONFLICT_HORIZON.days} days); send it in smaller batches",
            )
        reach.append((lower, upper))
        if on_conflict == "shift":
            reach.append(shift_window(draft))
    # Each item's occurrences come in order: merged in order, the sort in Cover finds them
    # sorted (a sort of hundreds of thousands of unsorted intervals holds the interpreter lock,
    # and every other request with it, for too long)
    near = conflicts.Cover(
        heapq.merge(
            reach if on_conflict == "shift" else (), *mine.values(), key=lambda interval: interval[0].astimezone(dt.UTC)
        )
    )
    lower, upper = (min(r[0] for r in reach), max(r[1] for r in reach)) if reach else (EARLIEST, EARLIEST)
    # probing the calendar once per piece pays when the pieces are few in a long range (series
    # over two years); a batch of events within weeks reads the range at once
    probe = len(near.pieces) <= PROBED_PIECES and upper - lower > PROBE_SPAN
    return BatchPlan(drafts, mine, lower, upper, near, near.pieces if probe else None)


def heavy_batch(drafts: list[Draft | errors.Problem]) -> bool:
    """Whether checking a batch is seconds of work (for services.offload): many series, or
    occurrences that a rough count puts past HEAVY_OCCURRENCES."""
    series = [(d.series, d) for d in drafts if isinstance(d, Draft) and d.series is not None]
    if len(series) > MANY_SERIES:
        return True
    return sum(recurrence.rough_count(s, *check_range(d)) for s, d in series) > HEAVY_OCCURRENCES


def batch_range(drafts: list[Draft | errors.Problem], on_conflict: OnConflict) -> tuple[dt.datetime, dt.datetime]:
    """What plan_batch's plan would span, without expanding anything."""
    reach = [check_range(d) for d in drafts if isinstance(d, Draft)]
    if on_conflict == "shift":
        reach += [shift_window(d) for d in drafts if isinstance(d, Draft)]
    return min(r[0] for r in reach), max(r[1] for r in reach)


def check_batch(
    drafts: list[Draft | errors.Problem], candidates: list[Event], on_conflict: OnConflict, atomic: bool, owner_id: int
) -> tuple[list[Any], str]:
    """plan_batch then place_batch, in one call (for services.offload)."""
    return place_batch(plan_batch(drafts, on_conflict, atomic), candidates, on_conflict, atomic, owner_id)


def place_batch(
    plan: BatchPlan, candidates: list[Event], on_conflict: OnConflict, atomic: bool, owner_id: int
) -> tuple[list[Any], str]:
    """Each item, in request order, checked against the calendar and the items placed before
    it: its draft (moved, under `shift`) and conflicts, or its problem; and the rows of those
    placed, as insert_events takes them. With `atomic`, the first problem is raised as
    errors.BatchItem."""
    calendar = conflicts.Calendar(calendar_busy(candidates, plan.lower, plan.upper, None, plan.near))
    results: list[Any] = list(plan.drafts)
    for index, draft in enumerate(plan.drafts):
        if not isinstance(draft, Draft):
            continue
        try:
            results[index] = _place(calendar, index, draft, plan.mine[index], on_conflict)
        except errors.Problem as exc:
            if atomic:
                raise errors.BatchItem.of(index, exc) from None
            results[index] = exc
    rows = orjson.dumps([r[0].row(owner_id) for r in results if isinstance(r, tuple)]).decode()
    return results, rows


def name_placed(results: list[Any], placed: list[tuple[int, Any]], events: list[Event]) -> None:
    """Put the written events in `results`, and name the items of the batch that conflicts
    list (by their stand-in ids, -1 - index) by their new ids, in the conflicts of the items
    placed and of those refused (atomic: false)."""
    ids = {-1 - index: event.id for (index, _), event in zip(placed, events)}
    for (index, (_, found)), event in zip(placed, events):
        results[index] = (
            event,
            [conflicts.Busy(ids[b.event_id], b.title, b.start, b.end) if b.event_id < 0 else b for b in found],
        )
    for result in results:
        if isinstance(result, errors.Problem) and isinstance(result.extra.get("conflicts"), list):
            for item in result.extra["conflicts"]:
                item["event_id"] = ids.get(item["event_id"], item["event_id"])


def _place(
    calendar: conflicts.Calendar, index: int, draft: Draft, mine: list[Interval], on_conflict: OnConflict
) -> tuple[Draft, list[conflicts.Busy]]:
    """Check one batch item against the calendar (which holds the items placed before it),
    apply the on_conflict and add the item to the calendar."""
    found = calendar.conflicts_of(mine, BATCH_LISTED)
    if found and on_conflict == "reject":
        raise conflict_error(found, BATCH_LISTED)
    if found and on_conflict == "shift":
        start, until = shift_window(draft)
        draft = shifted(draft, [(b.start, b.end) for b in calendar.overlapping(start, until)], found)
        mine, found = [(draft.start_time, draft.end_time)], []
    # Items of a batch have no id yet: a negative stand-in keeps them apart in the calendar.
    calendar.add(conflicts.Busy(-1 - index, draft.title, s, e) for s, e in mine)
    return draft, found


class BatchService:
    def __init__(self, db: Database, checker: ConflictChecker, offload: Offload | None = None) -> None:
        self.db = db
        self.checker = checker
        self.offload = offload or Offload()  # the process that checks large batches

    async def create_many(
        self,
        user_id: int,
        items: list[dict[str, Any] | errors.Problem],
        on_conflict: OnConflict,
        atomic: bool,
        record: Recorder | None = None,
    ) -> list[Placed | errors.Problem]:
        """A batch: each item checked alone, then against the calendar and the items before
        it, all written by one statement in one transaction. Each result is the event and its
        conflicts, or the problem of that item. When `atomic`, the first problem is raised as
        errors.BatchItem instead and nothing is written."""
        drafts = await off_loop(_checked_items, items, on_conflict)
        if atomic:
            _raise_first(drafts)
        if not heavy_batch(drafts):
            return await run_in_tx(
                self.db, "create_events", self._insert_many, user_id, drafts, on_conflict, atomic, record, False
            )
        async with self.offload.turn():  # before the transaction: waiting, it holds nothing
            return await run_in_tx(
                self.db, "create_events", self._insert_many, user_id, drafts, on_conflict, atomic, record, True
            )

    async def _insert_many(
        self,
        tx: Tx,
        user_id: int,
        drafts: list[Draft | errors.Problem],
        on_conflict: OnConflict,
        atomic: bool,
        record: Recorder | None,
        heavy: bool,
    ) -> list[Placed | errors.Problem]:
        if record is not None:
            await record.claim(tx)
        await event_db.lock_calendar(tx.conn, user_id)
        results: list[Any] = list(drafts)
        rows = "[]"
        if any(isinstance(d, Draft) for d in drafts):
            results, rows = await self._placed(tx, user_id, drafts, on_conflict, atomic, heavy)
        placed = [(i, r) for i, r in enumerate(results) if isinstance(r, tuple)]
        if placed:
            events = await event_db.insert_events(tx.conn, user_id, rows)
            if sum(len(found) for _, (_, found) in placed) > 1000:
                # tens of thousands of conflicts to rename when the items overlap: in a thread
                await asyncio.get_running_loop().run_in_executor(CHECK_THREADS, name_placed, results, placed, events)
            else:
                name_placed(results, placed, events)
        if record is not None:
            if placed:
                await record.save(tx, results)
            else:  # nothing was written: the key stays free for the corrected request
                await record.release(tx)
        return results

    async def _placed(
        self,
        tx: Tx,
        user_id: int,
        drafts: list[Draft | errors.Problem],
        on_conflict: OnConflict,
        atomic: bool,
        heavy: bool,
    ) -> tuple[list[Any], str]:
        """place_batch's answer for the drafts, the CPU work (expanding every item, the
        calendar's series, the placement) off the loop unless it is a few milliseconds: the
        loop only reads the candidates in between."""
        loop = asyncio.get_running_loop()
        if heavy:
            # seconds of work: in a process of its own, the calendar read over the whole range
            lower, upper = batch_range(drafts, on_conflict)
            candidates = await self.checker.calendar(tx.conn, user_id, lower, upper, tx)
            return await self.offload.run(check_batch, drafts, candidates, on_conflict, atomic, user_id)
        # events without a rule (most batches): a few milliseconds, not worth a thread
        single = all(d.series is None for d in drafts if isinstance(d, Draft))
        plan = (
            plan_batch(drafts, on_conflict, atomic)
            if single
            else (await loop.run_in_executor(CHECK_THREADS, plan_batch, drafts, on_conflict, atomic))
        )
        candidates = (
            await self.checker.calendar(tx.conn, user_id, plan.lower, plan.upper, tx, plan.pieces) if plan.mine else []
        )
        if single and not much_work(0, candidates, plan.lower, plan.upper):
            return place_batch(plan, candidates, on_conflict, atomic, user_id)
        return await loop.run_in_executor(CHECK_THREADS, place_batch, plan, candidates, on_conflict, atomic, user_id)


def _checked_items(
    items: list[dict[str, Any] | errors.Problem], on_conflict: OnConflict
) -> list[Draft | errors.Problem]:
    out: list[Draft | errors.Problem] = []
    for item in items:
        if isinstance(item, errors.Problem):
            out.append(item)
            continue
        try:
            draft = check_event(item)
            check_on_conflict_applies(draft, on_conflict, ("body", "on_conflict"))
        except errors.Problem as exc:
            out.append(exc)
        else:
            out.append(draft)
    return out


def _raise_first(results: list[Any]) -> None:
    for index, result in enumerate(results):
        if isinstance(result, errors.Problem):
            raise errors.BatchItem.of(index, result)
