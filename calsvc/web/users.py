"""Handlers of /api/users: find people to share with."""
from __future__ import annotations

from aiohttp import web

from calsvc import models
from calsvc.web import codec, keys, schemas


async def list_users(request: web.Request, user: models.User, query: schemas.UsersQuery) -> web.Response:
    after = None
    if query.cursor:
        name, user_id = codec.decode_cursor(query.cursor, (str, int))
        after = (name, user_id)
    found = await request.app[keys.AUTH].search_users(query.q, after, query.limit + 1)
    page = found[: query.limit]
    next_cursor = None
    if len(found) > query.limit:
        last = page[-1]
        next_cursor = codec.encode_cursor([last.username.lower(), last.id])
    items = [schemas.UserSummary(id=u.id, username=u.username, full_name=u.full_name) for u in page]
    return codec.respond(request, schemas.UserPage(items=items, next_cursor=next_cursor))
