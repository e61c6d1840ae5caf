"""Notifications: who hears of a change, what they read, and their list.

A service that changes an event calls `note(tx, ...)`; the notes of a transaction are
written as its last statements (just before it commits, so they commit or roll back with
the change) to everyone with access to the event except the actor, plus the users a change
names (the one it was shared with, the one revoked). The wake-up goes out on commit: a NOTIFY
inside the transaction, or a Redis publish after it (notify.broker)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from typing import TYPE_CHECKING

import orjson

from calsvc import errors
from calsvc.db import notifications as notification_db
from calsvc.db.pool import Database, off_loop
from calsvc.db.tx import Tx
from calsvc.models import Notification, NotificationKind

if TYPE_CHECKING:
    from calsvc.notify.broker import Broker

KINDS = typing.get_args(NotificationKind)
ACTOR = "%1$s"  # a summary is a format() template: the actor's username goes here


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    kind: str
    event_id: int
    actor_id: int
    summary: str  # what everyone reads (a template: see ACTOR)
    personal: dict[int, str]  # user -> what they read instead (they hear it even without access)


def literal(text: str) -> str:
    """User content inside a summary template (format() reads % as a directive)."""
    return text.replace("%", "%%")


def quoted(title: str) -> str:
    return '"' + literal(title) + '"'


def listing(names: list[str], most: int = 3) -> str:
    """'a', 'a and b', 'a, b and c', 'a, b, c and 1 other', 'a, b, c and 4 others' (names are
    user content)."""
    names = [literal(n) for n in names]
    if len(names) > most:
        rest = len(names) - most
        return f"{', '.join(names[:most])} and {rest} other{'s' if rest > 1 else ''}"
    if len(names) > 1:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return names[0]


def when(start: dt.datetime) -> str:
    return start.isoformat()


# Past this many notes in one transaction (closing an account), they are written out in a thread.
MANY_NOTES = 1000


def _payload(notes: list[Note]) -> tuple[list[int], list[int], str, str]:
    """The events and the users the notes name (sorted, for their locks), and the notes and
    their personal lines as insert_notifications takes them (JSON)."""
    events = sorted({n.event_id for n in notes})
    named = sorted({u for n in notes for u in n.personal})
    rows = [
        {"ord": i, "kind": n.kind, "event_id": n.event_id, "actor_id": n.actor_id, "summary": n.summary}
        for i, n in enumerate(notes)
    ]
    lines = [{"ord": i, "user_id": u, "summary": text} for i, n in enumerate(notes) for u, text in n.personal.items()]
    return events, named, orjson.dumps(rows).decode(), orjson.dumps(lines).decode()


class Notifications:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker

    # -- writing --------------------------------------------------------------------------

    def note(
        self,
        tx: Tx,
        kind: NotificationKind,
        event_id: int,
        actor_id: int,
        summary: str,
        personal: dict[int, str] | None = None,
    ) -> None:
        """Announce a change of `event_id` made by `actor_id` in this transaction."""
        assert kind in KINDS, kind
        if not tx.notes:
            tx.call_before_commit(lambda: self._flush(tx))
        tx.notes.append(Note(kind, event_id, actor_id, summary, personal or {}))

    async def _flush(self, tx: Tx) -> None:
        notes: list[Note] = tx.notes
        if not notes:
            return
        if len(notes) > MANY_NOTES:
            events, named, rows, lines = await off_loop(_payload, notes)
        else:
            events, named, rows, lines = _payload(notes)
        await notification_db.lock_recipients(tx.conn, events, named)
        users = await notification_db.insert_notifications(tx.conn, rows, lines, self.broker.pg_channel)
        if users:
            tx.call_after(lambda: self.broker.after_commit(users))

    # -- reading --------------------------------------------------------------------------

    async def page(self, user_id: int, before: int | None, unread: bool, limit: int) -> tuple[list[Notification], int]:
        """A page, newest first (`limit` rows, those before id `before`), and the unread count."""
        async with self.db.acquire() as conn:
            found = await notification_db.list_notifications(conn, user_id, before or 2**63 - 1, unread, limit)
            return found, await notification_db.count_unread(conn, user_id)

    async def mark_read(self, user_id: int, notification_id: int) -> Notification:
        """errors.NotFound unless it is one of the user's."""
        found = None
        if 1 <= notification_id < 2**63:
            async with self.db.acquire() as conn:
                found = await notification_db.mark_read(conn, notification_id, user_id)
        if found is None:
            raise errors.NotFound("no such notification")
        return found

    async def mark_all_read(self, user_id: int) -> int:
        async with self.db.acquire() as conn:
            return await notification_db.mark_all_read(conn, user_id)

    async def latest_id(self, user_id: int) -> int:
        async with self.db.acquire() as conn:
            return await notification_db.latest_id(conn, user_id)

    async def after(self, cursors: dict[int, int], per_user: int) -> list[Notification]:
        async with self.db.acquire() as conn:
            return await notification_db.notifications_after(conn, cursors, per_user)
