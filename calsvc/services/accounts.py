"""Closing an account: its tokens and streams end, the events it owns are deleted, it leaves
the events others shared with it, and what identified the person is erased, all in one
transaction."""

from __future__ import annotations

from calsvc import errors
from calsvc.db import events as event_db
from calsvc.db import users as user_db
from calsvc.db.pool import Database
from calsvc.db.tx import Tx, run_in_tx
from calsvc.services.auth import BAD_PASSWORD, AuthService
from calsvc.services.events import EventService
from calsvc.services.sharing import SharingService

# Events handled by one round of statements: the loop goes on to other requests between rounds
# (all of a big account's at once would hold it for long).
EVENTS_AT_ONCE = 500


class AccountService:
    def __init__(self, db: Database, auth: AuthService, events: EventService, sharing: SharingService) -> None:
        self.db = db
        self.auth = auth
        self.events = events
        self.sharing = sharing

    async def close(self, user_id: int, password: str) -> None:
        """Close the account of `user_id`; errors.Unauthorized when `password` is not theirs.

        Each owned event is deleted as its owner deleting it would (a version, its people
        notified), and each event shared with the user is left as leaving it would (a `left`
        entry, its people notified), but by a few statements for them all. The account keeps
        its row as `deleted-user-<id>` (the name its history shows from then on), without
        email, full name or password; its username and email are free again."""
        hashed = await self.auth.check_password(user_id, password)
        await run_in_tx(self.db, "close_account", self._close, user_id, hashed)

    async def _close(self, tx: Tx, user_id: int, hashed: str) -> None:
        if not await user_db.lock_live_user(tx.conn, user_id, hashed):
            # closed, or its password changed, since the password was checked
            raise errors.Unauthorized(BAD_PASSWORD)
        # Every change of access and every writer of an event takes its row lock, rows before
        # calendars: the rows of every event the user has access to, then the user's calendar
        # (creates of theirs queue behind the close), then the rows again, for events created
        # in between. From then on who owns what and who has access stay as read.
        await event_db.lock_events_of(tx.conn, user_id)
        await event_db.lock_calendar(tx.conn, user_id)
        event_ids = await event_db.lock_events_of(tx.conn, user_id)
        # Renamed first: what the others are told below names the account as its history will.
        await user_db.close_user(tx.conn, user_id)
        for first in range(0, len(event_ids), EVENTS_AT_ONCE):
            chunk = event_ids[first : first + EVENTS_AT_ONCE]
            owned = await event_db.owned_among(tx.conn, user_id, chunk)
            if owned:
                await self.events.remove_locked(tx, user_id, owned)
            await self.sharing.leave_locked(tx, user_id, chunk)
        await self.auth.revoke_everything(tx, user_id, "account closed")
