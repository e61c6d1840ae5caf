"""Types of an event's history: versions and their snapshots, the changelog, diffs, rollback."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from calsvc.web.schemas.common import Actor, Input, UtcTime
from calsvc.web.schemas.events import Strategy

# A time as a snapshot stores it (a string: the snapshot is kept as it was written).
Rfc3339 = Annotated[str, Meta(description="RFC 3339, as stored", extra_json_schema={"format": "date-time"})]
# A title names an enum: the OpenAPI document makes it a component (openapi.py).
VersionKind = Annotated[
    Literal["created", "updated", "occurrence_changed", "occurrence_cancelled", "deleted", "rolled_back"],
    Meta(title="VersionKind"),
]
ChangelogAction = Annotated[
    Literal[
        "created",
        "updated",
        "occurrence_changed",
        "occurrence_cancelled",
        "deleted",
        "rolled_back",
        "shared",
        "role_changed",
        "ownership_transferred",
        "unshared",
        "left",
    ],
    Meta(title="ChangelogAction", description="the version's kind, or the change of access"),
]
DiffFormat = Annotated[
    Literal["json", "html"],
    Meta(
        title="DiffFormat",
        description="html: the side-by-side page, json: JSON, whichever Accept prefers (an Accept that "
        "allows none of the route's types is still a 406)",
    ),
]


class VersionItem(Struct, kw_only=True):
    version: int
    kind: VersionKind
    at: UtcTime
    actor: Actor
    changed_fields: list[str]


class VersionPage(Struct, kw_only=True):
    items: list[VersionItem]
    next_cursor: str | None


class SnapshotRecurrence(Struct, kw_only=True):
    rrule: str
    exdates: list[Rfc3339]
    rdates: list[Rfc3339]


class SnapshotException(Struct, kw_only=True):
    """One occurrence exception: cancelled, or the fields it overrides."""

    occurrence_start: Rfc3339
    cancelled: bool
    start_time: Rfc3339 | msgspec.UnsetType = msgspec.UNSET
    end_time: Rfc3339 | msgspec.UnsetType = msgspec.UNSET
    title: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    location: str | None | msgspec.UnsetType = msgspec.UNSET


class Snapshot(Struct, kw_only=True):
    """An event's content as a version keeps it (times with the offset of `timezone`)."""

    title: str
    description: str
    location: str | None
    start_time: Rfc3339
    end_time: Rfc3339
    timezone: str
    all_day: bool
    recurrence: SnapshotRecurrence | None
    exceptions: list[SnapshotException]


class VersionDetail(Struct, kw_only=True):
    version: int
    kind: VersionKind
    at: UtcTime
    actor: Actor
    changed_fields: list[str]
    snapshot: Snapshot


class FieldChange(Struct, kw_only=True):
    field: str
    old: Any
    new: Any


class ChangelogItem(Struct, kw_only=True):
    """A version (`version` set) or a change of access (`user`: whose access changed)."""

    version: int | msgspec.UnsetType = msgspec.UNSET
    at: UtcTime
    actor: Actor
    action: ChangelogAction
    changes: list[FieldChange]
    user: Actor | msgspec.UnsetType = msgspec.UNSET


class ChangelogPage(Struct, kw_only=True):
    items: list[ChangelogItem]
    next_cursor: str | None


class DiffOut(Struct, kw_only=True):
    from_version: int
    to_version: int
    changes: list[FieldChange]
    description_diff: Annotated[
        list[str],
        Meta(
            description="the lines of a unified diff of the description, one string each without its line "
            "end; [] when it did not change"
        ),
    ]
    html_url: Annotated[
        str,
        Meta(
            description="a signed link to this diff's page (relative, like Location), which a browser opens "
            "without an Authorization header for 15 minutes, while the login it was made in lasts and the "
            "user still has access"
        ),
    ]


LinkParam = Annotated[str, Meta(max_length=64, description="part of a signed link (html_url): copied, never made")]


class DiffQuery(Input, kw_only=True):
    format: DiffFormat | None = None
    user: LinkParam | None = None
    login: LinkParam | None = None
    expires: LinkParam | None = None
    signature: LinkParam | None = None


class RollbackIn(Input, kw_only=True):
    on_conflict: Strategy | None = None
