"""The security matrix (issue 6): every authenticated route refuses every kind of bad token;
ids do not tell a hidden thing from a missing one; every request field and parameter has a
bound; every answer carries the security headers. (Roles on an event's routes:
test_role_matrix.py; secrets in the log: tests/e2e/test_log_secrets.py.)"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from calsvc.tokens import ACCESS, REFRESH, TokenCodec
from calsvc.web.routes import ROUTES
from tests.expected import ROLE_MATRIX, SECURITY_HEADERS
from tests.factories import PASSWORD, STANDUP, connect, login, people, user_with_token

PARAM = re.compile(r"\{(\w+)(?::[^}]+)?\}")
OCCURRENCE = "2026-12-08T09:00:00%2B01:00"


async def world(client) -> dict[str, Any]:
    """An owner with a weekly series shared with a friend, who changed it (a notification)."""
    (owner, oh), (friend, fh) = await people(client, 2)
    resp = await client.post("/api/events", headers=oh, json={**STANDUP, "recurrence": {"rrule": "FREQ=WEEKLY;COUNT=5"}})
    event = await resp.json()
    assert (await client.post(f"/api/events/{event['id']}/share", headers=oh,
                              json={"user_id": friend["id"], "role": "editor"})).status == 200
    assert (await client.patch(f"/api/events/{event['id']}", headers=fh, json={"title": "v2"})).status == 200
    resp = await client.get("/api/notifications", headers=oh)
    [note] = (await resp.json())["items"]
    return {"owner": owner, "oh": oh, "friend": friend, "event": event, "note": note}


def url_of(route, w: dict[str, Any]) -> str:
    """The route's path with ids that exist (a wrongly accepted token would reach them)."""
    values = {"id": w["note"]["id"] if route.path.startswith("/api/notifications") else w["event"]["id"],
              "user_id": w["friend"]["id"], "version": 1, "v1": 1, "v2": 2, "occurrence_start": OCCURRENCE}
    return PARAM.sub(lambda m: str(values[m.group(1)]), route.path)


def bad_tokens(settings, owner_id: int, family) -> dict[str, str]:
    codec = TokenCodec(settings.auth)
    long_ago = dt.datetime.now(dt.UTC) - codec.access_ttl - dt.timedelta(minutes=1)
    return {
        "garbage": "not.a.token",
        "expired": codec.issue(ACCESS, owner_id, family, now=long_ago).token,
        "refresh-as-access": codec.issue(REFRESH, owner_id, family).token,
        "other-secret": TokenCodec(type(settings.auth)(secret="another-secret-" + "y" * 40)).issue(
            ACCESS, owner_id, family).token,
    }


async def test_every_authenticated_route_refuses_every_bad_token(client, settings, database_url):
    w = await world(client)
    claims = TokenCodec(settings.auth).decode(w["oh"]["Authorization"].split()[1], ACCESS)
    tokens: dict[str, str | None] = {"none": None, **bad_tokens(settings, w["owner"]["id"], claims.family_id)}
    # revoked: a login of the owner, logged out
    session = await login(client, w["owner"]["username"])
    assert (await client.post("/api/auth/logout", headers={"Authorization": f"Bearer {session['access_token']}"},
                              json={})).status == 204
    tokens["revoked"] = session["access_token"]
    # a deleted user's (removed by an operator: there is no API for it)
    gone, _, gh = await user_with_token(client)
    async with connect(database_url) as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", gone["id"])
    tokens["deleted-user"] = gh["Authorization"].split()[1]
    # a closed account's (DELETE /api/auth/me)
    _, _, ch = await user_with_token(client)
    assert (await client.delete("/api/auth/me", headers=ch, json={"password": PASSWORD})).status == 204
    tokens["closed-account"] = ch["Authorization"].split()[1]
    routes = [r for r in ROUTES if r.auth]
    assert len(routes) >= 30
    assert {("POST", "/api/auth/password"), ("DELETE", "/api/auth/me")} <= {(r.method, r.path) for r in routes}
    failures = []
    for kind, token in tokens.items():
        for route in routes:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            kwargs = {"json": {}} if route.method not in ("GET", "HEAD", "DELETE") else {}
            resp = await client.request(route.method, url_of(route, w), headers=headers, **kwargs)
            body = await resp.text()
            if resp.status != 401 or "Bearer" not in resp.headers.get("WWW-Authenticate", "") \
                    or '"/problems/unauthorized"' not in body:
                failures.append((kind, route.method, route.path, resp.status, body[:200]))
            if route.query_token and token is not None:  # the stream's ?access_token= too
                resp = await client.get(url_of(route, w), params={"access_token": token})
                if resp.status != 401:
                    failures.append((kind, "GET ?access_token=", route.path, resp.status))
    assert not failures, "\n".join(map(str, failures))
    # and nothing was touched
    resp = await client.get(f"/api/events/{w['event']['id']}", headers=w["oh"])
    assert resp.status == 200 and (await resp.json())["version"] == 2


