"""OpenAPI 3.1, generated from the route table and its msgspec types."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from calsvc import __version__
from calsvc.web import codec, schemas
from calsvc.web.endpoints import BODILESS, Route

REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::([^}]*))?}")  # name, pattern

_ERROR_TEXT = {
    400: "Malformed body",
    401: "Missing, invalid, expired or revoked token",
    403: "Role too low",
    404: "Not found, or not visible to the caller",
    406: "No acceptable response format",
    408: "The body stalled (no byte for server.body_timeout seconds)",
    409: "Conflict",
    412: "The resource changed (If-Match)",
    413: "Body too large",
    415: "Unsupported body format",
    422: "Validation failed",
    429: "Rate limited",
    500: "Internal error (quotes the request id)",
    503: "Database unavailable",
}
_RATE_HEADERS = {
    name: {"schema": {"type": "integer"}, "description": text}
    for name, text in (
        ("RateLimit-Limit", "requests allowed per window"),
        ("RateLimit-Remaining", "requests left in this window"),
        ("RateLimit-Reset", "seconds until the window resets"),
    )
}


def _struct_types(routes: Iterable[Route]) -> list[type]:
    found: list[type] = [schemas.Problem]
    for route in routes:
        answers = [k for kind in route.responses.values() for k in (kind if isinstance(kind, tuple) else (kind,))]
        for kind in (route.body, route.form, *answers, *_problem_kinds(route)):
            if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and kind not in found:
                found.append(kind)
    return found + [k for k in schemas.REFERENCED if k not in found]


def _one_of(kinds: Iterable[type]) -> dict[str, Any]:
    """A reference to the one Struct, or anyOf them (an empty page fits several; a plain
    Problem fits every kind)."""
    refs = [{"$ref": REF.format(name=k.__name__)} for k in kinds]
    return refs[0] if len(refs) == 1 else {"anyOf": refs}


def _content(kind: Any, media_types: Iterable[str]) -> dict[str, Any]:
    """`kind` is a Struct, or a tuple of Structs (the answer is one of them)."""
    schema = _one_of(kind if isinstance(kind, tuple) else (kind,))
    # a page (the diff's text/html) is a string whatever the JSON resource is
    return {media: {"schema": {"type": "string"} if media.startswith("text/") else schema} for media in media_types}


def _query_parameters(kind: type) -> list[dict[str, Any]]:
    (schema,), components = msgspec.json.schema_components([kind], ref_template=REF)
    body = components[kind.__name__]
    required = set(body.get("required", ()))
    params = []
    for name, prop in body.get("properties", {}).items():
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        # an optional one's is that of its type (anyOf [type, null]), shown beside the parameter too
        described = [p for p in (prop, *prop.get("anyOf", ())) if "description" in p]
        if described:
            param["description"] = described[0]["description"]
        params.append(param)
    return params


_HEADER_TEXT = {
    "If-Match": 'The ETag (`"<version>"`) the change is based on; 412 with `current` when the event has moved on.',
    "If-None-Match": "An ETag the client holds; 304 when it is still current.",
    "Last-Event-ID": "The id of the last notification received: the stream replays what came after it.",
    "Idempotency-Key": "1-255 printable ASCII characters: a retry with the same key and request (per user, "
    "24 h) answers the first answer (`Idempotent-Replayed: true`) instead of writing again; "
    "the same key with another request is a 422.",
}


_STRING = {"type": "string", "maxLength": 1024}
_HEADER_SCHEMA = {"Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"}}


def _problem_kinds(route: Route) -> list[Any]:
    """The kinds of problem with members of their own that the route answers (routes.py lists
    them beside its plain statuses)."""
    return [kind for kind in route.errors if isinstance(kind, type)]


def _error_statuses(route: Route) -> list[int]:
    """Every status the route answers with a plain problem."""
    statuses = {s for s in route.errors if isinstance(s, int)} | {422, 500}  # 422: an undefined query parameter
    if route.path.startswith("/api/"):
        statuses |= {429, 503}
        if route.offers:
            statuses.add(406)
    if route.auth:
        statuses.add(401)
    if route.body is not None or route.method not in BODILESS:  # a body where none is taken is checked too
        statuses |= {400, 408, 413, 415, 422}
    if _PATH_PARAM.search(route.path):
        statuses |= {404, 422}
    return sorted(statuses)


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.name, "summary": route.summary, "tags": [route.tag]}
    if route.description:
        op["description"] = route.description
    op["security"] = [{"bearerAuth": []}] if route.auth else []
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
            if pattern == r"\d+"
            else {"type": "string", "format": "date-time"}
            if name.endswith("_start")
            else {"type": "string"},
        }
        for name, pattern in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        params += _query_parameters(route.query)
    params += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "schema": _HEADER_SCHEMA.get(name, _STRING),
            "description": _HEADER_TEXT[name],
        }
        for name in route.headers
    ]
    if params:
        op["parameters"] = params
    if route.body is not None:
        content = _content(route.body, (codec.JSON, codec.MSGPACK))
        if route.form is not None:
            content.update(_content(route.form, (codec.FORM,)))
        required = (
            route.form is not None
            or getattr(route.body, "body_required", False)
            or any(f.required for f in msgspec.structs.fields(route.body))
        )
        op["requestBody"] = {"required": required, "content": content}
    responses: dict[str, Any] = {}
    for status, kind in route.responses.items():
        answer: dict[str, Any] = {"description": _describe(status)}
        if isinstance(kind, str):
            answer["content"] = {kind: {"schema": {"type": "string"}}}
        elif kind is not None:
            answer["content"] = _content(kind, route.offers or (codec.JSON,))
        if route.path.startswith("/api/"):
            answer["headers"] = dict(_RATE_HEADERS)
        responses[str(status)] = answer
    plain = _error_statuses(route)
    kinds = _problem_kinds(route)
    for status in sorted({*plain, *(s for kind in kinds for s in kind.statuses)}):
        if str(status) in responses:
            continue
        # the kinds that answer this status, and any other problem where the status is also plain
        answered = [k for k in kinds if status in k.statuses] + ([schemas.Problem] if status in plain else [])
        answer = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {codec.PROBLEM: {"schema": _one_of(answered)}},
        }
        if status == 429:
            answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}}, **_RATE_HEADERS}
        if status == 401:
            answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses[str(status)] = answer
    op["responses"] = responses
    return op


def _describe(status: int) -> str:
    return {
        200: "OK",
        201: "Created",
        204: "No content",
        207: "Multi-status",
        304: "Not modified",
        503: "Not ready",
    }.get(status, "OK")


@functools.cache
def document() -> dict[str, Any]:
    """The document of the route table (built once per process, as building it is not cheap;
    never change it)."""
    from calsvc.web.routes import ROUTES

    return build(ROUTES)


def _name_enums(node: Any, named: dict[str, Any]) -> Any:
    """`node` with its enums named: an enum whose type has a title (`Meta(title=...)`) becomes
    the component `named[title]` and a `$ref` to it, so that a client generator makes one class
    of it, not one per field (and one more per optional field); an enum of one value becomes a
    `const`. An enum of several values without a title stays inline (tests/unit/test_openapi.py
    refuses it); two different enums with one title are a ValueError."""
    if isinstance(node, list):
        return [_name_enums(item, named) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _name_enums(value, named) for key, value in node.items()}
    if "enum" not in node or ("title" not in node and len(node["enum"]) > 1):
        return node
    if "title" not in node:
        return {"const": node.pop("enum")[0], **node}
    site = {"default": node.pop("default")} if "default" in node else {}
    name = node["title"]
    if named.setdefault(name, node) != node:
        raise ValueError(f"two enums are titled {name}")
    return {"$ref": REF.format(name=name), **site}


def build(routes: list[Route]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_struct_types(routes), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
    enums: dict[str, Any] = {}
    # within each component (one that is an enum itself is named already)
    components = {name: {k: _name_enums(v, enums) for k, v in schema.items()} for name, schema in components.items()}
    paths = _name_enums(paths, enums)
    components.update(sorted(enums.items()))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "calsvc",
            "version": __version__,
            "description": "Collaborative event scheduling. Errors are application/problem+json "
            "(RFC 9457); every JSON resource is also served as application/msgpack.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "tags": [{"name": name} for name in dict.fromkeys(r.tag for r in routes)],
    }
