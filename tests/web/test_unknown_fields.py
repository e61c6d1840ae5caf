"""Nothing is silently dropped: a body member or query parameter a route does not define, at any
depth (recurrence, pattern, batch items, transaction operations, share users), is a 422 naming
it in `errors[].loc`, in JSON and in msgpack alike, and nothing is written."""
from __future__ import annotations

import msgpack
import pytest

from tests.conftest import assert_problem
from tests.factories import PASSWORD, connect, register, user_with_token

EVENT = {"title": "Standup", "start_time": "2026-12-01T09:00:00+01:00", "end_time": "2026-12-01T09:15:00+01:00"}
WEEKLY = {**EVENT, "recurrence": {"pattern": {"frequency": "weekly", "by_weekday": ["TU"]}}}
TABLES = ("users", "events", "event_versions", "event_permissions", "event_access_changes", "notifications",
          "refresh_tokens", "token_families", "idempotency_keys")


async def counts(database_url: str) -> dict[str, int]:
    async with connect(database_url) as conn:
        return {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}


@pytest.fixture(params=["json", "msgpack"])
def send(request, client):
    """`await send(method, path, body, headers)`: the body in JSON or in msgpack."""
    async def call(method: str, path: str, body, headers=None):
        headers = dict(headers or {})
        if request.param == "json":
            return await client.request(method, path, json=body, headers=headers)
        headers["Content-Type"] = "application/msgpack"
        return await client.request(method, path, data=msgpack.packb(body), headers=headers)
    return call


async def refused(resp, loc: list, slug: str = "validation") -> dict:
    """A 422 whose one error is at `loc`, its message naming the member."""
    body = await assert_problem(resp, 422, slug)
    assert [e["loc"] for e in body["errors"]] == [loc], body
    assert str(loc[-1]) in body["errors"][0]["msg"], body
    return body


async def test_members_of_another_api_are_refused_not_dropped(client, send, database_url):
    _, _, headers = await user_with_token(client)
    before = await counts(database_url)
    # the shapes of another implementation: a weekly series must not become a single event
    resp = await send("POST", "/api/events", {**EVENT, "is_recurring": True, "recurrence_pattern": "weekly"}, headers)
    body = await refused(resp, ["body", "is_recurring"])
    assert "title, description" in body["errors"][0]["msg"]  # it says which members there are
    resp = await send("POST", "/api/events", {**EVENT, "recurrence": {"pattern": {"frequency": "weekly",
                                                                                  "by_day": ["TU"]}}}, headers)
    body = await refused(resp, ["body", "recurrence", "pattern", "by_day"])
    assert "by_weekday" in body["errors"][0]["msg"]
    resp = await send("POST", "/api/events", {**WEEKLY, "recurrence": {**WEEKLY["recurrence"], "frequency": "weekly"}}, headers)
    await refused(resp, ["body", "recurrence", "frequency"])
    assert await counts(database_url) == before
    # the same event with the members this API defines is written
    resp = await send("POST", "/api/events", WEEKLY, headers)
    assert resp.status == 201, await resp.text()


async def test_unknown_query_parameters_are_refused(client):
    _, _, headers = await user_with_token(client)
    created = await (await client.post("/api/events", json=EVENT, headers=headers)).json()
    for path, loc in [
        ("/api/events?start_date=2027-01-01T00:00:00Z&end_date=2027-02-01T00:00:00Z", ["query", "start_date"]),
        ("/api/events?start=2026-11-01T00:00:00Z&pageSize=5", ["query", "pageSize"]),
        (f"/api/events/{created['id']}?fields=title", ["query", "fields"]),   # a route without parameters
        ("/api/auth/me?verbose=1", ["query", "verbose"]),
        ("/api/notifications?unread=true&access_token=x", ["query", "access_token"]),  # only the stream takes it
        (f"/api/events/{created['id']}/history?limit=5&offset=5", ["query", "offset"]),
    ]:
        body = await refused(await client.get(path, headers=headers), loc)
        assert "query parameter" in body["errors"][0]["msg"]
    # the documented ones still work, those of a route without any too
    resp = await client.get("/api/events?start=2026-11-01T00:00:00Z&end=2027-01-01T00:00:00Z&limit=5", headers=headers)
    assert resp.status == 200 and len((await resp.json())["items"]) == 1
    assert (await client.get("/healthz")).status == 200
    await refused(await client.get("/healthz?probe=1"), ["query", "probe"])


async def test_a_query_parameter_given_twice_is_refused(client, database_url):
    _, _, headers = await user_with_token(client)
    body = await refused(await client.get("/api/events?limit=1&limit=2", headers=headers), ["query", "limit"])
    assert "2 times" in body["errors"][0]["msg"]
    before = await counts(database_url)
    resp = await client.post("/api/events?on_conflict=allow&on_conflict=reject", json=EVENT, headers=headers)
    await refused(resp, ["query", "on_conflict"])
    assert await counts(database_url) == before


