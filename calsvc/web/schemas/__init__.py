"""Request and response types: they validate bodies and query strings, encode answers,
and are the schemas of the OpenAPI document (one source of truth). One module per
resource; every public name is here too, so `schemas.Event` is all a handler writes."""
from __future__ import annotations

from calsvc.web.schemas.common import (
    Actor, Cursor, ErrorItem, Health, Input, Limit, PageQuery, Problem, Readiness, UtcTime,
)
from calsvc.web.schemas.auth import (
    CloseAccount, Email, FullName, LoginForm, LoginName, LoginPassword, LoginRequest, LogoutRequest,
    Password, PasswordChange, RefreshRequest, RegisterRequest, TokenPair, TokenText, User, UserPage,
    UserSummary, Username, UsersQuery,
)
from calsvc.web.schemas.events import (
    BaseVersion, BatchCreated, BatchIn, BatchResult, BatchResults, BusyInterval, ConflictItem,
    ConflictPage, ConflictPair, CreateQuery, Description, EditStrategy, Event, EventIn, EventPage,
    EventPatch, EventsQuery, FreeBusyPage, FreeBusyQuery, Location, MonthDay, Occurrence,
    OccurrencePage, OccurrencePatch, OccurrenceQuery, OccurrencesQuery, PatternIn, PatternOut,
    Prefer, RecurrenceIn, RecurrenceOut, Strategy, Title, UpdateQuery, UserBusy, Weekday,
    WindowQuery, ZoneName,
)
from calsvc.web.schemas.sharing import (
    PermissionOut, PermissionPage, Role, RoleIn, ShareIn, ShareUser, UserId,
)
from calsvc.web.schemas.history import (
    ChangelogItem, ChangelogPage, DiffOut, DiffQuery, FieldChange, Rfc3339, RollbackIn, Snapshot,
    SnapshotException, SnapshotRecurrence, VersionDetail, VersionItem, VersionPage,
)
from calsvc.web.schemas.transactions import (
    CreateOp, DeleteOp, EventRef, IfVersion, Operation, OperationResult, Ref, ShareOp,
    TransactionIn, TransactionResults, UnshareOp, UpdateOp,
)
from calsvc.web.schemas.notifications import (
    EventId, NotificationItem, NotificationKind, NotificationPage, NotificationsQuery, ReadAll,
    StreamQuery,
)

# Schemas named only inside extra_json_schema (the items of `list[Any]` bodies): the OpenAPI
# document must define them too.
REFERENCED = (EventIn, CreateOp, UpdateOp, DeleteOp, ShareOp, UnshareOp)

__all__ = [
    "Actor", "BaseVersion", "BatchCreated", "BatchIn", "BatchResult", "BatchResults",
    "BusyInterval", "ChangelogItem", "ChangelogPage", "CloseAccount", "ConflictItem",
    "ConflictPage", "ConflictPair", "CreateOp", "CreateQuery", "Cursor", "DeleteOp", "Description",
    "DiffOut", "DiffQuery", "EditStrategy", "Email", "ErrorItem", "Event", "EventId", "EventIn",
    "EventPage", "EventPatch", "EventRef", "EventsQuery", "FieldChange", "FreeBusyPage",
    "FreeBusyQuery", "FullName", "Health", "IfVersion", "Input", "Limit", "Location", "LoginForm",
    "LoginName", "LoginPassword", "LoginRequest", "LogoutRequest", "MonthDay", "NotificationItem",
    "NotificationKind", "NotificationPage", "NotificationsQuery", "Occurrence", "OccurrencePage",
    "OccurrencePatch", "OccurrenceQuery", "OccurrencesQuery", "Operation", "OperationResult",
    "PageQuery", "Password", "PasswordChange", "PatternIn", "PatternOut", "PermissionOut",
    "PermissionPage", "Prefer", "Problem", "REFERENCED", "ReadAll", "Readiness", "RecurrenceIn",
    "RecurrenceOut", "Ref", "RefreshRequest", "RegisterRequest", "Rfc3339", "Role", "RoleIn",
    "RollbackIn", "ShareIn", "ShareOp", "ShareUser", "Snapshot", "SnapshotException",
    "SnapshotRecurrence", "Strategy", "StreamQuery", "Title", "TokenPair", "TokenText",
    "TransactionIn", "TransactionResults", "UnshareOp", "UpdateOp", "UpdateQuery", "User",
    "UserBusy", "UserId", "UserPage", "UserSummary", "Username", "UsersQuery", "UtcTime",
    "VersionDetail", "VersionItem", "VersionPage", "Weekday", "WindowQuery", "ZoneName",
]
