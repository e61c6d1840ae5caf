"""Rows as frozen, slotted dataclasses (Event: a frozen Struct). `from_row` takes an asyncpg record; no I/O here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
import orjson

Role = Literal["owner", "editor", "viewer"]
# What a version records: how the event came to be as it is.
VersionKind = Literal["created", "updated", "occurrence_changed", "occurrence_cancelled", "deleted", "rolled_back"]
# What a changelog item records: a version, or a change of who has access.
AccessAction = Literal["shared", "role_changed", "ownership_transferred", "unshared", "left"]
# What a notification tells of.
NotificationKind = Literal[
    "event.updated", "event.deleted", "event.restored", "event.shared", "permission.changed", "permission.revoked"
]


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    email: str
    full_name: str | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> User:
        return cls(row["id"], row["username"], row["email"], row["full_name"], row["created_at"])


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """What login needs: the user and the stored hash."""

    user: User
    password_hash: bytes

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Credentials:
        return cls(User.from_row(row), row["password_hash"].encode())


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshToken:
    jti: uuid.UUID
    family_id: uuid.UUID
    user_id: int
    expires_at: dt.datetime
    rotated_at: dt.datetime | None
    family_revoked_at: dt.datetime | None
    user_live: bool  # false once the account is closed or removed

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RefreshToken:
        return cls(
            row["jti"],
            row["family_id"],
            row["user_id"],
            row["expires_at"],
            row["rotated_at"],
            row["family_revoked_at"],
            row["user_live"],
        )


# The text an exception may give one occurrence instead of the series' (its times aside).
OVERRIDABLE_TEXT = ("title", "description", "location")


@dataclasses.dataclass(frozen=True, slots=True)
class OccurrenceChange:
    """An exception of a series: the occurrence that starts at `original` (UTC) is cancelled,
    or shows the `overrides` (start_time, end_time, title, description, location) instead of
    the series' values. Only overridden keys are present, so the rest follows the series."""

    original: dt.datetime
    cancelled: bool = False
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """The value stored under the original start in events.exceptions."""
        if self.cancelled:
            return {"cancelled": True}
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in self.overrides.items()}

    @classmethod
    def from_stored(cls, key: str, value: Mapping[str, Any]) -> OccurrenceChange:
        overrides = {
            k: dt.datetime.fromisoformat(v) if k in ("start_time", "end_time") else v
            for k, v in value.items()
            if k != "cancelled"
        }
        return cls(dt.datetime.fromisoformat(key), bool(value.get("cancelled")), overrides)


# A change of one occurrence of a series writes its exceptions three times (the version
# before, the one after, the row) and reads them twice (the event, then its locked row): with
# up to 1,000 of them, the stored form of the last few tuples, and the parse of the last few
# texts, are kept (by identity: the tuple is held with its form, so its id is not reused).
_STORED: dict[int, tuple[tuple[OccurrenceChange, ...], dict[str, Any]]] = {}
_MANY = 32  # exceptions from which the forms are kept


def exceptions_json(changes: tuple[OccurrenceChange, ...]) -> dict[str, Any]:
    """The stored form (a new dict each time; the values are shared: never change them)."""
    kept = _STORED.get(id(changes))
    if kept is not None and kept[0] is changes:
        return dict(kept[1])
    stored = {c.original.astimezone(dt.UTC).isoformat(): c.stored() for c in changes}
    if len(changes) >= _MANY:
        if len(_STORED) >= 16:
            _STORED.pop(next(iter(_STORED)), None)
        _STORED[id(changes)] = (changes, stored)
        return dict(stored)
    return stored


def exceptions_from_json(text: str | None) -> tuple[OccurrenceChange, ...]:
    if not text or text == "{}":  # most events: no need to parse
        return ()
    if len(text) > 40 * _MANY:
        return _parsed_exceptions(text)
    return _parse_exceptions(text)


