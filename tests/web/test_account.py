"""Changing the password (POST /api/auth/password) and closing the account (DELETE
/api/auth/me): every other token and stream ends; a closed account's events are deleted and
its shares left, as the per-event routes would, in one transaction; its history shows
`deleted-user-<id>`; its name and email are free again, and its refresh tokens are refused."""
from __future__ import annotations

import asyncio

import pytest

from calsvc.db import notifications as notifications_db
from calsvc.services import accounts, notifications
from tests.conftest import assert_problem
from tests.factories import (
    PASSWORD,
    STANDUP,
    bearer,
    connect,
    create_event,
    inbox,
    kinds,
    login,
    me_status,
    people,
    refresh,
    register,
    user_with_token,
)
from tests.sse import subscribe

NEW_PASSWORD = "a brand new passphrase"


async def change_password(client, headers, current=PASSWORD, new=NEW_PASSWORD):
    return await client.post("/api/auth/password", headers=headers,
                             json={"current_password": current, "new_password": new})


async def close_account(client, headers, password=PASSWORD):
    return await client.delete("/api/auth/me", headers=headers, json={"password": password})


async def sql(database_url: str, query: str, *args):
    async with connect(database_url) as conn:
        return await conn.fetch(query, *args)


# -- changing the password --------------------------------------------------------------------

async def test_password_change_ends_every_other_token_and_the_new_pair_works(client):
    user, first, headers = await user_with_token(client)
    second = await login(client, user["username"])  # another login (another device)
    refreshed = await (await refresh(client, second["refresh_token"])).json()  # and its rotation
    async with subscribe(client, headers) as stream:
        resp = await change_password(client, headers)
        assert resp.status == 200, await resp.text()
        pair = await resp.json()
        assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
        assert await stream.next(timeout=5) is None  # the open stream ended
    for access in (first["access_token"], second["access_token"], refreshed["access_token"]):
        assert await me_status(client, access) == 401
    for token in (first["refresh_token"], refreshed["refresh_token"]):
        await assert_problem(await refresh(client, token), 401, "unauthorized")
    # the new pair works, and so does its rotation
    assert await me_status(client, pair["access_token"]) == 200
    rotated = await refresh(client, pair["refresh_token"])
    assert rotated.status == 200, await rotated.text()
    # the new password logs in, the old one no longer
    await login(client, user["username"], NEW_PASSWORD)
    resp = await client.post("/api/auth/login", json={"username": user["username"], "password": PASSWORD})
    await assert_problem(resp, 401, "unauthorized")


async def test_password_change_reaches_every_worker(make_client):
    """Two app instances over one database stand for two workers."""
    one, two = await make_client(), await make_client()
    user, tokens, headers = await user_with_token(one)
    elsewhere = await login(two, user["username"])
    async with subscribe(two, bearer(elsewhere["access_token"])) as stream:
        assert (await change_password(one, headers)).status == 200
        assert await stream.next(timeout=5) is None
    assert await me_status(two, elsewhere["access_token"]) == 401
    assert await me_status(two, tokens["access_token"]) == 401


async def test_wrong_current_password_is_401_and_changes_nothing(client):
    user, tokens, headers = await user_with_token(client)
    resp = await change_password(client, headers, current="not my password")
    body = await assert_problem(resp, 401, "unauthorized")
    assert "password" in body["detail"]
    assert await me_status(client, tokens["access_token"]) == 200
    assert (await refresh(client, tokens["refresh_token"])).status == 200
    await login(client, user["username"], PASSWORD)
    resp = await client.post("/api/auth/login", json={"username": user["username"], "password": NEW_PASSWORD})
    await assert_problem(resp, 401, "unauthorized")


@pytest.mark.parametrize("body, loc", [
    ({"current_password": PASSWORD, "new_password": "short"}, ["body", "new_password"]),
    ({"current_password": PASSWORD, "new_password": "x" * 129}, ["body", "new_password"]),
    ({"current_password": PASSWORD}, ["body", "new_password"]),
    ({"new_password": NEW_PASSWORD}, ["body", "current_password"]),
])
async def test_password_change_validation(client, body, loc):
    user, tokens, headers = await user_with_token(client)
    resp = await client.post("/api/auth/password", headers=headers, json=body)
    problem = await assert_problem(resp, 422, "validation")
    assert [e["loc"] for e in problem["errors"]] == [loc]
    assert await me_status(client, tokens["access_token"]) == 200
    await login(client, user["username"], PASSWORD)


# -- closing the account ------------------------------------------------------------------------

