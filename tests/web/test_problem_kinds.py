"""Each kind of problem the OpenAPI document names (a 409's `conflicts`, a 412's `current`, a
batch item's or transaction operation's `index`, a 503's readiness members) is what the
server answers: real answers, validated against the schema /openapi.json gives that
operation and status (formats checked)."""
from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from tests.conftest import PROBLEM, admin_execute
from tests.factories import STANDUP, create_event, user_with_token

LATER = {**STANDUP, "title": "Later", "start_time": "2026-12-01T11:00:00+01:00",
         "end_time": "2026-12-01T12:00:00+01:00"}


async def conforms(client, resp, path: str, method: str, kind: str) -> dict[str, Any]:
    """The answer fits the document's schema for it, which names `kind`; returns the body."""
    document = await (await client.get("/openapi.json")).json()
    answer = document["paths"][path][method]["responses"][str(resp.status)]
    content_type = PROBLEM if resp.status >= 400 else "application/json"
    schema = answer["content"][content_type]["schema"]
    assert f"#/components/schemas/{kind}" in str(schema), schema
    body = await resp.json(content_type=content_type)
    validator = Draft202012Validator({**schema, "components": document["components"]}, format_checker=FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == [], body
    return body


async def test_conflicts_and_versions(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    path = f"/api/events/{event['id']}"

    resp = await client.post("/api/events", json=STANDUP, headers=headers)
    body = await conforms(client, resp, "/api/events", "post", "SchedulingConflictProblem")
    assert body["conflicts"][0]["event_id"] == event["id"]

    resp = await client.patch(path, json={"title": "Theirs"}, headers=headers)
    assert resp.status == 200
    resp = await client.patch(path, json={"title": "Mine", "edit_strategy": "merge", "base_version": 1},
                              headers=headers)
    body = await conforms(client, resp, "/api/events/{id}", "patch", "EditConflictProblem")
    assert body["fields"] == ["title"]

    resp = await client.put(path, json={"title": "Stale"}, headers={**headers, "If-Match": '"1"'})
    body = await conforms(client, resp, "/api/events/{id}", "put", "PreconditionFailedProblem")
    assert body["current"]["version"] == 2


async def test_items_and_operations(client):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events/batch", json={"events": [STANDUP, STANDUP]}, headers=headers)
    body = await conforms(client, resp, "/api/events/batch", "post", "BatchItemProblem")
    assert body["index"] == 1 and body["conflicts"]

    resp = await client.post("/api/events/batch", json={"events": [STANDUP, STANDUP, {"title": ""}],
                                                        "atomic": False}, headers=headers)
    body = await conforms(client, resp, "/api/events/batch", "post", "BatchResults")  # errors: ItemProblem
    assert [r["status"] for r in body["results"]] == [201, 409, 422]
    assert body["results"][1]["error"]["conflicts"]

    event = body["results"][0]["event"]
    operations = [{"op": "create", "event": LATER}, {"op": "update", "id": event["id"], "if_version": 7,
                                                     "changes": {"title": "Stale"}}]
    resp = await client.post("/api/transactions", json={"operations": operations}, headers=headers)
    body = await conforms(client, resp, "/api/transactions", "post", "TransactionOperationProblem")
    assert body["index"] == 1 and body["current"]["id"] == event["id"]

    resp = await client.post("/api/transactions", json={"operations": [{"op": "delete", "id": 2**62}]},
                             headers=headers)
    body = await conforms(client, resp, "/api/transactions", "post", "TransactionOperationProblem")
    assert body["status"] == 404 and body["index"] == 0


async def test_not_ready(client, database_url):
    name = database_url.rsplit("/", 1)[1]
    admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                  f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                  "AND pid <> pg_backend_pid()")
    try:
        resp = await client.get("/readyz")
        body = await conforms(client, resp, "/readyz", "get", "NotReadyProblem")
        assert body["database"] is False
    finally:
        admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
