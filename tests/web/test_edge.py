"""The edge of the service: problem+json for every error, body
limits and formats, negotiation, request ids and logs, security headers, CORS, rate
limits, health and readiness (with the database really refusing connections), metrics
and the API documents."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
import logging
import re
import time
from typing import Any

import msgpack
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from calsvc.app import create_app
from calsvc.web.middlewares import AccessLogger, redact
from calsvc.web.routes import ROUTES
from tests.conftest import admin_execute, assert_problem
from tests.expected import SECURITY_HEADERS
from tests.factories import PASSWORD, user_with_token

MIB = 1024 * 1024
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")



def new_user_body(username: str) -> dict[str, str]:
    return {"username": username, "email": f"{username}@example.com", "password": PASSWORD}


# -- routing: 404 and 405 -------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/nowhere"),
    ("GET", "/api/nowhere"),
    ("POST", "/api/events-that-do-not-exist"),
    ("GET", "/api/auth/me/extra"),
])
async def test_unknown_route_is_404_problem_before_auth(client, method, path):
    resp = await client.request(method, path)  # no token: 404 still comes before any 401
    body = await assert_problem(resp, 404, "not-found")
    assert "request_id" not in body
    assert "WWW-Authenticate" not in resp.headers


async def test_unknown_route_is_404_with_a_token_too(client):
    _, _, headers = await user_with_token(client)
    await assert_problem(await client.get("/api/nowhere", headers=headers), 404, "not-found")


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/api/auth/me", {"GET", "HEAD", "DELETE"}),
    ("GET", "/api/auth/register", {"POST"}),
    ("POST", "/healthz", {"GET", "HEAD"}),
])
async def test_wrong_method_is_405_problem_with_allow(client, method, path, allowed):
    resp = await client.request(method, path)  # no token: 405 comes before auth
    await assert_problem(resp, 405, "method-not-allowed")
    assert "Allow" in resp.headers
    assert {m.strip() for m in resp.headers["Allow"].split(",") if m.strip()} == allowed


# -- bodies: size, type, syntax ---------------------------------------------------------

async def test_body_over_1_mib_with_content_length_is_413(client):
    raw = b'{"username": "' + b"a" * MIB + b'"}'
    resp = await client.post("/api/auth/register", data=io.BytesIO(raw),
                             headers={"Content-Type": "application/json"})
    assert resp.request_info.headers.get("Content-Length") == str(len(raw))
    await assert_problem(resp, 413, "payload-too-large")


async def test_chunked_body_over_1_mib_is_413(client):
    async def chunks():
        yield b'{"username": "'
        for _ in range(20):
            yield b"a" * (64 * 1024)  # 1.25 MiB in all
        yield b'"}'

    resp = await client.post("/api/auth/register", data=chunks(), headers={"Content-Type": "application/json"})
    assert "Content-Length" not in resp.request_info.headers
    assert resp.request_info.headers["Transfer-Encoding"] == "chunked"
    await assert_problem(resp, 413, "payload-too-large")


async def test_body_of_exactly_1_mib_is_not_413(client):
    # Padding whitespace keeps it valid JSON; the limit is inclusive of 1 MiB.
    doc = b'{"username": "x"}'
    raw = doc + b" " * (MIB - len(doc))
    resp = await client.post("/api/auth/register", data=io.BytesIO(raw), headers={"Content-Type": "application/json"})
    await assert_problem(resp, 422, "validation")


async def test_text_plain_body_is_415(client):
    resp = await client.post("/api/auth/register", data=b"username=alice",
                             headers={"Content-Type": "text/plain"})
    await assert_problem(resp, 415, "unsupported-media-type")


async def test_malformed_json_is_400(client):
    resp = await client.post("/api/auth/register", data=b'{"username": "alice",',
                             headers={"Content-Type": "application/json"})
    await assert_problem(resp, 400, "malformed")


@pytest.mark.parametrize("media", ["application/msgpack", "application/x-msgpack"])
@pytest.mark.parametrize("raw", [b"\xc1", b"\x83\xa8username"], ids=["reserved-byte", "truncated"])
async def test_malformed_msgpack_is_400(client, media, raw):
    resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": media})
    await assert_problem(resp, 400, "malformed")


# -- negotiation and msgpack ------------------------------------------------------------

@pytest.mark.parametrize("accept", ["text/html", "application/xml, text/*;q=0.5"])
async def test_unacceptable_accept_is_406_problem_json(client, accept):
    _, _, headers = await user_with_token(client)
    resp = await client.get("/api/auth/me", headers={**headers, "Accept": accept})
    await assert_problem(resp, 406, "not-acceptable")


@pytest.mark.parametrize("accept", ["application/msgpack", "text/html"])
async def test_errors_are_problem_json_whatever_the_accept(client, accept):
    resp = await client.get("/api/auth/me", headers={"Accept": accept, "Authorization": "Bearer nope"})
    if accept == "text/html":
        await assert_problem(resp, 406, "not-acceptable")
    else:
        await assert_problem(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    await assert_problem(await client.get("/api/nowhere", headers={"Accept": accept}), 404, "not-found")


@pytest.mark.parametrize("media", ["application/msgpack", "application/x-msgpack"])
async def test_msgpack_request_and_response(client, media):
    username = f"mp_{media.rsplit('/', 1)[1].replace('-', '_')}"
    resp = await client.post("/api/auth/register", data=msgpack.packb(new_user_body(username)),
                             headers={"Content-Type": media, "Accept": media})
    assert resp.status == 201, await resp.read()
    assert resp.content_type == "application/msgpack"
    user = msgpack.unpackb(await resp.read(), timestamp=0)
    assert user["username"] == username and user["email"] == f"{username}@example.com"
    assert "password" not in user and "password_hash" not in user
    assert isinstance(user["created_at"], str) and RFC3339_UTC.match(user["created_at"]), user
    dt.datetime.fromisoformat(user["created_at"])

    # The same resource as JSON has the same shape and values.
    resp = await client.post("/api/auth/login", data=msgpack.packb({"username": username, "password": PASSWORD}),
                             headers={"Content-Type": media, "Accept": media})
    assert resp.status == 200
    tokens = msgpack.unpackb(await resp.read())
    assert tokens["token_type"] == "bearer"
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    as_json = await (await client.get("/api/auth/me", headers={**auth, "Accept": "application/json"})).json()
    resp = await client.get("/api/auth/me", headers={**auth, "Accept": media})
    assert resp.status == 200 and resp.content_type == "application/msgpack"
    assert msgpack.unpackb(await resp.read()) == as_json == user


async def test_accept_preferring_msgpack_by_quality(client):
    _, _, headers = await user_with_token(client)
    resp = await client.get("/api/auth/me", headers={
        **headers, "Accept": "application/json;q=0.5, application/msgpack"})
    assert resp.status == 200 and resp.content_type == "application/msgpack"
    resp = await client.get("/api/auth/me", headers={**headers, "Accept": "*/*"})
    assert resp.status == 200 and resp.content_type == "application/json"


# -- request ids and logs ---------------------------------------------------------------

async def test_request_id_echoed_or_generated_on_every_response(client):
    for path in ("/healthz", "/api/nowhere", "/api/auth/me"):
        resp = await client.get(path, headers={"X-Request-ID": "trace-123.abc:9"})
        assert resp.headers["X-Request-ID"] == "trace-123.abc:9", path
        first = (await client.get(path)).headers["X-Request-ID"]
        second = (await client.get(path)).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second, (first, second)
    # A header that could forge log lines is replaced, not echoed.
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert resp.status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


async def test_access_log_has_request_id_and_redacts_secrets(aiohttp_client, settings, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    # The server as `calsvc serve` runs it: with calsvc's access logger.
    server = TestServer(create_app(settings))
    await server.start_server(access_log_class=AccessLogger)
    client = await aiohttp_client(server)
    resp = await client.get("/api/nowhere?access_token=sekrit-tok&x=1&password=hunter2",
                            headers={"X-Request-ID": "log-me-42"})
    assert resp.status == 404
    await resp.read()
    for _ in range(50):  # the access line is written right after the response
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        if any("log-me-42" in line for line in lines):
            break
        await asyncio.sleep(0.01)
    line = next(line for line in lines if "log-me-42" in line)
    assert "GET" in line and " 404 " in line
    assert "/api/nowhere?access_token=[redacted]&x=1&password=[redacted]" in line
    assert "sekrit-tok" not in caplog.text and "hunter2" not in caplog.text


@pytest.mark.parametrize("raw,expected", [
    ("/a?token=abc", "/a?token=[redacted]"),
    ("/a?refresh_token=r1&Password=p&q=ok", "/a?refresh_token=[redacted]&Password=[redacted]&q=ok"),
    ("/a?q=token", "/a?q=token"),
])
def test_redact(raw, expected):
    assert redact(raw) == expected


async def test_500_is_problem_with_request_id_and_no_leak(aiohttp_client, settings, caplog):
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("kaboom SELECT secret_column FROM hidden_table")

    app = create_app(settings)
    app.router.add_get("/api/boom", boom)
    client = await aiohttp_client(app)
    caplog.set_level(logging.ERROR, logger="calsvc.web")

    resp = await client.get("/api/boom", headers={"X-Request-ID": "boom-1"})
    body = await assert_problem(resp, 500, "internal")
    assert body["request_id"] == "boom-1" == resp.headers["X-Request-ID"]
    assert "boom-1" in body["detail"]
    text = await resp.text()
    for leak in ("kaboom", "secret_column", "Traceback", "RuntimeError", "File \""):
        assert leak not in text

    # Generated ids are quoted too.
    resp = await client.get("/api/boom")
    body = await assert_problem(resp, 500, "internal")
    assert body["request_id"] == resp.headers["X-Request-ID"]

    logged = [r for r in caplog.records if r.name == "calsvc.web" and "boom-1" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR and logged[0].exc_info is not None
    assert logged[0].exc_info[0] is RuntimeError
    assert "kaboom" in caplog.text  # the traceback is in the log, not in the answer


# -- headers ----------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,status", [
    ("GET", "/healthz", 200),
    ("GET", "/nowhere", 404),
    ("GET", "/api/nowhere", 404),
    ("GET", "/api/auth/me", 401),
    ("PUT", "/api/auth/me", 405),
    ("GET", "/openapi.json", 200),
    ("GET", "/metrics", 200),
])
async def test_security_headers_on_every_response(client, method, path, status):
    resp = await client.request(method, path)
    assert resp.status == status
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, (name, path)
    if path.startswith("/api/"):
        assert resp.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


# -- CORS -------------------------------------------------------------------------------

async def test_cors_listed_origin(make_client):
    client = await make_client(cors={"allow_origins": ["https://app.example"]})
    resp = await client.get("/healthz", headers={"Origin": "https://app.example"})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "X-Request-ID" in resp.headers.get("Access-Control-Expose-Headers", "")

    resp = await client.options("/api/auth/me", headers={
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization",
    })
    assert resp.status == 200, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "GET" in resp.headers["Access-Control-Allow-Methods"]
    assert "authorization" in resp.headers["Access-Control-Allow-Headers"].lower()

    # An error answer to a listed origin is still readable by it.
    resp = await client.get("/api/auth/me", headers={"Origin": "https://app.example"})
    await assert_problem(resp, 401, "unauthorized")
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"


async def test_cors_unlisted_origin_gets_no_cors_headers(make_client):
    client = await make_client(cors={"allow_origins": ["https://app.example"]})
    resp = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert resp.status == 200
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]

    resp = await client.options("/api/auth/me", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    await assert_problem(resp, 403, "forbidden")
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


async def test_no_cors_configured_gets_no_cors_headers(client):
    resp = await client.get("/healthz", headers={"Origin": "https://app.example"})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


# -- rate limits ------------------------------------------------------------------------

async def fresh_window(seconds_needed: float = 3.0) -> None:
    """The in-process limiter counts in fixed one-minute windows of the monotonic clock:
    wait out a window that would end during the test."""
    left = 60 - time.monotonic() % 60
    if left < seconds_needed:
        await asyncio.sleep(left + 0.05)


def rate_headers(resp) -> tuple[int, int, int]:
    return (int(resp.headers["RateLimit-Limit"]), int(resp.headers["RateLimit-Remaining"]),
            int(resp.headers["RateLimit-Reset"]))


async def test_auth_rate_limit_per_ip(make_client):
    client = await make_client(rate_limit={"auth_per_minute": 3, "user_per_minute": 0})
    await fresh_window()
    remaining = []
    for _i in range(3):
        resp = await client.post("/api/auth/login", json={"username": "nobody", "password": "wrong password"})
        await assert_problem(resp, 401, "unauthorized")
        limit, left, reset = rate_headers(resp)
        assert limit == 3 and 1 <= reset <= 60
        assert "Retry-After" not in resp.headers
        remaining.append(left)
    assert remaining == [2, 1, 0]

    # The limit is per IP over all of /api/auth/*, whatever the route.
    resp = await client.post("/api/auth/register", json=new_user_body("limited"))
    await assert_problem(resp, 429, "rate-limited")
    limit, left, reset = rate_headers(resp)
    assert (limit, left) == (3, 0) and 1 <= reset <= 60
    assert 1 <= int(resp.headers["Retry-After"]) <= 60

    # Routes outside /api/auth are not counted against it.
    assert (await client.get("/healthz")).status == 200


async def test_user_rate_limit_per_user(make_client):
    client = await make_client(rate_limit={"auth_per_minute": 0, "user_per_minute": 3})
    _, _, alice = await user_with_token(client, "alice_rl")
    _, _, bob = await user_with_token(client, "bob_rl")
    await fresh_window()
    remaining = []
    for _ in range(3):
        resp = await client.get("/api/users", params={"q": "a"}, headers=alice)
        assert resp.status == 200, await resp.text()
        remaining.append(rate_headers(resp)[1])
    assert remaining == [2, 1, 0]
    resp = await client.get("/api/users", params={"q": "a"}, headers=alice)
    await assert_problem(resp, 429, "rate-limited")
    assert int(resp.headers["Retry-After"]) >= 1
    assert rate_headers(resp)[:2] == (3, 0)

    # Bob has a budget of his own.
    resp = await client.get("/api/users", params={"q": "a"}, headers=bob)
    assert resp.status == 200
    assert rate_headers(resp)[:2] == (3, 2)

    # The auth routes are not limited (auth_per_minute=0) and carry no RateLimit headers.
    resp = await client.post("/api/auth/login", json={"username": "alice_rl", "password": PASSWORD})
    assert resp.status == 200
    assert "RateLimit-Limit" not in resp.headers


async def test_zero_disables_rate_limits(client):
    _, _, headers = await user_with_token(client)
    for _ in range(5):
        resp = await client.post("/api/auth/login", json={"username": "nobody", "password": "wrong password"})
        await assert_problem(resp, 401, "unauthorized")
        assert not [h for h in resp.headers if h.lower().startswith("ratelimit-")]
        resp = await client.get("/api/users", params={"q": "a"}, headers=headers)
        assert resp.status == 200
        assert not [h for h in resp.headers if h.lower().startswith("ratelimit-")]


# -- health and readiness ---------------------------------------------------------------

async def test_healthz(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_readyz_ready(client):
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready"
    assert body["database"] is True and body["pending_migrations"] == []


async def test_database_unreachable_is_fast_503_and_recovers(client, database_url):
    _, _, headers = await user_with_token(client)
    assert (await client.get("/api/auth/me", headers=headers)).status == 200
    name = database_url.rsplit("/", 1)[1]
    admin_execute(
        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    try:
        started = time.monotonic()
        resp = await client.get("/readyz")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] != "ready" and body["database"] is False
        resp = await client.get("/api/auth/me", headers=headers)
        body = await assert_problem(resp, 503, "unavailable")
        assert body["request_id"] == resp.headers["X-Request-ID"]
        assert int(resp.headers["Retry-After"]) >= 1
        resp = await client.post("/api/auth/login", json={"username": "x", "password": "y"})
        await assert_problem(resp, 503, "unavailable")
        elapsed = time.monotonic() - started
        assert elapsed < 3.0, f"503s took {elapsed:.2f} s"
    finally:
        admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    deadline = time.monotonic() + 5
    while True:
        ready = await client.get("/readyz")
        if ready.status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert ready.status == 200
    assert (await ready.json())["status"] == "ready"
    resp = await client.get("/api/auth/me", headers=headers)
    assert resp.status == 200, await resp.text()


# -- metrics ----------------------------------------------------------------------------

def metric_value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', head[len(name):]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


async def test_metrics(client):
    for _ in range(2):
        assert (await client.get("/healthz")).status == 200
    assert (await client.get("/api/nowhere")).status == 404
    assert (await client.get("/api/auth/me")).status == 401

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "# TYPE calsvc_http_requests_total counter" in text
    assert "# TYPE calsvc_http_request_duration_seconds histogram" in text
    assert metric_value(text, "calsvc_http_requests_total", method="GET", route="/healthz", status="200") == 2
    assert metric_value(text, "calsvc_http_requests_total", method="GET", route="/api/auth/me",
                        status="401") == 1
    assert metric_value(text, "calsvc_http_requests_total", route="unmatched", status="404") == 1
    # Unknown paths share one label: no label per probed URL.
    assert "/api/nowhere" not in text
    assert metric_value(text, "calsvc_http_request_duration_seconds_bucket", method="GET", route="/healthz",
                        status="200", le="+Inf") == 2
    assert metric_value(text, "calsvc_http_request_duration_seconds_count", route="/api/auth/me",
                        status="401") == 1
    assert metric_value(text, "calsvc_db_pool_connections", state="open") >= 1
    assert metric_value(text, "calsvc_db_pool_connections", state="in_use") is not None


# -- API documents ----------------------------------------------------------------------

def walk_refs(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_refs(item)


async def test_openapi_document(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    paths = doc["paths"]
    for route in ROUTES:
        path = re.sub(r"{([^}:]+)(?::[^}]*)?}", r"{\1}", route.path)
        assert path.startswith("/") and (path.startswith("/api/") or not route.path.startswith("/api/"))
        op = paths[path][route.method.lower()]
        assert op["responses"], route.name
        if route.auth:
            assert op["security"] == [{"bearerAuth": []}], route.name
            assert "401" in op["responses"]
        else:
            assert not op.get("security"), route.name
        if route.body is not None:
            content = op["requestBody"]["content"]
            assert {"application/json", "application/msgpack"} <= set(content)
            assert "408" in op["responses"], route.name  # a stalled body
        for status, answer in op["responses"].items():
            if int(status) >= 400 and int(status) not in route.responses:
                assert "application/problem+json" in answer["content"], (route.name, status)
    assert "/api/auth/register" in paths and "/api/auth/me" in paths
    assert paths["/api/auth/login"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]

    schemas = doc["components"]["schemas"]
    refs = list(walk_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert set(schemas["Problem"]["properties"]) >= {"type", "title", "status", "detail", "errors"}


async def test_swagger_ui_served_locally(client):
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "swagger-ui" in page.lower()
    assets = re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', page)
    assert assets, page
    assert not re.search(r'(?:src|href)="https?://', page), "Swagger UI must work offline"
    for asset in assets:
        got = await client.get(asset)
        assert got.status == 200, asset
        assert len(await got.read()) > 0
        assert got.headers["X-Content-Type-Options"] == "nosniff"


async def test_redoc_uses_the_configured_script(make_client):
    url = "https://cdn.example.test/redoc/redoc.standalone.js"
    client = await make_client(server={"redoc_script_url": url})
    resp = await client.get("/redoc")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert f'<script src="{url}">' in page
    assert 'spec-url="/openapi.json"' in page


async def test_redoc_serves_its_own_script(client):
    page = await (await client.get("/redoc")).text()
    assert '<script src="/redoc/static/redoc.standalone.js">' in page
    assert not re.search(r'(?:src|href)="https?://', page), "ReDoc must work offline"
    resp = await client.get("/redoc/static/redoc.standalone.js")
    assert resp.status == 200 and resp.content_type in ("application/javascript", "text/javascript")
    script = await resp.read()
    assert len(script) > 500_000 and b"Redoc" in script


async def test_root_sends_a_browser_to_the_docs(client):
    for method in ("GET", "HEAD"):
        resp = await client.request(method, "/", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/docs", method
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html" and resp.url.path == "/docs"


# -- found by probing from outside --------------------------------------------------------

async def test_head_is_answered_wherever_get_is(client):
    _, _, headers = await user_with_token(client)
    for path in ("/healthz", "/readyz", "/metrics", "/api/auth/me", "/openapi.json", "/docs"):
        resp = await client.head(path, headers=headers)
        assert resp.status == 200, path
        assert await resp.read() == b""


@pytest.mark.parametrize("body,loc", [
    ({"username": "nul_user", "email": "nul@example.com", "password": "password123", "full_name": "a\x00b"},
     ["body", "full_name"]),
    ({"username": "nul_user", "email": "n\x00l@example.com", "password": "password123"}, ["body", "email"]),
])
async def test_nul_characters_are_422_not_500(client, body, loc):
    resp = await client.post("/api/auth/register", json=body)
    problem = await assert_problem(resp, 422, "validation")
    assert problem["errors"][0]["loc"] == loc
    resp = await client.post("/api/auth/login", json={"username": "a\x00b", "password": "password123"})
    await assert_problem(resp, 422, "validation")
    resp = await client.post("/api/auth/login", data={"username": "Al\x00ice", "password": "password123"})
    await assert_problem(resp, 422, "validation")


async def test_nul_in_query_and_cursor_is_422(client):
    _, _, headers = await user_with_token(client)
    resp = await client.get("/api/users", params={"q": "a\x00b"}, headers=headers)
    await assert_problem(resp, 422, "validation")
    for values in (["a\x00", 1], ["a", 2**63]):
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
        resp = await client.get("/api/users", params={"cursor": cursor}, headers=headers)
        await assert_problem(resp, 422, "validation")


async def test_undecodable_token_bytes_are_401(client):
    resp = await client.get("/api/auth/me", headers={"Authorization": "Bearer \udcfc".encode("utf-8", "surrogateescape").decode("latin-1")})
    await assert_problem(resp, 401, "unauthorized")


async def test_broken_gzip_body_is_400(client):
    resp = await client.post("/api/auth/login", data=b"garbage",
                             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    await assert_problem(resp, 400, "malformed")


async def test_vary_accept_on_negotiated_answers(client):
    _, _, headers = await user_with_token(client)
    resp = await client.get("/api/auth/me", headers=headers)
    assert "Accept" in resp.headers.get("Vary", "")


async def test_docs_point_swagger_at_the_real_document(client):
    page = await (await client.get("/docs")).text()
    assert '"/openapi.json"' in page


@pytest.mark.parametrize("raw", [
    bytes.fromhex("81910102"),                      # a map whose key is an array
    bytes.fromhex("d7ff") + b"\xff" * 8,            # a timestamp far out of range
])
async def test_crafted_msgpack_is_400_not_500(client, raw):
    resp = await client.post("/api/auth/login", data=raw, headers={"Content-Type": "application/msgpack"})
    await assert_problem(resp, 400, "malformed")


async def test_deep_nesting_is_not_a_500(client):
    resp = await client.post("/api/auth/login", data=b"[" * 990 + b"]" * 990,
                             headers={"Content-Type": "application/json"})
    assert resp.status in (400, 422)
    assert resp.content_type == "application/problem+json"
