"""Changing events: PUT/PATCH merged and validated as a whole, If-Match, roles,
soft delete, versions, and conflict checks of updates."""
from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from tests.conftest import assert_problem
from tests.factories import STANDUP, create_event, grant, user_with_token, versions


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_partial_update_merges_and_writes_a_version(client, database_url, method):
    user, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, description="daily", location="Room 1")
    resp = await client.request(method, f"/api/events/{event['id']}", json={"title": "Standup (moved)",
                                                                              "location": None}, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["ETag"] == '"2"'
    body = await resp.json()
    assert body["title"] == "Standup (moved)" and body["location"] is None
    assert body["description"] == "daily" and body["start_time"] == STANDUP["start_time"]
    assert body["version"] == 2 and body["updated_by"] == user["id"] and body["my_role"] == "owner"
    assert body["updated_at"] >= event["updated_at"]
    got = await (await client.get(f"/api/events/{event['id']}", headers=headers)).json()
    assert got == body
    rows = await versions(database_url, event["id"])
    assert [(v, k, a, sorted(f)) for v, k, a, f, _ in rows] == [
        (1, "created", user["id"], []), (2, "updated", user["id"], ["location", "title"])]
    assert '"title": "Standup (moved)"' in rows[1][4]


async def test_null_clears_description_and_recurrence(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, description="x", recurrence={"rrule": "FREQ=DAILY;COUNT=3"})
    resp = await client.patch(f"/api/events/{event['id']}", json={"description": None, "recurrence": None},
                              headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["description"] == "" and body["recurrence"] is None


@pytest.mark.parametrize("changes, loc", [
    ({"end_time": "2026-12-01T08:00:00+01:00"}, ["body", "end_time"]),          # before the stored start
    ({"start_time": "2026-12-01T10:00:00+01:00"}, ["body", "end_time"]),        # after the stored end
    ({"title": None}, ["body", "title"]),
    ({"title": ""}, ["body", "title"]),
    ({"start_time": None}, ["body", "start_time"]),
    ({"timezone": "Mars/Olympus"}, ["body", "timezone"]),
    ({"end_time": "2027-12-03T09:00:00+01:00"}, ["body", "end_time"]),          # over 366 days
    ({"start_time": "2026-12-01T09:00:00"}, ["body", "start_time"]),            # no offset
    ({"recurrence": {"rrule": "FREQ=MINUTELY"}}, ["body", "recurrence", "rrule"]),
    ({"all_day": True}, ["body", "start_time"]),
])
async def test_the_merged_event_is_validated_and_nothing_changes(client, changes, loc):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    resp = await client.patch(f"/api/events/{event['id']}", json=changes, headers=headers)
    body = await assert_problem(resp, 422, "validation")
    assert body["errors"][0]["loc"] == loc
    got = await (await client.get(f"/api/events/{event['id']}", headers=headers)).json()
    assert got == event


async def test_an_update_that_changes_nothing_writes_no_version(client, database_url):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    resp = await client.put(f"/api/events/{event['id']}", json={"title": "Standup",
                                                                 "start_time": "2026-12-01T08:00:00Z"},
                            headers=headers)
    assert resp.status == 200 and (await resp.json())["version"] == 1 and resp.headers["ETag"] == '"1"'
    assert len(await versions(database_url, event["id"])) == 1


async def test_if_match(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    url = f"/api/events/{event['id']}"
    resp = await client.patch(url, json={"title": "A"}, headers={**headers, "If-Match": '"1"'})
    assert resp.status == 200 and resp.headers["ETag"] == '"2"'
    stale = await client.patch(url, json={"title": "B"}, headers={**headers, "If-Match": '"1"'})
    body = await assert_problem(stale, 412, "precondition-failed")
    assert body["current"]["title"] == "A" and body["current"]["version"] == 2
    assert body["current"]["start_time"] == STANDUP["start_time"]
    assert stale.headers["ETag"] == '"2"'
    weak = await client.patch(url, json={"title": "B"}, headers={**headers, "If-Match": 'W/"2"'})
    await assert_problem(weak, 412, "precondition-failed")  # If-Match compares strongly
    for tag in ('"7", "2"', "*"):
        resp = await client.patch(url, json={"title": f"via {tag}"}, headers={**headers, "If-Match": tag})
        assert resp.status == 200, await resp.text()
    deleted = await client.delete(url, headers={**headers, "If-Match": '"2"'})
    await assert_problem(deleted, 412, "precondition-failed")
    deleted = await client.delete(url, headers={**headers, "If-Match": '"4"'})
    assert deleted.status == 204


async def test_roles(client, database_url):
    owner, _, owner_headers = await user_with_token(client)
    editor, _, editor_headers = await user_with_token(client)
    viewer, _, viewer_headers = await user_with_token(client)
    _, stranger_headers = (await user_with_token(client))[0], (await user_with_token(client))[2]
    _, event = await create_event(client, owner_headers)
    url = f"/api/events/{event['id']}"
    await grant(database_url, event["id"], editor["id"], "editor")
    await grant(database_url, event["id"], viewer["id"], "viewer")

    seen = await (await client.get(url, headers=viewer_headers)).json()
    assert seen["my_role"] == "viewer"
    await assert_problem(await client.patch(url, json={"title": "x"}, headers=viewer_headers), 403, "forbidden")
    await assert_problem(await client.delete(url, headers=viewer_headers), 403, "forbidden")
    await assert_problem(await client.patch(url, json={"title": "x"}, headers=stranger_headers), 404, "not-found")
    await assert_problem(await client.delete(url, headers=stranger_headers), 404, "not-found")

    resp = await client.patch(url, json={"title": "by the editor"}, headers=editor_headers)
    body = await resp.json()
    assert resp.status == 200 and body["my_role"] == "editor" and body["updated_by"] == editor["id"]
    assert body["owner_id"] == owner["id"]
    await assert_problem(await client.delete(url, headers=editor_headers), 403, "forbidden")
    assert (await client.get(url, headers=owner_headers)).status == 200


async def test_soft_delete(client, database_url):
    owner, _, headers = await user_with_token(client)
    viewer, _, viewer_headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    await grant(database_url, event["id"], viewer["id"], "viewer")
    url = f"/api/events/{event['id']}"
    resp = await client.delete(url, headers=headers)
    assert resp.status == 204 and await resp.read() == b""
    for who in (headers, viewer_headers):
        await assert_problem(await client.get(url, headers=who), 404, "not-found")
        listed = await (await client.get("/api/events", headers=who)).json()
        assert listed["items"] == []
    await assert_problem(await client.patch(url, json={"title": "x"}, headers=headers), 404, "not-found")
    await assert_problem(await client.delete(url, headers=headers), 404, "not-found")
    rows = await versions(database_url, event["id"])
    assert [(v, k, a) for v, k, a, _, _ in rows] == [(1, "created", owner["id"]), (2, "deleted", owner["id"])]
    assert '"title": "Standup"' in rows[1][4]
    # the slot is free again
    again = await client.post("/api/events", json=STANDUP, headers=headers)
    assert again.status == 201


async def test_update_is_conflict_checked_against_the_owners_calendar(client, database_url):
    owner, _, headers = await user_with_token(client)
    editor, _, editor_headers = await user_with_token(client)
    _, first = await create_event(client, headers)  # 09:00-09:15
    _, second = await create_event(client, headers, title="Review", start_time="2026-12-01T10:00:00+01:00",
                                   end_time="2026-12-01T11:00:00+01:00")
    await grant(database_url, second["id"], editor["id"], "editor")
    url = f"/api/events/{second['id']}"
    move = {"start_time": "2026-12-01T09:10:00+01:00", "end_time": "2026-12-01T09:40:00+01:00"}
    # the editor's change is checked against the owner's calendar, not the editor's (an event
    # of it the editor cannot see is listed as busy, without its id or title)
    resp = await client.patch(url, json=move, headers=editor_headers)
    body = await assert_problem(resp, 409, "scheduling-conflict")
    assert [(c["event_id"], c["title"]) for c in body["conflicts"]] == [(0, "busy")]
    assert (await (await client.get(url, headers=headers)).json())["version"] == 1
    # an event does not conflict with its old self; back-to-back is no conflict
    resp = await client.patch(url, json={"start_time": "2026-12-01T09:15:00+01:00"}, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.patch(url + "?on_conflict=allow", json=move, headers=headers)
    body = await resp.json()
    assert resp.status == 200 and [c["event_id"] for c in body["conflicts"]] == [first["id"]]
    shift = {"start_time": "2026-12-01T09:05:00+01:00", "end_time": "2026-12-01T09:35:00+01:00"}
    resp = await client.patch(url, json={**shift, "on_conflict": "shift"}, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert (body["start_time"], body["end_time"]) == ("2026-12-01T09:15:00+01:00", "2026-12-01T09:45:00+01:00")
    assert "conflicts" not in body


async def test_update_moves_the_event_in_listings_and_windows(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    await client.patch(f"/api/events/{event['id']}", json={"start_time": "2027-01-05T09:00:00+01:00",
                                                           "end_time": "2027-01-05T10:00:00+01:00"},
                       headers=headers)
    old = await (await client.get("/api/events?start=2026-12-01T00:00:00Z&end=2026-12-02T00:00:00Z",
                                  headers=headers)).json()
    new = await (await client.get("/api/events?start=2027-01-05T00:00:00Z&end=2027-01-06T00:00:00Z",
                                  headers=headers)).json()
    assert old["items"] == [] and [e["id"] for e in new["items"]] == [event["id"]]
    # the old slot is free for another event now
    assert (await client.post("/api/events", json=STANDUP, headers=headers)).status == 201


async def test_concurrent_updates_do_not_lose_a_version(client, database_url):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    url = f"/api/events/{event['id']}"
    answers = await asyncio.gather(*(client.patch(url, json={"description": f"edit {i}"}, headers=headers)
                                     for i in range(40)))
    assert [a.status for a in answers] == [200] * 40  # they queue; none gives up
    assert sorted([(await a.json())["version"] for a in answers]) == list(range(2, 42))
    rows = await versions(database_url, event["id"])
    assert [v for v, *_ in rows] == list(range(1, 42))
    final = await (await client.get(url, headers=headers)).json()
    assert final["version"] == 41


async def test_unknown_and_malformed_ids(client):
    _, _, headers = await user_with_token(client)
    await assert_problem(await client.patch("/api/events/999999", json={"title": "x"}, headers=headers),
                         404, "not-found")
    await assert_problem(await client.delete("/api/events/99999999999999999999", headers=headers), 404, "not-found")
    await assert_problem(await client.delete("/api/events/abc", headers=headers), 404, "not-found")


async def test_a_change_that_keeps_the_times_is_not_blocked_by_old_overlaps(client):
    _, _, headers = await user_with_token(client)
    _, first = await create_event(client, headers)
    resp = await client.post("/api/events?on_conflict=allow", json={**STANDUP, "title": "Overlap"}, headers=headers)
    second = await resp.json()
    url = f"/api/events/{second['id']}"
    resp = await client.patch(url, json={"title": "Overlap (renamed)"}, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.patch(url + "?on_conflict=allow", json={"description": "x"}, headers=headers)
    assert [c["event_id"] for c in (await resp.json())["conflicts"]] == [first["id"]]
    # moving it is checked again
    move = {"start_time": "2026-12-01T09:05:00+01:00", "end_time": "2026-12-01T09:20:00+01:00"}
    await assert_problem(await client.patch(url, json=move, headers=headers), 409, "scheduling-conflict")


async def test_times_outside_the_supported_years(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, recurrence={"rrule": "FREQ=DAILY;COUNT=3"})
    for start in ("9999-12-31T23:59:59.999999+00:00", "9999-12-31T20:00:00-05:00", "0001-01-01T00:00:00+01:00"):
        url = f"/api/events/{event['id']}/occurrences/{quote(start, safe='')}"
        await assert_problem(await client.delete(url, headers=headers), 404, "not-found")
        await assert_problem(await client.put(url, json={"title": "x"}, headers=headers), 404, "not-found")
    for rec in ({"rrule": "FREQ=DAILY", "exdates": ["0001-01-01T00:00:00+01:00"]},
                {"rrule": "FREQ=DAILY;COUNT=2", "rdates": ["9999-12-31T23:30:00Z"]}):
        body = await assert_problem(await client.patch(f"/api/events/{event['id']}", json={"recurrence": rec},
                                                       headers=headers), 422, "validation")
        assert body["errors"][0]["loc"][:3] == ["body", "recurrence", "exdates" if "exdates" in rec else "rdates"]
