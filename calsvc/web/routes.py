"""The whole route table on one screen. Every route here is served and documented from
the same entry: its body, query and response types drive validation and /openapi.json."""

from __future__ import annotations

from aiohttp import web

from calsvc.web import auth, codec, events, history, notifications, ops, schemas, sharing, transactions, users
from calsvc.web.endpoints import Route, bind

S = schemas

ROUTES: list[Route] = [
    # -- auth ------------------------------------------------------------------------------
    Route(
        "POST",
        "/api/auth/register",
        auth.register,
        "Create an account",
        "auth",
        {201: S.User},
        body=S.RegisterRequest,
        auth=False,
        errors=(409,),
    ),
    Route(
        "POST",
        "/api/auth/login",
        auth.login,
        "Log in (JSON, or the OAuth2 password grant as a form)",
        "auth",
        {200: S.TokenPair},
        body=S.LoginRequest,
        form=S.LoginForm,
        auth=False,
        errors=(401,),
    ),
    Route(
        "POST",
        "/api/auth/refresh",
        auth.refresh,
        "Trade a refresh token for a new pair",
        "auth",
        {200: S.TokenPair},
        body=S.RefreshRequest,
        auth=False,
        errors=(401,),
        description="The presented refresh token is used up. Presenting a used-up token again "
        "revokes every token of its login (theft detection).",
    ),
    Route(
        "POST",
        "/api/auth/logout",
        auth.logout,
        "Log out",
        "auth",
        {204: None},
        body=S.LogoutRequest,
        description="The access token used and its refresh family (and that of the refresh "
        "token given, if any) stop working at once.",
    ),
    Route("GET", "/api/auth/me", auth.me, "The current user", "auth", {200: S.User}),
    Route(
        "POST",
        "/api/auth/password",
        auth.change_password,
        "Change the password",
        "auth",
        {200: S.TokenPair},
        body=S.PasswordChange,
        description="200 a new token pair. Every other token of the user (every login's refresh and "
        "access tokens) and every open event stream stop working at once. A wrong "
        "`current_password` is a 401 and changes nothing.",
    ),
    Route(
        "DELETE",
        "/api/auth/me",
        auth.close_account,
        "Close the account",
        "auth",
        {204: None},
        body=S.CloseAccount,
        description='`{"password"}`. Every token and event stream of the account ends; the events it '
        "owns are deleted (a version each, their people notified), it leaves the events "
        "shared with it (`left` in their changelogs); its email and full name are erased and "
        "its history shows it as `deleted-user-<id>`; its username and email may be "
        "registered again. A wrong password is a 401 and changes nothing.",
    ),
    # -- users -----------------------------------------------------------------------------
    Route(
        "GET",
        "/api/users",
        users.list_users,
        "Find users by username prefix or whole email",
        "users",
        {200: S.UserPage},
        query=S.UsersQuery,
        description="Live users whose username starts with `q`, or whose email is `q` (both ignoring "
        "case): a part of an email matches nothing. Items show `id`, `username`, `full_name`.",
    ),
    # -- events ----------------------------------------------------------------------------
    Route(
        "POST",
        "/api/events",
        events.create_event,
        "Create an event (the caller owns it)",
        "events",
        {201: S.Event},
        body=S.EventIn,
        query=S.CreateQuery,
        errors=(S.SchedulingConflictProblem,),
        description="201 with `Location` and `ETag`. Checked against the owner's calendar, "
        "occurrence by occurrence: `on_conflict` (query or body) `reject` (default, 409 "
        "`/problems/scheduling-conflict` with `conflicts`), `allow` (written; the "
        "answer lists `conflicts`) or `shift` (single events: moved to the earliest "
        "free slot within 30 days, else 409).",
        headers=("Idempotency-Key",),
    ),
    Route(
        "POST",
        "/api/events/batch",
        events.create_batch,
        "Create up to 500 events at once",
        "events",
        {201: S.BatchCreated, 207: S.BatchResults},
        body=S.BatchIn,
        query=S.CreateQuery,
        bulk=True,
        errors=(S.BatchItemProblem,),
        headers=("Idempotency-Key",),
        description="`atomic: true` (default): all or nothing in one transaction, 201 with the events in "
        "request order; a failing item answers its own status as `/problems/batch-item` "
        'with `index` and `errors[].loc` under `["body", "events", i]`. `atomic: false`: '
        "207 with one result per item (`status` is what the item alone would get). Items "
        "conflict with the calendar and with each other; `on_conflict` applies to each.",
    ),
    Route(
        "GET",
        "/api/events",
        events.list_events,
        "The events the caller can see",
        "events",
        {200: (S.EventPage, S.OccurrencePage)},
        query=S.EventsQuery,
        description="In (start_time, id) order. `start`/`end` keep the events with an occurrence "
        "overlapping the window (either bound may be left open). With `expand=true` "
        "(needs `start` and `end`, at most 2 years and 5,000 occurrences) the items "
        "are occurrences (the `Occurrence` shape) in (start_time, event_id) order.",
    ),
    Route(
        "GET",
        r"/api/events/{id:\d+}/occurrences",
        events.list_occurrences,
        "The series expanded in a window (viewer or better)",
        "events",
        {200: S.OccurrencePage},
        query=S.OccurrencesQuery,
        errors=(404,),
    ),
    Route(
        "GET",
        "/api/events/conflicts",
        events.list_conflicts,
        "Overlapping pairs of events in the caller's calendar",
        "events",
        {200: S.ConflictPage},
        query=S.WindowQuery,
        description="Occurrence by occurrence in the window (at most 2 years); each item is one "
        "overlap of two events, `start`/`end` being the overlap.",
    ),
    Route(
        "GET",
        "/api/freebusy",
        events.free_busy,
        "Busy intervals of people",
        "events",
        {200: S.FreeBusyPage},
        query=S.FreeBusyQuery,
        errors=(404,),
        description="`users` default to the caller; each must share at least one event with the "
        "caller (else 404). Merged intervals, clipped to the window.",
    ),
    Route(
        "PUT",
        r"/api/events/{id:\d+}/occurrences/{occurrence_start}",
        events.change_occurrence,
        "Change one occurrence (editor or better)",
        "events",
        {200: S.Occurrence},
        body=S.OccurrencePatch,
        query=S.OccurrenceQuery,
        errors=(403, 404, S.SchedulingConflictProblem, S.PreconditionFailedProblem),
        headers=("If-Match",),
        description="`occurrence_start` is the occurrence's original start (RFC 3339, percent-encoded; "
        "any offset naming the same instant). Stored as an exception of the series and "
        "checked against the owner's calendar like an update (`reject` or `allow`).",
    ),
    Route(
        "DELETE",
        r"/api/events/{id:\d+}/occurrences/{occurrence_start}",
        events.cancel_occurrence,
        "Cancel one occurrence (editor or better)",
        "events",
        {204: None},
        errors=(403, 404, S.PreconditionFailedProblem),
        headers=("If-Match",),
        description="Listed by `/occurrences` with `cancelled: true` from then on; left out of "
        "`expand=true` listings and conflict checks.",
    ),
    Route(
        "PUT",
        r"/api/events/{id:\d+}",
        events.update_event,
        "Change an event (editor or better)",
        "events",
        {200: S.Event},
        body=S.EventPatch,
        query=S.UpdateQuery,
        errors=(403, 404, S.SchedulingConflictProblem, S.EditConflictProblem, S.PreconditionFailedProblem),
        headers=("If-Match",),
        description="Same as PATCH: the fields given change, omitted ones keep their value, `null` "
        "clears an optional one; the merged event is validated and conflict-checked as a whole.",
    ),
    Route(
        "PATCH",
        r"/api/events/{id:\d+}",
        events.update_event,
        "Change some fields of an event (editor or better)",
        "events",
        {200: S.Event},
        body=S.EventPatch,
        query=S.UpdateQuery,
        errors=(403, 404, S.SchedulingConflictProblem, S.EditConflictProblem, S.PreconditionFailedProblem),
        headers=("If-Match",),
        operation="patch_event",
        description="The fields given change, omitted ones keep their value, `null` clears an optional "
        "one; the merged event is validated and conflict-checked as a whole. A change that "
        "changes nothing writes no version. `edit_strategy=merge` with `base_version` (query "
        "or body): merged field by field with what others changed since that version; a field "
        "changed on both sides is a 409 `/problems/edit-conflict` naming `fields`, unless "
        "`prefer=mine|theirs`. Without it, the last write wins (or `If-Match`: 412 when stale).",
    ),
    Route(
        "DELETE",
        r"/api/events/{id:\d+}",
        events.delete_event,
        "Delete an event (owner only)",
        "events",
        {204: None},
        errors=(403, 404, S.PreconditionFailedProblem),
        headers=("If-Match",),
        description="A soft delete: gone from every read (404), recorded as a version.",
    ),
    Route(
        "GET",
        r"/api/events/{id:\d+}",
        events.get_event,
        "One event (viewer or better)",
        "events",
        {200: S.Event, 304: None},
        errors=(404,),
        headers=("If-None-Match",),
        description='`ETag: "<version>"`; `If-None-Match` with it answers 304.',
    ),
    # -- sharing ---------------------------------------------------------------------------
    Route(
        "POST",
        r"/api/events/{id:\d+}/share",
        sharing.share,
        "Share an event (owner only)",
        "sharing",
        {200: S.PermissionPage},
        body=S.ShareIn,
        errors=(403, 404),
        description='`{"users": [{"user_id"|"username"|"email", "role"}]}` (1-100), or one such '
        "user object as the whole body; `role` is `editor` or `viewer`. A user who has access "
        "gets the new role. An unknown user, the owner, or a user named twice: 422 at that "
        "entry. Answers every permission of the event (at most 1,000 people).",
    ),
    Route(
        "GET",
        r"/api/events/{id:\d+}/permissions",
        sharing.list_permissions,
        "Who has access, owner included (viewer or better)",
        "sharing",
        {200: S.PermissionPage},
        query=S.PageQuery,
        errors=(404,),
        description="By user id.",
    ),
    Route(
        "PUT",
        r"/api/events/{id:\d+}/permissions/{user_id:\d+}",
        sharing.set_role,
        "Change someone's role (owner only)",
        "sharing",
        {200: S.PermissionPage},
        body=S.RoleIn,
        errors=(403, 404, 409),
        description="`owner` transfers ownership: the old owner becomes an editor. The user must have "
        "access already (else 404); the owner's own role cannot be lowered (409). Answers "
        "every permission of the event.",
    ),
    Route(
        "DELETE",
        r"/api/events/{id:\d+}/permissions/{user_id:\d+}",
        sharing.revoke,
        "Revoke someone's access, or leave (your own id)",
        "sharing",
        {204: None},
        errors=(403, 404, 409),
        description="The owner revokes anyone but themselves (409: transfer ownership first); an "
        "editor or viewer may only leave.",
    ),
    # -- history -----------------------------------------------------------------------------
    Route(
        "GET",
        r"/api/events/{id:\d+}/history",
        history.history,
        "The versions of an event, oldest first",
        "history",
        {200: S.VersionPage},
        query=S.PageQuery,
        errors=(404,),
        description="Anyone with access; once the event is deleted, its owner alone.",
    ),
    Route(
        "GET",
        r"/api/events/{id:\d+}/history/{version:\d+}",
        history.version,
        "One version, with its snapshot",
        "history",
        {200: S.VersionDetail},
        errors=(404,),
    ),
    Route(
        "POST",
        r"/api/events/{id:\d+}/rollback/{version:\d+}",
        history.rollback,
        "Make a version's content current again (editor or better)",
        "history",
        {200: S.Event},
        body=S.RollbackIn,
        query=S.CreateQuery,
        errors=(403, 404, S.SchedulingConflictProblem, S.PreconditionFailedProblem),
        headers=("If-Match",),
        description="A new version (`rolled_back`) with that snapshot's content, checked against the "
        "owner's calendar like an update (`on_conflict`). Rolling back a deleted event "
        "(its owner alone) restores it. Rolling back to what the event already is writes nothing.",
    ),
    Route(
        "GET",
        r"/api/events/{id:\d+}/changelog",
        history.changelog,
        "Content and access changes, oldest first",
        "history",
        {200: S.ChangelogPage},
        query=S.PageQuery,
        errors=(404,),
        description="Versions (`version`, `action` = kind, field-level `changes`) and changes of access "
        "(`user` whose access changed; `changes` holds the role before and after), in the "
        "order they happened.",
    ),
    Route(
        "GET",
        r"/api/events/{id:\d+}/diff/{v1:\d+}/{v2:\d+}",
        history.diff,
        "What changed between two versions",
        "history",
        {200: S.DiffOut},
        query=S.DiffQuery,
        errors=(404,),
        offers=(codec.JSON, codec.MSGPACK, codec.HTML),
        signed=True,
        description="Field changes from `v1` to `v2` and the lines of a unified diff of the description. With "
        "`Accept: text/html` or `?format=html`: both versions side by side, a page `html_url` opens with no header.",
    ),
    # -- transactions ------------------------------------------------------------------------
    Route(
        "POST",
        "/api/transactions",
        transactions.run_transaction,
        "Run up to 100 operations as one transaction",
        "transactions",
        {200: S.TransactionResults},
        body=S.TransactionIn,
        query=S.CreateQuery,
        bulk=True,
        errors=(S.TransactionOperationProblem,),
        headers=("Idempotency-Key",),
        description="`operations`: create (`ref` names the new event for later operations as "
        '`"$ref"`), update (`changes`), delete, share (`users`) and unshare (`user_id`), '
        'each with `id` (a number or `"$ref"`) and, for update and delete, `if_version` '
        "(412 when the event is at another version). All are written or none: 200 with one "
        "result per operation (`status` as its own route answers, `event` for create and "
        "update), or the problem of the first failing operation as "
        "`/problems/transaction-operation` with its status, `index` and `errors[].loc` under "
        '`["body", "operations", i]`. `on_conflict` (query or body) applies to each.',
    ),
    # -- notifications ---------------------------------------------------------------------
    Route(
        "GET",
        "/api/notifications",
        notifications.list_notifications,
        "The caller's notifications, newest first",
        "notifications",
        {200: S.NotificationPage},
        query=S.NotificationsQuery,
        description="Changes other people made to events the caller has (or had) access to. "
        "`unread=true` lists unread ones only; `unread_count` counts all unread ones.",
    ),
    Route(
        "POST",
        "/api/notifications/read",
        notifications.mark_all_read,
        "Mark every notification read",
        "notifications",
        {200: S.ReadAll},
    ),
    Route(
        "POST",
        r"/api/notifications/{id:\d+}/read",
        notifications.mark_read,
        "Mark one notification read",
        "notifications",
        {200: S.NotificationItem},
        errors=(404,),
    ),
    Route(
        "GET",
        "/api/notifications/stream",
        notifications.stream,
        "Notifications as they happen (server-sent events)",
        "notifications",
        {200: "text/event-stream"},
        query=S.StreamQuery,
        query_token=True,
        one_connection=False,
        offers=(),
        headers=("Last-Event-ID",),
        errors=(429,),
        description="`id:` is the notification id, `event:` its kind, `data:` the item as `GET /api/notifications` "
        "lists it. Without `Last-Event-ID` (header, or the `last_event_id` parameter) it is live only; with it, "
        "what came after that id is replayed first, then it goes live, with no gap and no duplicate. A comment "
        "line every 15 s keeps it open. EventSource passes a `stream_token` (lasts as long as the login) or an "
        "`access_token`. It ends when the token expires or is revoked, when the client falls 1,000 messages "
        "behind, and when the server shuts down: reconnect with `Last-Event-ID`.",
    ),
    Route(
        "POST",
        "/api/notifications/stream-token",
        notifications.stream_token,
        "A token for the event stream that lasts as long as the login",
        "notifications",
        {200: S.StreamToken},
        description="Only for `?stream_token=` of the stream, while the login lasts (logout ends it, for one).",
    ),
    # -- operations ------------------------------------------------------------------------
    Route(
        "GET",
        "/healthz",
        ops.healthz,
        "The process is up",
        "operations",
        {200: S.Health},
        auth=False,
        offers=(codec.JSON,),
    ),
    Route(
        "GET",
        "/readyz",
        ops.readyz,
        "The database answers and no migration is pending",
        "operations",
        {200: S.Readiness},
        auth=False,
        errors=(503, S.NotReadyProblem),
        offers=(codec.JSON,),
        description="Not ready: a 503 problem with the members `database` (reachable?) and `pending_migrations`.",
    ),
    Route(
        "GET",
        "/metrics",
        ops.metrics,
        "Prometheus metrics of this process",
        "operations",
        {200: "text/plain"},
        auth=False,
        offers=(),
    ),
]


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        if route.method == "GET":
            app.router.add_get(route.path, bind(route), name=route.name, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, bind(route), name=route.name)
