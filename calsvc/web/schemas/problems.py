"""The problem every error is answered with (RFC 9457), and the kinds of problem that add
members. Each kind is a type of its own, its `type` a constant, so a client reads a 409's
`conflicts` as conflicts rather than as whatever an untyped problem may hold.

`statuses` says which statuses answer a kind: a route lists the kinds it answers beside its
plain statuses (routes.py), and the OpenAPI document answers each status with its kinds."""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec
from msgspec import Struct

from calsvc.web.schemas.events import ConflictItem, Event


class ErrorItem(Struct, kw_only=True):
    loc: list[str | int]
    msg: str
    type: str


class Problem(Struct, kw_only=True):
    """An RFC 9457 problem; some kinds add members (the types below)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] = []
    request_id: str | msgspec.UnsetType = msgspec.UNSET


class SchedulingConflictProblem(Problem, kw_only=True):
    """The change overlaps the owner's calendar (`on_conflict=reject`, or no free slot for
    `shift`); nothing was written."""

    statuses: ClassVar[tuple[int, ...]] = (409,)
    type: Literal["/problems/scheduling-conflict"]
    conflicts: list[ConflictItem]


class EditConflictProblem(Problem, kw_only=True):
    """A merged edit changed fields that others changed too since `base_version`."""

    statuses: ClassVar[tuple[int, ...]] = (409,)
    type: Literal["/problems/edit-conflict"]
    fields: list[str]


class PreconditionFailedProblem(Problem, kw_only=True):
    """The event is not at the version the change is based on (`If-Match`)."""

    statuses: ClassVar[tuple[int, ...]] = (412,)
    type: Literal["/problems/precondition-failed"]
    current: Event


class ItemProblem(Problem, kw_only=True):
    """The problem of one item of a batch, or one operation of a transaction: what its own
    route would answer, with the members of its kind."""

    conflicts: list[ConflictItem] | msgspec.UnsetType = msgspec.UNSET
    fields: list[str] | msgspec.UnsetType = msgspec.UNSET
    current: Event | msgspec.UnsetType = msgspec.UNSET


class BatchItemProblem(ItemProblem, kw_only=True):
    """An item of an atomic batch failed (its status); nothing was written."""

    statuses: ClassVar[tuple[int, ...]] = (409, 422)
    type: Literal["/problems/batch-item"]
    index: int


class TransactionOperationProblem(ItemProblem, kw_only=True):
    """An operation of a transaction failed (its status); nothing was written."""

    statuses: ClassVar[tuple[int, ...]] = (403, 404, 409, 412, 422)
    type: Literal["/problems/transaction-operation"]
    index: int


class NotReadyProblem(Problem, kw_only=True):
    """The database does not answer, or migrations are pending."""

    statuses: ClassVar[tuple[int, ...]] = (503,)
    type: Literal["/problems/unavailable"]
    database: bool
    pending_migrations: list[str]
