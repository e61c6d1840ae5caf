"""The application factory: keys, lifetimes, middlewares, routes, CORS and docs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import aiohttp_cors
from aiohttp import web

from calsvc.config import Settings
from calsvc.db import migrate
from calsvc.db import tokens as token_db
from calsvc.db.pool import Database
from calsvc.links import LinkSigner
from calsvc.notify.broker import Broker, PgBroker, RedisBroker
from calsvc.notify.hub import Hub, Stream
from calsvc.passwords import Hasher
from calsvc.ratelimit import MemoryLimiter, RedisLimiter
from calsvc.services.accounts import AccountService
from calsvc.services.auth import AuthService
from calsvc.services.batch import BatchService
from calsvc.services.conflict_check import ConflictChecker
from calsvc.services.events import EventService
from calsvc.services.history import HistoryService
from calsvc.services.idempotency import Idempotency
from calsvc.services.notifications import Notifications
from calsvc.services.sharing import SharingService
from calsvc.services.transactions import TransactionService
from calsvc.tokens import TokenCodec
from calsvc.web import keys, openapi
from calsvc.web.docs import add_docs
from calsvc.web.drain import Drain, close_when_draining
from calsvc.web.metrics import Metrics
from calsvc.web.middlewares import api_middleware, edge_middleware, on_response_prepare
from calsvc.web.notifications import item_json
from calsvc.web.routes import add_routes

log = logging.getLogger(__name__)

PURGE_EVERY = 600.0
FREEZE_EVERY = 5.0  # seconds (see _garbage_collection)
THAW_EVERY = 600.0
REDIS_TIMEOUT = 0.5  # seconds: a Redis that does not answer in time counts as down
CORS_EXPOSE = (
    "ETag",
    "Location",
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "WWW-Authenticate",
)
CORS_ALLOW = (
    "Authorization",
    "Content-Type",
    "Accept",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    db = await Database.connect(str(settings.database.url), settings.database)
    app[keys.DB] = db
    hasher = Hasher(settings.auth.bcrypt_rounds)
    await hasher.warm_up()  # so the first unknown-user login costs what the others do

    async def still_valid(streams: list[Stream]) -> set:
        async with db.acquire() as conn:
            return await token_db.valid_access_tokens(conn, [(s.user_id, s.jti, s.family_id) for s in streams])

    hub = Hub(lambda cursors, per_user: notifications.after(cursors, per_user), still_valid, item_json)
    broker: Broker
    if app.get(keys.REDIS) is not None:
        broker = RedisBroker(hub, app[keys.REDIS], settings.redis.prefix)
    else:
        listen = settings.database.listen_url or settings.database.url  # LISTEN needs a direct connection
        broker = PgBroker(hub, str(listen), settings.database.connect_timeout)
    notifications = Notifications(db, broker)
    app[keys.HUB] = hub
    app[keys.NOTIFICATIONS] = notifications
    app[keys.AUTH] = AuthService(db, app[keys.TOKENS], hasher, broker)
    checker = ConflictChecker()
    app[keys.EVENTS] = EventService(db, notifications, checker)
    app[keys.BATCH] = BatchService(db, checker)
    app[keys.SHARING] = SharingService(db, notifications)
    app[keys.HISTORY] = HistoryService(db)
    app[keys.TRANSACTIONS] = TransactionService(db, app[keys.EVENTS], app[keys.SHARING])
    app[keys.ACCOUNTS] = AccountService(db, app[keys.AUTH], app[keys.EVENTS], app[keys.SHARING])
    app[keys.IDEMPOTENCY] = Idempotency(db)
    broker.start()
    hub.start()
    yield
    app[keys.BATCH].offload.close()
    await hub.stop()
    await broker.stop()
    await db.close()


async def _garbage_collection(app: web.Application) -> AsyncIterator[None]:
    """Keep full garbage collections short. With thousands of open event streams a process
    tracks hundreds of thousands of objects, and each full collection walked them all,
    stalling every stream (bench/sse_fanout.py). Long-lived objects (the app, open
    connections) are frozen out of the collector's walk every FREEZE_EVERY seconds; every
    THAW_EVERY seconds they are thawed for one full collection, so garbage cycles among
    them are still reclaimed (one such pause per THAW_EVERY). Freezing is cheap (it moves
    lists); what it costs is that cyclic garbage waits up to THAW_EVERY to be freed."""
    gc.freeze()

    async def loop() -> None:
        since_thaw = 0.0
        while True:
            await asyncio.sleep(FREEZE_EVERY)
            since_thaw += FREEZE_EVERY
            if since_thaw >= THAW_EVERY:
                since_thaw = 0.0
                gc.unfreeze()
                gc.collect()
            gc.freeze()

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    gc.unfreeze()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    yield
    client = app.get(keys.REDIS)
    if client is not None:
        await client.aclose()


async def _close_streams(app: web.Application) -> None:
    """On shutdown, end every event stream (cleanly: the clients see the end of the
    response and reconnect elsewhere with Last-Event-ID)."""
    hub = app.get(keys.HUB)
    if hub is not None:
        hub.close_all("the server is shutting down")


async def _purge_expired_tokens(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await asyncio.sleep(PURGE_EVERY)
            try:
                await app[keys.AUTH].purge_expired()
                await app[keys.IDEMPOTENCY].purge_expired()
            except Exception:  # the next round tries again
                log.warning("purging expired tokens and idempotency keys failed", exc_info=True)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> web.Application:
    """The aiohttp application for `settings`, whose database URL and secret must be set."""
    if not settings.database.url:
        raise ValueError("create_app needs settings.database.url")
    if not settings.auth.secret:
        raise ValueError("create_app needs settings.auth.secret")
    app = web.Application(middlewares=[edge_middleware, api_middleware], client_max_size=settings.server.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.TOKENS] = TokenCodec(settings.auth)
    app[keys.LINKS] = LinkSigner(str(settings.auth.secret))
    if settings.redis.url:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            str(settings.redis.url),
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            health_check_interval=10,
        )
        app[keys.REDIS] = client
        prefix = settings.redis.prefix
        app[keys.AUTH_LIMITER] = RedisLimiter(
            client, settings.rate_limit.auth_per_minute, f"{prefix}:ratelimit:auth:", name="per-IP (auth)"
        )
        app[keys.USER_LIMITER] = RedisLimiter(
            client, settings.rate_limit.user_per_minute, f"{prefix}:ratelimit:user:", name="per-user"
        )
    else:
        app[keys.AUTH_LIMITER] = MemoryLimiter(settings.rate_limit.auth_per_minute)
        app[keys.USER_LIMITER] = MemoryLimiter(settings.rate_limit.user_per_minute)
    app[keys.MIGRATIONS] = migrate.all_ids()
    app[keys.METRICS] = Metrics(lambda: _pool_sizes(app))
    app[keys.OPENAPI] = openapi.document()
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_database)
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(_purge_expired_tokens)
    app.cleanup_ctx.append(_garbage_collection)
    app.on_response_prepare.append(on_response_prepare)
    app[keys.DRAIN] = Drain()  # begun by the worker's SIGTERM handler (web/server.py)
    app.on_response_prepare.append(close_when_draining)
    add_routes(app)
    add_docs(app)
    if settings.cors.allow_origins:
        # Bearer tokens travel in a header, so no credentials (cookies) are needed.
        options = aiohttp_cors.ResourceOptions(
            allow_credentials=False,
            expose_headers=CORS_EXPOSE,
            allow_headers=CORS_ALLOW,
            allow_methods="*",
            max_age=600,
        )
        cors = aiohttp_cors.setup(app, defaults={origin: options for origin in settings.cors.allow_origins})
        for route in list(app.router.routes()):
            cors.add(route)
    return app


def _pool_sizes(app: web.Application) -> tuple[int, int] | None:
    db = app.get(keys.DB)
    return None if db is None else (db.in_use(), db.size())
