"""Wire formats: JSON and msgpack in and out, content negotiation, typed validation.

Bodies are decoded with orjson or msgpack and validated with msgspec against the
same Struct types the OpenAPI document is generated from. Responses are Structs,
encoded by msgspec (JSON) or msgpack over msgspec's builtins (times as RFC 3339 strings).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
import msgspec
import msgspec.inspect
import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import PayloadEncodingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiMapping

from calsvc import errors
from calsvc.web import messages
from calsvc.web.keys import MEDIA as MEDIA_KEY

JSON = "application/json"
MSGPACK = "application/msgpack"
MSGPACK_ALIAS = "application/x-msgpack"
FORM = "application/x-www-form-urlencoded"
PROBLEM = "application/problem+json"
OFFERS = (JSON, MSGPACK)
HTML = "text/html"


_json_encoder = msgspec.json.Encoder()


# -- negotiation ------------------------------------------------------------------------


def _parse_accept(header: str) -> list[tuple[str, str, float]]:
    ranges = []
    for part in header.split(","):
        fields = part.strip().split(";")
        media = fields[0].strip().lower()
        if not media:
            continue
        if media == MSGPACK_ALIAS:
            media = MSGPACK
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        kind, _, sub = media.partition("/")
        ranges.append((kind, sub or "*", q))
    return ranges


def negotiate(accept: str | None, offers: Iterable[str] = OFFERS) -> str | None:
    """The offer the Accept header prefers (server order breaks ties); None if it allows none."""
    offers = tuple(offers)
    if not accept or not accept.strip():
        return offers[0]
    ranges = _parse_accept(accept)
    best, best_q = None, 0.0
    for offer in offers:
        kind, _, sub = offer.partition("/")
        q, specificity = 0.0, -1
        for r_kind, r_sub, r_q in ranges:
            if r_kind == kind and r_sub == sub:
                spec = 2
            elif r_kind == kind and r_sub == "*":
                spec = 1
            elif r_kind == "*":
                spec = 0
            else:
                continue
            if spec > specificity:
                q, specificity = r_q, spec
        if q > best_q:
            best, best_q = offer, q
    return best


# -- request bodies ---------------------------------------------------------------------


async def read_body(request: web.Request, limit: int, stall: float | None = None) -> bytes:
    """The raw body, at most `limit` bytes; errors.PayloadTooLarge past it, and
    errors.RequestTimeout when no byte of it arrives for `stall` seconds while it is awaited
    (a stall, not a total: a large body over a slow link is fine while it moves)."""
    length = request.content_length
    if length is not None and length > limit:
        raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes")
    content = request.content
    chunks, size = [], 0
    while True:
        try:
            chunk = content.read_nowait(65536)
            if not chunk and not content.at_eof():
                async with asyncio.timeout(stall):
                    chunk = await content.read(65536)
        except TimeoutError:
            # The rest is not coming: marked failed, so aiohttp does not linger over it after
            # the answer (it would hold the connection open for its lingering time).
            content.set_exception(TimeoutError())
            raise errors.RequestTimeout(f"no byte of the body arrived for {stall:g} s") from None
        except (PayloadEncodingError, RequestPayloadError):
            raise errors.Malformed("the body's Content-Encoding or framing is broken") from None
        except ConnectionError:
            # the client went away mid-body (nobody reads this answer; the log shows a 400, not
            # an unhandled error)
            raise errors.Malformed("the connection closed before the whole body arrived") from None
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def body_media_type(request: web.Request) -> str:
    if hdrs.CONTENT_TYPE not in request.headers:
        return JSON
    media = request.content_type.lower()
    return MSGPACK if media == MSGPACK_ALIAS else media


def decode(raw: bytes, media: str) -> Any:
    """Bytes of `media` to Python values; errors.Malformed when they do not parse."""
    if media == JSON:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.Malformed(f"the body is not valid JSON: {exc}") from None
    if media == MSGPACK:
        try:
            return msgpack.unpackb(raw, raw=False, timestamp=3, strict_map_key=False)
        # TypeError: an unhashable map key; OverflowError: an out-of-range timestamp.
        except (
            ValueError,
            TypeError,
            OverflowError,
            msgpack.ExtraData,
            msgpack.FormatError,
            msgpack.StackError,
        ) as exc:
            raise errors.Malformed(f"the body is not valid msgpack: {type(exc).__name__}") from None
    raise errors.UnsupportedMediaType(
        f"unsupported Content-Type {media!r}; send application/json or application/msgpack"
    )


# -- validation -------------------------------------------------------------------------

MAX_DEPTH = 32  # objects and arrays within each other in a body


def _check_values(value: Any, loc: list[str | int]) -> None:
    """What JSON can hold, whichever format the body came in: PostgreSQL text cannot hold
    U+0000, and a msgpack map may have keys that are not strings or values of extension
    types, which no field takes (and that a request's fingerprint for Idempotency-Key could
    not write), nor nesting deeper than MAX_DEPTH (no field nests a tenth as deep; the
    fingerprint's encoder stops at 254). errors.Validation naming where. Walks with its own
    stack: decoders accept nesting deeper than Python's recursion limit."""
    stack: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if len(where) > MAX_DEPTH + len(loc) and isinstance(item, (dict, list)):
            raise messages.too_deep(where[: len(loc) + MAX_DEPTH], MAX_DEPTH)
        if isinstance(item, str):
            if "\x00" in item:
                raise messages.nul(where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise messages.key_not_string(where)
                stack.append((key, where))
                stack.append((child, [*where, key]))
        elif isinstance(item, list):
            stack.extend((child, [*where, index]) for index, child in enumerate(item))
        elif isinstance(item, msgpack.ExtType):
            raise messages.extension_value(where)


def convert(value: Any, kind: Any, prefix: tuple[str | int, ...] = ("body",), strict: bool = True) -> Any:
    """Validate decoded values against `kind`; errors.Validation with the location and a
    message in plain words otherwise (messages.py)."""
    _check_values(value, list(prefix))
    try:
        return msgspec.convert(value, kind, strict=strict)
    except msgspec.ValidationError as exc:
        raise messages.validation_problem(exc, kind, value, prefix) from None


def convert_query(query: Mapping[str, str], kind: Any) -> Any:
    """Query parameters (strings) to `kind`, numbers and booleans parsed from their text. A
    parameter the route does not define is refused, as is one given twice (which of the two
    would count is anybody's guess)."""
    values = {}
    for key in dict.fromkeys(query.keys()):
        given = query.getall(key) if isinstance(query, MultiMapping) else [query[key]]
        if len(given) > 1:
            raise messages.repeated(["query", key], len(given))
        values[key] = _restore_plus(given[0])
    for key in _time_fields(kind) & values.keys():
        # msgspec, reading text loosely, takes a number for a Unix time: ?start=2026 is 1970
        if _NUMBER.match(values[key]):
            raise errors.Validation.at(
                ("query", key),
                f"{key} must be an RFC 3339 time with an offset, such as 2026-12-01T09:00:00+01:00, not a number",
            )
    return convert(values, kind, ("query",), strict=False)


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


@functools.cache
def _time_fields(kind: Any) -> frozenset[str]:
    """The fields of a query Struct that take a time (alone or in a union)."""

    def is_time(info: Any) -> bool:
        if isinstance(info, msgspec.inspect.UnionType):
            return any(is_time(t) for t in info.types)
        return isinstance(info, msgspec.inspect.DateTimeType)

    info = msgspec.inspect.type_info(kind)
    return frozenset(f.encode_name for f in getattr(info, "fields", ()) if is_time(f.type))


_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}T[\d:.]+) (\d{2}(?::?\d{2})?)$")