async def closing_world(client):
    """`closer` owns `mine` (shared with an editor and a viewer) and `alone`; `other` owns
    `theirs`, shared with `closer` as editor, who changed it."""
    (closer, ch), (editor, eh), (viewer, vh), (other, oh) = await people(client, 4)
    _, mine = await create_event(client, ch, title="Mine")
    _, alone = await create_event(client, ch, title="Alone", start_time="2026-12-02T09:00:00+01:00",
                                  end_time="2026-12-02T10:00:00+01:00")
    resp = await client.post(f"/api/events/{mine['id']}/share", headers=ch, json={"users": [
        {"user_id": editor["id"], "role": "editor"}, {"user_id": viewer["id"], "role": "viewer"}]})
    assert resp.status == 200
    _, theirs = await create_event(client, oh, title="Theirs")
    resp = await client.post(f"/api/events/{theirs['id']}/share", headers=oh,
                             json={"user_id": closer["id"], "role": "editor"})
    assert resp.status == 200
    resp = await client.patch(f"/api/events/{theirs['id']}", headers=ch, json={"location": "Room 9"})
    assert resp.status == 200
    return {"closer": (closer, ch), "editor": (editor, eh), "viewer": (viewer, vh), "other": (other, oh),
            "mine": mine, "alone": alone, "theirs": theirs}


async def test_closing_deletes_owned_events_leaves_the_others_and_erases_the_person(client, database_url):
    w = await closing_world(client)
    (closer, ch), (_editor, eh), (_viewer, vh), (other, oh) = w["closer"], w["editor"], w["viewer"], w["other"]
    mine, alone, theirs = w["mine"], w["alone"], w["theirs"]
    gone = f"deleted-user-{closer['id']}"
    tokens = await login(client, closer["username"])
    async with subscribe(client, ch) as stream:
        resp = await close_account(client, ch)
        assert resp.status == 204, await resp.text()
        assert await stream.next(timeout=5) is None  # the open stream ended

    # its own events are deleted for everyone, who were told
    for headers in (eh, vh):
        await assert_problem(await client.get(f"/api/events/{mine['id']}", headers=headers), 404, "not-found")
        assert (await (await client.get("/api/events", headers=headers)).json())["items"] == []
        [*_, last] = (await inbox(client, headers, limit=500))["items"][::-1]
        assert (last["kind"], last["event_id"], last["summary"]) == (
            "event.deleted", mine["id"], f'{gone} deleted "Mine"')
        assert last["actor"] == {"id": closer["id"], "username": gone}
    rows = await sql(database_url, "SELECT event_id, kind, actor_id FROM event_versions "
                                   "WHERE event_id = ANY($1::bigint[]) ORDER BY event_id, version DESC",
                     [mine["id"], alone["id"]])
    latest = {}
    for r in rows:
        latest.setdefault(r["event_id"], (r["kind"], r["actor_id"]))
    assert latest == {mine["id"]: ("deleted", closer["id"]), alone["id"]: ("deleted", closer["id"])}

    # it left the event shared with it: gone from the permissions, `left` in the changelog,
    # its name in the history is deleted-user-<id>, and the owner was told
    resp = await client.get(f"/api/events/{theirs['id']}/permissions", headers=oh)
    assert [p["user_id"] for p in (await resp.json())["items"]] == [other["id"]]
    history = (await (await client.get(f"/api/events/{theirs['id']}/history", headers=oh)).json())["items"]
    assert [(h["kind"], h["actor"]) for h in history] == [
        ("created", {"id": other["id"], "username": other["username"]}),
        ("updated", {"id": closer["id"], "username": gone})]
    changelog = (await (await client.get(f"/api/events/{theirs['id']}/changelog", headers=oh)).json())["items"]
    assert [(c["action"], c["actor"]["username"], c.get("user", {}).get("username")) for c in changelog] == [
        ("created", other["username"], None), ("shared", other["username"], gone),
        ("updated", gone, None), ("left", gone, gone)]
    assert changelog[-1]["changes"] == [{"field": "role", "old": "editor", "new": None}]
    assert (await kinds(client, oh))[-1] == ("permission.revoked", theirs["id"], f'{gone} left "Theirs"')
    # what it did before is told under that name too (it was written with the old one)
    told = [n for n in (await inbox(client, oh, limit=500))["items"] if n["actor"]["id"] == closer["id"]]
    assert len(told) >= 2 and all(n["summary"].startswith(f"{gone} ") for n in told), told
    assert not any(closer["username"] in n["summary"] for n in told)
    assert (await client.get(f"/api/events/{theirs['id']}", headers=oh)).status == 200  # theirs stays

    # every token of the account is dead, and its login
    assert await me_status(client, ch["Authorization"].split()[1]) == 401
    assert await me_status(client, tokens["access_token"]) == 401
    await assert_problem(await refresh(client, tokens["refresh_token"]), 401, "unauthorized")
    resp = await client.post("/api/auth/login", json={"username": closer["username"], "password": PASSWORD})
    await assert_problem(resp, 401, "unauthorized")

    # what identified the person is erased
    [row] = await sql(database_url, "SELECT username, email, full_name, password_hash, deleted_at IS NOT NULL "
                                    "AS closed FROM users WHERE id = $1", closer["id"])
    assert dict(row) == {"username": gone, "email": None, "full_name": None, "password_hash": None,
                         "closed": True}
    for q in (closer["username"], closer["email"], gone, "deleted-user"):
        resp = await client.get("/api/users", headers=oh, params={"q": q})
        assert (await resp.json())["items"] == [], q

    # the username and the email may be registered again, by someone new
    again = await register(client, closer["username"].upper(), email=closer["email"].upper())
    assert again["id"] != closer["id"]
    fresh = await login(client, closer["email"])
    resp = await client.get("/api/auth/me", headers=bearer(fresh["access_token"]))
    assert (await resp.json())["id"] == again["id"]
    resp = await client.get("/api/users", headers=oh, params={"q": closer["email"]})
    assert [u["id"] for u in (await resp.json())["items"]] == [again["id"]]
    # ... who inherits nothing
    assert (await (await client.get("/api/events", headers=bearer(fresh["access_token"]))).json())["items"] == []


