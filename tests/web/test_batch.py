"""POST /api/events/batch and Idempotency-Key on creates and batches."""
from __future__ import annotations

import asyncio
import io

import msgpack
import orjson
import pytest

from tests.conftest import assert_problem
from tests.factories import connect, user_with_token


def item(i: int, **changes):
    """The i-th of a row of back-to-back half-hour events on 1 December 2026."""
    minutes = 30 * i
    start = f"2026-12-01T{8 + minutes // 60:02d}:{minutes % 60:02d}:00Z"
    end_minutes = minutes + 30
    end = f"2026-12-01T{8 + end_minutes // 60:02d}:{end_minutes % 60:02d}:00Z"
    return {"title": f"item {i}", "start_time": start, "end_time": end, **changes}


async def count_events(database_url: str) -> int:
    async with connect(database_url) as conn:
        return await conn.fetchval("SELECT count(*) FROM events")


async def test_atomic_batch_creates_all_in_order(client, database_url):
    user, _, headers = await user_with_token(client)
    items = [item(i) for i in range(5)] + [{**item(0), "title": "weekly", "start_time": "2027-01-04T08:00:00Z",
                                            "end_time": "2027-01-04T09:00:00Z",
                                            "recurrence": {"rrule": "FREQ=WEEKLY;COUNT=3"}}]
    resp = await client.post("/api/events/batch", json={"events": items}, headers=headers)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert [e["title"] for e in body["items"]] == [i["title"] for i in items]
    assert all(e["owner_id"] == user["id"] and e["version"] == 1 and "conflicts" not in e for e in body["items"])
    ids = [e["id"] for e in body["items"]]
    assert len(set(ids)) == 6
    got = await (await client.get(f"/api/events/{ids[5]}", headers=headers)).json()
    assert got == body["items"][5]
    async with connect(database_url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM event_versions WHERE event_id = ANY($1)", ids) == 6
        assert await conn.fetchval("SELECT count(*) FROM event_permissions WHERE event_id = ANY($1) AND role = 'owner'",
                                   ids) == 6


async def test_atomic_batch_fails_whole_naming_the_item(client, database_url):
    _, _, headers = await user_with_token(client)
    items = [item(i) for i in range(4)]
    items[2] = {**items[2], "end_time": "2026-12-01T08:59:00Z"}  # before its start
    resp = await client.post("/api/events/batch", json={"events": items}, headers=headers)
    body = await assert_problem(resp, 422, "batch-item")
    assert body["index"] == 2 and body["errors"][0]["loc"] == ["body", "events", 2, "end_time"]
    items[2] = {"title": "x" * 201, "start_time": "2026-12-01T00:00:00Z", "end_time": "2026-12-01T01:00:00Z"}
    body = await assert_problem(await client.post("/api/events/batch", json={"events": items}, headers=headers),
                                422, "batch-item")
    assert body["index"] == 2 and body["errors"][0]["loc"] == ["body", "events", 2, "title"]
    items[2] = "not an event"
    body = await assert_problem(await client.post("/api/events/batch", json={"events": items}, headers=headers),
                                422, "batch-item")
    assert body["index"] == 2 and body["errors"][0]["loc"][:3] == ["body", "events", 2]
    assert await count_events(database_url) == 0


async def test_items_of_a_batch_conflict_with_each_other_and_the_calendar(client, database_url):
    _, _, headers = await user_with_token(client)
    items = [item(0), item(1), {**item(5), "title": "overlaps item 0", "start_time": "2026-12-01T08:15:00Z"}]
    body = await assert_problem(await client.post("/api/events/batch", json={"events": items}, headers=headers),
                                409, "batch-item")
    assert body["index"] == 2 and body["errors"][0]["loc"] == ["body", "events", 2]
    assert [c["title"] for c in body["conflicts"]] == ["item 0", "item 1"]
    assert all(c["event_id"] < 0 for c in body["conflicts"])  # not written: no id yet
    assert await count_events(database_url) == 0

    resp = await client.post("/api/events", json=item(3), headers=headers)
    existing = await resp.json()
    body = await assert_problem(await client.post("/api/events/batch", json={"events": [item(3)]}, headers=headers),
                                409, "batch-item")
    assert body["index"] == 0 and [c["event_id"] for c in body["conflicts"]] == [existing["id"]]

    # allow: written, each with its conflicts, earlier items named by their new ids
    resp = await client.post("/api/events/batch?on_conflict=allow", json={"events": items}, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    assert [len(e["conflicts"]) for e in body["items"]] == [0, 0, 3]  # items 0 and 1, and the one before
    assert {c["event_id"] for c in body["items"][2]["conflicts"]} == {
        body["items"][0]["id"], body["items"][1]["id"], existing["id"]}
    # shift: each item moves past the calendar and the items before it
    resp = await client.post("/api/events/batch", json={"events": [item(0), item(0)], "on_conflict": "shift"},
                             headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    assert [e["start_time"].replace("+00:00", "Z") for e in body["items"]] == [
        "2026-12-01T11:00:00Z", "2026-12-01T11:30:00Z"]  # the calendar is busy 08:00-11:00


async def test_non_atomic_batch_answers_each_item(client, database_url):
    _, _, headers = await user_with_token(client)
    items = [item(0), {"title": ""}, item(0), item(1), {**item(2), "recurrence": {"rrule": "FREQ=SECONDLY"}}]
    resp = await client.post("/api/events/batch", json={"events": items, "atomic": False}, headers=headers)
    assert resp.status == 207, await resp.text()
    results = (await resp.json())["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 201), (1, 422), (2, 409), (3, 201), (4, 422)]
    assert results[0]["event"]["title"] == "item 0" and "error" not in results[0]
    assert results[1]["error"]["type"] == "/problems/validation"
    assert results[1]["error"]["errors"][0]["loc"][:3] == ["body", "events", 1]
    assert results[2]["error"]["type"] == "/problems/scheduling-conflict"
    assert [c["title"] for c in results[2]["error"]["conflicts"]] == ["item 0"]
    assert results[4]["error"]["errors"][0]["loc"] == ["body", "events", 4, "recurrence", "rrule"]
    assert await count_events(database_url) == 2


async def test_batch_limits(client, make_client):
    _, _, headers = await user_with_token(client)
    await assert_problem(await client.post("/api/events/batch", json={"events": []}, headers=headers),
                         422, "validation")
    too_many = [item(0)] * 501
    body = await assert_problem(await client.post("/api/events/batch", json={"events": too_many}, headers=headers),
                                422, "validation")
    assert body["errors"][0]["loc"] == ["body", "events"]
    # 500 items, one statement; over 1 MiB of body is fine for a batch (limit 8 MiB)
    many = [{**item(0), "title": f"n{i}", "description": "d" * 2500,
             "start_time": f"2027-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T{i // 336:02d}:00:00Z",
             "end_time": f"2027-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T{i // 336:02d}:30:00Z"} for i in range(500)]
    resp = await client.post("/api/events/batch", data=io.BytesIO(orjson.dumps({"events": many})),
                             headers={**headers, "Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    assert len((await resp.json())["items"]) == 500
    huge = [{**item(0), "description": "d" * 10_000}] * 500 + [{"title": "x" * 4_000_000}]
    json_headers = {**headers, "Content-Type": "application/json"}
    await assert_problem(await client.post("/api/events/batch", data=io.BytesIO(orjson.dumps({"events": huge})),
                                           headers=json_headers), 413, "payload-too-large")
    # a plain create keeps the 1 MiB limit
    padded = io.BytesIO(orjson.dumps({**item(0), "pad": "x" * 1_100_000}))
    await assert_problem(await client.post("/api/events", data=padded, headers=json_headers), 413, "payload-too-large")


async def test_batch_in_msgpack(client):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events/batch", data=msgpack.packb({"events": [item(0), item(1)]}),
                             headers={**headers, "Content-Type": "application/msgpack", "Accept": "application/msgpack"})
    assert resp.status == 201
    body = msgpack.unpackb(await resp.read())
    assert [e["title"] for e in body["items"]] == ["item 0", "item 1"]


@pytest.mark.parametrize("odd", [{1: "x"}, {b"title": "x"}, {"title": msgpack.ExtType(5, b"zz")}],
                         ids=["int-key", "bin-key", "ext-value"])
@pytest.mark.parametrize("path", ["batch", "batch-207", "transaction"])
async def test_msgpack_values_json_cannot_hold_are_a_422(client, database_url, odd, path):
    """A msgpack map key that is not a string, or an extension type, where an item or an
    operation is (taken as is until its turn comes): a 422 naming where, with or without an
    Idempotency-Key (the request's fingerprint could not be written: a 500), nothing written."""
    _, _, headers = await user_with_token(client)
    if path == "transaction":
        url, body, loc = "/api/transactions", {"operations": [{"op": "create", "event": {**item(0), **odd}}]}, [
            "body", "operations", 0, "event"]
    else:
        url, body, loc = "/api/events/batch", {"events": [item(0), {**item(1), **odd}]}, ["body", "events", 1]
        if path == "batch-207":
            body["atomic"] = False
    for key in (None, "odd-1"):
        sent = {**headers, "Content-Type": "application/msgpack"}
        if key:
            sent["Idempotency-Key"] = key
        resp = await client.post(url, data=msgpack.packb(body, use_bin_type=True), headers=sent)
        problem = await assert_problem(resp, 422, "validation")
        assert problem["errors"][0]["loc"][:len(loc)] == loc, problem
    assert await count_events(database_url) == 0


# -- Idempotency-Key ---------------------------------------------------------------------

async def test_idempotent_create_returns_the_first_answer(client, database_url):
    _, _, headers = await user_with_token(client)
    keyed = {**headers, "Idempotency-Key": "create-1"}
    first = await client.post("/api/events", json=item(0), headers=keyed)
    again = await client.post("/api/events", json=item(0), headers=keyed)
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    assert again.headers["Location"] == first.headers["Location"] and again.headers["ETag"] == '"1"'
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    # msgpack on the retry: the same answer in the other format
    packed = await client.post("/api/events", json=item(0), headers={**keyed, "Accept": "application/msgpack"})
    assert msgpack.unpackb(await packed.read()) == await first.json()
    assert await count_events(database_url) == 1
    body = await assert_problem(await client.post("/api/events", json=item(1), headers=keyed), 422, "validation")
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    # another user may use the same key
    _, _, other = await user_with_token(client)
    resp = await client.post("/api/events", json=item(0), headers={**other, "Idempotency-Key": "create-1"})
    assert resp.status == 201 and "Idempotent-Replayed" not in resp.headers
    # the same key on another route is another request
    await assert_problem(await client.post("/api/events/batch", json={"events": [item(0)]}, headers=keyed),
                         422, "validation")


async def test_a_batch_answer_is_replayed_as_stored_or_converted(client, database_url):
    _, _, headers = await user_with_token(client)
    keyed = {**headers, "Idempotency-Key": "batch-replay"}
    body = {"events": [item(i) for i in range(3)]}
    first = await client.post("/api/events/batch", json=body, headers=keyed)
    again = await client.post("/api/events/batch", json=body, headers=keyed)
    packed = await client.post("/api/events/batch", json=body, headers={**keyed, "Accept": "application/msgpack"})
    assert first.status == again.status == packed.status == 201
    assert await again.read() == await first.read() and again.headers["Idempotent-Replayed"] == "true"
    assert packed.content_type == "application/msgpack"
    assert msgpack.unpackb(await packed.read()) == await first.json()
    assert await count_events(database_url) == 3


async def test_failed_requests_are_not_remembered(client, database_url):
    _, _, headers = await user_with_token(client)
    await client.post("/api/events", json=item(0), headers=headers)
    keyed = {**headers, "Idempotency-Key": "k"}
    await assert_problem(await client.post("/api/events", json=item(0), headers=keyed), 409, "scheduling-conflict")
    resp = await client.post("/api/events?on_conflict=allow", json=item(0), headers=keyed)
    assert resp.status == 201  # another request (the query differs) under a key that holds nothing


async def test_concurrent_retries_write_once(client, database_url):
    _, _, headers = await user_with_token(client)
    keyed = {**headers, "Idempotency-Key": "race"}
    answers = await asyncio.gather(*(client.post("/api/events/batch", json={"events": [item(0), item(1)]},
                                                 headers=keyed) for _ in range(8)))
    assert [a.status for a in answers] == [201] * 8
    bodies = [await a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)
    assert await count_events(database_url) == 2


async def test_bad_keys(client):
    _, _, headers = await user_with_token(client)
    for key in ("x" * 256, "naïve", "tab\there"):
        resp = await client.post("/api/events", json=item(0), headers={**headers, "Idempotency-Key": key})
        body = await assert_problem(resp, 422, "validation")
        assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_keys_expire_after_a_day(client, database_url):
    _, _, headers = await user_with_token(client)
    keyed = {**headers, "Idempotency-Key": "old"}
    assert (await client.post("/api/events", json=item(0), headers=keyed)).status == 201
    async with connect(database_url) as conn:
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    resp = await client.post("/api/events", json=item(2), headers=keyed)  # another body: fine now
    assert resp.status == 201 and "Idempotent-Replayed" not in resp.headers
    again = await client.post("/api/events", json=item(2), headers=keyed)
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_a_batch_that_wrote_nothing_leaves_its_key_free(client, database_url):
    _, _, headers = await user_with_token(client)
    keyed = {**headers, "Idempotency-Key": "all-bad"}
    resp = await client.post("/api/events/batch", json={"events": [{"title": ""}], "atomic": False}, headers=keyed)
    assert resp.status == 207 and (await resp.json())["results"][0]["status"] == 422
    resp = await client.post("/api/events/batch", json={"events": [item(0)], "atomic": False}, headers=keyed)
    assert resp.status == 207 and (await resp.json())["results"][0]["status"] == 201
    assert "Idempotent-Replayed" not in resp.headers
    assert await count_events(database_url) == 1


@pytest.mark.parametrize("path", ["batch", "transaction"])
@pytest.mark.parametrize("media", ["json", "msgpack"])
async def test_deep_nesting_is_a_422_with_an_idempotency_key_too(client, database_url, path, media):
    """300 levels of nesting inside an item: the request's fingerprint (orjson stops at 254)
    was a 500; a body nesting past 32 levels is a 422 naming where it went too deep."""
    _, _, headers = await user_with_token(client)
    deep: object = "x"
    for _ in range(300):
        deep = {"x": deep}
    if path == "transaction":
        url, body = "/api/transactions", {"operations": [{"op": "create", "event": {**item(0), "deep": "DEEP"}}]}
    else:
        url, body = "/api/events/batch", {"events": [{**item(0), "deep": "DEEP"}], "atomic": False}
    if media == "msgpack":
        target = body["operations"][0]["event"] if path == "transaction" else body["events"][0]
        target["deep"] = deep
    if media == "json":  # orjson writes no more than 254 levels: the deep part by hand
        raw = orjson.dumps(body).replace(b'"DEEP"', b'{"x":' * 300 + b'"x"' + b'}' * 300)
    else:
        raw = msgpack.packb(body)
    for key in (None, "deep-1"):
        sent = {**headers, "Content-Type": f"application/{media}"}
        if key:
            sent["Idempotency-Key"] = key
        problem = await assert_problem(await client.post(url, data=raw, headers=sent), 422, "validation")
        assert "32" in problem["detail"]
    assert await count_events(database_url) == 0