def _restore_plus(value: str) -> str:
    """An unencoded `+01:00` offset arrives as a space (form decoding of `+`): put it back."""
    return _SPACED_OFFSET.sub(r"\1+\2", value)


# -- responses --------------------------------------------------------------------------


def encode(value: Any, media: str) -> bytes:
    if media == MSGPACK:
        return msgpack.packb(msgspec.to_builtins(value), use_bin_type=True)
    return _json_encoder.encode(value)


def respond(
    request: web.Request, value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    media = request.get(MEDIA_KEY) or JSON
    return web.Response(body=encode(value, media), status=status, content_type=media, headers=headers)


def problem_response(problem: errors.Problem, request_id: str | None) -> web.Response:
    body = problem.body()
    if request_id and problem.status >= 500:
        body["request_id"] = request_id
    response = web.Response(
        body=orjson.dumps(body), status=problem.status, content_type=PROBLEM, headers=problem.headers
    )
    if problem.closes_connection:
        response.force_close()
    return response


# -- cursors ----------------------------------------------------------------------------


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The values of a cursor made by encode_cursor; errors.Validation if it is not one."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if (
            isinstance(values, list)
            and len(values) == len(shape)
            and all(
                isinstance(v, t)
                and not isinstance(v, bool)
                and (not isinstance(v, int) or -(2**63) <= v < 2**63)
                and (not isinstance(v, str) or "\x00" not in v)
                for v, t in zip(values, shape)
            )
        ):
            return values
    except (ValueError, orjson.JSONDecodeError):
        pass
    raise invalid_cursor()


def invalid_cursor() -> errors.Validation:
    return errors.Validation.at(("query", "cursor"), "cursor must be a next_cursor of this collection, as it came")
