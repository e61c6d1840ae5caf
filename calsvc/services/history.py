"""History: versions, their snapshots, the changelog and diffs. Reads only; the rollback is
a change like any other (services.events)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from typing import Any

import orjson

from calsvc import errors
from calsvc.db import history as history_db
from calsvc.db.pool import Database, off_loop
from calsvc.models import AccessAction, VersionKind
from calsvc.snapshots import FIELDS, api_fields, same, shown

BIG_PAGE = 256 * 1024  # characters of snapshots in a changelog page past which it is compared in a thread


def field_changes(
    old: dict[str, Any] | None, new: dict[str, Any], old_deleted: bool = False, new_deleted: bool = False
) -> list[dict[str, Any]]:
    """[{field, old, new}] from one shown snapshot to another (`old` None: nothing before,
    every field with a value is new; one left null was null before and after, so it is not a
    change); `deleted` when one side is a deleted event and the other is not."""
    changes = []
    if old_deleted != new_deleted:
        changes.append({"field": "deleted", "old": old_deleted, "new": new_deleted})
    for field in FIELDS:
        before = None if old is None else old[field]
        if old is None and new[field] is None:
            continue
        if old is None or not same(field, before, new[field]):
            after = new[field]
            if field == "exceptions" and old is not None and before is not None:
                before, after = _changed_exceptions(before, after)
            changes.append({"field": field, "old": before, "new": after})
    return changes


def _changed_exceptions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[list, list]:
    """Of two lists of a series' exceptions, those that differ (by occurrence), each side's
    own: a change of one occurrence of a series with 1,000 of them lists one or two, not
    2,000."""
    before = {e["occurrence_start"]: e for e in old}
    after = {e["occurrence_start"]: e for e in new}
    return ([e for k, e in before.items() if after.get(k) != e], [e for k, e in after.items() if before.get(k) != e])


def description_diff(old: str, new: str, old_version: int, new_version: int) -> list[str]:
    """The unified diff of two descriptions, line by line (empty when they are equal)."""
    return list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"version {old_version}", f"version {new_version}", lineterm=""
        )
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Version:
    version: int
    kind: VersionKind
    at: dt.datetime
    actor_id: int
    actor_username: str
    changed_fields: list[str]
    snapshot: dict[str, Any] | None = None  # shown

    @classmethod
    def from_row(cls, row: history_db.VersionRow) -> Version:
        """The version as the API shows it; with its snapshot when `row` has one."""
        snap = row.snapshot if isinstance(row, history_db.SnapshotRow) else None
        return cls(
            row.version,
            row.kind,
            row.at,
            row.actor_id,
            row.actor_username,
            api_fields(list(row.changed_fields)),
            None if snap is None else shown(orjson.loads(snap)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One changelog item: a version (`version` set) or a change of access (`user_id` set)."""

    seq: int
    version: int | None
    action: VersionKind | AccessAction
    at: dt.datetime
    actor_id: int
    actor_username: str
    changes: list[dict[str, Any]]
    user_id: int | None = None
    username: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Diff:
    from_version: int
    to_version: int
    changes: list[dict[str, Any]]
    description_diff: list[str]
    old: Version
    new: Version


def _entry(row: history_db.VersionChange | history_db.AccessChange) -> Entry:
    if isinstance(row, history_db.AccessChange):
        changes: list[dict[str, Any]] = [{"field": "role", "old": row.old_role, "new": row.new_role}]
        return Entry(
            row.seq, None, row.action, row.at, row.actor_id, row.actor_username, changes, row.user_id, row.username
        )
    new = shown(orjson.loads(row.snapshot))
    old = None if row.previous is None else shown(orjson.loads(row.previous))
    if row.action == "deleted":
        changes = [{"field": "deleted", "old": False, "new": True}]
    else:
        changes = field_changes(old, new, row.previous_kind == "deleted", False)
    return Entry(row.seq, row.version, row.action, row.at, row.actor_id, row.actor_username, changes)


class HistoryService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def _check(conn: Any, user_id: int, event_id: int) -> None:
        """errors.NotFound unless the user may read the event's history: anyone with access
        while it is live, its owner alone once it is deleted."""
        access = None
        if 1 <= event_id < 2**63:
            access = await history_db.access(conn, event_id, user_id)
        if access is None or (access.deleted and access.role != "owner"):
            raise errors.NotFound("no such event")

    async def history(self, user_id: int, event_id: int, after: int, limit: int) -> list[Version]:
        async with self.db.acquire() as conn:
            await self._check(conn, user_id, event_id)
            return [Version.from_row(r) for r in await history_db.versions(conn, event_id, after, limit)]

    async def version(self, user_id: int, event_id: int, number: int) -> Version:
        async with self.db.acquire() as conn:
            await self._check(conn, user_id, event_id)
            versions = await history_db.snapshots(conn, event_id, [number]) if 1 <= number < 2**31 else {}
        if number not in versions:
            raise errors.NotFound("the event has no such version")
        return Version.from_row(versions[number])

    async def changelog(self, user_id: int, event_id: int, after_seq: int, limit: int) -> list[Entry]:
        async with self.db.acquire() as conn:
            await self._check(conn, user_id, event_id)
            rows = await history_db.changelog(conn, event_id, after_seq, limit)
        # Each version's snapshot and the one before it parsed and compared: up to 500 pairs
        # of snapshots that may each be hundreds of kilobytes (a series' exceptions)
        if sum(len(r.snapshot) for r in rows if isinstance(r, history_db.VersionChange)) > BIG_PAGE:
            return await off_loop(lambda: [_entry(r) for r in rows])
        return [_entry(r) for r in rows]

    async def diff(self, user_id: int, event_id: int, first: int, second: int) -> Diff:
        async with self.db.acquire() as conn:
            await self._check(conn, user_id, event_id)
            numbers = [n for n in (first, second) if 1 <= n < 2**31]
            versions = await history_db.snapshots(conn, event_id, numbers) if numbers else {}
        if first not in versions or second not in versions:
            raise errors.NotFound("the event has no such version")
        old, new = Version.from_row(versions[first]), Version.from_row(versions[second])
        assert old.snapshot is not None and new.snapshot is not None
        changes = field_changes(old.snapshot, new.snapshot, old.kind == "deleted", new.kind == "deleted")
        lines = description_diff(old.snapshot["description"], new.snapshot["description"], first, second)
        return Diff(first, second, changes, lines, old, new)
