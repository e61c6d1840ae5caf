"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

from aiohttp import web

from calsvc import errors
from calsvc.db.migrate import readiness
from calsvc.web import codec, keys, schemas


async def healthz(request: web.Request) -> web.Response:
    return codec.respond(request, schemas.Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers and no migration is pending; otherwise a 503 problem
    (errors are always problem+json) that carries the same members saying which. From SIGTERM
    on, a 503 at once, without asking the database: the process is draining (web/drain.py)."""
    if request.app[keys.DRAIN].started:
        raise errors.Unavailable("the server is shutting down")
    reachable, pending = await readiness(request.app[keys.DB], request.app[keys.MIGRATIONS], 1.5)
    if not reachable or pending:
        detail = "the database is unreachable" if not reachable else "migrations are pending"
        raise errors.Unavailable(detail, database=reachable, pending_migrations=pending)
    return codec.respond(request, schemas.Readiness(status="ready", database=True, pending_migrations=[]))


async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