async def test_closing_writes_what_the_per_event_routes_write(client, database_url):
    """An event deleted by its owner and one deleted by the close: the same version and the
    same notification (the actor's name in both is the closed account's); an event left by a user
    and one left by the close: the same changelog entry and notification."""
    (closer, ch), (friend, fh), (owner, oh) = await people(client, 3)
    by_route = (await create_event(client, ch, title="A", description="d", location="L"))[1]
    by_close = (await create_event(client, ch, title="A", description="d", location="L",
                                   start_time="2026-12-03T09:00:00+01:00", end_time="2026-12-03T09:15:00+01:00"))[1]
    for event in (by_route, by_close):
        assert (await client.post(f"/api/events/{event['id']}/share", headers=ch,
                                  json={"user_id": friend["id"], "role": "viewer"})).status == 200
    left_by_route = (await create_event(client, oh, title="B"))[1]
    left_by_close = (await create_event(client, oh, title="B", start_time="2026-12-04T09:00:00+01:00",
                                        end_time="2026-12-04T09:15:00+01:00"))[1]
    for event in (left_by_route, left_by_close):
        assert (await client.post(f"/api/events/{event['id']}/share", headers=oh,
                                  json={"user_id": closer["id"], "role": "editor"})).status == 200
    assert (await client.delete(f"/api/events/{by_route['id']}", headers=ch)).status == 204
    assert (await client.delete(f"/api/events/{left_by_route['id']}/permissions/{closer['id']}",
                                headers=ch)).status == 204
    assert (await close_account(client, ch)).status == 204

    versions = await sql(database_url, """
        SELECT event_id, version, kind, snapshot - 'id' - 'start_time' - 'end_time' AS content,
               changed_fields, actor_id
        FROM event_versions WHERE event_id = ANY($1::bigint[]) AND kind = 'deleted' ORDER BY event_id""",
                         [by_route["id"], by_close["id"]])
    assert [v["event_id"] for v in versions] == [by_route["id"], by_close["id"]]
    a, b = ({k: v for k, v in dict(r).items() if k != "event_id"} for r in versions)
    assert a == b and a["version"] == 2 and a["actor_id"] == closer["id"]
    changes = await sql(database_url, """
        SELECT event_id, action, user_id, old_role, new_role, actor_id FROM event_access_changes
        WHERE event_id = ANY($1::bigint[]) AND action = 'left' ORDER BY event_id""",
                        [left_by_route["id"], left_by_close["id"]])
    assert [tuple(r)[1:] for r in changes] == [("left", closer["id"], "editor", None, closer["id"])] * 2
    assert [r["event_id"] for r in changes] == [left_by_route["id"], left_by_close["id"]]

    gone = f"deleted-user-{closer['id']}"  # the name both show (the first rewritten by the close)
    assert (await kinds(client, fh))[-2:] == [
        ("event.deleted", by_route["id"], f'{gone} deleted "A"'),
        ("event.deleted", by_close["id"], f'{gone} deleted "A"')]
    assert (await kinds(client, oh))[-2:] == [
        ("permission.revoked", left_by_route["id"], f'{gone} left "B"'),
        ("permission.revoked", left_by_close["id"], f'{gone} left "B"')]


