"""Types of /api/events: events and their recurrence, occurrences, conflicts, free/busy."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from calsvc.web.schemas.common import Cursor, Input, Limit, UtcTime
from calsvc.web.schemas.sharing import Role

Title = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=10_000)]
Location = Annotated[str, Meta(max_length=500)]
ZoneName = Annotated[str, Meta(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Berlin")]
# A title names an enum: the OpenAPI document makes it a component (openapi.py).
Weekday = Annotated[Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"], Meta(title="Weekday")]
Frequency = Annotated[Literal["daily", "weekly", "monthly", "yearly"], Meta(title="Frequency")]
MonthDay = Annotated[int, Meta(ge=-31, le=31)]
Strategy = Annotated[
    Literal["reject", "allow", "shift"],
    Meta(
        title="OnConflict",
        description="what a change that overlaps the owner's calendar does: reject (409), allow "
        "(written; the answer lists `conflicts`), shift (to the earliest free slot; single events)",
    ),
]
OccurrenceStrategy = Annotated[
    Literal["reject", "allow"],
    Meta(title="OccurrenceOnConflict", description="what a changed occurrence that overlaps does: reject or allow"),
]
# An event's times as answered: with the offset of its zone (aware, so RFC 3339 date-times).
ZonedTime = Annotated[dt.datetime, Meta(tz=True)]


class PatternIn(Input, kw_only=True):
    frequency: Frequency
    interval: Annotated[int, Meta(ge=1, le=1000)] = 1
    by_weekday: Annotated[list[Weekday], Meta(max_length=7)] = []
    by_month_day: Annotated[list[MonthDay], Meta(max_length=31)] = []
    count: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    until: UtcTime | None = None


class RecurrenceIn(Input, kw_only=True):
    """Either `rrule` (an RFC 5545 RRULE value, `RRULE:` prefix optional) or `pattern`."""

    rrule: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    pattern: PatternIn | None = None
    exdates: Annotated[list[UtcTime], Meta(max_length=1000)] = []
    rdates: Annotated[list[UtcTime], Meta(max_length=1000)] = []


class EventIn(Input, kw_only=True):
    title: Title
    description: Description = ""
    location: Location | None = None
    start_time: UtcTime
    end_time: UtcTime
    timezone: ZoneName = "UTC"
    all_day: bool = False
    recurrence: RecurrenceIn | None = None
    on_conflict: Strategy | None = None


class PatternOut(Struct, kw_only=True):
    frequency: Frequency
    interval: int
    by_weekday: list[Weekday]
    by_month_day: list[int]
    count: int | None
    until: UtcTime | None


class RecurrenceOut(Struct, kw_only=True):
    rrule: str
    exdates: list[UtcTime]
    rdates: list[UtcTime]
    pattern: PatternOut | None = None


class ConflictItem(Struct, kw_only=True):
    event_id: int
    title: str
    start_time: ZonedTime
    end_time: ZonedTime


class CreateQuery(Input, kw_only=True):
    on_conflict: Strategy | None = None


EditStrategy = Annotated[
    Literal["merge"],
    Meta(title="EditStrategy", description="merge: a three-way merge, field by field, against `base_version`"),
]
BaseVersion = Annotated[int, Meta(ge=1, le=2**31 - 1, description="the version the edit started from (merge)")]
Prefer = Annotated[
    Literal["mine", "theirs"],
    Meta(title="Prefer", description="settles fields changed on both sides (merge): yours or the event's"),
]


class UpdateQuery(Input, kw_only=True):
    on_conflict: Strategy | None = None
    edit_strategy: EditStrategy | None = None
    base_version: BaseVersion | None = None
    prefer: Prefer | None = None


class Event(Struct, kw_only=True):
    id: int
    title: str
    description: str
    location: str | None
    start_time: Annotated[dt.datetime, Meta(tz=True, description="with the offset of `timezone`")]
    end_time: Annotated[dt.datetime, Meta(tz=True, description="with the offset of `timezone`")]
    timezone: str
    all_day: bool
    recurrence: RecurrenceOut | None
    owner_id: int
    my_role: Role
    version: int
    created_at: UtcTime
    updated_at: UtcTime
    updated_by: int
    conflicts: list[ConflictItem] | msgspec.UnsetType = msgspec.UNSET  # with on_conflict=allow


class EventsQuery(Input, kw_only=True):
    start: UtcTime | None = None
    end: UtcTime | None = None
    expand: bool = False
    role: Role | None = None
    q: Annotated[str, Meta(min_length=1, max_length=200, description="words in title or description")] | None = None
    limit: Limit = 50
    cursor: Cursor | None = None


class EventPage(Struct, kw_only=True):
    items: list[Event]
    next_cursor: str | None


class Occurrence(Struct, kw_only=True):
    event_id: int
    occurrence_start: Annotated[dt.datetime, Meta(tz=True, description="the original start; names the occurrence")]
    start_time: ZonedTime
    end_time: ZonedTime
    title: str
    is_exception: bool
    cancelled: bool
    conflicts: list[ConflictItem] | msgspec.UnsetType = msgspec.UNSET  # with on_conflict=allow


class OccurrencePage(Struct, kw_only=True):
    items: list[Occurrence]
    next_cursor: str | None


class OccurrencesQuery(Input, kw_only=True):
    start: UtcTime
    end: UtcTime
    limit: Limit = 50
    cursor: Cursor | None = None


WindowQuery = OccurrencesQuery  # a window and a page, for any windowed collection


class ConflictPair(Struct, kw_only=True):
    event_ids: list[int]
    start: UtcTime
    end: UtcTime


class ConflictPage(Struct, kw_only=True):
    items: list[ConflictPair]
    next_cursor: str | None


class FreeBusyQuery(Input, kw_only=True):
    start: UtcTime
    end: UtcTime
    users: (
        Annotated[
            str,
            Meta(
                max_length=50 * 20 - 1,
                pattern=r"^[0-9]{1,19}(,[0-9]{1,19}){0,49}$",
                description="comma-separated user ids (at most 50); default: the caller",
            ),
        ]
        | None
    ) = None


class BusyInterval(Struct, kw_only=True):
    start: UtcTime
    end: UtcTime


class UserBusy(Struct, kw_only=True):
    user_id: int
    busy: list[BusyInterval]


class FreeBusyPage(Struct, kw_only=True):
    items: list[UserBusy]
    next_cursor: str | None


class EventPatch(Input, kw_only=True):
    """The fields to change (PUT and PATCH alike): omitted ones keep their value, `null`
    clears `description`, `location` or `recurrence`; the merged event is checked as a whole."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | None | msgspec.UnsetType = msgspec.UNSET
    location: Location | None | msgspec.UnsetType = msgspec.UNSET
    start_time: UtcTime | msgspec.UnsetType = msgspec.UNSET
    end_time: UtcTime | msgspec.UnsetType = msgspec.UNSET
    timezone: ZoneName | msgspec.UnsetType = msgspec.UNSET
    all_day: bool | msgspec.UnsetType = msgspec.UNSET
    recurrence: RecurrenceIn | None | msgspec.UnsetType = msgspec.UNSET
    on_conflict: Strategy | None = None
    edit_strategy: EditStrategy | None = None
    base_version: BaseVersion | None = None
    prefer: Prefer | None = None


class OccurrencePatch(Input, kw_only=True):
    """What to change in one occurrence; omitted fields keep their current value."""

    start_time: UtcTime | msgspec.UnsetType = msgspec.UNSET
    end_time: UtcTime | msgspec.UnsetType = msgspec.UNSET
    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | None | msgspec.UnsetType = msgspec.UNSET
    location: Location | None | msgspec.UnsetType = msgspec.UNSET
    on_conflict: OccurrenceStrategy | None = None


class OccurrenceQuery(Input, kw_only=True):
    on_conflict: OccurrenceStrategy | None = None
