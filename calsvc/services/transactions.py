"""POST /api/transactions: up to 100 operations (create, update, delete, share,
unshare) in one database transaction, each done by the same code as its own route. The first
operation that fails is raised as errors.TransactionOperation and nothing is written.

Locks: the rows of the events the operations may change (by the caller's role), then the
calendars they touch (the caller's for creates, the owners' of the events changed), each in id
order, are taken first, as every writer takes them (rows, then calendars); then each operation
takes what it needs as its route does, already held; so two transactions never wait on each
other in a circle (a deadlock the database still detects is retried by run_in_tx)."""

from __future__ import annotations

import dataclasses
from typing import Any

from calsvc import errors
from calsvc.conflicts import Busy
from calsvc.db import events as event_db
from calsvc.db.pool import Database
from calsvc.db.tx import Tx, run_in_tx
from calsvc.models import Event
from calsvc.services.access import EDITOR_ROLES
from calsvc.services.changes import checked, with_fields
from calsvc.services.conflict_check import OnConflict, check_on_conflict_applies
from calsvc.services.events import EventService
from calsvc.services.idempotency import Recorder
from calsvc.services.sharing import SharingService

MAX_OPERATIONS = 100


@dataclasses.dataclass(frozen=True, slots=True)
class Op:
    """One checked operation: `kind` (create, update, delete, share, unshare), the event it
    names (an id, or "$ref"), and what it carries."""

    kind: str
    target: int | str | None = None
    ref: str | None = None
    fields: dict[str, Any] | None = None  # create: the event; update: the changes
    if_version: int | None = None
    users: list[dict[str, Any]] | None = None
    user_id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    event: Event | None = None
    conflicts: list[Busy] = dataclasses.field(default_factory=list)  # written with them (allow)


class TransactionService:
    def __init__(self, db: Database, events: EventService, sharing: SharingService) -> None:
        self.db = db
        self.events = events
        self.sharing = sharing

    async def run(
        self, user_id: int, ops: list[Op | errors.Problem], on_conflict: OnConflict, record: Recorder | None = None
    ) -> list[Outcome]:
        """Each item is a checked operation or the problem of one that did not parse; that
        problem is raised when its turn comes, so the answer names the first operation that
        fails, in order."""
        return await run_in_tx(self.db, "transaction", self._run, user_id, ops, on_conflict, record)

    async def _run(
        self, tx: Tx, user_id: int, ops: list[Op | errors.Problem], on_conflict: OnConflict, record: Recorder | None
    ) -> list[Outcome]:
        if record is not None:
            await record.claim(tx)
        await self._lock_calendars(tx, user_id, [op for op in ops if isinstance(op, Op)])
        created: dict[str, int] = {}
        outcomes = []
        for index, op in enumerate(ops):
            try:
                if isinstance(op, errors.Problem):
                    raise op
                _check_refs(op, created)
                outcomes.append(await self._one(tx, user_id, op, on_conflict, created))
            except errors.Problem as exc:
                raise errors.TransactionOperation.of(index, exc) from None
        if record is not None:
            await record.save(tx, outcomes)
        return outcomes

    async def _lock_calendars(self, tx: Tx, user_id: int, ops: list[Op]) -> None:
        """The rows of the events the operations name, then the calendars of those they
        change (and the caller's, for creates), each in id order, before any operation takes
        them in its own order (rows before calendars, as every writer). Only where the caller's
        role allows the operation: one that will answer 403 must not hold another owner's
        calendar or event while the operations before it run."""
        named = sorted({op.target for op in ops if isinstance(op.target, int)})
        roles = await event_db.roles_of(tx.conn, named, user_id) if named else {}
        allowed = [
            (op, op.target)
            for op in ops
            if isinstance(op.target, int) and op.target in roles and _allows(op, roles[op.target][0], user_id)
        ]
        owners = {roles[target][1] for op, target in allowed if op.kind in ("update", "delete")}
        if any(op.kind == "create" for op in ops):
            owners.add(user_id)
        if allowed:
            await event_db.lock_events(tx.conn, sorted({target for _, target in allowed}))
        for owner in sorted(owners):
            await event_db.lock_calendar(tx.conn, owner)

    async def _one(self, tx: Tx, user_id: int, op: Op, on_conflict: OnConflict, created: dict[str, int]) -> Outcome:
        if op.kind == "create":
            assert op.fields is not None
            draft = await checked(op.fields)
            check_on_conflict_applies(draft, on_conflict, ("body", "on_conflict"))
            event, found = await self.events.insert(tx, user_id, draft, on_conflict)
            if op.ref is not None:
                created[op.ref] = event.id
            return Outcome(201, event, found)
        event_id = created[op.target[1:]] if isinstance(op.target, str) else op.target
        assert isinstance(event_id, int)
        expected = None if op.if_version is None else frozenset((op.if_version,))
        if op.kind == "update":
            build = with_fields(dict(op.fields or {}), on_conflict, ("body", "on_conflict"))  # as PATCH
            event, found = await self.events.change(tx, user_id, event_id, expected, build, on_conflict)
            return Outcome(200, event, found)
        if op.kind == "delete":
            await self.events.remove(tx, user_id, event_id, expected)
            return Outcome(204)
        if op.kind == "share":
            await self.sharing.share_tx(tx, user_id, event_id, op.users or [], ("body", "users"))
            return Outcome(200)
        assert op.kind == "unshare" and op.user_id is not None
        await self.sharing.revoke_tx(tx, user_id, event_id, op.user_id)
        return Outcome(204)


def _allows(op: Op, role: str, user_id: int) -> bool:
    """Whether `role` may do `op` (a leave is an unshare of oneself)."""
    if op.kind == "update":
        return role in EDITOR_ROLES
    if op.kind == "unshare" and op.user_id == user_id:
        return True
    return role == "owner"


def _check_refs(op: Op, created: dict[str, int]) -> None:
    """A "$ref" names an earlier create; a ref is used once. errors.Validation otherwise."""
    if isinstance(op.target, str) and op.target[1:] not in created:
        raise errors.Validation.at(("body", "id"), f"{op.target} names no event created by an earlier operation")
    if op.ref is not None and op.ref in created:
        raise errors.Validation.at(("body", "ref"), f"ref {op.ref!r} is used twice")
