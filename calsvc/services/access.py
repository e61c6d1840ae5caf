"""Who may change an event: roles, the version a change expects, and the one routine that
locks an event for a writer."""

from __future__ import annotations

from calsvc import errors
from calsvc.db import events as event_db
from calsvc.db.tx import Tx
from calsvc.models import Event, with_article

EDITOR_ROLES = ("owner", "editor")
ANY_ROLE = ("owner", "editor", "viewer")

# The versions a change may apply to (If-Match, parsed at the edge: any of them; or
# if_version in a transaction); None: whatever the event is at.
Expected = frozenset[int] | None


def require_role(event: Event, roles: tuple[str, ...]) -> None:
    if event.my_role not in roles:
        need = "the owner" if roles == ("owner",) else "an editor or the owner"
        raise errors.Forbidden(f"only {need} may do this; you are {with_article(event.my_role)}")


def require_version(event: Event, expected: Expected) -> None:
    if expected is not None and event.version not in expected:
        raise errors.PreconditionFailed(
            f"the event is at version {event.version}, not the one the change is based on "
            "(If-Match, or if_version in a transaction)",
            current=event,
        )


async def locked_event(
    tx: Tx, user_id: int, event_id: int, roles: tuple[str, ...], *, lock_calendar: bool, deleted_ok: bool = False
) -> Event:
    """The event as the user sees it, its row locked, then (every writer takes the locks in
    this order: event rows, then calendars) its owner's calendar locked when `lock_calendar`.
    errors.NotFound when the user cannot see it (`deleted_ok`: its owner sees it deleted): a
    stranger neither locks the event nor learns from a wait that it exists. errors.Forbidden
    when their role is not one of `roles`, found before any lock is taken (a viewer must hold
    nothing of the owner's) and again once the row is held (a role can change while the lock
    is awaited). Holding the row, the owner cannot change (a transfer takes it), and a writer
    waiting for it holds no calendar meanwhile."""
    if not 1 <= event_id < 2**63:
        raise errors.NotFound("no such event")
    event = await event_db.find_event(tx.conn, event_id, user_id, deleted_ok)
    if event is None:
        raise errors.NotFound("no such event")
    require_role(event, roles)
    event = await event_db.lock_event(tx.conn, event_id, user_id, deleted_ok)
    if event is None:
        raise errors.NotFound("no such event")
    require_role(event, roles)
    if lock_calendar:
        await event_db.lock_calendar(tx.conn, event.owner_id)
    return event
