"""Types of /api/events/{id}/share and /permissions: who may see or change an event."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

from calsvc.web.schemas.common import Input, UtcTime

# A title names an enum: the OpenAPI document makes it a component (openapi.py).
Role = Annotated[Literal["owner", "editor", "viewer"], Meta(title="Role")]
ShareRole = Annotated[Literal["editor", "viewer"], Meta(title="ShareRole", description="the role to give")]
UserId = Annotated[int, Meta(ge=1, le=2**63 - 1)]


class ShareUser(Input, kw_only=True):
    """One user, named by exactly one of `user_id`, `username`, `email`, and the role to give."""

    user_id: UserId | None = None
    username: Annotated[str, Meta(min_length=1, max_length=32)] | None = None
    email: Annotated[str, Meta(min_length=1, max_length=254)] | None = None
    role: ShareRole


class ShareIn(Input, kw_only=True):
    """`{"users": [ShareUser, ...]}` (1-100), or one ShareUser as the whole body."""

    body_required: ClassVar[bool] = True  # no member is, yet a body that names no one is a 422

    users: Annotated[list[ShareUser], Meta(min_length=1, max_length=100)] | msgspec.UnsetType = msgspec.UNSET
    user_id: UserId | None = None
    username: Annotated[str, Meta(min_length=1, max_length=32)] | None = None
    email: Annotated[str, Meta(min_length=1, max_length=254)] | None = None
    role: ShareRole | None = None


class PermissionOut(Struct, kw_only=True):
    user_id: int
    username: str
    role: Role
    granted_by: int | None
    granted_at: UtcTime


class PermissionPage(Struct, kw_only=True):
    items: list[PermissionOut]
    next_cursor: str | None


class RoleIn(Input, kw_only=True):
    """`owner` transfers ownership: the old owner becomes an editor."""

    role: Role
