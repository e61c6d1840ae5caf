"""Notifications: who hears of which change, in the change's own transaction; the
list with its unread filter, count and pages; marking read."""
from __future__ import annotations

import asyncio
import io
from urllib.parse import quote

from tests.conftest import assert_problem
from tests.factories import connect, create_event, inbox, kinds, people, shared_event, user_with_token

ITEM_KEYS = {"id", "kind", "event_id", "actor", "summary", "created_at", "read_at"}


async def test_an_update_is_heard_by_everyone_with_access_but_the_actor(client):
    (owner, oh), [(ed, eh), (vw, vh)], event = await shared_event(client, 2, roles=("editor", "viewer"))
    stranger, _, sh = await user_with_token(client)
    resp = await client.patch(f"/api/events/{event['id']}", headers=eh, json={"title": "Retro", "location": "Room 2"})
    assert resp.status == 200
    page = await inbox(client, oh)
    assert page["unread_count"] == 1 and page["next_cursor"] is None
    [item] = page["items"]
    assert set(item) == ITEM_KEYS
    assert item["kind"] == "event.updated" and item["event_id"] == event["id"]
    assert item["actor"] == {"id": ed["id"], "username": ed["username"]}
    assert item["summary"] == f'{ed["username"]} updated "Retro" (title, location)'
    assert item["created_at"].endswith("Z") and item["read_at"] is None
    assert [k for k, _, _ in await kinds(client, vh)] == ["event.shared", "event.updated"]
    assert [k for k, _, _ in await kinds(client, eh)] == ["event.shared"]  # not their own change
    assert (await inbox(client, sh))["items"] == []


async def test_every_kind_of_change(client):
    (owner, oh), [(a, ah), (b, bh)], event = await shared_event(
        client, 2, roles=("editor", "viewer"), recurrence={"rrule": "FREQ=DAILY;COUNT=5"})
    url = f"/api/events/{event['id']}"
    c, _, ch = await user_with_token(client)
    title = '"Standup"'

    async def ok(resp, status=200):
        assert resp.status == status, await resp.text()

    start = quote("2026-12-02T09:00:00+01:00", safe="")
    await ok(await client.put(f"{url}/occurrences/{start}", headers=ah, json={"title": "Moved"}))
    await ok(await client.delete(f"{url}/occurrences/{quote('2026-12-03T09:00:00+01:00', safe='')}", headers=ah),
             204)
    await ok(await client.post(f"{url}/share", headers=oh, json={"user_id": c["id"], "role": "viewer"}))
    await ok(await client.put(f"{url}/permissions/{b['id']}", headers=oh, json={"role": "editor"}))
    await ok(await client.post(f"{url}/rollback/1", headers=ah))
    await ok(await client.delete(f"{url}/permissions/{c['id']}", headers=oh), 204)
    await ok(await client.delete(f"{url}/permissions/{b['id']}", headers=bh), 204)  # b leaves
    await ok(await client.delete(url, headers=oh), 204)
    await ok(await client.post(f"{url}/rollback/4", headers=oh))  # restores it

    on, an, cn = a["username"], owner["username"], c["username"]
    assert await kinds(client, ch) == [
        ("event.shared", event["id"], f"{an} shared {title} with you as viewer"),
        ("permission.changed", event["id"], f"{an} made {b['username']} an editor of {title}"),
        ("event.updated", event["id"], f"{on} rolled {title} back to version 1"),
        ("permission.revoked", event["id"], f"{an} removed you from {title}"),
    ]
    assert await kinds(client, oh) == [
        ("event.updated", event["id"], f"{on} changed the occurrence of {title} at 2026-12-02T09:00:00+01:00"),
        ("event.updated", event["id"], f"{on} cancelled the occurrence of {title} at 2026-12-03T09:00:00+01:00"),
        ("event.updated", event["id"], f"{on} rolled {title} back to version 1"),
        ("permission.revoked", event["id"], f"{b['username']} left {title}"),
    ]
    assert await kinds(client, ah) == [
        ("event.shared", event["id"], f"{an} shared {title} with you as editor"),
        ("event.shared", event["id"], f"{an} shared {title} with {cn} (viewer)"),
        ("permission.changed", event["id"], f"{an} made {b['username']} an editor of {title}"),
        ("permission.revoked", event["id"], f"{an} removed {cn} from {title}"),
        ("permission.revoked", event["id"], f"{b['username']} left {title}"),
        ("event.deleted", event["id"], f"{an} deleted {title}"),
        ("event.restored", event["id"], f"{an} restored {title} (version 4)"),
    ]
    # b heard everything up to their leaving, and nothing after
    assert [k for k, _, _ in await kinds(client, bh)] == [
        "event.shared", "event.updated", "event.updated", "event.shared", "permission.changed",
        "event.updated", "permission.revoked"]


