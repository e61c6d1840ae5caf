"""What the types of every resource build on: the base of request types, times, pages, the
actor of a change (the problem every error is answered with is in problems.py).

Patterns end in `$(?!\n)`: msgspec matches with re.search, whose `$` also matches before a
final newline; `(?!\n)` refuses that (and is valid ECMA-262 too, for the OpenAPI document)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta, Struct


class Input(Struct, forbid_unknown_fields=True):
    """A request body, form or query string (and every object inside one): a member it does
    not define is refused (422 naming it), never dropped. A `pattern`'s description starts
    with the shape it wants, in words (the validation message quotes it up to a `;`).

    A body is required in the OpenAPI document when a member is, or when its type says
    `body_required = True` (a ClassVar)."""


UtcTime = Annotated[dt.datetime, Meta(tz=True)]
Limit = Annotated[int, Meta(ge=1, le=500, description="page size, 1-500")]
Cursor = Annotated[
    str,
    Meta(
        max_length=512,
        pattern="^[A-Za-z0-9_-]*$",
        description="the next_cursor of the previous page, as it came; opaque",
    ),
]


class PageQuery(Input, kw_only=True):
    limit: Limit = 50
    cursor: Cursor | None = None


class Actor(Struct, kw_only=True):
    id: int
    username: str


# -- operations -------------------------------------------------------------------------


class Health(Struct, kw_only=True):
    status: str


class Readiness(Struct, kw_only=True):
    status: Literal["ready"]
    database: bool
    pending_migrations: list[str]
