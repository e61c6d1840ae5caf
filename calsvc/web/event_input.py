"""What a request about events asks for, read into the terms the services take: the fields
of a new event, the changes an edit gives, the `on_conflict` that applies, the merge asked
for. Used by the event routes, rollback and transactions alike."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web
from msgspec.structs import asdict

from calsvc import errors
from calsvc.services.conflict_check import OnConflict
from calsvc.web import messages, schemas

# Members of an edit's body that say how to write it, not what to change.
_EDIT_OPTIONS = frozenset(("on_conflict", "edit_strategy", "base_version", "prefer"))


def _recurrence(rec: schemas.RecurrenceIn | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    fields = asdict(rec)
    if rec.pattern is not None:
        fields["pattern"] = asdict(rec.pattern)
    return fields


def read_new_event(body: schemas.EventIn) -> dict[str, Any]:
    """The body of a create as plain values (the recurrence a dict too)."""
    fields = asdict(body)
    fields["recurrence"] = _recurrence(body.recurrence)
    return fields


def read_changes(body: msgspec.Struct) -> dict[str, Any]:
    """The fields an edit gives (an event's or an occurrence's): those it sets, the options
    of the edit left out; none when it sets none."""
    changes = {k: v for k, v in asdict(body).items() if v is not msgspec.UNSET and k not in _EDIT_OPTIONS}
    if "recurrence" in changes:
        changes["recurrence"] = _recurrence(changes["recurrence"])
    return changes


def read_on_conflict(query: Any, body: Any) -> OnConflict:
    """What to do about a conflict: the query's `on_conflict`, else the body's, else reject."""
    return query.on_conflict or body.on_conflict or "reject"


def check_same_on_conflict(given: str | None, on_conflict: str, loc: tuple[str | int, ...]) -> None:
    """The request's `on_conflict` applies to every item of a batch (operation of a
    transaction): an item's own is refused when it says otherwise, never ignored."""
    if given is not None and given != on_conflict:
        raise errors.Validation.at(
            loc,
            f"{messages.label(loc)} is {given}, but the request's on_conflict "
            f"({on_conflict}) applies to every item: set it on the request",
        )


def read_merge(query: Any, body: Any) -> tuple[int, str | None] | None:
    """(base version, prefer) when the edit asks for a three-way merge (`edit_strategy=merge`,
    in the query or the body); None when it does not."""
    strategy = query.edit_strategy or body.edit_strategy
    base = query.base_version or body.base_version
    prefer = query.prefer or body.prefer
    if strategy is None:
        if base is not None or prefer is not None:
            raise errors.Validation.at(
                ("query", "edit_strategy"), "base_version and prefer go with edit_strategy=merge"
            )
        return None
    if base is None:
        raise errors.Validation.at(("query", "base_version"), "edit_strategy=merge needs base_version")
    return base, prefer


_STRONG_TAG = re.compile(r'"([1-9][0-9]{0,9})"')


def expected_versions(request: web.Request) -> frozenset[int] | None:
    """The versions If-Match names (RFC 9110 13.1.1): strong comparison, so a weak tag (or
    anything but an ETag of ours) names none; None without the header, or with `*` (the
    event exists: any version)."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return None
    return frozenset(int(m.group(1)) for t in tags if (m := _STRONG_TAG.fullmatch(t)))
