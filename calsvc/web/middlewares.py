"""The edge: request ids, problem+json for every error, metrics, negotiation, rate limits,
and the headers every response carries."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from calsvc import errors
from calsvc.web import codec, keys
from calsvc.web.endpoints import access_claims

log = logging.getLogger("calsvc.web")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECRET_QUERY = re.compile(r"((?:access_token|refresh_token|token|password|signature)=)[^&]*", re.I)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
API_HEADERS = {"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "Cache-Control": "no-store"}


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


def _problem_from_http(exc: web.HTTPException) -> errors.Problem:
    cls = errors.BY_STATUS.get(exc.status)
    if exc.status == 404:
        return errors.NotFound("no such route")
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return errors.MethodNotAllowed(f"allowed methods: {allowed}", headers={"Allow": allowed})
    if exc.status == 413:
        return errors.PayloadTooLarge(exc.text or None)
    if cls is None:
        problem = errors.Problem(exc.reason)
        problem.status = exc.status
        return problem
    return cls(exc.reason)


@web.middleware
async def edge_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost: every error becomes problem+json; every answer is counted and timed."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request[keys.REQUEST_ID] = request_id
    started = time.perf_counter()
    try:
        response = await handler(request)
    except errors.Problem as problem:
        response = codec.problem_response(problem, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = codec.problem_response(_problem_from_http(exc), request_id)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error [request_id=%s] %s %s", request_id, request.method, request.path)
        response = codec.problem_response(
            errors.Internal(f"an unexpected error occurred; quote request id {request_id}"), request_id
        )
    request.app[keys.METRICS].observe(
        request.method, _route_label(request), response.status, time.perf_counter() - started
    )
    return response


@web.middleware
async def api_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Under /api: choose the response format (406 up front), then apply the rate limit."""
    if not request.path.startswith("/api/") or request.method == "OPTIONS":
        return await handler(request)
    info = request.match_info
    if info.http_exception is not None:
        return await handler(request)  # unknown route or method: 404/405 before anything else
    route = getattr(info.handler, "route", None)
    offers = route.offers if route is not None else codec.OFFERS
    if offers:
        media = codec.negotiate(request.headers.get("Accept"), offers)
        if media is None:
            raise errors.NotAcceptable(f"this resource is available as {', '.join(offers)}")
        request[keys.MEDIA] = media
    app = request.app
    if request.path.startswith("/api/auth/"):
        verdict = await app[keys.AUTH_LIMITER].count(f"ip:{request.remote}")
    else:
        try:
            key = f"user:{access_claims(request).user_id}"
        except errors.Unauthorized:
            key = f"ip:{request.remote}"
        verdict = await app[keys.USER_LIMITER].count(key)
    if verdict is not None:
        request[keys.RATELIMIT] = verdict
        if not verdict.allowed:
            raise errors.RateLimited(f"rate limit of {verdict.limit} a minute reached; retry in {verdict.reset} s")
    return await handler(request)


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    request_id = request.get(keys.REQUEST_ID)
    if request_id:
        headers["X-Request-ID"] = request_id
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if request.path.startswith("/api/"):
        for name, value in API_HEADERS.items():
            headers.setdefault(name, value)
    if keys.MEDIA in request and response.status < 400:
        _add_vary(headers, "Accept")
    if request.app[keys.SETTINGS].cors.allow_origins and request.path.startswith("/api/"):
        _add_vary(headers, "Origin")  # CORS answers differ by origin
    verdict = request.get(keys.RATELIMIT)
    if verdict is not None:
        for name, value in verdict.headers().items():
            headers.setdefault(name, value)


def _add_vary(headers, name: str) -> None:
    current = headers.get("Vary")
    if not current:
        headers["Vary"] = name
    elif name.lower() not in {v.strip().lower() for v in current.split(",")}:
        headers["Vary"] = f"{current}, {name}"


def redact(path_qs: str) -> str:
    """The path and query with token and password values blanked."""
    return _SECRET_QUERY.sub(r"\1[redacted]", path_qs)


class AccessLogger(AbstractAccessLogger):
    """One line per request: id, client, method, path (secrets redacted), status, size, time."""

    def log(self, request, response, time):  # noqa: A002 (aiohttp's signature)
        self.logger.info(
            "%s %s %s %s %s %s %.1fms",
            response.headers.get("X-Request-ID", "-"),
            request.remote,
            request.method,
            redact(request.path_qs),
            response.status,
            response.body_length,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
