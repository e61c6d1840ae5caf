"""Operations: liveness, readiness, metrics."""
from __future__ import annotations

import asyncio

from aiohttp import web

from calsvc import errors
from calsvc.db.migrate import applied_ids
from calsvc.web import codec, keys, schemas


async def healthz(request: web.Request) -> web.Response:
    return codec.respond(request, schemas.Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers and no migration is pending; otherwise a 503 problem
    (errors are always problem+json) that carries the same members saying which."""
    db = request.app[keys.DB]
    expected = request.app[keys.MIGRATIONS]
    try:
        async with asyncio.timeout(1.5):
            async with db.acquire() as conn:
                applied = await applied_ids(conn)
        reachable = True
        pending = [m for m in expected if m not in applied]
    except (errors.Unavailable, asyncio.TimeoutError):
        reachable, pending = False, []
    if not reachable or pending:
        detail = "the database is unreachable" if not reachable else "migrations are pending"
        raise errors.Unavailable(detail, database=reachable,
                                 pending_migrations=pending)
    return codec.respond(request, schemas.Readiness(status="ready", database=True, pending_migrations=[]))


async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
