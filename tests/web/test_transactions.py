"""POST /api/transactions: operations in one database transaction, references to
events created earlier in the request, if_version, and nothing written when any fails."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import assert_problem
from tests.factories import STANDUP, connect, create_event, people

LATER = {**STANDUP, "title": "Later", "start_time": "2026-12-01T11:00:00+01:00", "end_time": "2026-12-01T12:00:00+01:00"}


async def counts(database_url: str) -> tuple[int, ...]:
    async with connect(database_url) as conn:
        return tuple([await conn.fetchval(f"SELECT count(*) FROM {table}") for table in (
            "events", "event_versions", "event_permissions", "event_access_changes")]
            + [await conn.fetchval("SELECT count(*) FROM events WHERE deleted_at IS NOT NULL")])


async def test_operations_refer_to_events_created_before_them(client):
    (owner, oh), (friend, fh) = await people(client, 2)
    _, existing = await create_event(client, oh, title="Existing", start_time="2026-12-02T09:00:00+01:00",
                                     end_time="2026-12-02T10:00:00+01:00")
    resp = await client.post("/api/transactions", headers=oh, json={"operations": [
        {"op": "create", "ref": "a", "event": STANDUP},
        {"op": "update", "id": "$a", "changes": {"title": "Standup (team)", "location": "Room 1"}},
        {"op": "share", "id": "$a", "users": [{"username": friend["username"], "role": "editor"}]},
        {"op": "create", "event": LATER},
        {"op": "update", "id": existing["id"], "changes": {"description": "notes", "location": None}, "if_version": 1},
        {"op": "share", "id": existing["id"], "users": [{"user_id": friend["id"], "role": "viewer"}]},
        {"op": "unshare", "id": existing["id"], "user_id": friend["id"]},
        {"op": "delete", "id": existing["id"], "if_version": 2},
    ]})
    assert resp.status == 200, await resp.text()
    results = (await resp.json())["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 201), (1, 200), (2, 200), (3, 201), (4, 200), (5, 200), (6, 204), (7, 204)]
    created = results[1]["event"]
    assert (created["id"], created["title"], created["location"], created["version"]) == (
        results[0]["event"]["id"], "Standup (team)", "Room 1", 2)
    assert "event" not in results[2] and results[3]["event"]["title"] == "Later"
    got = await client.get(f"/api/events/{created['id']}", headers=fh)
    assert (await got.json())["my_role"] == "editor"
    await assert_problem(await client.get(f"/api/events/{existing['id']}", headers=oh), 404, "not-found")


FAILURES = [
    # (operation put in place of the one at that position, status, slug, loc under the operation)
    ({"op": "create", "event": {**STANDUP, "title": ""}}, 422, "validation", ["event", "title"]),
    ({"op": "update", "id": "$zzz", "changes": {"title": "x"}}, 422, "validation", ["id"]),
    ({"op": "update", "id": 999_999, "changes": {"title": "x"}}, 404, "not-found", None),
    ({"op": "delete", "id": "EXISTING", "if_version": 7}, 412, "precondition-failed", None),
    ({"op": "share", "id": "EXISTING", "users": [{"username": "nobody_at_all", "role": "viewer"}]}, 422, "validation",
     ["users", 0, "username"]),
    ({"op": "create", "event": STANDUP}, 409, "scheduling-conflict", None),  # the slot of op 0
    ({"op": "rename", "id": 1}, 422, "validation", None),
]


@pytest.mark.parametrize("position", range(5))
@pytest.mark.parametrize("failure", FAILURES, ids=[f[2] + str(i) for i, f in enumerate(FAILURES)])
async def test_a_failing_operation_anywhere_writes_nothing(client, database_url, position, failure):
    (owner, oh), (friend, _) = await people(client, 2)
    _, existing = await create_event(client, oh, title="Existing", start_time="2026-12-03T09:00:00+01:00",
                                     end_time="2026-12-03T10:00:00+01:00")
    bad, status, slug, loc = failure
    bad = {k: existing["id"] if v == "EXISTING" else v for k, v in bad.items()}
    good = [
        {"op": "create", "ref": "a", "event": STANDUP},
        {"op": "update", "id": "$a", "changes": {"title": "Renamed"}},
        {"op": "share", "id": existing["id"], "users": [{"user_id": friend["id"], "role": "viewer"}]},
        {"op": "update", "id": existing["id"], "changes": {"location": "Room 9"}, "if_version": 1},
        {"op": "create", "event": LATER},
    ]
    if slug == "scheduling-conflict" and position == 0:
        bad = {"op": "create", "event": {**STANDUP, "start_time": "2026-12-03T09:30:00+01:00",
                                         "end_time": "2026-12-03T10:30:00+01:00"}}  # the existing event's slot
    if position == 0:  # what replaces the create keeps its ref, or nothing else refers to it
        if bad["op"] == "create":
            bad = {**bad, "ref": "a"}
        else:
            good[1] = {"op": "share", "id": existing["id"], "users": [{"user_id": friend["id"], "role": "editor"}]}
    operations = good[:position] + [bad] + good[position + 1:]
    before = await counts(database_url)
    resp = await client.post("/api/transactions", headers=oh, json={"operations": operations})
    problem = await assert_problem(resp, status, "transaction-operation")
    assert problem["index"] == position and problem["status"] == status
    assert problem["errors"][0]["loc"][:3] == ["body", "operations", position]
    if loc is not None:
        assert problem["errors"][0]["loc"][3:] == loc
    if status != 422:  # a validation error keeps its own error types
        assert problem["errors"][0]["type"] == slug
    if status == 412:
        # as the failing operation saw it: after the operations before it (all rolled back)
        assert problem["current"]["id"] == existing["id"]
        assert problem["current"]["version"] == (2 if position > 3 else 1)
    assert await counts(database_url) == before


async def test_bounds_and_references(client):
    (owner, oh), = await people(client, 1)
    ops = [{"op": "create", "event": {**STANDUP, "start_time": f"2026-12-{d:02}T09:00:00+01:00",
                                      "end_time": f"2026-12-{d:02}T09:30:00+01:00"}} for d in range(1, 29)]
    too_many = {"operations": (ops * 4)[:101]}
    await assert_problem(await client.post("/api/transactions", headers=oh, json=too_many), 422, "validation")
    await assert_problem(await client.post("/api/transactions", headers=oh, json={"operations": []}), 422, "validation")
    twice = {"operations": [{"op": "create", "ref": "a", "event": STANDUP},
                            {"op": "create", "ref": "a", "event": LATER}]}
    problem = await assert_problem(await client.post("/api/transactions", headers=oh, json=twice),
                                   422, "transaction-operation")
    assert problem["index"] == 1 and problem["errors"][0]["loc"] == ["body", "operations", 1, "ref"]
    forward = {"operations": [{"op": "delete", "id": "$b"}, {"op": "create", "ref": "b", "event": STANDUP}]}
    problem = await assert_problem(await client.post("/api/transactions", headers=oh, json=forward),
                                   422, "transaction-operation")
    assert problem["index"] == 0


async def test_roles_hold_inside_a_transaction(client, database_url):
    (owner, oh), (viewer, vh) = await people(client, 2)
    _, event = await create_event(client, oh)
    await client.post(f"/api/events/{event['id']}/share", headers=oh, json={"user_id": viewer["id"], "role": "viewer"})
    before = await counts(database_url)
    resp = await client.post("/api/transactions", headers=vh, json={"operations": [
        {"op": "create", "event": LATER}, {"op": "update", "id": event["id"], "changes": {"title": "mine now"}}]})
    problem = await assert_problem(resp, 403, "transaction-operation")
    assert problem["index"] == 1
    assert await counts(database_url) == before


async def test_a_transaction_is_idempotent_with_a_key(client, database_url):
    (owner, oh), = await people(client, 1)
    body = {"operations": [{"op": "create", "event": STANDUP}, {"op": "create", "event": LATER}]}
    headers = {**oh, "Idempotency-Key": "tx-1"}
    first = await client.post("/api/transactions", headers=headers, json=body)
    before = await counts(database_url)
    again = await client.post("/api/transactions", headers=headers, json=body)
    assert first.status == again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert await counts(database_url) == before


async def test_the_first_failing_operation_is_named_even_when_a_later_one_is_malformed(client, database_url):
    (owner, oh), = await people(client, 1)
    before = await counts(database_url)
    resp = await client.post("/api/transactions", headers=oh, json={"operations": [
        {"op": "create", "event": STANDUP},
        {"op": "create", "event": STANDUP},  # the same slot: 409
        {"op": "frobnicate"},
        {"op": "delete", "id": "$nowhere"}]})
    problem = await assert_problem(resp, 409, "transaction-operation")
    assert problem["index"] == 1
    assert await counts(database_url) == before


async def test_a_rolled_back_transaction_leaves_nothing_in_the_conflict_cache(client):
    (owner, oh), = await people(client, 1)
    series = await (await client.post("/api/events", headers=oh, json={
        "title": "Daily", "start_time": "2030-01-01T09:00:00Z", "end_time": "2030-01-01T10:00:00Z",
        "timezone": "UTC", "recurrence": {"rrule": "FREQ=DAILY"}})).json()
    _, other = await create_event(client, oh, title="Other", start_time="2030-02-01T15:00:00Z",
                                  end_time="2030-02-01T16:00:00Z", timezone="UTC")
    resp = await client.post("/api/transactions", headers=oh, json={"operations": [
        {"op": "update", "id": series["id"], "changes": {"start_time": "2030-01-01T12:00:00Z",
                                                         "end_time": "2030-01-01T13:00:00Z"}},  # version 2, then gone
        {"op": "create", "event": {"title": "probe", "start_time": "2030-01-05T09:30:00Z",
                                   "end_time": "2030-01-05T09:45:00Z", "timezone": "UTC"}},
        {"op": "delete", "id": other["id"], "if_version": 9}]})
    await assert_problem(resp, 412, "transaction-operation")
    # version 2 is written again, with other content: the series stays at 09:00
    assert (await client.patch(f"/api/events/{series['id']}", headers=oh, json={"title": "Daily!"})).status == 200
    resp = await client.post("/api/events", headers=oh, json={
        "title": "clash", "start_time": "2030-01-10T09:30:00Z", "end_time": "2030-01-10T09:45:00Z", "timezone": "UTC"})
    problem = await assert_problem(resp, 409, "scheduling-conflict")
    assert [c["event_id"] for c in problem["conflicts"]] == [series["id"]]


async def test_allow_lists_the_conflicts_of_each_operation(client):
    (owner, oh), = await people(client, 1)
    _, busy = await create_event(client, oh)
    resp = await client.post("/api/transactions?on_conflict=allow", headers=oh, json={"operations": [
        {"op": "create", "event": STANDUP}]})
    assert resp.status == 200
    [result] = (await resp.json())["results"]
    assert [c["event_id"] for c in result["event"]["conflicts"]] == [busy["id"]]


async def _holding(database_url: str, statement: str, *args):
    """A connection of the test's own in an open transaction that has run `statement` (a lock)."""
    conn = await asyncpg.connect(database_url)
    tx = conn.transaction()
    await tx.start()
    await conn.execute(statement, *args)
    return conn, tx


