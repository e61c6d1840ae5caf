"""Events: the use cases that create, change and delete events and occurrences, each change
checked against the owner's calendar (services.conflict_check) and written as a new
version, all in one transaction. The writes a transaction composes (`insert`, `change`,
`remove`) take the open transaction; the others open their own."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from calsvc import conflicts, errors, recurrence
from calsvc.db import events as event_db
from calsvc.db import history as history_db
from calsvc.db.pool import Database, off_loop
from calsvc.db.tx import Tx, run_in_tx
from calsvc.drafts import Draft, check_times, exception_of, replace_exception
from calsvc.models import OVERRIDABLE_TEXT, Event, OccurrenceChange
from calsvc.occurrences import (
    Occurrence,
    check_window,
    costly,
    in_window_of,
    occurrence_at,
    occurrences_in,
    order_key,
    series_of,
)
from calsvc.services.access import EDITOR_ROLES, Expected, locked_event, require_version
from calsvc.services.changes import Build, Change, checked, merging, with_fields
from calsvc.services.conflict_check import (
    CHECK_LIMIT,
    ConflictChecker,
    OnConflict,
    Placed,
    calendar_busy,
    check_on_conflict_applies,
    hide_from_editor,
    hide_in_problem,
)
from calsvc.services.idempotency import Recorder
from calsvc.services.notifications import ACTOR, Notifications, quoted
from calsvc.snapshots import api_fields, changed_fields, fields_of, fields_of_snapshot, snapshot, timing

T = TypeVar("T")


class EventService:
    def __init__(self, db: Database, notifications: Notifications, checker: ConflictChecker) -> None:
        self.db = db
        self.notifications = notifications
        self.checker = checker

    # -- create ---------------------------------------------------------------------------

    async def create(
        self, user_id: int, fields: dict[str, Any], on_conflict: OnConflict = "reject", record: Recorder | None = None
    ) -> Placed:
        """The new event and the conflicts it was written with (only under `allow`).
        errors.Validation for an invalid event; errors.SchedulingConflict under `reject`, or
        under `shift` when no free slot comes within 30 days. `record` (Idempotency-Key)
        claims its key first and keeps the answer, in the same transaction."""
        draft = await checked(fields)
        check_on_conflict_applies(draft, on_conflict)

        async def create_tx(tx: Tx) -> Placed:
            if record is not None:
                await record.claim(tx)
            result = await self.insert(tx, user_id, draft, on_conflict)
            if record is not None:
                await record.save(tx, result)
            return result

        return await run_in_tx(self.db, "create_event", create_tx)

    async def insert(self, tx: Tx, user_id: int, draft: Draft, on_conflict: OnConflict) -> Placed:
        """Write a checked draft in `user_id`'s calendar, in `tx`: its lock taken, the draft
        checked against it."""
        await event_db.lock_calendar(tx.conn, user_id)
        draft, overlaps = await self.checker.check(tx, user_id, draft, on_conflict, exclude=None)
        [event] = await event_db.insert_events(tx.conn, user_id, orjson.dumps([draft.row(user_id)]).decode())
        return event, overlaps

    # -- change ---------------------------------------------------------------------------

    async def update(
        self,
        user_id: int,
        event_id: int,
        changes: dict[str, Any],
        *,
        expected: Expected = None,
        on_conflict: OnConflict = "reject",
        merge: tuple[int, str | None] | None = None,
    ) -> Placed:
        """Apply the given fields (a partial update) and write the next version; the merged
        event is checked as a whole and against the owner's calendar. An update that changes
        nothing writes nothing and answers the event as it is. `merge` (base version,
        prefer): the changes were made to that version; see merged_fields."""
        build = with_fields(changes, on_conflict) if merge is None else merging(changes, *merge, on_conflict)
        return await run_in_tx(self.db, "update_event", self.change, user_id, event_id, expected, build, on_conflict)

    async def change_occurrence(
        self,
        user_id: int,
        event_id: int,
        original: dt.datetime,
        changes: dict[str, Any],
        *,
        expected: Expected = None,
        on_conflict: OnConflict = "reject",
    ) -> tuple[Event, Occurrence, list[conflicts.Busy]]:
        """Store `changes` (times, title, description, location) as an exception of the
        occurrence that starts at `original`; it is checked against the calendar like an update."""

        async def build(tx: Tx, event: Event) -> Change | None:
            current = occurrence_at(event, original, CHECK_LIMIT)
            overrides = exception_of(event, current.original_start)
            merged = {
                "start_time": current.start,
                "end_time": current.end,
                "title": current.title,
                **{k: overrides.get(k, getattr(event, k)) for k in ("description", "location")},
                **changes,
            }
            if merged["description"] is None:
                merged["description"] = ""
            check_times(merged["start_time"], merged["end_time"])
            utc = dt.UTC
            start, end = merged["start_time"].astimezone(utc), merged["end_time"].astimezone(utc)
            first = current.original_start.astimezone(utc)
            natural = {k: getattr(event, k) for k in OVERRIDABLE_TEXT}
            kept = {k: merged[k] for k in natural if merged[k] != natural[k]}
            if (start, end) != (first, series_of(event).end_of(first)):
                kept.update(start_time=start, end_time=end)
            change = OccurrenceChange(first, False, kept)
            draft = await checked(
                {**fields_of(event), "exceptions": replace_exception(event, change)}, exceptions_on_rule=True
            )
            return Change(
                draft,
                "occurrence_changed",
                [(start, end)],
                f"{ACTOR} changed the occurrence of {quoted(draft.title)} at {current.original_start.isoformat()}",
            )

        if on_conflict == "shift":
            raise errors.Validation.at(("query", "on_conflict"), "shift applies to single events only")
        event, overlaps = await run_in_tx(
            self.db, "change_occurrence", self.change, user_id, event_id, expected, build, on_conflict
        )
        return event, occurrence_at(event, original, CHECK_LIMIT), overlaps

    async def cancel_occurrence(
        self, user_id: int, event_id: int, original: dt.datetime, *, expected: Expected = None
    ) -> Event:
        """Cancel the occurrence that starts at `original` (listed as cancelled from now on)."""

        async def build(tx: Tx, event: Event) -> Change | None:
            current = occurrence_at(event, original, CHECK_LIMIT)
            if current.cancelled:
                return None
            change = OccurrenceChange(current.original_start.astimezone(dt.UTC), True)
            draft = await checked(
                {**fields_of(event), "exceptions": replace_exception(event, change)}, exceptions_on_rule=True
            )
            return Change(
                draft,
                "occurrence_cancelled",
                [],
                f"{ACTOR} cancelled the occurrence of {quoted(draft.title)} at {current.original_start.isoformat()}",
            )

        event, _ = await run_in_tx(
            self.db, "cancel_occurrence", self.change, user_id, event_id, expected, build, "allow"
        )
        return event

    async def rollback(
        self, user_id: int, event_id: int, number: int, *, expected: Expected = None, on_conflict: OnConflict = "reject"
    ) -> Placed:
        """A new version whose content is that of version `number`, checked against the
        calendar like an update; a deleted event (its owner alone finds it) is restored.
        Rolling back to what the event already is writes nothing."""

        async def build(tx: Tx, event: Event) -> Change | None:
            versions = await history_db.snapshots(tx.conn, event.id, [number]) if 1 <= number < 2**31 else {}
            if number not in versions:
                raise errors.NotFound("the event has no such version")
            draft = await checked(fields_of_snapshot(orjson.loads(versions[number].snapshot)))
            check_on_conflict_applies(draft, on_conflict)
            if event.deleted:
                return Change(
                    draft, "rolled_back", summary=f"{ACTOR} restored {quoted(draft.title)} (version {number})"
                )
            return Change(
                draft, "rolled_back", summary=f"{ACTOR} rolled {quoted(draft.title)} back to version {number}"
            )

        restoring = functools.partial(self.change, deleted_ok=True)  # a deleted event comes back
        return await run_in_tx(self.db, "rollback_event", restoring, user_id, event_id, expected, build, on_conflict)

    async def change(
        self,
        tx: Tx,
        user_id: int,
        event_id: int,
        expected: Expected,
        build: Build,
        on_conflict: OnConflict,
        *,
        deleted_ok: bool = False,
    ) -> Placed:
        """In `tx`: lock the event and its owner's calendar, check the caller's role (an editor
        or the owner) and the expected version, build the change from the event as it is,
        check it against the calendar and write the next version. Concurrent writers of one
        event queue on its row, so without an expected version the last one wins and no
        version number is used twice."""
        event = await locked_event(tx, user_id, event_id, EDITOR_ROLES, lock_calendar=True, deleted_ok=deleted_ok)
        require_version(event, expected)
        change = await build(tx, event)
        if change is None:
            return event, []
        old, new = snapshot(event, event.owner_id), snapshot(change.draft, event.owner_id)
        fields = changed_fields(old, new)
        if not fields and not event.deleted:
            return event, []
        if timing(old) == timing(new) and not event.deleted:
            # Same occurrences as before (a new title, say): an overlap it already had is
            # reported under `allow` but blocks nothing.
            on_conflict = "allow"
        try:
            draft, overlaps = await self.checker.check(
                tx, event.owner_id, change.draft, on_conflict, exclude=event.id, mine=change.check
            )
        except errors.SchedulingConflict as exc:
            await hide_in_problem(tx, user_id, event.owner_id, exc)
            raise
        overlaps = await hide_from_editor(tx, user_id, event.owner_id, overlaps)
        if draft is not change.draft:  # moved by shift
            new = snapshot(draft, event.owner_id)
            fields = changed_fields(old, new)
        row = orjson.dumps(draft.row(event.owner_id, new)).decode()
        updated = await event_db.update_event(
            tx.conn,
            event.id,
            event.version,
            event.owner_id,
            user_id,
            row,
            change.kind,
            fields,
            event.my_role,
            restore=event.deleted,
        )
        if updated is None:
            raise AssertionError("a locked event changed")
        summary = change.summary or f"{ACTOR} updated {quoted(updated.title)} ({', '.join(api_fields(fields))})"
        self.notifications.note(tx, "event.restored" if event.deleted else "event.updated", event.id, user_id, summary)
        return updated, overlaps

    # -- delete ---------------------------------------------------------------------------

    async def delete(self, user_id: int, event_id: int, *, expected: Expected = None) -> None:
        """Soft-delete: gone from every read; the version row keeps what it was."""
        await run_in_tx(self.db, "delete_event", self.remove, user_id, event_id, expected)

    async def remove(self, tx: Tx, user_id: int, event_id: int, expected: Expected) -> None:
        """`delete`, in `tx` (the owner only)."""
        event = await locked_event(tx, user_id, event_id, ("owner",), lock_calendar=False)
        require_version(event, expected)
        await self.remove_locked(tx, user_id, [event])

    async def remove_locked(self, tx: Tx, user_id: int, events: list[Event]) -> None:
        """Soft-delete `events` (live, their rows locked by the caller) on behalf of `user_id`,
        each as DELETE /api/events/{id} deletes one: a `deleted` version keeping what it was
        and an `event.deleted` notification to everyone else with access; all in one
        statement (give it a few hundred at a time: the loop waits while they are encoded)."""
        rows = [(e.id, e.version, orjson.dumps(snapshot(e, e.owner_id)).decode()) for e in events]
        if await event_db.delete_events(tx.conn, rows, user_id) != len(events):
            raise AssertionError("a locked event changed")
        for event in events:
            self.notifications.note(tx, "event.deleted", event.id, user_id, f"{ACTOR} deleted {quoted(event.title)}")

    # -- read -----------------------------------------------------------------------------

    async def page(
        self,
        user_id: int,
        *,
        start: dt.datetime | None,
        end: dt.datetime | None,
        role: str | None,
        q: str | None,
        after: tuple[dt.datetime, int] | None,
        limit: int,
    ) -> tuple[list[Event], bool]:
        """A page of the events the user can see with an occurrence in the window, and
        whether more follow. Series whose envelope overlaps but no occurrence does are
        skipped, fetching further rows until the page is full."""
        window = None if start is None and end is None else (start, end)
        page: list[Event] = []
        async with self.db.acquire() as conn:
            while True:
                rows = await event_db.list_visible(
                    conn, user_id, role=role, window=window, q=q, after=after, limit=limit + 1
                )
                if window is not None:
                    rows_in = (
                        await off_loop(in_window_of, rows, start, end)
                        if costly(rows)
                        else (in_window_of(rows, start, end))
                    )
                else:
                    rows_in = rows
                for event in rows_in:
                    page.append(event)
                    if len(page) > limit:
                        return page[:limit], True
                if len(rows) <= limit:
                    return page, False
                after = (rows[-1].start_time, rows[-1].id)

    async def expand(
        self, user_id: int, start: dt.datetime, end: dt.datetime, role: str | None, q: str | None
    ) -> list[Occurrence]:
        """Every occurrence in the window of every event the user can see, by (start, event id);
        errors.Validation when the window is over 2 years or holds over 5,000 occurrences."""
        check_window(start, end)
        occurrences: list[Occurrence] = []
        after = None
        async with self.db.acquire() as conn:
            while True:
                rows = await event_db.list_visible(
                    conn, user_id, role=role, window=(start, end), q=q, after=after, limit=500
                )
                left = recurrence.MAX_OCCURRENCES - len(occurrences)
                occurrences += (
                    await off_loop(occurrences_in, rows, start, end, left)
                    if costly(rows)
                    else (occurrences_in(rows, start, end, left))
                )
                if len(rows) < 500:
                    break
                after = (rows[-1].start_time, rows[-1].id)
        occurrences.sort(key=order_key)
        return occurrences

    async def overlapping_pairs(
        self,
        user_id: int,
        start: dt.datetime,
        end: dt.datetime,
        after: tuple[dt.datetime, int, int, dt.datetime] | None,
        limit: int,
    ) -> list[conflicts.Overlap]:
        """The first `limit` pairs (after the key `after`) of events in the user's calendar with
        overlapping occurrences in the window (see conflicts.overlapping_pairs)."""
        check_window(start, end)
        async with self.db.acquire() as conn:
            events = await self.checker.calendar(conn, user_id, start, end)

        def work() -> list[conflicts.Overlap]:
            return conflicts.overlapping_pairs(calendar_busy(events, start, end, None, limit=CHECK_LIMIT), after, limit)

        return await _window_work(work)

    async def free_busy(
        self, user_id: int, others: list[int], start: dt.datetime, end: dt.datetime
    ) -> list[tuple[int, list[tuple[dt.datetime, dt.datetime]]]]:
        """Merged busy intervals (clipped to the window) of each user; errors.NotFound when one
        of them has not given the caller access to an event they own. All the calendars
        together may hold CHECK_LIMIT occurrences in the window (errors.Validation past it)."""
        check_window(start, end)
        async with self.db.acquire() as conn:
            strangers: set[int] = set(others) - {user_id}
            if strangers and await event_db.users_sharing_with(conn, user_id, sorted(strangers)) != strangers:
                raise errors.NotFound("no such user among the people you share events with")
            calendars = [await self.checker.calendar(conn, other, start, end) for other in others]

        def work() -> list[tuple[int, list[tuple[dt.datetime, dt.datetime]]]]:
            answer, left = [], CHECK_LIMIT
            for other, events in zip(others, calendars):
                busy = calendar_busy(events, start, end, None, limit=left)
                left -= len(busy)
                answer.append((other, conflicts.merge_intervals((max(b.start, start), min(b.end, end)) for b in busy)))
            return answer

        return await _window_work(work)

    async def get(self, user_id: int, event_id: int) -> Event:
        """errors.NotFound when the event is unknown, deleted or not visible to the user."""
        if not 1 <= event_id < 2**63:
            raise errors.NotFound("no such event")
        async with self.db.acquire() as conn:
            event = await event_db.find_event(conn, event_id, user_id)
        if event is None:
            raise errors.NotFound("no such event")
        return event


async def _window_work(work: Callable[[], T]) -> T:
    """`work()` (expanding the calendars of a window) in a thread; errors.Validation when
    the window holds more occurrences than CHECK_LIMIT."""
    try:
        return await off_loop(work)
    except recurrence.RecurrenceError:
        raise errors.Validation.at(
            ("query", "end"),
            f"more than {CHECK_LIMIT:,} occurrences in the window; ask for a shorter window (or fewer users)",
        ) from None
