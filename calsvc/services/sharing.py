"""Sharing: who may see an event and as what. Every change of access takes the
event's row lock, so it queues with the writers of that event, and is logged with its actor
for the changelog. Sharing checks no calendar: being shared an event is no booking."""

from __future__ import annotations

from typing import Any

from calsvc import errors
from calsvc.db import events as event_db
from calsvc.db import permissions as permission_db
from calsvc.db.pool import Database
from calsvc.db.tx import Tx, run_in_tx
from calsvc.models import Event, Permission, with_article
from calsvc.services.access import ANY_ROLE, locked_event
from calsvc.services.notifications import ACTOR, Notifications, listing, literal, quoted

GRANTABLE = ("editor", "viewer")
MAX_SHARES = 100  # users in one share request


def _owner_only(event: Event, what: str) -> None:
    if event.my_role != "owner":
        raise errors.Forbidden(f"only the owner may {what}; you are {with_article(event.my_role)}")


class SharingService:
    def __init__(self, db: Database, notifications: Notifications) -> None:
        self.db = db
        self.notifications = notifications

    async def permissions(self, user_id: int, event_id: int, after_user: int, limit: int) -> list[Permission]:
        """A page of the event's permissions (owner included), by user id; anyone with access."""
        async with self.db.acquire() as conn:
            if not 1 <= event_id < 2**63 or await event_db.find_event(conn, event_id, user_id) is None:
                raise errors.NotFound("no such event")
            return await permission_db.list_permissions(conn, event_id, after_user, limit)

    async def share(self, user_id: int, event_id: int, users: list[dict[str, Any]]) -> list[Permission]:
        """Give each named user (by user_id, username or email) the role asked; a user who has
        access gets the new role. The owner only. Answers every permission of the event."""
        return await run_in_tx(self.db, "share_event", self.share_tx, user_id, event_id, users, ("body", "users"))

    async def share_tx(
        self, tx: Tx, user_id: int, event_id: int, users: list[dict[str, Any]], loc: tuple[str | int, ...]
    ) -> list[Permission]:
        event = await locked_event(tx, user_id, event_id, ANY_ROLE, lock_calendar=False)
        _owner_only(event, "share the event")
        grants, names = await self._grants(tx, event, users, loc)
        if (
            await permission_db.count_permissions(tx.conn, event.id, [u for u, _ in grants])
            > permission_db.MAX_PERMISSIONS
        ):
            raise errors.Validation.at(loc, f"an event is shared with at most {permission_db.MAX_PERMISSIONS} people")
        changes = await permission_db.grant(tx.conn, event.id, grants, user_id)
        title = quoted(event.title)
        shared = [(u, role) for u, action, role in changes if action == "shared"]
        if shared:
            self.notifications.note(
                tx,
                "event.shared",
                event.id,
                user_id,
                f"{ACTOR} shared {title} with {listing([f'{names[u]} ({role})' for u, role in shared])}",
                {u: f"{ACTOR} shared {title} with you as {role}" for u, role in shared},
            )
        changed = [(u, role) for u, action, role in changes if action == "role_changed"]
        if changed:
            self._role_changed(tx, event, user_id, [(u, names[u], role) for u, role in changed])
        granted = sorted(u for u, _ in grants)

        async def still_live() -> None:
            # At the commit, not when they were looked up: the share holds their rows only for
            # that moment (a long transaction must not hold up their password change or close),
            # and a close that committed meanwhile is seen; one under way waits for this share
            # and then leaves the event like any other.
            gone = set(granted) - await permission_db.hold_live_users(tx.conn, granted)
            for index, ((target, _), entry) in enumerate(zip(grants, users)):
                if target in gone:
                    key = next(k for k in ("user_id", "username", "email") if entry.get(k) is not None)
                    raise errors.Validation.at((*loc, index, key), f"no user with that {key.replace('_', ' ')}")

        tx.call_before_commit(still_live)
        return await permission_db.list_permissions(tx.conn, event.id)

    def _role_changed(self, tx: Tx, event: Event, actor_id: int, changes: list[tuple[int, str, str]]) -> None:
        """Announce new roles: (user id, username, role)."""
        title = quoted(event.title)
        self.notifications.note(
            tx,
            "permission.changed",
            event.id,
            actor_id,
            f"{ACTOR} made {listing([f'{name} {with_article(role)}' for _, name, role in changes])} of {title}",
            {u: f"{ACTOR} made you {with_article(role)} of {title}" for u, _, role in changes},
        )

    @staticmethod
    async def _grants(
        tx: Tx, event: Event, users: list[dict[str, Any]], loc: tuple[str | int, ...]
    ) -> tuple[list[tuple[int, str]], dict[int, str]]:
        """(user id, role) for each entry, and the usernames; errors.Validation at the entry
        naming an unknown user, the owner, a user named twice or a role that cannot be granted."""
        if not users:
            raise errors.Validation.at(loc, "name at least one user")
        if len(users) > MAX_SHARES:
            raise errors.Validation.at(loc, f"at most {MAX_SHARES} users per request")
        keys: list[tuple[str, Any]] = []
        for index, entry in enumerate(users):
            named = [k for k in ("user_id", "username", "email") if entry.get(k) is not None]
            if len(named) != 1:
                raise errors.Validation.at((*loc, index), "name the user by exactly one of user_id, username, email")
            if entry.get("role") not in GRANTABLE:
                raise errors.Validation.at(
                    (*loc, index, "role"),
                    "role must be editor or viewer (ownership moves with PUT /api/events/{id}/permissions/{userId})",
                )
            keys.append((named[0], entry[named[0]]))
        found = await permission_db.find_users(
            tx.conn,
            [v for k, v in keys if k == "user_id" and 1 <= v < 2**63],
            [v for k, v in keys if k == "username"],
            [v for k, v in keys if k == "email"],
        )
        by: dict[str, dict[Any, int]] = {
            "user_id": {u[0]: u[0] for u in found},
            "username": {u[1].lower(): u[0] for u in found},
            "email": {u[2].lower(): u[0] for u in found},
        }
        grants: list[tuple[int, str]] = []
        seen: set[int] = set()
        for index, ((key, value), entry) in enumerate(zip(keys, users)):
            target = by[key].get(value.lower() if isinstance(value, str) else value)
            if target is None:
                raise errors.Validation.at((*loc, index, key), f"no user with that {key.replace('_', ' ')}")
            if target == event.owner_id:
                raise errors.Validation.at((*loc, index, key), "that user owns the event")
            if target in seen:
                raise errors.Validation.at((*loc, index, key), "that user is named twice")
            seen.add(target)
            grants.append((target, entry["role"]))
        return grants, {u[0]: u[1] for u in found}

    async def set_role(self, user_id: int, event_id: int, target: int, role: str) -> list[Permission]:
        """Change the role of someone who has access; `owner` transfers ownership (the old
        owner becomes an editor). The owner only."""

        async def change(tx: Tx) -> list[Permission]:
            event = await locked_event(tx, user_id, event_id, ANY_ROLE, lock_calendar=False)
            _owner_only(event, "change roles")
            if not 1 <= target < 2**63:
                raise errors.NotFound("that user has no access to the event (share it with them first)")
            current = (await permission_db.roles_of(tx.conn, event.id, [target])).get(target)
            if current is None:
                raise errors.NotFound("that user has no access to the event (share it with them first)")
            if current == "owner":
                if role != "owner":
                    raise errors.Conflict("the owner keeps the owner role; transfer ownership to someone else first")
            elif role == "owner":
                await permission_db.transfer(tx.conn, event.id, event.owner_id, target, user_id)
            elif role != current:
                await permission_db.grant(tx.conn, event.id, [(target, role)], user_id)
            permissions = await permission_db.list_permissions(tx.conn, event.id)
            if role != current:
                name = next(p.username for p in permissions if p.user_id == target)
                self._role_changed(tx, event, user_id, [(target, name, role)])
            return permissions

        return await run_in_tx(self.db, "set_role", change)

    async def revoke(self, user_id: int, event_id: int, target: int) -> None:
        """Take away someone's access: the owner may revoke anyone but themselves; anyone
        else may leave (revoke themselves)."""
        await run_in_tx(self.db, "revoke", self.revoke_tx, user_id, event_id, target)

    async def revoke_tx(self, tx: Tx, user_id: int, event_id: int, target: int) -> None:
        event = await locked_event(tx, user_id, event_id, ANY_ROLE, lock_calendar=False)
        if target != user_id:
            _owner_only(event, "revoke other people's access")
        if target == event.owner_id:
            raise errors.Conflict("the owner cannot be removed; transfer ownership first")
        name = None
        if 1 <= target < 2**63:
            name = await permission_db.revoke(
                tx.conn, event.id, target, user_id, "left" if target == user_id else "unshared"
            )
        if name is None:
            raise errors.NotFound("that user has no access to the event")
        if target == user_id:
            self._note_left(tx, event.id, event.title, user_id)
        else:
            title = quoted(event.title)
            self.notifications.note(
                tx,
                "permission.revoked",
                event.id,
                user_id,
                f"{ACTOR} removed {literal(name)} from {title}",
                {target: f"{ACTOR} removed you from {title}"},
            )

    async def leave_locked(self, tx: Tx, user_id: int, event_ids: list[int]) -> None:
        """`user_id` leaves those of `event_ids` (their rows locked by the caller) they have
        access to but do not own, each as leaving one does (DELETE of their own permission): a
        `left` entry in its changelog and, for a live event, a notification to everyone else
        with access (a deleted one has nobody to tell); all in one statement."""
        for event_id, title, live in await permission_db.revoke_many(tx.conn, event_ids, user_id, user_id, "left"):
            if live:
                self._note_left(tx, event_id, title, user_id)

    def _note_left(self, tx: Tx, event_id: int, title: str, user_id: int) -> None:
        self.notifications.note(tx, "permission.revoked", event_id, user_id, f"{ACTOR} left {quoted(title)}")