def _parse_exceptions(text: str) -> tuple[OccurrenceChange, ...]:
    return tuple(
        sorted((OccurrenceChange.from_stored(k, v) for k, v in orjson.loads(text).items()), key=lambda c: c.original)
    )


_parsed_exceptions = functools.lru_cache(maxsize=64)(_parse_exceptions)


def with_article(role: str) -> str:
    """'the owner', 'an editor', 'a viewer': a role in a sentence."""
    return {"owner": "the owner", "editor": "an editor", "viewer": "a viewer"}[role]


class Event(msgspec.Struct, frozen=True):
    """An event as stored, with the caller's role on it. A frozen msgspec Struct rather than
    a frozen dataclass: those set each of 20 fields through object.__setattr__, and building
    the events of a page was a sizeable part of a list request (bench/README.md)."""

    id: int
    owner_id: int
    title: str
    description: str
    location: str | None
    start_time: dt.datetime
    end_time: dt.datetime
    timezone: str
    all_day: bool
    rrule: str | None
    exdates: tuple[dt.datetime, ...]
    rdates: tuple[dt.datetime, ...]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    updated_by: int
    my_role: Role | Literal[""]  # "" where the row was read as a calendar candidate (no reader)
    exceptions: tuple[OccurrenceChange, ...] = ()
    last_start: dt.datetime | None = None  # of a bounded series, when known
    deleted: bool = False  # read as its owner may, to restore it

    @classmethod
    def from_row(cls, row: Any, at: int = 0) -> Event:
        """From the columns ROW_COLUMNS, in that order, starting at column `at`, optionally
        followed by `deleted` (the queries build their lists from db.events.EVENT_COLUMNS,
        which tests/db/test_columns.py checks against ROW_COLUMNS). By position: reading 20
        columns by name cost as much as building the event."""
        (
            id_,
            owner_id,
            title,
            description,
            location,
            start,
            end,
            timezone,
            all_day,
            rrule,
            exdates,
            rdates,
            exceptions,
            last_start,
            version,
            created_at,
            updated_at,
            updated_by,
            role,
        ) = row[at : at + 19]
        return cls(
            id_,
            owner_id,
            title,
            description,
            location,
            start,
            end,
            timezone,
            all_day,
            rrule,
            tuple(exdates),
            tuple(rdates),
            version,
            created_at,
            updated_at,
            updated_by,
            role,
            exceptions_from_json(exceptions),
            last_start,
            len(row) > at + 19 and row[at + 19],
        )


# The columns Event.from_row reads, in order (then optionally `deleted`).
ROW_COLUMNS = (
    "id",
    "owner_id",
    "title",
    "description",
    "location",
    "start_time",
    "end_time",
    "timezone",
    "all_day",
    "rrule",
    "exdates",
    "rdates",
    "exceptions",
    "last_start",
    "version",
    "created_at",
    "updated_at",
    "updated_by",
    "role",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Permission:
    """Who may see an event, as listed: the user, their role, who granted it and when."""

    user_id: int
    username: str
    role: Role
    granted_by: int | None
    granted_at: dt.datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Permission:
        return cls(row["user_id"], row["username"], row["role"], row["granted_by"], row["granted_at"])


@dataclasses.dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A remembered answer: the request it answered (route and body hash) and the response."""

    route: str
    request_hash: bytes
    status: int
    body: bytes  # JSON
    location: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredAnswer:
        return cls(row["route"], bytes(row["request_hash"]), row["status"], bytes(row["body"]), row["location"])


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """A change someone else made to an event the user has (or had) access to."""

    id: int
    user_id: int
    kind: NotificationKind
    event_id: int
    actor_id: int
    actor_username: str
    summary: str
    created_at: dt.datetime
    read_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Notification:
        return cls(
            row["id"],
            row["user_id"],
            row["kind"],
            row["event_id"],
            row["actor_id"],
            row["actor_username"],
            row["summary"],
            row["created_at"],
            row["read_at"],
        )