async def test_closing_an_account_with_many_events(client, database_url):
    """More events than one round of statements handles (the shares come in the last round),
    and more notifications than are written out on the event loop: each event deleted and
    announced, each share left and announced, once."""
    (closer, ch), (friend, fh) = await people(client, 2)
    n = 1100
    assert n > 2 * accounts.EVENTS_AT_ONCE and n > notifications.MANY_NOTES
    ids = []
    for first in range(0, n, 500):
        items = [{**STANDUP, "title": f"E{i}",
                  "start_time": f"2027-01-{1 + i // 48:02d}T{i % 48 // 2:02d}:{i % 2 * 30:02d}:00Z",
                  "end_time": f"2027-01-{1 + i // 48:02d}T{i % 48 // 2:02d}:{i % 2 * 30 + 10:02d}:00Z"}
                 for i in range(first, min(n, first + 500))]
        resp = await client.post("/api/events/batch", headers=ch, json={"events": items})
        assert resp.status == 201, await resp.text()
        ids += [e["id"] for e in (await resp.json())["items"]]
    for first in range(0, n, 100):
        ops = [{"op": "share", "id": i, "users": [{"user_id": friend["id"], "role": "viewer"}]}
               for i in ids[first:first + 100]]
        resp = await client.post("/api/transactions", headers=ch, json={"operations": ops})
        assert resp.status == 200, await resp.text()
    theirs = []
    for i in range(5):
        _, event = await create_event(client, fh, title=f"T{i}", start_time=f"2027-03-0{i + 1}T09:00:00Z",
                                      end_time=f"2027-03-0{i + 1}T10:00:00Z")
        assert (await client.post(f"/api/events/{event['id']}/share", headers=fh,
                                  json={"user_id": closer["id"], "role": "viewer"})).status == 200
        theirs.append(event["id"])

    assert (await close_account(client, ch)).status == 204
    listed = (await (await client.get("/api/events", headers=fh)).json())["items"]
    assert [e["id"] for e in listed] == theirs  # the friend's own, and nothing of the closed account
    notes = await sql(database_url, "SELECT kind, event_id FROM notifications WHERE user_id = $1 AND kind IN "
                                    "('event.deleted', 'permission.revoked') ORDER BY event_id", friend["id"])
    assert [n["event_id"] for n in notes if n["kind"] == "event.deleted"] == ids
    assert [n["event_id"] for n in notes if n["kind"] == "permission.revoked"] == theirs
    [row] = await sql(database_url, "SELECT count(*) AS n, count(DISTINCT event_id) AS events FROM event_versions "
                                    "WHERE kind = 'deleted' AND actor_id = $1", closer["id"])
    assert (row["n"], row["events"]) == (n, n)
    left = await sql(database_url, "SELECT event_id FROM event_access_changes WHERE action = 'left' ORDER BY event_id")
    assert [r["event_id"] for r in left] == theirs


async def test_closing_is_one_transaction(client, database_url):
    """A failure late in the close (injected by a trigger in the database) leaves everything
    as it was: the account, its tokens, its events and its shares."""
    w = await closing_world(client)
    (closer, ch), (_editor, eh), (_other, oh) = w["closer"], w["editor"], w["other"]
    async with connect(database_url) as conn:
        await conn.execute("""
            CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected failure'; END $$;
            CREATE TRIGGER test_fail BEFORE UPDATE OF revoked_at ON token_families
            FOR EACH ROW EXECUTE FUNCTION test_fail();""")
        resp = await close_account(client, ch)
        await assert_problem(resp, 500, "internal")
        await conn.execute("DROP TRIGGER test_fail ON token_families; DROP FUNCTION test_fail();")
    assert await me_status(client, ch["Authorization"].split()[1]) == 200
    assert (await client.get(f"/api/events/{w['mine']['id']}", headers=eh)).status == 200
    resp = await client.get(f"/api/events/{w['theirs']['id']}/permissions", headers=oh)
    assert closer["id"] in [p["user_id"] for p in (await resp.json())["items"]]
    [row] = await sql(database_url, "SELECT username, email, deleted_at FROM users WHERE id = $1", closer["id"])
    assert (row["username"], row["email"], row["deleted_at"]) == (closer["username"], closer["email"], None)
    assert (await kinds(client, eh))[-1][0] == "event.shared"  # nobody was told anything
    assert (await close_account(client, ch)).status == 204  # and it can be closed for real


