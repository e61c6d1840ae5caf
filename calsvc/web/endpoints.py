"""Endpoints: what the route table says about each route (`Route`), the aiohttp handler that
authenticates and parses a request according to it before calling the route's function
(`bind`), and what handlers read of a request the same way (the access token's claims, a
numeric path parameter)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from calsvc import errors
from calsvc.links import LINK
from calsvc.tokens import ACCESS, STREAM, Claims
from calsvc.web import codec, keys, messages

Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    responses: dict[int, Any]  # status -> Struct type, tuple of them (one of), or None
    body: type | None = None  # validated request body, passed as `body=`
    form: type | None = None  # alternative form-encoded body (OAuth2 login)
    query: type | None = None  # validated query string, passed as `query=`
    auth: bool = True  # needs a bearer token; passes `user=`
    query_token: bool = False  # the token may come as ?stream_token= or ?access_token= (EventSource)
    signed: bool = False  # a signed link (calsvc.links) may stand in for the token (a browser's page)
    one_connection: bool = True  # with auth: token check and queries on one connection
    # (Database.lease); False where the handler outlives its
    # queries (the stream)
    bulk: bool = False  # body limit is max_bulk_body_bytes
    offers: tuple[str, ...] = codec.OFFERS  # response media types ((), for routes serving their own)
    errors: tuple[int | type, ...] = ()  # further problem statuses the route can answer, and the
    # kinds of problem with members of their own (schemas.problems, which name their statuses)
    headers: tuple[str, ...] = ()  # request headers it reads (documented in OpenAPI)
    operation: str = ""  # name (and operationId) when the handler serves two routes
    description: str = ""

    @property
    def name(self) -> str:
        return self.operation or self.handler.__name__


def credential(request: web.Request) -> tuple[str, str] | None:
    """What the request authenticates with, as (kind, text): the bearer token of the
    Authorization header (an access token); with no header, on routes that take a token in
    the query (the event stream: browsers' EventSource cannot send headers) ?stream_token=
    or else ?access_token=, and on routes that take a signed link (a page a browser opens)
    the link's signature. None when there is nothing of the kind."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        return (ACCESS, token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    route = getattr(request.match_info.handler, "route", None)
    if route is None:
        return None
    if route.query_token:
        for name, kind in (("stream_token", STREAM), ("access_token", ACCESS)):
            if request.query.get(name):
                return kind, request.query[name]
    if route.signed and request.query.get("signature"):
        return LINK, request.query["signature"]
    return None


def access_claims(request: web.Request) -> Claims:
    """The verified claims of the request's credential (decoded once per request);
    errors.Unauthorized when there is none or it is not valid."""
    if keys.CLAIMS not in request:
        found = credential(request)
        try:
            if found is None:
                raise errors.Unauthorized("missing bearer token")
            kind, text = found
            if kind == LINK:
                request[keys.CLAIMS] = request.app[keys.LINKS].verify(request.path, request.query)
            else:
                request[keys.CLAIMS] = request.app[keys.TOKENS].decode(text, kind)
        except errors.Unauthorized as exc:
            request[keys.CLAIMS] = exc
    claims = request[keys.CLAIMS]
    if isinstance(claims, errors.Problem):
        raise claims
    return claims


BODILESS = ("GET", "HEAD")  # a body there has no meaning (RFC 9110 9.3.1): it is not read


class NoBody(msgspec.Struct, forbid_unknown_fields=True):
    """A route that takes no body still refuses one it could not have read (415, 400, 413,
    a 422 when it is not an empty object) rather than ignore it and go on changing things."""


class NoQuery(msgspec.Struct, forbid_unknown_fields=True):
    """A route without query parameters refuses any (422 naming it) rather than ignore it."""


async def _read_body(request: web.Request, route: Route) -> bytes:
    settings = request.app[keys.SETTINGS].server
    limit = settings.max_bulk_body_bytes if route.bulk else settings.max_body_bytes
    return await codec.read_body(request, limit, settings.body_timeout)


def _convert_body(request: web.Request, route: Route, raw: bytes) -> Any:
    media = codec.body_media_type(request)
    if route.form is not None and media == codec.FORM:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise errors.Malformed("the form body is not UTF-8") from None
        fields = dict(pairs)
        if len(fields) < len(pairs):  # OAuth2 parameters must not be given twice (RFC 6749 3.1)
            key = next(k for k in fields if sum(1 for p, _ in pairs if p == k) > 1)
            raise messages.repeated(["body", key], sum(1 for p, _ in pairs if p == key))
        return codec.convert(fields, route.form)
    if not raw or (media == codec.JSON and not raw.strip()):
        # No body is an empty object: fine where every field is optional, else a 422 naming them.
        return codec.convert({}, route.body)
    return codec.convert(codec.decode(raw, media), route.body)


def bind(route: Route) -> Handler:
    """The aiohttp handler for `route`: authenticate, parse query and body, call.

    The body is read before the database is asked about the token, so a slow upload holds
    no pooled connection; then the token check, the parsing and the handler share one
    connection (Database.lease) unless the route says otherwise. A token that does not
    verify is refused (401) before anything is read."""

    refusing = dataclasses.replace(route, body=NoBody)  # what checks a body sent where none is taken

    async def parse(request: web.Request, raw: bytes | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if route.auth:
            kwargs["user"] = await request.app[keys.AUTH].authenticate(access_claims(request))
        if route.query is not None:
            kwargs["query"] = codec.convert_query(request.query, route.query)
        elif request.query:
            codec.convert_query(request.query, NoQuery)
        if route.body is not None:
            kwargs["body"] = _convert_body(request, route, raw or b"")
        elif raw is not None:
            _convert_body(request, refusing, raw)
        return kwargs

    async def handle(request: web.Request) -> web.StreamResponse:
        if route.auth:
            access_claims(request)
        raw = None
        if route.body is not None or (route.method not in BODILESS and request.body_exists):
            raw = await _read_body(request, route)
        if not (route.auth and route.one_connection):
            return await route.handler(request, **await parse(request, raw))
        async with request.app[keys.DB].lease():
            return await route.handler(request, **await parse(request, raw))

    handle.__name__ = route.name
    handle.route = route  # type: ignore[attr-defined]
    return handle


def path_int(request: web.Request, name: str) -> int:
    """A numeric path parameter (`{name:\\d+}`); one too long to be an id or a version is
    none (0, which names nothing), not Python's int-from-string limit (a 500)."""
    text = request.match_info[name]
    return int(text) if len(text) <= 20 else 0