async def test_the_event_stream_takes_its_token_and_last_id_in_the_query(client):
    _, tokens, headers = await user_with_token(client)
    token = tokens["access_token"]
    resp = await client.get(f"/api/notifications/stream?access_token={token}&since=5")
    await refused(resp, ["query", "since"])
    resp = await client.get(f"/api/notifications/stream?access_token={token}&last_event_id=0")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    resp.close()


async def test_batch_items_name_the_unknown_member(client, send, database_url):
    _, _, headers = await user_with_token(client)
    items = [{**EVENT, "title": f"item {i}", "start_time": f"2026-12-0{i + 1}T09:00:00Z",
              "end_time": f"2026-12-0{i + 1}T10:00:00Z"} for i in range(5)]
    before = await counts(database_url)
    resp = await send("POST", "/api/events/batch",
                      {"events": items[:3] + [{**items[3], "is_recurring": True}] + items[4:]}, headers)
    body = await refused(resp, ["body", "events", 3, "is_recurring"], "batch-item")
    assert body["index"] == 3 and body["detail"].startswith("events[3]")
    resp = await send("POST", "/api/events/batch", {"events": items[:1] + [
        {**items[1], "recurrence": {"pattern": {"frequency": "weekly", "by_day": ["MO"]}}}]}, headers)
    await refused(resp, ["body", "events", 1, "recurrence", "pattern", "by_day"], "batch-item")
    resp = await send("POST", "/api/events/batch", {"events": items, "atomc": False}, headers)
    await refused(resp, ["body", "atomc"])
    assert await counts(database_url) == before
    # not atomic: the item alone fails with its 422, the others are written
    resp = await send("POST", "/api/events/batch",
                      {"events": items[:3] + [{**items[3], "is_recurring": True}] + items[4:], "atomic": False},
                      headers)
    assert resp.status == 207, await resp.text()
    results = (msgpack.unpackb(await resp.read()) if resp.content_type == "application/msgpack"
               else await resp.json())["results"]
    assert [r["status"] for r in results] == [201, 201, 201, 422, 201]
    assert results[3]["error"]["errors"][0]["loc"] == ["body", "events", 3, "is_recurring"]
    assert (await counts(database_url))["events"] == before["events"] + 4


async def test_an_items_own_on_conflict_must_agree_with_the_batch(client, send, database_url):
    _, _, headers = await user_with_token(client)
    before = await counts(database_url)
    items = [EVENT, {**EVENT, "title": "overlapping", "on_conflict": "allow"}]
    resp = await send("POST", "/api/events/batch", {"events": items}, headers)
    body = await refused(resp, ["body", "events", 1, "on_conflict"], "batch-item")
    assert "reject" in body["errors"][0]["msg"]
    assert await counts(database_url) == before
    resp = await send("POST", "/api/events/batch", {"events": items, "on_conflict": "allow"}, headers)
    assert resp.status == 201, await resp.text()


async def owner_event_friend(client, database_url, event: dict) -> tuple[dict, dict, dict, dict]:
    """(the owner's headers, their event, another user, the table counts after them)."""
    _, _, headers = await user_with_token(client)
    created = await (await client.post("/api/events", json=event, headers=headers)).json()
    return headers, created, await register(client), await counts(database_url)


async def test_transaction_operations_name_the_unknown_member(client, send, database_url):
    headers, existing, friend, before = await owner_event_friend(client, database_url, EVENT)
    create = {"op": "create", "ref": "a", "event": {**EVENT, "start_time": "2026-12-02T09:00:00Z",
                                                    "end_time": "2026-12-02T10:00:00Z"}}
    for operation, loc in [
        ({"op": "update", "id": "$a", "changes": {"title": "x", "foo": 1}}, ["changes", "foo"]),
        ({"op": "update", "id": existing["id"], "changes": {}, "expected_version": 1}, ["expected_version"]),
        ({"op": "delete", "id": existing["id"], "soft": True}, ["soft"]),
        ({"op": "share", "id": "$a", "users": [{"user_id": friend["id"], "role": "viewer", "notify": True}]},
         ["users", 0, "notify"]),
        ({"op": "unshare", "id": "$a", "user_id": friend["id"], "role": "viewer"}, ["role"]),
        ({"op": "create", "event": {**EVENT, "recurrence": {"rrule": "FREQ=DAILY", "by_day": "MO"}}},
         ["event", "recurrence", "by_day"]),
        # what a transaction cannot do is refused, not ignored: a merge, another on_conflict
        ({"op": "update", "id": existing["id"], "changes": {"title": "x", "edit_strategy": "merge",
                                                          "base_version": 1}}, ["changes", "edit_strategy"]),
        ({"op": "update", "id": existing["id"], "changes": {"title": "x", "on_conflict": "allow"}},
         ["changes", "on_conflict"]),
    ]:
        resp = await send("POST", "/api/transactions", {"operations": [create, operation]}, headers)
        body = await refused(resp, ["body", "operations", 1, *loc], "transaction-operation")
        assert body["index"] == 1
    resp = await send("POST", "/api/transactions", {"operations": [create], "atomic": True}, headers)
    await refused(resp, ["body", "atomic"])
    assert await counts(database_url) == before
    resp = await send("POST", "/api/transactions", {"operations": [create, {
        "op": "update", "id": "$a", "changes": {"title": "x", "on_conflict": "reject"}}]}, headers)
    assert resp.status == 200, await resp.text()