@pytest.mark.parametrize("held", ["calendar", "row"])
async def test_a_viewer_takes_no_lock_of_the_owners(client, database_url, held):
    """A viewer's transaction that works in its own calendar and then tries to change the
    owner's event is refused (403) without waiting for the owner's calendar or event: it
    never takes them, so it cannot hold them while its other operations run. The test holds
    the lock itself; a request that took it would wait (and fail the timeout)."""
    (owner, oh), (viewer, vh) = await people(client, 2)
    _, theirs = await create_event(client, oh)
    share = await client.post(f"/api/events/{theirs['id']}/share", headers=oh,
                              json={"user_id": viewer["id"], "role": "viewer"})
    assert share.status == 200
    before = await counts(database_url)
    if held == "calendar":
        conn, tx = await _holding(database_url, "SELECT pg_advisory_xact_lock($1::bigint)", owner["id"])
    else:
        conn, tx = await _holding(database_url, "SELECT 1 FROM events WHERE id = $1 FOR UPDATE", theirs["id"])
    try:
        for _ in range(2):  # a transaction, then the route of its own
            resp = await asyncio.wait_for(client.post("/api/transactions", headers=vh, json={"operations": [
                {"op": "create", "event": {**LATER, "title": "Mine"}},
                {"op": "update", "id": theirs["id"], "changes": {"title": "Taken"}},
            ]}), timeout=3)
            body = await assert_problem(resp, 403, "transaction-operation")
            assert body["index"] == 1
            resp = await asyncio.wait_for(client.patch(f"/api/events/{theirs['id']}", headers=vh,
                                                       json={"title": "Taken"}), timeout=3)
            await assert_problem(resp, 403, "forbidden")
            resp = await asyncio.wait_for(client.delete(f"/api/events/{theirs['id']}", headers=vh), timeout=3)
            await assert_problem(resp, 403, "forbidden")
    finally:
        await tx.rollback()
        await conn.close()
    assert await counts(database_url) == before


async def test_a_change_waiting_for_an_event_holds_no_calendar(client, database_url):
    """A viewer's transaction that leaves the owner's event holds its row to its end (the
    test holds it instead): the owner's PATCH of that event waits, but holds nothing while it
    waits, so the owner's creates go on (rows are locked before calendars)."""
    (owner, oh), (viewer, vh) = await people(client, 2)
    _, theirs = await create_event(client, oh)
    conn, tx = await _holding(database_url, "SELECT 1 FROM events WHERE id = $1 FOR UPDATE", theirs["id"])
    try:
        patching = asyncio.ensure_future(client.patch(f"/api/events/{theirs['id']}", headers=oh,
                                                      json={"title": "Renamed"}))
        await asyncio.sleep(0.3)
        assert not patching.done()
        resp = await asyncio.wait_for(client.post("/api/events", headers=oh, json=LATER), timeout=3)
        assert resp.status == 201, await resp.text()
    finally:
        await tx.rollback()
        await conn.close()
    assert (await patching).status == 200
