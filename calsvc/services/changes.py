"""Changes of an event: what a change writes (a Change), and how the changes of an update, a
merge or a transaction's update are built from the event as it is."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from calsvc import errors
from calsvc.db import history as history_db
from calsvc.db.pool import off_loop
from calsvc.db.tx import Tx
from calsvc.drafts import Draft, check_event
from calsvc.models import Event
from calsvc.services.conflict_check import Interval, OnConflict, check_on_conflict_applies
from calsvc.snapshots import FIELDS, fields_of, fields_of_snapshot, same, shown, snapshot


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What a change of an event writes: the new draft, the version kind, and the intervals to
    check against the calendar (None: the draft's own occurrences; empty: no check)."""

    draft: Draft
    kind: str
    check: list[Interval] | None = None
    summary: str | None = None  # what the others read (services.notifications); None: the fields changed


# Builds the change from the event as it is (its row locked); None: nothing to write.
Build = Callable[[Tx, Event], Awaitable[Change | None]]


async def checked(fields: dict[str, Any], exceptions_on_rule: bool = False) -> Draft:
    """check_event, in a thread when a recurrence makes it CPU work."""
    if fields.get("recurrence") is not None:
        return await off_loop(check_event, fields, exceptions_on_rule)
    return check_event(fields, exceptions_on_rule)


def with_fields(
    changes: dict[str, Any], on_conflict: OnConflict, loc: tuple[str | int, ...] = ("query", "on_conflict")
) -> Build:
    """The change of a partial update: `changes` over the event's fields, checked as a whole."""
    changes = _cleared(changes)

    async def build(tx: Tx, event: Event) -> Change:
        draft = await checked({**fields_of(event), **changes})
        check_on_conflict_applies(draft, on_conflict, loc)
        return Change(draft, "updated")

    return build


def merging(changes: dict[str, Any], base_version: int, prefer: str | None, on_conflict: OnConflict) -> Build:
    """The change of a partial update made to version `base_version`: see merged_fields."""
    changes = _cleared(changes)

    async def build(tx: Tx, event: Event) -> Change:
        draft = await checked(await merged_fields(tx, event, changes, base_version, prefer))
        check_on_conflict_applies(draft, on_conflict)
        return Change(draft, "updated")

    return build


def _cleared(changes: dict[str, Any]) -> dict[str, Any]:
    """A partial update's changes, a null description meaning an empty one (it clears it)."""
    if "description" in changes and changes["description"] is None:
        return {**changes, "description": ""}
    return changes


MERGED = FIELDS  # a merge settles each field of the content on its own


async def merged_fields(
    tx: Tx, event: Event, changes: dict[str, Any], base_version: int, prefer: str | None
) -> dict[str, Any]:
    """A three-way merge, field by field: `changes` applied to version `base_version` is
    "mine", the event as it is now "theirs". A field only one side changed takes that side's
    value; one both changed differently is an errors.EditConflict naming them all, unless
    `prefer` settles it. Fields compare as a version keeps them."""
    if base_version > event.version:
        raise errors.Validation.at(("query", "base_version"), f"the event is at version {event.version}")
    versions = await history_db.snapshots(tx.conn, event.id, [base_version])
    if base_version not in versions:
        raise errors.Validation.at(("query", "base_version"), "the event has no such version")
    base_snapshot = orjson.loads(versions[base_version].snapshot)
    mine_draft = await checked({**fields_of_snapshot(base_snapshot), **changes})
    base, theirs, mine = (
        shown(snap) for snap in (base_snapshot, snapshot(event, event.owner_id), snapshot(mine_draft, event.owner_id))
    )
    mine_fields, theirs_fields = fields_of(mine_draft), fields_of(event)
    merged, clashes = {}, []
    for field in MERGED:
        mine_changed = not same(field, mine[field], base[field])
        theirs_changed = not same(field, theirs[field], base[field])
        if mine_changed and theirs_changed and not same(field, mine[field], theirs[field]):
            clashes.append(field)
            take_mine = prefer == "mine"
        else:
            take_mine = mine_changed
        merged[field] = (mine_fields if take_mine else theirs_fields)[field]
    if clashes and prefer is None:
        raise errors.EditConflict(
            f"changed on both sides since version {base_version}: {', '.join(clashes)}; "
            "send prefer=mine or prefer=theirs, or edit the current version",
            fields=clashes,
        )
    return merged
