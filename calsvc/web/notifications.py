"""Handlers of notifications: the list, marking read, the event stream and its tokens."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random

import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from calsvc import errors, models
from calsvc.notify.hub import Stream
from calsvc.web import codec, keys, schemas
from calsvc.web.endpoints import access_claims, path_int
from calsvc.web.pages import paginate

MAX_STREAMS_PER_USER = 20  # open streams of one user in one process
SEND_TIMEOUT = 30.0  # seconds a write may wait for a client that does not read
RETRY_MS = 2000  # what EventSource waits before reconnecting
SHUTDOWN_RETRY_MS = 500  # the least it waits after a shutdown ended its stream (at most RETRY_MS)

_encoder = msgspec.json.Encoder()


def render(n: models.Notification) -> schemas.NotificationItem:
    return schemas.NotificationItem(
        id=n.id,
        kind=n.kind,
        event_id=n.event_id,
        actor=schemas.Actor(id=n.actor_id, username=n.actor_username),
        summary=n.summary,
        created_at=n.created_at,
        read_at=n.read_at,
    )


def item_json(n: models.Notification) -> str:
    """The `data:` of a stream message: the item as the list shows it."""
    return _encoder.encode(render(n)).decode()


async def list_notifications(
    request: web.Request, user: models.User, query: schemas.NotificationsQuery
) -> web.Response:
    unread = 0

    async def fetch(before: int | None, size: int) -> list[models.Notification]:
        nonlocal unread
        found, unread = await request.app[keys.NOTIFICATIONS].page(user.id, before, query.unread, size)
        return found

    notifications, cursor = await paginate(query.cursor, query.limit, fetch, lambda n: [n.id])
    page = schemas.NotificationPage(items=[render(n) for n in notifications], next_cursor=cursor, unread_count=unread)
    return codec.respond(request, page)


async def mark_all_read(request: web.Request, user: models.User) -> web.Response:
    updated = await request.app[keys.NOTIFICATIONS].mark_all_read(user.id)
    return codec.respond(request, schemas.ReadAll(updated=updated))


async def mark_read(request: web.Request, user: models.User) -> web.Response:
    found = await request.app[keys.NOTIFICATIONS].mark_read(user.id, path_int(request, "id"))
    return codec.respond(request, render(found))


async def stream_token(request: web.Request, user: models.User) -> web.Response:
    issued = await request.app[keys.AUTH].stream_token(access_claims(request))
    answer = schemas.StreamToken(stream_token=issued.token, expires_at=issued.claims.expires_at)
    return codec.respond(request, answer)


MAX_ID = 2**63 - 1  # ids are bigint


def _last_event_id(request: web.Request, query: schemas.StreamQuery) -> int | None:
    header = request.headers.get("Last-Event-ID")
    if header is None:
        if query.last_event_id is None:
            return None
        text, loc = query.last_event_id, ("query", "last_event_id")
    else:
        text, loc = header.strip(), ("header", "Last-Event-ID")
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_ID:
        raise errors.Validation.at(loc, "must be the id of a notification")
    return int(text)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def stream(request: web.Request, user: models.User, query: schemas.StreamQuery) -> web.StreamResponse:
    """Live notifications as server-sent events; with Last-Event-ID (header or query), what
    came after that id first. Ends when the token expires or is revoked, when the client is
    too far behind, and when the server shuts down."""
    claims = access_claims(request)
    last = _last_event_id(request, query)
    app = request.app
    hub = app[keys.HUB]
    if hub.closing:
        raise errors.Unavailable("the server is shutting down")
    if hub.count(user.id) >= MAX_STREAMS_PER_USER:
        raise errors.RateLimited(f"at most {MAX_STREAMS_PER_USER} open streams per user", headers={"Retry-After": "5"})
    if request.method == "HEAD":  # what a GET would start with; aiohttp-sse serves GET only
        return web.Response(
            content_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
    stream = Stream(user.id, claims.jti, claims.family_id, claims.expires_at, gone=lambda: _gone(request))
    response = EventSourceResponse(ping_interval=app[keys.SETTINGS].server.sse_heartbeat, send_timeout=SEND_TIMEOUT)
    response.headers["Cache-Control"] = "no-store"  # as every answer under /api (aiohttp-sse: no-cache)
    hub.add(stream)  # before the cursor is read: nothing committed after that read is missed
    watcher = None
    try:
        # An id past the user's newest (another database's, or made up) means "nothing
        # missed": the stream starts from the newest, or it would wait for ids that lie
        # below it forever. Ids reach each user in commit order, so none can come in below.
        newest = await app[keys.NOTIFICATIONS].latest_id(user.id)
        stream.cursor = newest if last is None else min(last, newest)
        hub.wake([user.id])
        await response.prepare(request)
        # the heartbeat task ends when a write fails: the client has gone
        watcher = asyncio.create_task(response.wait())
        watcher.add_done_callback(lambda _: stream.close("the client went away"))
        await response.write(f"retry: {RETRY_MS}\r\n\r\n".encode())
        async with response:
            while True:
                left = (stream.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
                if left <= 0:
                    break
                batch = await stream.next_batch(left)
                if batch is None:
                    break
                for notification_id, kind, data in batch:
                    await response.send(data, id=str(notification_id), event=kind)
            if hub.closing:
                # the clients of a process that stops reconnect at spread-out moments (by then
                # a balancer sends them to another process), not all in the same instant
                await response.write(f"retry: {random.randint(SHUTDOWN_RETRY_MS, RETRY_MS)}\r\n\r\n".encode())
    except (TimeoutError, ConnectionError):
        # the client left (a reset, or the kernel gave up on a client that stopped reading:
        # aiohttp-sse sets TCP_USER_TIMEOUT to the send timeout), or the send timed out
        pass
    finally:
        hub.discard(stream)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return response