async def test_transfer_and_summaries_keep_user_text_literal(client):
    (owner, oh), [(a, ah), (b, bh)], event = await shared_event(client, 2, title='50% "off" %s %1$s')
    resp = await client.put(f"/api/events/{event['id']}/permissions/{a['id']}", headers=oh, json={"role": "owner"})
    assert resp.status == 200
    quoted = '"50% "off" %s %1$s"'
    assert (await kinds(client, ah))[-1] == ("permission.changed", event["id"],
                                             f"{owner['username']} made you the owner of {quoted}")
    assert (await kinds(client, bh))[-1] == ("permission.changed", event["id"],
                                             f"{owner['username']} made {a['username']} the owner of {quoted}")
    # the new owner's change reaches the old owner (now an editor)
    assert (await client.patch(f"/api/events/{event['id']}", headers=ah, json={"description": "x"})).status == 200
    assert (await kinds(client, oh))[-1][0] == "event.updated"


async def test_what_is_refused_or_changes_nothing_announces_nothing(client, database_url):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    url = f"/api/events/{event['id']}"
    before = await kinds(client, ah)
    # the same title again: no version, no notification
    assert (await client.patch(url, headers=oh, json={"title": event["title"]})).status == 200
    # stale If-Match, a conflict, a validation error
    resp = await client.patch(url, headers={**oh, "If-Match": '"9"'}, json={"title": "X"})
    await assert_problem(resp, 412, "precondition-failed")
    _, other = await create_event(client, oh, title="Other", start_time="2026-12-01T10:00:00+01:00",
                                  end_time="2026-12-01T11:00:00+01:00")
    resp = await client.patch(url, headers=oh, json={"end_time": "2026-12-01T10:30:00+01:00"})
    await assert_problem(resp, 409, "scheduling-conflict")
    await assert_problem(await client.patch(url, headers=oh, json={"title": ""}), 422, "validation")
    # a transaction whose last operation fails writes none of the earlier ones' notifications
    resp = await client.post("/api/transactions", headers=oh, json={"operations": [
        {"op": "update", "id": event["id"], "changes": {"title": "In a transaction"}},
        {"op": "delete", "id": event["id"]},
        {"op": "update", "id": other["id"], "changes": {"title": ""}},
    ]})
    await assert_problem(resp, 422, "transaction-operation")
    # sharing again with the same role changes nothing
    resp = await client.post(f"{url}/share", headers=oh, json={"user_id": a["id"], "role": "editor"})
    assert resp.status == 200
    assert await kinds(client, ah) == before
    async with connect(database_url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notifications WHERE event_id = $1", event["id"]) == 1


async def test_a_transaction_announces_each_operation_in_order(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    b, _, bh = await user_with_token(client)
    resp = await client.post("/api/transactions", headers=oh, json={"operations": [
        {"op": "create", "ref": "new", "event": {"title": "New", "start_time": "2026-12-05T09:00:00Z",
                                                 "end_time": "2026-12-05T10:00:00Z"}},
        {"op": "share", "id": "$new", "users": [{"user_id": b["id"], "role": "viewer"}]},
        {"op": "update", "id": "$new", "changes": {"title": "Newer"}},
        {"op": "update", "id": event["id"], "changes": {"title": "Changed"}},
        {"op": "unshare", "id": "$new", "user_id": b["id"]},
    ]})
    assert resp.status == 200, await resp.text()
    new_id = (await resp.json())["results"][0]["event"]["id"]
    # recipients are those with access when the transaction commits, plus whoever a change
    # names: b hears of being shared with and removed, not of the update in between
    assert [(k, e) for k, e, _ in await kinds(client, bh)] == [
        ("event.shared", new_id), ("permission.revoked", new_id)]
    assert [(k, e) for k, e, _ in await kinds(client, ah)] == [
        ("event.shared", event["id"]), ("event.updated", event["id"])]


async def test_list_unread_filter_pages_and_marking_read(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    for i in range(5):
        assert (await client.patch(f"/api/events/{event['id']}", headers=oh, json={"title": f"T{i}"})).status == 200
    first = await inbox(client, ah, limit=2)
    assert first["unread_count"] == 6 and len(first["items"]) == 2
    ids = [n["id"] for n in first["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    # a page is stable when newer ones arrive meanwhile
    assert (await client.patch(f"/api/events/{event['id']}", headers=oh, json={"title": "T5"})).status == 200
    second = await inbox(client, ah, limit=2, cursor=first["next_cursor"])
    assert [n["id"] for n in second["items"]] == [ids[1] - 1, ids[1] - 2] or \
        all(n["id"] < ids[1] for n in second["items"])
    everything = await inbox(client, ah)
    assert len(everything["items"]) == 7 and everything["unread_count"] == 7
    seen = [n["id"] for n in everything["items"]]
    assert len(set(seen)) == 7 and seen == sorted(seen, reverse=True)

    target = seen[3]
    resp = await client.post(f"/api/notifications/{target}/read", headers=ah)
    assert resp.status == 200
    read = await resp.json()
    assert read["id"] == target and read["read_at"].endswith("Z")
    again = await (await client.post(f"/api/notifications/{target}/read", headers=ah)).json()
    assert again["read_at"] == read["read_at"]  # the first reading stays
    unread = await inbox(client, ah, unread="true")
    assert unread["unread_count"] == 6 and target not in [n["id"] for n in unread["items"]]
    await assert_problem(await client.post(f"/api/notifications/{target}/read", headers=oh), 404, "not-found")
    await assert_problem(await client.post("/api/notifications/99999999999999999999999/read", headers=ah),
                         404, "not-found")
    resp = await client.post("/api/notifications/read", headers=ah)
    assert resp.status == 200 and await resp.json() == {"updated": 6}
    assert (await inbox(client, ah, unread="true")) == {"items": [], "next_cursor": None, "unread_count": 0}
    assert await (await client.post("/api/notifications/read", headers=ah)).json() == {"updated": 0}


async def test_bad_queries_and_no_token(client):
    _, _, headers = await user_with_token(client)
    await assert_problem(await client.get("/api/notifications"), 401, "unauthorized")
    await assert_problem(await client.get("/api/notifications", headers=headers, params={"limit": "501"}),
                         422, "validation")
    await assert_problem(await client.get("/api/notifications", headers=headers, params={"unread": "maybe"}),
                         422, "validation")
    await assert_problem(await client.get("/api/notifications", headers=headers, params={"cursor": "nope"}),
                         422, "validation")
    # the token as a query parameter is for the stream only
    token = headers["Authorization"].split()[1]
    await assert_problem(await client.get("/api/notifications", params={"access_token": token}),
                         401, "unauthorized")


async def test_concurrent_writers_give_each_user_ids_in_commit_order(client, database_url):
    """Ids reach a user in commit order (migration 0007): whenever a reader sees id N of a
    user, every lower id of that user has committed. Checked while 30 writers race."""
    everyone = await people(client, 6)
    (listener, _), writers = everyone[0], everyone[1:]
    events = []
    for user, headers in writers:
        _, event = await create_event(client, headers, title=f"E{user['id']}")
        share = {"users": [{"user_id": listener["id"], "role": "viewer"}]}
        assert (await client.post(f"/api/events/{event['id']}/share", headers=headers, json=share)).status == 200
        events.append((event, headers))
    async with connect(database_url) as conn:
        seen: list[int] = []
        done = False

        async def watch():
            # every read: ids strictly above what was read before, with no lower id appearing later
            last = 0
            while not done:
                rows = await conn.fetch("SELECT id FROM notifications WHERE user_id = $1 AND id > $2 ORDER BY id",
                                        listener["id"], last)
                for r in rows:
                    seen.append(r["id"])
                    last = r["id"]
                await asyncio.sleep(0)

        async def write(event, headers, i):
            resp = await client.patch(f"/api/events/{event['id']}", headers=headers, json={"title": f"v{i}"})
            assert resp.status == 200, await resp.text()

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(*(write(e, h, i) for i in range(6) for e, h in events))
        finally:
            done = True
            await watcher
        final = [r["id"] for r in await conn.fetch(
            "SELECT id FROM notifications WHERE user_id = $1 ORDER BY id", listener["id"])]
        rest = [r["id"] for r in await conn.fetch(
            "SELECT id FROM notifications WHERE user_id = $1 AND id > $2 ORDER BY id", listener["id"],
            seen[-1] if seen else 0)]
    assert len(final) == 5 + 30
    assert seen + rest == final  # a reader following "after id N" missed nothing
    items = (await inbox(client, everyone[0][1], limit=500))["items"]
    times = [n["created_at"] for n in items]  # newest first: times never grow down the list
    assert times == sorted(times, reverse=True), list(zip([n["id"] for n in items], times))


async def test_a_share_with_four_names_three_and_one_other(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    new = await people(client, 4)
    resp = await client.post(f"/api/events/{event['id']}/share", headers=oh,
                             json={"users": [{"user_id": u["id"], "role": "viewer"} for u, _ in new]})
    assert resp.status == 200
    names = ", ".join(f"{u['username']} (viewer)" for u, _ in new[:3])
    assert (await kinds(client, ah))[-1][2] == f'{owner["username"]} shared "Standup" with {names} and 1 other'


async def test_a_body_where_none_is_taken_is_checked_before_anything_changes(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    assert (await client.patch(f"/api/events/{event['id']}", headers=oh, json={"title": "Retro"})).status == 200
    read_all = "/api/notifications/read"
    for body, content_type, status, slug in [
        (b"hello", "text/plain", 415, "unsupported-media-type"),
        (b"{}", "application/vnd.api+json", 415, "unsupported-media-type"),
        (b"{not json", "application/json", 400, "malformed"),
        (b"\xc1", "application/msgpack", 400, "malformed"),
        (b"[1]", "application/json", 422, "validation"),
        (b" " * (1024 * 1024 + 1), "application/json", 413, "payload-too-large"),
    ]:
        resp = await client.post(read_all, headers=ah | {"Content-Type": content_type}, data=io.BytesIO(body))
        await assert_problem(resp, status, slug)
    one = (await inbox(client, ah))["items"][0]["id"]
    resp = await client.post(f"/api/notifications/{one}/read", headers=ah | {"Content-Type": "application/xml"},
                             data=b"<read/>")
    await assert_problem(resp, 415, "unsupported-media-type")
    resp = await client.delete(f"/api/events/{event['id']}", headers=oh | {"Content-Type": "text/plain"}, data=b"x")
    await assert_problem(resp, 415, "unsupported-media-type")
    assert (await inbox(client, ah))["unread_count"] == 2  # nothing was marked read or deleted
    assert (await client.get(f"/api/events/{event['id']}", headers=oh)).status == 200
    # a member is refused like any member a route does not define (nothing is marked read);
    # an empty object is fine, and so is a GET's body, which is never read
    resp = await client.post(read_all, headers=ah, json={"anything": 1})
    body = await assert_problem(resp, 422, "validation")
    assert [e["loc"] for e in body["errors"]] == [["body", "anything"]]
    assert (await inbox(client, ah))["unread_count"] == 2
    resp = await client.post(read_all, headers=ah, json={})
    assert resp.status == 200 and await resp.json() == {"updated": 2}
    resp = await client.get("/api/notifications", headers=ah | {"Content-Type": "text/plain"}, data=b"hello")
    assert resp.status == 200