async def test_a_hidden_event_answers_exactly_as_a_missing_one(client):
    """Id enumeration finds nothing: for a stranger, an event that exists (and one deleted)
    gets the very answer a never-used id gets, on every route of an event."""
    w = await world(client)
    _, _, sh = await user_with_token(client)
    resp = await client.post("/api/events", headers=w["oh"], json={**STANDUP, "start_time": "2027-01-05T09:00:00Z",
                                                                  "end_time": "2027-01-05T10:00:00Z"})
    deleted = (await resp.json())["id"]
    assert (await client.delete(f"/api/events/{deleted}", headers=w["oh"])).status == 204
    failures = []
    for method, path, body, _ in ROLE_MATRIX:
        path = re.sub(r"OTHER|VIEWER|EDITOR|OWNER", str(w["friend"]["id"]), path)
        if isinstance(body, dict):
            body = {k: w["friend"]["id"] if v in ("OTHER", "VIEWER", "EDITOR", "OWNER") else v for k, v in body.items()}
        answers = []
        for event_id in (w["event"]["id"], deleted, 10**9):
            resp = await client.request(method, f"/api/events/{event_id}{path}", headers=sh,
                                        **({"json": body} if body is not None else {}))
            answers.append((resp.status, await resp.text()))
        if len(set(answers)) != 1 or answers[0][0] != 404:
            failures.append((method, path, answers))
    # another user's notification, as a missing one
    mine = await client.post(f"/api/notifications/{w['note']['id']}/read", headers=sh)
    missing = await client.post("/api/notifications/999999999/read", headers=sh)
    assert (mine.status, await mine.text()) == (missing.status, await missing.text())
    assert not failures, "\n".join(map(str, failures))


def test_the_role_matrix_covers_every_route_of_an_event():
    covered = {(m, re.sub(r"/\d.*|/OTHER|/VIEWER|/EDITOR|/OWNER|\?.*", "", p)) for m, p, _, _ in ROLE_MATRIX}
    for route in ROUTES:
        if route.path.startswith("/api/events/{id"):
            rest = PARAM.sub("", route.path.removeprefix("/api/events/{id:\\d+}"))
            rest = re.sub(r"/+$", "", re.sub(r"//+", "/", rest))
            assert (route.method, rest) in covered, (route.method, route.path)


async def test_every_request_field_and_parameter_is_bounded(client):
    """Strings have a maximum length (or are an enum, a date-time or a bounded pattern),
    arrays a maximum count, integers a range: nothing a client sends is unbounded."""
    doc = await (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    failures: list[str] = []

    def check(schema: dict, where: str, seen: set[str]) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                check(schemas[name], f"{where}->{name}", seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for i, part in enumerate(schema.get(key, ())):
                check(part, f"{where}[{key}{i}]", seen)
        kind = schema.get("type")
        if kind == "string" and not ({"maxLength", "enum", "const"} & set(schema)
                                     or schema.get("format") in ("date-time", "date")):
            failures.append(f"{where}: string without maxLength")
        if kind == "array":
            if "maxItems" not in schema:
                failures.append(f"{where}: array without maxItems")
            check(schema.get("items", {}), f"{where}[]", seen)
        if kind == "integer" and not ({"maximum", "exclusiveMaximum"} & set(schema) or "enum" in schema):
            failures.append(f"{where}: integer without maximum")
        if kind == "object":
            for name, prop in schema.get("properties", {}).items():
                check(prop, f"{where}.{name}", seen)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                check(extra, f"{where}.*", seen)
        if "enum" in schema or "const" in schema or kind in ("boolean", "null", "number", None):
            return

    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            for param in op.get("parameters", ()):
                check(param["schema"], f"{where} {param['in']}:{param['name']}", set())
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                check(content["schema"], f"{where} body({media})", set())
    assert not failures, "\n".join(sorted(set(failures)))


async def test_security_headers_on_every_route(client):
    """Every route, with a token and without, whatever it answers (200, 401, 404, 405, 422)."""
    w = await world(client)
    missing = []
    for route in ROUTES:
        if route.query_token:
            continue  # a stream never ends; its headers: test_notification_stream.py
        for headers in (w["oh"], {}):
            resp = await client.request(route.method, url_of(route, w), headers=headers)
            for name, value in SECURITY_HEADERS.items():
                if resp.headers.get(name) != value:
                    missing.append((route.method, route.path, resp.status, name))
            if route.path.startswith("/api/") and resp.headers.get("Cache-Control") != "no-store":
                missing.append((route.method, route.path, resp.status, "Cache-Control"))
    resp = await client.head("/api/notifications/stream", headers=w["oh"])
    assert all(resp.headers.get(k) == v for k, v in SECURITY_HEADERS.items())
    assert not missing, "\n".join(map(str, missing))
