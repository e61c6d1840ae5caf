"""postman_collection.json (the API's users know Postman): newman runs it twice in a row
against a real server with the default rate limits, on an empty database, and it must pass
every `pm.test`. The fast tests (no server) keep it from going stale: it covers every operation
of /openapi.json, names no route that is gone, declares every variable it uses, gives every
request a test, makes few enough calls to `/api/auth/*` for two runs within the default limit,
and is exactly what tools/postman.py writes.

newman comes from the npm registry into .ci/node (git-ignored):
    npm install --no-audit --no-fund --prefix .ci/node newman@6.2.2
Without it the newman test is skipped, unless CALSVC_TEST_REQUIRE_NEWMAN=1 (CI), which fails it."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from calsvc.config import RateLimitSettings
from calsvc.web import openapi
from calsvc.web.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "postman_collection.json"
NEWMAN = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "newman"
# Served beside the API but not operations of the OpenAPI document (add_docs).
DOC_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")}
# The event stream never ends, so newman cannot read a GET of it to the end: the collection
# sends HEAD, which the server answers as the GET begins (status and headers) without a stream.
STREAM = "/api/notifications/stream"


def requests_of(collection: dict) -> list[tuple[str, dict]]:
    """(folder/name, item) of every request, folders flattened."""
    found = []

    def walk(items: list[dict], prefix: str) -> None:
        for item in items:
            if "item" in item:
                walk(item["item"], f"{prefix}{item['name']}/")
            else:
                found.append((prefix + item["name"], item))

    walk(collection["item"], "")
    return found


def route_of(item: dict) -> tuple[str, str]:
    """(METHOD, /path/{template}) of a request; Postman's `:name` path variables become `{name}`."""
    segments = item["request"]["url"]["path"]
    path = "/" + "/".join("{" + s[1:] + "}" if s.startswith(":") else s for s in segments)
    return item["request"]["method"], path


@pytest.fixture(scope="module")
def collection() -> dict:
    return json.loads(COLLECTION.read_text())


def test_collection_covers_every_operation(collection):
    document = openapi.build(ROUTES)  # what GET /openapi.json serves (app.py)
    operations = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}
    covered = {route_of(item) for _, item in requests_of(collection)}
    if ("HEAD", STREAM) in covered:
        covered.add(("GET", STREAM))
    assert operations - covered == set(), "operations of /openapi.json that postman_collection.json lacks"
    assert DOC_ROUTES - covered == set()
    unknown = covered - operations - DOC_ROUTES - {("HEAD", STREAM)}
    assert unknown == set(), "requests of postman_collection.json that name no route"


def test_every_request_has_a_test(collection):
    def has_test(item: dict) -> bool:
        return any(event["listen"] == "test" and "pm.test(" in "\n".join(event["script"]["exec"])
                   for event in item.get("event", []))

    untested = [name for name, item in requests_of(collection) if not has_test(item)]
    assert untested == []


def scripts_of(collection: dict) -> str:
    events = collection.get("event", []) + [e for _, item in requests_of(collection) for e in item.get("event", [])]
    return "\n".join(line for event in events for line in event["script"]["exec"])


def test_every_variable_is_declared(collection):
    declared = {variable["key"] for variable in collection["variable"]}
    assert {"baseUrl", "accessToken", "refreshToken"} <= declared
    used = set(re.findall(r"\{\{(\w+)\}\}", json.dumps(collection)))
    stored = set(re.findall(r'pm\.collectionVariables\.set\("(\w+)"', scripts_of(collection)))
    assert stored, "no script stores a variable"
    assert used - declared == set(), "variables used but not declared"
    assert stored - declared == set(), "variables stored but not declared"


def auth_calls(collection: dict) -> int:
    """Requests of one run that count against the per-client limit of `/api/auth/*`."""
    return sum(1 for _, item in requests_of(collection) if route_of(item)[1].startswith("/api/auth/"))


def test_two_runs_fit_in_the_default_auth_limit(collection):
    """Every request to /api/auth/* counts (logging out and reading yourself too) in a window of
    a minute per client, and two runs may fall in one window: a run makes at most half the
    limit, and the collection's description says how many."""
    calls = auth_calls(collection)
    assert 2 * calls <= RateLimitSettings().auth_per_minute, calls
    assert f"makes {calls} requests to `/api/auth/*`" in collection["info"]["description"]


def test_collection_is_what_the_generator_writes():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "postman.py"), "--check"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def newman_command() -> list[str] | None:
    newman = NEWMAN if NEWMAN.exists() else shutil.which("newman")
    if newman is None or shutil.which("node") is None:
        return None
    return [str(newman)]


@pytest.mark.e2e
def test_newman_runs_the_collection(start_server, server_env, tmp_path, collection):
    command = newman_command()
    if command is None:
        message = "newman is not installed (npm install --no-audit --no-fund --prefix .ci/node newman@6.2.2)"
        if os.environ.get("CALSVC_TEST_REQUIRE_NEWMAN") == "1":
            pytest.fail(message)
        pytest.skip(message)
    # the default rate limits (the suite's servers turn them off)
    limits = RateLimitSettings()
    server = start_server(**server_env, CALSVC_RATE_LIMIT_AUTH_PER_MINUTE=str(limits.auth_per_minute),
                          CALSVC_RATE_LIMIT_USER_PER_MINUTE=str(limits.user_per_minute))
    server.wait_ready()
    expected = len(requests_of(collection))
    # Twice in a row: it can be run again on the same database, within the limits.
    for run_number in (1, 2):
        report = tmp_path / f"newman-{run_number}.json"
        run = subprocess.run(
            [*command, "run", str(COLLECTION), "--env-var", f"baseUrl={server.base}", "--bail",
             "--reporters", "cli,json", "--reporter-json-export", str(report),
             "--timeout-request", "10000", "--color", "off"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, f"newman run {run_number} failed:\n{output[-20000:]}\n" \
                                    f"server log:\n{server.log()[-5000:]}"
        result = json.loads(report.read_text())["run"]
        stats = result["stats"]
        assert stats["requests"] == {"total": expected, "pending": 0, "failed": 0}, output[-5000:]
        assert stats["assertions"]["failed"] == 0 and stats["assertions"]["total"] > expected, stats
        # the limits were on: every /api/auth answer says so, and none was a 429
        auth = [e["response"] for e in result["executions"] if "/".join(e["item"]["request"]["url"]["path"])
                .startswith("api/auth/")]
        assert len(auth) == auth_calls(collection)
        for response in auth:
            headers = {h["key"].lower(): h["value"] for h in response["header"]}
            assert headers.get("ratelimit-limit") == str(limits.auth_per_minute), (run_number, headers)
            assert response["code"] != 429
    errors = re.findall(r"aiohttp\.access .* [A-Z]+ \S+ 5\d\d .*", server.log())
    assert errors == [], "\n".join(errors)
