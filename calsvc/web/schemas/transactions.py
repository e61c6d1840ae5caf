"""Types of POST /api/transactions: operations, each checked alone, and their results."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from calsvc.web.schemas.common import Input
from calsvc.web.schemas.events import Event, EventIn, EventPatch, Strategy
from calsvc.web.schemas.sharing import ShareUser, UserId

Ref = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$(?!\n)",
        description='1-64 characters of A-Z a-z 0-9 _ -; names the created event for later operations (as "$ref")',
    ),
]
EventRef = (
    Annotated[int, Meta(ge=1, le=2**63 - 1)]
    | Annotated[
        str,
        Meta(
            max_length=65,
            pattern=r"^\$[A-Za-z0-9_-]{1,64}$(?!\n)",
            description='"$" followed by the ref of an earlier create; the event it created',
        ),
    ]
)
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
    operations: Annotated[
        list[Any],
        Meta(
            min_length=1,
            max_length=100,
            description="1-100 operations",
            extra_json_schema={
                "items": {
                    "oneOf": [
                        {"$ref": f"#/components/schemas/{k.__name__}"}
                        for k in (CreateOp, UpdateOp, DeleteOp, ShareOp, UnshareOp)
                    ]
                }
            },
        ),
    ]
    on_conflict: Strategy | None = None


class OperationResult(Struct, kw_only=True):
    index: int
    status: int
    event: Event | msgspec.UnsetType = msgspec.UNSET


class TransactionResults(Struct, kw_only=True):
    results: list[OperationResult]
