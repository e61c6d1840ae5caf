"""Types of /api/notifications: the list, marking read, the event stream's query and its token."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from calsvc.web.schemas.common import Actor, Cursor, Input, Limit, UtcTime

NotificationKind = Annotated[
    Literal[
        "event.updated", "event.deleted", "event.restored", "event.shared", "permission.changed", "permission.revoked"
    ],
    Meta(title="NotificationKind"),  # a title names an enum: a component of the OpenAPI document
]


class NotificationItem(Struct, kw_only=True):
    id: int
    kind: NotificationKind
    event_id: int
    actor: Actor
    summary: str
    created_at: UtcTime
    read_at: UtcTime | None


class NotificationPage(Struct, kw_only=True):
    items: list[NotificationItem]
    next_cursor: str | None
    unread_count: int


class NotificationsQuery(Input, kw_only=True):
    unread: Annotated[bool, Meta(description="true: unread ones only")] = False
    limit: Limit = 50
    cursor: Cursor | None = None


class ReadAll(Struct, kw_only=True):
    updated: int


EventId = Annotated[
    str,
    Meta(max_length=19, pattern=r"^[0-9]+$(?!\n)", description="a notification id (digits); replay what came after it"),
]


class StreamQuery(Input, kw_only=True):
    last_event_id: EventId | None = None
    access_token: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=4096,
                description=(
                    "the access token, for clients that cannot send headers (EventSource); "
                    "the Authorization header wins"
                ),
            ),
        ]
        | None
    ) = None
    stream_token: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=4096,
                description="a stream token (POST /api/notifications/stream-token): what EventSource should "
                "use, as it outlives access tokens; the Authorization header wins, then this, then access_token",
            ),
        ]
        | None
    ) = None


class StreamToken(Struct, kw_only=True):
    stream_token: Annotated[
        str, Meta(description="good only as ?stream_token= of GET /api/notifications/stream, for this login")
    ]
    expires_at: Annotated[
        UtcTime,
        Meta(description="when the login ends unless refreshed (its refresh token's expiry); logout ends it sooner"),
    ]
