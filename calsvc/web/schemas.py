"""Request and response types: they validate bodies and query strings, encode answers,
and are the schemas of the OpenAPI document (one source of truth)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct


class Input(Struct, forbid_unknown_fields=True):
    """A request body, form or query string (and every object inside one): a member it does
    not define is refused (422 naming it), never dropped. A `pattern`'s description starts
    with the shape it wants, in words (the validation message quotes it up to a `;`)."""

# msgspec matches with re.search, whose `$` also matches before a final newline;
# `(?!\n)` refuses that (and is valid ECMA-262 too, for the OpenAPI document).
Username = Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$(?!\n)",
                               description="3-32 characters of A-Z a-z 0-9 _ . -; unique ignoring case")]
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$(?!\n)",
                            description="an email address (name@example.com); unique ignoring case")]
Password = Annotated[str, Meta(min_length=8, max_length=128, description="8-128 characters")]
FullName = Annotated[str, Meta(max_length=200)]
LoginName = Annotated[str, Meta(min_length=1, max_length=254)]
LoginPassword = Annotated[str, Meta(min_length=1, max_length=1024)]
TokenText = Annotated[str, Meta(min_length=1, max_length=4096)]
UtcTime = Annotated[dt.datetime, Meta(tz=True)]
Limit = Annotated[int, Meta(ge=1, le=500, description="page size, 1-500")]
Cursor = Annotated[str, Meta(max_length=512, pattern="^[A-Za-z0-9_-]*$",
                              description="the next_cursor of the previous page, as it came; opaque")]


# -- auth -------------------------------------------------------------------------------

class RegisterRequest(Input, kw_only=True):
    username: Username
    email: Email
    password: Password
    full_name: FullName | None = None


class LoginRequest(Input, kw_only=True):
    """Log in with `username` or `email` (either matches both) and `password`."""
    username: LoginName | None = None
    email: LoginName | None = None
    password: LoginPassword


class LoginForm(Input, kw_only=True):
    """The OAuth2 password grant, form-encoded."""
    grant_type: Literal["password"] | None = None
    username: LoginName
    password: LoginPassword
    scope: Annotated[str, Meta(max_length=1024)] = ""
    client_id: Annotated[str, Meta(max_length=1024)] | None = None
    client_secret: Annotated[str, Meta(max_length=1024)] | None = None


class RefreshRequest(Input, kw_only=True):
    refresh_token: TokenText


class LogoutRequest(Input, kw_only=True):
    refresh_token: TokenText | None = None


class PasswordChange(Input, kw_only=True):
    current_password: LoginPassword
    new_password: Password


class CloseAccount(Input, kw_only=True):
    password: LoginPassword


class TokenPair(Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: Annotated[int, Meta(description="seconds until the access token expires")]


class User(Struct, kw_only=True):
    id: int
    username: str
    email: str
    full_name: str | None
    created_at: UtcTime


class UserSummary(Struct, kw_only=True):
    id: int
    username: str
    full_name: str | None


class UserPage(Struct, kw_only=True):
    items: list[UserSummary]
    next_cursor: str | None


class UsersQuery(Input, kw_only=True):
    q: Annotated[str, Meta(max_length=254, description="a username prefix, or a whole email; any case")] = ""
    limit: Limit = 50
    cursor: Cursor | None = None


# -- operations -------------------------------------------------------------------------

class Health(Struct, kw_only=True):
    status: str


class Readiness(Struct, kw_only=True):
    status: Literal["ready"]
    database: bool
    pending_migrations: list[str]


# -- errors -----------------------------------------------------------------------------

class ErrorItem(Struct, kw_only=True):
    loc: list[str | int]
    msg: str
    type: str


class Problem(Struct, kw_only=True):
    """An RFC 9457 problem; some types add members (conflicts, fields, current, index)."""
    type: str
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] = []
    request_id: str | msgspec.UnsetType = msgspec.UNSET


# -- events -----------------------------------------------------------------------------

Title = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=10_000)]
Location = Annotated[str, Meta(max_length=500)]
ZoneName = Annotated[str, Meta(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Berlin")]
Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
MonthDay = Annotated[int, Meta(ge=-31, le=31)]
Strategy = Literal["reject", "allow", "shift"]


class PatternIn(Input, kw_only=True):
    frequency: Literal["daily", "weekly", "monthly", "yearly"]
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
    frequency: str
    interval: int
    by_weekday: list[str]
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
    start_time: dt.datetime
    end_time: dt.datetime


class CreateQuery(Input, kw_only=True):
    on_conflict: Strategy | None = None


EditStrategy = Annotated[Literal["merge"], Meta(
    description="merge: a three-way merge, field by field, against `base_version` (SPEC 7)")]
BaseVersion = Annotated[int, Meta(ge=1, le=2**31 - 1, description="the version the edit started from (merge)")]
Prefer = Annotated[Literal["mine", "theirs"], Meta(
    description="settles fields changed on both sides (merge): yours or the event's")]


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
    my_role: Literal["owner", "editor", "viewer"]
    version: int
    created_at: UtcTime
    updated_at: UtcTime
    updated_by: int
    conflicts: list[ConflictItem] | msgspec.UnsetType = msgspec.UNSET  # with on_conflict=allow


class EventsQuery(Input, kw_only=True):
    start: UtcTime | None = None
    end: UtcTime | None = None
    expand: bool = False
    role: Literal["owner", "editor", "viewer"] | None = None
    q: Annotated[str, Meta(min_length=1, max_length=200, description="words in title or description")] | None = None
    limit: Limit = 50
    cursor: Cursor | None = None


class EventPage(Struct, kw_only=True):
    items: list[Event]
    next_cursor: str | None


class Occurrence(Struct, kw_only=True):
    event_id: int
    occurrence_start: Annotated[dt.datetime, Meta(tz=True, description="the original start; names the occurrence")]
    start_time: dt.datetime
    end_time: dt.datetime
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
    users: Annotated[str, Meta(max_length=50 * 20 - 1, pattern=r"^[0-9]{1,19}(,[0-9]{1,19}){0,49}$",
                               description="comma-separated user ids (at most 50); default: the caller")] | None = None


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
    on_conflict: Literal["reject", "allow"] | None = None


class OccurrenceQuery(Input, kw_only=True):
    on_conflict: Literal["reject", "allow"] | None = None


class BatchIn(Input, kw_only=True):
    # Items are checked one by one (so `atomic: false` can answer each), hence `Any` here.
    events: Annotated[list[Any], Meta(min_length=1, max_length=500, description="1-500 events",
                                      extra_json_schema={"items": {"$ref": "#/components/schemas/EventIn"}})]
    atomic: bool = True
    on_conflict: Strategy | None = None


class BatchCreated(Struct, kw_only=True):
    items: list[Event]


class BatchResult(Struct, kw_only=True):
    index: int
    status: int
    event: Event | msgspec.UnsetType = msgspec.UNSET
    error: Problem | msgspec.UnsetType = msgspec.UNSET


class BatchResults(Struct, kw_only=True):
    results: list[BatchResult]


# -- sharing ------------------------------------------------------------------------------

Role = Literal["owner", "editor", "viewer"]
UserId = Annotated[int, Meta(ge=1, le=2**63 - 1)]


class ShareUser(Input, kw_only=True):
    """One user, named by exactly one of `user_id`, `username`, `email`, and the role to give."""
    user_id: UserId | None = None
    username: Annotated[str, Meta(min_length=1, max_length=32)] | None = None
    email: Annotated[str, Meta(min_length=1, max_length=254)] | None = None
    role: Literal["editor", "viewer"]


class ShareIn(Input, kw_only=True):
    """`{"users": [ShareUser, ...]}` (1-100), or one ShareUser as the whole body."""
    users: Annotated[list[ShareUser], Meta(min_length=1, max_length=100)] | msgspec.UnsetType = msgspec.UNSET
    user_id: UserId | None = None
    username: Annotated[str, Meta(min_length=1, max_length=32)] | None = None
    email: Annotated[str, Meta(min_length=1, max_length=254)] | None = None
    role: Literal["editor", "viewer"] | None = None


class PermissionOut(Struct, kw_only=True):
    user_id: int
    username: str
    role: Role
    granted_by: int | None
    granted_at: UtcTime


class PermissionPage(Struct, kw_only=True):
    items: list[PermissionOut]
    next_cursor: str | None


class PageQuery(Input, kw_only=True):
    limit: Limit = 50
    cursor: Cursor | None = None


class RoleIn(Input, kw_only=True):
    """`owner` transfers ownership: the old owner becomes an editor."""
    role: Role


# -- history ------------------------------------------------------------------------------

Rfc3339 = Annotated[str, Meta(description="RFC 3339, as stored")]


class Actor(Struct, kw_only=True):
    id: int
    username: str


class VersionItem(Struct, kw_only=True):
    version: int
    kind: Literal["created", "updated", "occurrence_changed", "occurrence_cancelled", "deleted", "rolled_back"]
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
    kind: str
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
    action: Literal["created", "updated", "occurrence_changed", "occurrence_cancelled", "deleted", "rolled_back",
                    "shared", "role_changed", "ownership_transferred", "unshared", "left"]
    changes: list[FieldChange]
    user: Actor | msgspec.UnsetType = msgspec.UNSET


class ChangelogPage(Struct, kw_only=True):
    items: list[ChangelogItem]
    next_cursor: str | None


class DiffOut(Struct, kw_only=True):
    from_version: int
    to_version: int
    changes: list[FieldChange]
    description_diff: Annotated[list[str], Meta(description="unified diff lines of the description")]


class DiffQuery(Input, kw_only=True):
    format: Annotated[Literal["json", "html"], Meta(
        description="html: the side-by-side page, json: JSON, whichever Accept prefers (an Accept that "
                    "allows none of the route's types is still a 406)")] | None = None


class RollbackIn(Input, kw_only=True):
    on_conflict: Strategy | None = None


# -- transactions -------------------------------------------------------------------------

Ref = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$(?!\n)",
                          description="1-64 characters of A-Z a-z 0-9 _ -; names the created event for later operations (as \"$ref\")")]
EventRef = Annotated[int, Meta(ge=1, le=2**63 - 1)] | Annotated[str, Meta(
    max_length=65, pattern=r"^\$[A-Za-z0-9_-]{1,64}$(?!\n)", description="\"$\" followed by the ref of an earlier create; the event it created")]
IfVersion = Annotated[int, Meta(ge=1, le=2**31 - 1, description="412 unless the event is at this version")]


class CreateOp(Input, kw_only=True, tag_field="op", tag="create"):
    ref: Ref | None = None
    event: EventIn


class UpdateOp(Input, kw_only=True, tag_field="op", tag="update"):
    id: EventRef
    changes: EventPatch
    if_version: IfVersion | None = None


class DeleteOp(Input, kw_only=True, tag_field="op", tag="delete"):
    id: EventRef
    if_version: IfVersion | None = None


class ShareOp(Input, kw_only=True, tag_field="op", tag="share"):
    id: EventRef
    users: Annotated[list[ShareUser], Meta(min_length=1, max_length=100)]


class UnshareOp(Input, kw_only=True, tag_field="op", tag="unshare"):
    id: EventRef
    user_id: UserId


Operation = CreateOp | UpdateOp | DeleteOp | ShareOp | UnshareOp


class TransactionIn(Input, kw_only=True):
    # Operations are checked one by one (so the problem names the failing one), hence `Any` here.
    operations: Annotated[list[Any], Meta(min_length=1, max_length=100, description="1-100 operations",
                                          extra_json_schema={"items": {"oneOf": [
                                              {"$ref": f"#/components/schemas/{k.__name__}"}
                                              for k in (CreateOp, UpdateOp, DeleteOp, ShareOp, UnshareOp)]}})]
    on_conflict: Strategy | None = None


class OperationResult(Struct, kw_only=True):
    index: int
    status: int
    event: Event | msgspec.UnsetType = msgspec.UNSET


class TransactionResults(Struct, kw_only=True):
    results: list[OperationResult]

# -- notifications --------------------------------------------------------------------------

NotificationKind = Literal["event.updated", "event.deleted", "event.restored", "event.shared",
                           "permission.changed", "permission.revoked"]


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


EventId = Annotated[str, Meta(max_length=19, pattern=r"^[0-9]+$(?!\n)",
                              description="a notification id (digits); replay what came after it")]


class StreamQuery(Input, kw_only=True):
    last_event_id: EventId | None = None
    access_token: Annotated[str, Meta(min_length=1, max_length=4096, description=(
        "the access token, for clients that cannot send headers (EventSource); "
        "the Authorization header wins"))] | None = None


# Schemas named only inside extra_json_schema (the items of `list[Any]` bodies): the OpenAPI
# document must define them too.
REFERENCED = (EventIn, CreateOp, UpdateOp, DeleteOp, ShareOp, UnshareOp)