async def test_wrong_password_is_401_and_closes_nothing(client):
    w = await closing_world(client)
    (closer, ch), (_editor, eh) = w["closer"], w["editor"]
    body = await assert_problem(await close_account(client, ch, "not my password"), 401, "unauthorized")
    assert "password" in body["detail"]
    assert await me_status(client, ch["Authorization"].split()[1]) == 200
    assert (await client.get(f"/api/events/{w['mine']['id']}", headers=eh)).status == 200
    await login(client, closer["username"])


@pytest.mark.parametrize("kwargs, loc", [
    ({}, ["body", "password"]),
    ({"json": {}}, ["body", "password"]),
    ({"json": {"password": ""}}, ["body", "password"]),
])
async def test_close_validation(client, kwargs, loc):
    _, tokens, headers = await user_with_token(client)
    resp = await client.delete("/api/auth/me", headers=headers, **kwargs)
    problem = await assert_problem(resp, 422, "validation")
    assert [e["loc"] for e in problem["errors"]] == [loc]
    assert await me_status(client, tokens["access_token"]) == 200


async def test_closed_names_are_reserved(client):
    for name in ("deleted-user-1", "Deleted-User-77", "deleted-user-x"):
        resp = await client.post("/api/auth/register", json={
            "username": name, "email": f"{name}@example.com", "password": PASSWORD})
        problem = await assert_problem(resp, 422, "validation")
        assert [e["loc"] for e in problem["errors"]] == [["body", "username"]], name
    await register(client, "deleted-users")  # only that prefix
    await register(client, "deleted_user-1")


async def test_a_create_or_share_that_waited_for_a_close_finds_the_account_gone(client, database_url):
    """A request of (or to) an account already under way when the close commits: the test
    plays the close (the calendar lock and the user's row, then deleted_at) in a transaction
    of its own; a create of that account waits for the lock and is then refused (401), a
    share to it waits for the row and finds no such user (422); nothing is written."""
    (me, mh), (friend, fh) = await people(client, 2)
    _, theirs = await create_event(client, fh)
    async with connect(database_url) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", me["id"])
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", me["id"])
        creating = asyncio.ensure_future(client.post("/api/events", headers=mh, json={**STANDUP, "title": "Late"}))
        sharing = asyncio.ensure_future(client.post(f"/api/events/{theirs['id']}/share", headers=fh,
                                                    json={"user_id": me["id"], "role": "viewer"}))
        await asyncio.sleep(0.3)
        assert not creating.done() and not sharing.done()  # both wait for the close
        await conn.execute("UPDATE users SET deleted_at = now() WHERE id = $1", me["id"])
    await assert_problem(await creating, 401, "unauthorized")
    body = await assert_problem(await sharing, 422, "validation")
    assert body["errors"][0]["loc"][-1] == "user_id"
    rows = await sql(database_url, "SELECT count(*) AS n FROM event_permissions WHERE user_id = $1", me["id"])
    assert rows[0]["n"] == 0


async def test_a_login_checked_against_the_old_password_loses_to_its_change(client, database_url):
    """A login whose bcrypt check of the old hash ends while the password is being changed:
    the test plays the change (the user's row updated, not yet committed); the login waits
    for it and is refused, instead of opening a login with the old password."""
    user, _, _ = await user_with_token(client)
    async with connect(database_url) as conn, conn.transaction():
        await conn.execute("UPDATE users SET password_hash = 'changed' WHERE id = $1", user["id"])
        logging_in = asyncio.ensure_future(client.post("/api/auth/login", json={
            "username": user["username"], "password": PASSWORD}))
        await asyncio.sleep(0.3)
        assert not logging_in.done()  # waits for the change
    await assert_problem(await logging_in, 401, "unauthorized")


async def test_a_share_in_a_long_transaction_does_not_hold_up_the_users_password_change(client, database_url):
    """A share to V whose transaction goes on (here it waits, as it commits, for the lock of
    V's notification bucket, which the test holds) holds nothing of V's meanwhile: V changes
    their password at once; the share then commits."""
    (owner, oh), (victim, vh) = await people(client, 2)
    _, event = await create_event(client, oh)
    async with connect(database_url) as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("SELECT pg_advisory_xact_lock($1::int, $2::int)", notifications_db.LOCK_CLASS,
                               victim["id"] % notifications_db.BUCKETS)
            sharing = asyncio.ensure_future(client.post(f"/api/events/{event['id']}/share", headers=oh,
                                                        json={"user_id": victim["id"], "role": "viewer"}))
            await asyncio.sleep(0.3)
            assert not sharing.done()  # waiting at its commit
            resp = await asyncio.wait_for(change_password(client, vh), timeout=3)
            assert resp.status == 200, await resp.text()
        finally:
            await tx.rollback()
    assert (await sharing).status == 200
