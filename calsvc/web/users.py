"""Handlers of /api/users: find people to share with."""

from __future__ import annotations

from aiohttp import web

from calsvc import models
from calsvc.web import codec, keys, schemas
from calsvc.web.pages import paginate


async def list_users(request: web.Request, user: models.User, query: schemas.UsersQuery) -> web.Response:
    page, next_cursor = await paginate(
        query.cursor,
        query.limit,
        lambda after, size: request.app[keys.AUTH].search_users(query.q, after, size),
        lambda u: [u.username.lower(), u.id],
        shape=(str, int),
    )
    items = [schemas.UserSummary(id=u.id, username=u.username, full_name=u.full_name) for u in page]
    return codec.respond(request, schemas.UserPage(items=items, next_cursor=next_cursor))
