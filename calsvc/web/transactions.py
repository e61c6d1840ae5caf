"""Handler of POST /api/transactions: up to 100 operations on events, written in one
database transaction, all or none."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from msgspec.structs import asdict

from calsvc import errors, models
from calsvc.services.transactions import Op, Outcome
from calsvc.web import codec, keys, messages, schemas
from calsvc.web.event_input import check_same_on_conflict, read_changes, read_new_event, read_on_conflict
from calsvc.web.events import current_shown, listed_conflicts, render_event
from calsvc.web.idempotency import Answer, idempotent


def _op(raw: Any, index: int, on_conflict: str) -> Op:
    """One operation of the body, checked alone (errors.Validation with a loc under
    `["body", "operations", index]`)."""
    at = ("body", "operations", index)
    parsed = codec.convert(raw, schemas.Operation, at)
    if isinstance(parsed, schemas.CreateOp):
        check_same_on_conflict(parsed.event.on_conflict, on_conflict, (*at, "event", "on_conflict"))
        return Op("create", ref=parsed.ref, fields=read_new_event(parsed.event))
    if isinstance(parsed, schemas.UpdateOp):
        check_same_on_conflict(parsed.changes.on_conflict, on_conflict, (*at, "changes", "on_conflict"))
        for member in ("edit_strategy", "base_version", "prefer"):
            if getattr(parsed.changes, member) is not None:
                loc = (*at, "changes", member)
                raise errors.Validation.at(
                    loc, f"{messages.label(loc)}: a merge is not available in a transaction; use if_version"
                )
        return Op("update", parsed.id, fields=read_changes(parsed.changes), if_version=parsed.if_version)
    if isinstance(parsed, schemas.DeleteOp):
        return Op("delete", parsed.id, if_version=parsed.if_version)
    if isinstance(parsed, schemas.ShareOp):
        return Op("share", parsed.id, users=[asdict(u) for u in parsed.users])
    return Op("unshare", parsed.id, user_id=parsed.user_id)


async def run_transaction(
    request: web.Request, user: models.User, body: schemas.TransactionIn, query: schemas.CreateQuery
) -> web.Response:
    on_conflict = read_on_conflict(query, body)
    ops: list[Op | errors.Problem] = []
    for index, raw in enumerate(body.operations):
        try:
            ops.append(_op(raw, index, on_conflict))
        except errors.Problem as exc:
            ops.append(exc)

    def answer(outcomes: list[Outcome]) -> Answer:
        results = []
        for index, outcome in enumerate(outcomes):
            result = schemas.OperationResult(index=index, status=outcome.status)
            if outcome.event is not None:
                result.event = render_event(outcome.event, listed_conflicts(outcome.conflicts, on_conflict))
            results.append(result)
        return 200, schemas.TransactionResults(results=results), {}

    with current_shown():
        return await idempotent(
            request,
            user,
            body,
            query,
            lambda record: request.app[keys.TRANSACTIONS].run(user.id, ops, on_conflict, record),
            answer,
        )
