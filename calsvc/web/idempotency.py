"""Idempotency-Key on the routes that create (an event, a batch, a transaction): a retry with
the same key and request is answered the first answer, sent again as it was stored."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web

from calsvc import errors, models
from calsvc.services.idempotency import KeyTaken, check_key
from calsvc.web import codec, keys

Answer = tuple[int, Any, dict[str, str]]  # status, body, headers


async def idempotent(
    request: web.Request,
    user: models.User,
    body: msgspec.Struct,
    query: msgspec.Struct,
    call: Callable[[Any], Awaitable[Any]],
    answer: Callable[[Any], Answer],
) -> web.Response:
    """Run `call(record)` and answer `answer(result)`; with an Idempotency-Key, the answer is
    stored with the write (`record`) and a retry with the same key and request gets it back."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return _respond(request, answer(await call(None)))
    check_key(key)
    route = request.match_info.route.name or request.path
    # keys sorted: the same request with its members in another order is the same request
    canonical = orjson.dumps([msgspec.to_builtins(body), msgspec.to_builtins(query)], option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(canonical).digest()
    store = request.app[keys.IDEMPOTENCY]
    stored = await store.replay(user.id, key, route, digest)
    if stored is None:

        def render(result: Any) -> tuple[int, bytes, str | None]:
            status, value, headers = answer(result)
            return status, msgspec.json.encode(value), headers.get("Location")

        try:
            return _respond(request, answer(await call(store.recorder(user.id, key, route, digest, render))))
        except KeyTaken:
            stored = await store.replay(user.id, key, route, digest)
            if stored is None:  # the other request's answer expired at once: cannot happen in 24 h
                raise errors.Unavailable("try again") from None
    headers = {"Idempotent-Replayed": "true"}
    if stored.location:  # one event created: its answer is small, and has the version
        value = orjson.loads(stored.body)
        headers["Location"] = stored.location
        headers.update({"ETag": f'"{value["version"]}"', "Vary": "Accept"})
        return codec.respond(request, value, status=stored.status, headers=headers)
    # a batch's or a transaction's answer, megabytes maybe: sent as stored when JSON is wanted,
    # converted in a thread otherwise
    if (request.get(keys.MEDIA) or codec.JSON) == codec.JSON:
        return web.Response(body=stored.body, status=stored.status, content_type=codec.JSON, headers=headers)
    encoded = await asyncio.to_thread(lambda: codec.encode(orjson.loads(stored.body), codec.MSGPACK))
    return web.Response(body=encoded, status=stored.status, content_type=codec.MSGPACK, headers=headers)


def _respond(request: web.Request, answer: Answer) -> web.Response:
    status, value, headers = answer
    return codec.respond(request, value, status=status, headers=headers)