async def test_share_users_and_edits_name_the_unknown_member(client, send, database_url):
    headers, event, friend, before = await owner_event_friend(client, database_url, WEEKLY)
    share = f"/api/events/{event['id']}/share"
    resp = await send("POST", share, {"users": [{"user_id": friend["id"], "role": "editor", "notify": False}]}, headers)
    await refused(resp, ["body", "users", 0, "notify"])
    resp = await send("POST", share, {"user_id": friend["id"], "role": "editor", "message": "hi"}, headers)
    await refused(resp, ["body", "message"])
    resp = await send("POST", share, {"user_id": friend["id"], "role": "admin"}, headers)
    body = await refused(resp, ["body", "role"])
    assert body["errors"][0]["msg"] == 'role must be one of editor, viewer, not "admin"'
    resp = await send("PATCH", f"/api/events/{event['id']}", {"title": "Retro", "colour": "red"}, headers)
    await refused(resp, ["body", "colour"])
    resp = await send("PATCH", f"/api/events/{event['id']}",
                      {"recurrence": {"pattern": {"frequency": "daily", "by_hour": [9]}}}, headers)
    await refused(resp, ["body", "recurrence", "pattern", "by_hour"])
    resp = await send("PUT", f"/api/events/{event['id']}/occurrences/2026-12-01T08:00:00Z",
                      {"title": "moved", "reason": "dentist"}, headers)
    await refused(resp, ["body", "reason"])
    resp = await send("PUT", f"/api/events/{event['id']}/permissions/{friend['id']}", {"role": "viewer", "x": 1},
                      headers)
    await refused(resp, ["body", "x"])
    resp = await send("POST", f"/api/events/{event['id']}/rollback/1", {"on_conflict": "allow", "dry_run": True},
                      headers)
    await refused(resp, ["body", "dry_run"])
    resp = await send("DELETE", f"/api/events/{event['id']}", {"hard": True}, headers)  # a route without a body
    await refused(resp, ["body", "hard"])
    assert await counts(database_url) == before
    got = await (await client.get(f"/api/events/{event['id']}", headers=headers)).json()
    assert (got["title"], got["version"]) == ("Standup", 1)


async def test_auth_bodies_and_the_login_form(client, send, database_url):
    before = await counts(database_url)
    resp = await send("POST", "/api/auth/register", {"username": "newcomer", "email": "newcomer@example.com",
                                                     "password": PASSWORD, "is_admin": True})
    await refused(resp, ["body", "is_admin"])
    resp = await send("POST", "/api/auth/register", {"username": "newcomer", "email": "newcomer.example.com",
                                                     "password": PASSWORD})
    body = await refused(resp, ["body", "email"])
    assert body["errors"][0]["msg"] == "email must be an email address (name@example.com)"
    assert await counts(database_url) == before
    await register(client, "newcomer")
    resp = await send("POST", "/api/auth/login", {"username": "newcomer", "password": PASSWORD, "remember": True})
    await refused(resp, ["body", "remember"])
    assert await counts(database_url) == {**before, "users": before["users"] + 1}  # no token was issued
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # the password grant's own parameters and client authentication are taken (RFC 6749 4.3.2, 2.3.1)
    resp = await client.post("/api/auth/login", headers=form, data=(
        f"grant_type=password&username=newcomer&password={PASSWORD.replace(' ', '+')}"
        "&scope=&client_id=app&client_secret=s3cret"))
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/auth/login", headers=form,
                             data=f"username=newcomer&password={PASSWORD.replace(' ', '+')}&redirect_uri=x")
    await refused(resp, ["body", "redirect_uri"])
    resp = await client.post("/api/auth/login", headers=form,
                             data=f"username=newcomer&username=other&password={PASSWORD.replace(' ', '+')}")
    body = await refused(resp, ["body", "username"])
    assert "2 times" in body["errors"][0]["msg"]
