"""Rows as frozen, slotted dataclasses. `from_row` takes an asyncpg record; no I/O here."""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    email: str
    full_name: str | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "User":
        return cls(row["id"], row["username"], row["email"], row["full_name"], row["created_at"])


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """What login needs: the user and the stored hash."""

    user: User
    password_hash: bytes

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Credentials":
        return cls(User.from_row(row), row["password_hash"].encode())


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshToken:
    jti: uuid.UUID
    family_id: uuid.UUID
    user_id: int
    expires_at: dt.datetime
    rotated_at: dt.datetime | None
    family_revoked_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "RefreshToken":
        return cls(row["jti"], row["family_id"], row["user_id"], row["expires_at"],
                   row["rotated_at"], row["family_revoked_at"])


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """An event as stored, with the caller's role on it."""

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
    my_role: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Event":
        return cls(
            row["id"], row["owner_id"], row["title"], row["description"], row["location"],
            row["start_time"], row["end_time"], row["timezone"], row["all_day"], row["rrule"],
            tuple(row["exdates"]), tuple(row["rdates"]), row["version"], row["created_at"],
            row["updated_at"], row["updated_by"], row["role"],
        )
