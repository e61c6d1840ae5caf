"""History: versions and snapshots, rollback (restoring deleted events too), the
changelog of content and access, and the diff as JSON and as a page."""
from __future__ import annotations

from tests.conftest import assert_problem
from tests.factories import STANDUP, create_event, people, user_with_token


async def edit(client, headers, event_id, **changes):
    resp = await client.patch(f"/api/events/{event_id}", json=changes, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_history_lists_every_version_with_its_actor(client):
    (owner, oh), (editor, eh) = await people(client, 2)
    _, event = await create_event(client, oh, description="one\ntwo")
    eid = event["id"]
    await client.post(f"/api/events/{eid}/share", headers=oh, json={"user_id": editor["id"], "role": "editor"})
    await edit(client, eh, eid, title="Standup (moved)", start_time="2026-12-01T10:00:00+01:00",
               end_time="2026-12-01T10:15:00+01:00")
    await edit(client, oh, eid, recurrence={"rrule": "FREQ=DAILY;COUNT=3"})
    page = await (await client.get(f"/api/events/{eid}/history", headers=eh)).json()
    assert page["next_cursor"] is None
    items = page["items"]
    assert [(v["version"], v["kind"], v["actor"]["id"]) for v in items] == [
        (1, "created", owner["id"]), (2, "updated", editor["id"]), (3, "updated", owner["id"])]
    assert items[1]["actor"]["username"] == editor["username"] and items[1]["at"].endswith("Z")
    assert items[1]["changed_fields"] == ["title", "start_time", "end_time"]
    assert items[2]["changed_fields"] == ["recurrence"]

    one = await (await client.get(f"/api/events/{eid}/history/1", headers=eh)).json()
    assert one["version"] == 1 and one["kind"] == "created" and one["actor"]["id"] == owner["id"]
    assert one["snapshot"] == {
        "title": "Standup", "description": "one\ntwo", "location": None,
        "start_time": "2026-12-01T09:00:00+01:00", "end_time": "2026-12-01T09:15:00+01:00",
        "timezone": "Europe/Berlin", "all_day": False, "recurrence": None, "exceptions": []}
    three = await (await client.get(f"/api/events/{eid}/history/3", headers=oh)).json()
    assert three["snapshot"]["recurrence"] == {"rrule": "FREQ=DAILY;COUNT=3", "exdates": [], "rdates": []}

    paged, cursor = [], None
    while True:
        query = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        page = await (await client.get(f"/api/events/{eid}/history", headers=oh, params=query)).json()
        paged += [v["version"] for v in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == [1, 2, 3]
    await assert_problem(await client.get(f"/api/events/{eid}/history/4", headers=oh), 404, "not-found")
    await assert_problem(await client.get(f"/api/events/{eid}/history/99999999999", headers=oh), 404, "not-found")


async def test_history_is_for_people_with_access_and_after_delete_the_owner_alone(client, database_url):
    (owner, oh), (editor, eh), (stranger, sh) = await people(client, 3)
    _, event = await create_event(client, oh)
    eid = event["id"]
    await client.post(f"/api/events/{eid}/share", headers=oh, json={"user_id": editor["id"], "role": "editor"})
    paths = [f"/api/events/{eid}/history", f"/api/events/{eid}/history/1", f"/api/events/{eid}/changelog",
             f"/api/events/{eid}/diff/1/1"]
    for path in paths:
        assert (await client.get(path, headers=eh)).status == 200, path
        await assert_problem(await client.get(path, headers=sh), 404, "not-found")
    assert (await client.delete(f"/api/events/{eid}", headers=oh)).status == 204
    for path in paths:
        assert (await client.get(path, headers=oh)).status == 200, path
        await assert_problem(await client.get(path, headers=eh), 404, "not-found")
    await assert_problem(await client.post(f"/api/events/{eid}/rollback/1", headers=eh), 404, "not-found")
    history = await (await client.get(f"/api/events/{eid}/history", headers=oh)).json()
    assert [v["kind"] for v in history["items"]] == ["created", "deleted"]


async def test_rollback_writes_a_new_version_with_the_old_content(client):
    (owner, oh), (editor, eh), (viewer, vh) = await people(client, 3)
    _, event = await create_event(client, oh, description="first")
    eid = event["id"]
    await client.post(f"/api/events/{eid}/share", headers=oh, json={"users": [
        {"user_id": editor["id"], "role": "editor"}, {"user_id": viewer["id"], "role": "viewer"}]})
    await edit(client, oh, eid, title="Renamed", description="second", location="Room 2")
    await edit(client, oh, eid, start_time="2026-12-01T11:00:00+01:00", end_time="2026-12-01T12:00:00+01:00")

    await assert_problem(await client.post(f"/api/events/{eid}/rollback/1", headers=vh), 403, "forbidden")
    await assert_problem(await client.post(f"/api/events/{eid}/rollback/9", headers=eh), 404, "not-found")
    await assert_problem(await client.post(f"/api/events/{eid}/rollback/1", headers={**eh, "If-Match": '"1"'}),
                         412, "precondition-failed")
    resp = await client.post(f"/api/events/{eid}/rollback/1", headers={**eh, "If-Match": '"3"'})
    assert resp.status == 200, await resp.text()
    assert resp.headers["ETag"] == '"4"'
    back = await resp.json()
    assert (back["title"], back["description"], back["location"], back["start_time"], back["version"]) == (
        "Standup", "first", None, STANDUP["start_time"], 4)
    assert back["updated_by"] == editor["id"] and back["owner_id"] == owner["id"]
    history = await (await client.get(f"/api/events/{eid}/history", headers=oh)).json()
    assert [v["kind"] for v in history["items"]] == ["created", "updated", "updated", "rolled_back"]
    assert history["items"][3]["changed_fields"] == ["title", "description", "location", "start_time", "end_time"]

    # rolling back to what it already is writes nothing
    same = await client.post(f"/api/events/{eid}/rollback/4", headers=oh)
    assert same.status == 200 and (await same.json())["version"] == 4
    # the chain goes on: back to version 2, then to 3
    assert (await (await client.post(f"/api/events/{eid}/rollback/2", headers=oh)).json())["title"] == "Renamed"
    again = await (await client.post(f"/api/events/{eid}/rollback/3", headers=oh)).json()
    assert (again["version"], again["start_time"]) == (6, "2026-12-01T11:00:00+01:00")


async def test_rollback_is_conflict_checked(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    await edit(client, headers, event["id"], start_time="2026-12-01T14:00:00+01:00",
               end_time="2026-12-01T14:15:00+01:00")
    _, blocker = await create_event(client, headers, title="Blocker")  # takes 09:00 again
    problem = await assert_problem(await client.post(f"/api/events/{event['id']}/rollback/1", headers=headers),
                                   409, "scheduling-conflict")
    assert [c["event_id"] for c in problem["conflicts"]] == [blocker["id"]]
    resp = await client.post(f"/api/events/{event['id']}/rollback/1?on_conflict=allow", headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["version"] == 3 and [c["event_id"] for c in body["conflicts"]] == [blocker["id"]]


async def test_rolling_back_a_deleted_event_restores_it_for_everyone(client):
    (owner, oh), (viewer, vh) = await people(client, 2)
    _, event = await create_event(client, oh, recurrence={"rrule": "FREQ=WEEKLY;COUNT=4"})
    eid = event["id"]
    await client.post(f"/api/events/{eid}/share", headers=oh, json={"user_id": viewer["id"], "role": "viewer"})
    await client.delete(f"/api/events/{eid}/occurrences/2026-12-08T09:00:00%2B01:00", headers=oh)  # v2
    assert (await client.delete(f"/api/events/{eid}", headers=oh)).status == 204  # v3
    await assert_problem(await client.get(f"/api/events/{eid}", headers=oh), 404, "not-found")

    resp = await client.post(f"/api/events/{eid}/rollback/3", headers=oh)  # the content it was deleted with
    assert resp.status == 200, await resp.text()
    restored = await resp.json()
    assert restored["version"] == 4 and restored["recurrence"]["rrule"] == "FREQ=WEEKLY;COUNT=4"
    got = await client.get(f"/api/events/{eid}", headers=vh)
    assert got.status == 200 and (await got.json())["my_role"] == "viewer"
    occurrences = await (await client.get(f"/api/events/{eid}/occurrences", headers=vh, params={
        "start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"})).json()
    assert [o["cancelled"] for o in occurrences["items"]] == [False, True, False, False]
    listed = await (await client.get("/api/events", headers=vh)).json()
    assert [e["id"] for e in listed["items"]] == [eid]
    # a slot it takes again is taken
    await assert_problem(await client.post("/api/events", headers=oh, json=STANDUP), 409, "scheduling-conflict")


async def test_restoring_into_a_taken_slot_is_a_conflict(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    assert (await client.delete(f"/api/events/{event['id']}", headers=headers)).status == 204
    await create_event(client, headers, title="Took the slot")
    await assert_problem(await client.post(f"/api/events/{event['id']}/rollback/1", headers=headers),
                         409, "scheduling-conflict")
    await assert_problem(await client.get(f"/api/events/{event['id']}", headers=headers), 404, "not-found")


async def test_changelog_has_content_and_access_changes_in_order(client):
    (owner, oh), (a, ah) = await people(client, 2)
    _, event = await create_event(client, oh, description="x")
    eid = event["id"]
    await client.post(f"/api/events/{eid}/share", headers=oh, json={"user_id": a["id"], "role": "viewer"})
    await client.put(f"/api/events/{eid}/permissions/{a['id']}", headers=oh, json={"role": "editor"})
    await edit(client, ah, eid, title="Team standup")
    await client.delete(f"/api/events/{eid}/permissions/{a['id']}", headers=ah)
    await client.delete(f"/api/events/{eid}", headers=oh)
    await client.post(f"/api/events/{eid}/rollback/2", headers=oh)

    items = (await (await client.get(f"/api/events/{eid}/changelog", headers=oh)).json())["items"]
    assert [(i["action"], i.get("version"), i["actor"]["id"]) for i in items] == [
        ("created", 1, owner["id"]), ("shared", None, owner["id"]), ("role_changed", None, owner["id"]),
        ("updated", 2, a["id"]), ("left", None, a["id"]), ("deleted", 3, owner["id"]),
        ("rolled_back", 4, owner["id"])]
    assert items[0]["changes"][0] == {"field": "title", "old": None, "new": "Standup"}
    # the created entry lists what the event was created with; a field left null is no change
    assert [c for c in items[0]["changes"] if c["old"] is None and c["new"] is None] == []
    assert {"location", "recurrence"}.isdisjoint(c["field"] for c in items[0]["changes"])
    assert {"description", "start_time", "all_day"} <= {c["field"] for c in items[0]["changes"]}
    assert items[1]["user"] == {"id": a["id"], "username": a["username"]}
    assert items[1]["changes"] == [{"field": "role", "old": None, "new": "viewer"}]
    assert items[2]["changes"] == [{"field": "role", "old": "viewer", "new": "editor"}]
    assert items[3]["changes"] == [{"field": "title", "old": "Standup", "new": "Team standup"}]
    assert items[3]["actor"]["username"] == a["username"]
    assert items[4]["changes"] == [{"field": "role", "old": "editor", "new": None}]
    assert items[5]["changes"] == [{"field": "deleted", "old": False, "new": True}]
    assert items[6]["changes"] == [{"field": "deleted", "old": True, "new": False}]

    paged, cursor = [], None
    while True:
        query = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        page = await (await client.get(f"/api/events/{eid}/changelog", headers=oh, params=query)).json()
        paged += [i["action"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == [i["action"] for i in items]


async def test_diff_lists_field_changes_and_the_description_line_diff(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, description="alpha\nbeta\ngamma")
    eid = event["id"]
    await edit(client, headers, eid, title="New title", description="alpha\nBETA\ngamma\ndelta")
    diff = await (await client.get(f"/api/events/{eid}/diff/1/2", headers=headers)).json()
    assert diff["from_version"] == 1 and diff["to_version"] == 2
    assert diff["changes"] == [{"field": "title", "old": "Standup", "new": "New title"},
                               {"field": "description", "old": "alpha\nbeta\ngamma",
                                "new": "alpha\nBETA\ngamma\ndelta"}]
    assert diff["description_diff"] == ["--- version 1", "+++ version 2", "@@ -1,3 +1,4 @@", " alpha", "-beta",
                                        "+BETA", " gamma", "+delta"]
    back = await (await client.get(f"/api/events/{eid}/diff/2/1", headers=headers)).json()
    assert back["changes"][0] == {"field": "title", "old": "New title", "new": "Standup"}
    same = await (await client.get(f"/api/events/{eid}/diff/2/2", headers=headers)).json()
    assert same["changes"] == [] and same["description_diff"] == []
    await assert_problem(await client.get(f"/api/events/{eid}/diff/1/3", headers=headers), 404, "not-found")


async def test_the_diff_page_escapes_user_content(client):
    _, _, headers = await user_with_token(client)
    evil = '<script>alert("x")</script>&amp;'
    _, event = await create_event(client, headers, title=evil, description="<b>bold</b>\nline")
    eid = event["id"]
    await edit(client, headers, eid, description="<img src=x onerror=alert(1)>\nline", location="<i>room</i>")
    for params, accept in (({"format": "html"}, "application/json"), ({}, "text/html")):
        resp = await client.get(f"/api/events/{eid}/diff/1/2", headers={**headers, "Accept": accept}, params=params)
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "script-src" not in resp.headers["Content-Security-Policy"]
        page = await resp.text()
        assert "<script" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # a browser's Accept gets the page; format=json the JSON
    resp = await client.get(f"/api/events/{eid}/diff/1/2", params={"format": "json"},
                            headers={**headers, "Accept": "text/html,*/*;q=0.8"})
    assert resp.headers["Content-Type"].startswith("application/json")
    assert (await client.get(f"/api/events/{eid}/diff/1/2", headers={**headers, "Accept": "image/png"})).status == 406


async def test_a_new_time_zone_alone_is_no_change_of_times(client):
    (owner, oh), (editor, eh) = await people(client, 2)
    _, event = await create_event(client, oh, start_time="2026-12-01T09:00:00Z", end_time="2026-12-01T09:15:00Z",
                                  timezone="UTC")
    eid = event["id"]
    await client.post(f"/api/events/{eid}/share", headers=oh, json={"user_id": editor["id"], "role": "editor"})
    await edit(client, oh, eid, timezone="Europe/Berlin")
    history = (await (await client.get(f"/api/events/{eid}/history", headers=oh)).json())["items"]
    assert history[1]["changed_fields"] == ["timezone"]
    diff = await (await client.get(f"/api/events/{eid}/diff/1/2", headers=oh)).json()
    assert [c["field"] for c in diff["changes"]] == ["timezone"]
    resp = await client.patch(f"/api/events/{eid}", headers=eh, params={"edit_strategy": "merge", "base_version": "1"},
                              json={"start_time": "2026-12-01T09:30:00Z", "end_time": "2026-12-01T09:45:00Z"})
    assert resp.status == 200, await resp.text()
    merged = await resp.json()
    assert (merged["timezone"], merged["start_time"]) == ("Europe/Berlin", "2026-12-01T10:30:00+01:00")


async def test_rollback_takes_on_conflict_from_its_body_and_checks_the_body(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    await edit(client, headers, event["id"], start_time="2026-12-01T14:00:00+01:00", end_time="2026-12-01T14:15:00+01:00")
    await create_event(client, headers, title="Blocker")
    url = f"/api/events/{event['id']}/rollback/1"
    resp = await client.post(url, headers={**headers, "Content-Type": "application/json"}, data=b"{")
    await assert_problem(resp, 400, "malformed")
    resp = await client.post(url, headers={**headers, "Content-Type": "text/plain"}, data=b"hello")
    await assert_problem(resp, 415, "unsupported-media-type")
    resp = await client.post(url, headers=headers, json={"on_conflict": "allow"})
    assert resp.status == 200 and (await resp.json())["conflicts"]


async def test_format_json_forces_json(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    resp = await client.get(f"/api/events/{event['id']}/diff/1/1", params={"format": "json"},
                            headers={**headers, "Accept": "application/msgpack"})
    assert resp.headers["Content-Type"].startswith("application/json")
    assert (await resp.json())["changes"] == []


async def test_a_history_cursor_past_any_version_is_an_empty_page(client):
    import base64
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    cursor = base64.urlsafe_b64encode(b"[3000000000]").decode().rstrip("=")
    resp = await client.get(f"/api/events/{event['id']}/history", headers=headers, params={"cursor": cursor})
    assert resp.status == 200 and (await resp.json())["items"] == []
