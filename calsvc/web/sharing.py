"""Handlers of /api/events/{id}/share and /permissions: the owner shares the event, changes
roles and revokes access; anyone with access lists the permissions, or leaves."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from msgspec.structs import asdict

from calsvc import errors, models
from calsvc.web import codec, keys, schemas
from calsvc.web.endpoints import path_int
from calsvc.web.pages import paginate


def _ids(request: web.Request) -> tuple[int, int]:
    """The event and the user the path names (/api/events/{id}/permissions/{user_id})."""
    return path_int(request, "id"), path_int(request, "user_id")


def render_permissions(permissions: list[models.Permission], next_cursor: str | None = None) -> schemas.PermissionPage:
    return schemas.PermissionPage(
        items=[
            schemas.PermissionOut(
                user_id=p.user_id, username=p.username, role=p.role, granted_by=p.granted_by, granted_at=p.granted_at
            )
            for p in permissions
        ],
        next_cursor=next_cursor,
    )


def share_entries(body: schemas.ShareIn) -> list[dict[str, Any]]:
    """The users a share body names: its `users`, or the body itself as the one user."""
    if body.users is not msgspec.UNSET:
        if any(getattr(body, k) is not None for k in ("user_id", "username", "email", "role")):
            raise errors.Validation.at(("body",), "give either `users` or one user's fields, not both")
        return [asdict(u) for u in body.users]
    if body.role is None:
        raise errors.Validation.at(("body", "role"), "role is required (editor or viewer)")
    return [{k: getattr(body, k) for k in ("user_id", "username", "email", "role")}]


async def share(request: web.Request, user: models.User, body: schemas.ShareIn) -> web.Response:
    event_id = path_int(request, "id")
    permissions = await request.app[keys.SHARING].share(user.id, event_id, share_entries(body))
    return codec.respond(request, render_permissions(permissions))


async def list_permissions(request: web.Request, user: models.User, query: schemas.PageQuery) -> web.Response:
    event_id = path_int(request, "id")
    permissions, cursor = await paginate(
        query.cursor,
        query.limit,
        lambda after, size: request.app[keys.SHARING].permissions(user.id, event_id, after, size),
        lambda p: [p.user_id],
        first=0,
    )
    return codec.respond(request, render_permissions(permissions, cursor))


async def set_role(request: web.Request, user: models.User, body: schemas.RoleIn) -> web.Response:
    event_id, target = _ids(request)
    permissions = await request.app[keys.SHARING].set_role(user.id, event_id, target, body.role)
    return codec.respond(request, render_permissions(permissions))


async def revoke(request: web.Request, user: models.User) -> web.Response:
    event_id, target = _ids(request)
    await request.app[keys.SHARING].revoke(user.id, event_id, target)
    return web.Response(status=204)
