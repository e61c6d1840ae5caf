"""Reads of an event's history: its versions and the log of access changes (written by
db.events and db.permissions), in the one order of the shared change sequence."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import asyncpg

from calsvc.models import AccessAction, Role, VersionKind


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """Whether an event is deleted, and a user's role on it: what deciding whether they may
    read its history needs."""

    deleted: bool
    role: Role

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Access:
        return cls(row["deleted"], row["role"])


@dataclasses.dataclass(frozen=True, slots=True)
class VersionRow:
    """A version of an event, without its content; `changed_fields` as the snapshot names
    them (`rrule`, `exdates`, ...)."""

    version: int
    kind: VersionKind
    at: dt.datetime
    actor_id: int
    actor_username: str
    changed_fields: tuple[str, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VersionRow:
        return cls(
            row["version"], row["kind"], row["at"], row["actor_id"], row["actor_username"], tuple(row["changed_fields"])
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotRow(VersionRow):
    """A version of an event with its content: the snapshot as stored (JSON text)."""

    snapshot: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SnapshotRow:
        return cls(
            row["version"],
            row["kind"],
            row["at"],
            row["actor_id"],
            row["actor_username"],
            tuple(row["changed_fields"]),
            row["snapshot"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class VersionChange:
    """A version in the changelog: its snapshot and, unless it is the first, the snapshot
    and kind of the version before it (both as stored: JSON text)."""

    seq: int
    version: int
    action: VersionKind | AccessAction
    at: dt.datetime
    actor_id: int
    actor_username: str
    snapshot: str
    previous: str | None
    previous_kind: VersionKind | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VersionChange:
        return cls(
            row["seq"],
            row["version"],
            row["action"],
            row["at"],
            row["actor_id"],
            row["actor_username"],
            row["snapshot"],
            row["previous"],
            row["previous_kind"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AccessChange:
    """A change of someone's access in the changelog (a role is None where there was none)."""

    seq: int
    action: AccessAction
    at: dt.datetime
    actor_id: int
    actor_username: str
    user_id: int
    username: str
    old_role: str | None
    new_role: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AccessChange:
        return cls(
            row["seq"],
            row["action"],
            row["at"],
            row["actor_id"],
            row["actor_username"],
            row["user_id"],
            row["username"],
            row["old_role"],
            row["new_role"],
        )


_ACCESS = """
-- whether event $1 is deleted, and the role of user $2 on it (no row: they have none)
SELECT e.deleted_at IS NOT NULL AS deleted, p.role
FROM events e JOIN event_permissions p ON p.event_id = e.id AND p.user_id = $2
WHERE e.id = $1
"""

_VERSIONS = """
SELECT v.version, v.kind, v.at, v.actor_id, u.username AS actor_username, v.changed_fields
FROM event_versions v JOIN users u ON u.id = v.actor_id
WHERE v.event_id = $1 AND v.version > $2::bigint  -- a cursor is any 64-bit number
ORDER BY v.version
LIMIT $3
"""

_VERSION = """
SELECT v.version, v.kind, v.at, v.actor_id, u.username AS actor_username, v.changed_fields, v.snapshot::text
FROM event_versions v JOIN users u ON u.id = v.actor_id
WHERE v.event_id = $1 AND v.version = ANY($2::int[])
"""

_CHANGELOG = """
-- content versions (each with the snapshot before it) and access changes, in the order
-- they were written
SELECT seq, version, action, at, actor_id, actor_username, snapshot, previous, previous_kind,
       user_id, username, old_role, new_role
FROM (
    SELECT v.seq, v.version, v.kind AS action, v.at, v.actor_id, a.username AS actor_username,
           v.snapshot::text AS snapshot, prev.snapshot::text AS previous, prev.kind AS previous_kind,
           NULL::bigint AS user_id, NULL::text AS username, NULL::text AS old_role, NULL::text AS new_role
    FROM event_versions v
    JOIN users a ON a.id = v.actor_id
    LEFT JOIN event_versions prev ON prev.event_id = v.event_id AND prev.version = v.version - 1
    WHERE v.event_id = $1 AND v.seq > $2
    UNION ALL
    SELECT c.seq, NULL, c.action, c.at, c.actor_id, a.username, NULL, NULL, NULL,
           c.user_id, t.username, c.old_role, c.new_role
    FROM event_access_changes c JOIN users a ON a.id = c.actor_id JOIN users t ON t.id = c.user_id
    WHERE c.event_id = $1 AND c.seq > $2
) changes
ORDER BY seq
LIMIT $3
"""


async def access(conn: asyncpg.Connection, event_id: int, user_id: int) -> Access | None:
    """The event's state and the role of `user_id` on it; None when they have no role (or
    there is no such event)."""
    row = await conn.fetchrow(_ACCESS, event_id, user_id)
    return None if row is None else Access.from_row(row)


async def versions(conn: asyncpg.Connection, event_id: int, after: int, limit: int) -> list[VersionRow]:
    """The event's versions after number `after`, oldest first, at most `limit`; [] when
    there are none."""
    return [VersionRow.from_row(r) for r in await conn.fetch(_VERSIONS, event_id, after, limit)]


async def snapshots(conn: asyncpg.Connection, event_id: int, numbers: list[int]) -> dict[int, SnapshotRow]:
    """The versions `numbers` of the event with their snapshots, by number; a number the
    event has no version of is missing."""
    return {r["version"]: SnapshotRow.from_row(r) for r in await conn.fetch(_VERSION, event_id, numbers)}


async def changelog(
    conn: asyncpg.Connection, event_id: int, after_seq: int, limit: int
) -> list[VersionChange | AccessChange]:
    """The event's changes after `after_seq` in the change sequence, oldest first, at most
    `limit`; [] when there are none."""
    rows = await conn.fetch(_CHANGELOG, event_id, after_seq, limit)
    return [AccessChange.from_row(r) if r["version"] is None else VersionChange.from_row(r) for r in rows]
