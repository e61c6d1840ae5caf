"""Events: create, read, list and expand them; conflicts of creates; free/busy."""
from __future__ import annotations

import pytest

from tests.conftest import assert_problem
from tests.factories import STANDUP, connect, create_event, user_with_token

EVENT_KEYS = {"id", "title", "description", "location", "start_time", "end_time", "timezone", "all_day",
              "recurrence", "owner_id", "my_role", "version", "created_at", "updated_at", "updated_by"}


async def test_create_and_read_one_event(client, database_url):
    user, _, headers = await user_with_token(client)
    resp, event = await create_event(client, headers, description="daily", location="Room 1")
    assert set(event) == EVENT_KEYS
    assert resp.headers["Location"] == f"/api/events/{event['id']}"
    assert resp.headers["ETag"] == '"1"'
    assert event["start_time"] == "2026-12-01T09:00:00+01:00"
    assert event["end_time"] == "2026-12-01T09:15:00+01:00"
    assert event["owner_id"] == user["id"] == event["updated_by"]
    assert event["my_role"] == "owner" and event["version"] == 1 and event["recurrence"] is None
    assert event["created_at"].endswith("Z")

    got = await client.get(f"/api/events/{event['id']}", headers=headers)
    assert got.status == 200
    assert got.headers["ETag"] == '"1"' and "Accept" in got.headers["Vary"]
    assert await got.json() == event

    async with connect(database_url) as conn:
        row = await conn.fetchrow("SELECT version, kind, actor_id, snapshot FROM event_versions WHERE event_id = $1",
                                  event["id"])
        role = await conn.fetchval("SELECT role FROM event_permissions WHERE event_id = $1 AND user_id = $2",
                                   event["id"], user["id"])
    assert (row["version"], row["kind"], row["actor_id"], role) == (1, "created", user["id"], "owner")


async def test_times_are_answered_in_the_event_zone(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, start_time="2026-12-01T08:00:00Z", end_time="2026-12-01T08:30:00Z")
    assert event["start_time"] == "2026-12-01T09:00:00+01:00"
    _, event = await create_event(client, headers, timezone="UTC", on_conflict="allow")  # same slot again
    assert event["start_time"] in ("2026-12-01T08:00:00Z", "2026-12-01T08:00:00+00:00")


async def test_if_none_match_gives_304(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    resp = await client.get(f"/api/events/{event['id']}", headers={**headers, "If-None-Match": '"1"'})
    assert resp.status == 304 and resp.headers["ETag"] == '"1"'
    resp = await client.get(f"/api/events/{event['id']}", headers={**headers, "If-None-Match": 'W/"1", "9"'})
    assert resp.status == 304
    resp = await client.get(f"/api/events/{event['id']}", headers={**headers, "If-None-Match": '"7"'})
    assert resp.status == 200


async def test_recurrence_is_normalised_and_described(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, recurrence={"rrule": "RRULE:freq=weekly;byday=MO,WE;count=10"})
    rec = event["recurrence"]
    assert rec["rrule"] == "FREQ=WEEKLY;COUNT=10;BYDAY=MO,WE"
    assert rec["pattern"]["frequency"] == "weekly" and rec["pattern"]["by_weekday"] == ["MO", "WE"]
    assert rec["exdates"] == [] and rec["rdates"] == []
    _, event = await create_event(client, headers, recurrence={
        "pattern": {"frequency": "daily", "interval": 2, "until": "2026-12-31T23:00:00+01:00"}},
        on_conflict="allow")  # it shares occurrences with the first
    assert event["recurrence"]["rrule"] == "FREQ=DAILY;INTERVAL=2;UNTIL=20261231T220000Z"


@pytest.mark.parametrize("changes,loc", [
    ({"end_time": "2026-12-01T08:00:00+01:00"}, ["body", "end_time"]),
    ({"all_day": True, "start_time": "2026-12-01T00:00:00+01:00", "end_time": "2026-12-01T00:00:00+01:00"},
     ["body", "end_time"]),
    ({"end_time": "2027-12-03T09:00:00+01:00"}, ["body", "end_time"]),
    ({"start_time": "2026-12-01T09:00:00"}, ["body", "start_time"]),
    ({"timezone": "Mars/Olympus"}, ["body", "timezone"]),
    ({"timezone": "../etc/passwd"}, ["body", "timezone"]),
    ({"title": ""}, ["body", "title"]),
    ({"title": "x" * 201}, ["body", "title"]),
    ({"description": "x" * 10_001}, ["body", "description"]),
    ({"location": "x" * 501}, ["body", "location"]),
    ({"all_day": True}, ["body", "start_time"]),
    ({"recurrence": {"rrule": "FREQ=MINUTELY"}}, ["body", "recurrence", "rrule"]),
    ({"recurrence": {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}}, ["body", "recurrence", "rrule"]),
    ({"recurrence": {"rrule": "FREQ=DAILY", "pattern": {"frequency": "daily"}}}, ["body", "recurrence"]),
    ({"recurrence": {}}, ["body", "recurrence", "rrule"]),
    ({"recurrence": {"rrule": "FREQ=DAILY;UNTIL=20200101T000000Z"}}, ["body", "recurrence"]),
])
async def test_invalid_events_are_422_and_not_stored(client, changes, loc, database_url):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", json={**STANDUP, **changes}, headers=headers)
    problem = await assert_problem(resp, 422, "validation")
    assert problem["errors"][0]["loc"] == loc, problem
    async with connect(database_url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0


async def test_an_all_day_event_at_midnight_is_fine(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, all_day=True, start_time="2026-12-24T00:00:00+01:00",
                                  end_time="2026-12-25T00:00:00+01:00")
    assert event["all_day"] is True


async def test_others_cannot_see_an_event_nor_tell_it_exists(client):
    _, _, owner = await user_with_token(client)
    _, _, stranger = await user_with_token(client)
    _, event = await create_event(client, owner)
    hidden = await client.get(f"/api/events/{event['id']}", headers=stranger)
    missing = await client.get("/api/events/999999", headers=stranger)
    await assert_problem(hidden, 404, "not-found")
    await assert_problem(missing, 404, "not-found")
    assert (await hidden.json(content_type=None))["detail"] == (await missing.json(content_type=None))["detail"]
    await assert_problem(await client.get("/api/events/99999999999999999999", headers=stranger), 404, "not-found")
    await assert_problem(await client.get(f"/api/events/{event['id']}"), 401, "unauthorized")


async def test_msgpack_round_trip(client):
    import msgpack

    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", data=msgpack.packb(STANDUP),
                             headers={**headers, "Content-Type": "application/msgpack",
                                      "Accept": "application/msgpack"})
    assert resp.status == 201 and resp.content_type == "application/msgpack"
    event = msgpack.unpackb(await resp.read())
    assert event["start_time"] == "2026-12-01T09:00:00+01:00"


async def ids(client, headers, **params):
    resp = await client.get("/api/events", params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body) == {"items", "next_cursor"}
    return [e["id"] for e in body["items"]], body["next_cursor"]


async def test_listing_in_start_order_with_keyset_pages(client):
    _, _, headers = await user_with_token(client)
    made = []
    for day in (5, 3, 9, 1, 7):
        _, event = await create_event(client, headers, start_time=f"2026-12-0{day}T09:00:00+01:00",
                                      end_time=f"2026-12-0{day}T10:00:00+01:00")
        made.append((day, event["id"]))
    expected = [i for _, i in sorted(made)]
    assert (await ids(client, headers))[0] == expected
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page, cursor = await ids(client, headers, **params)
        seen += page
        if cursor is None:
            break
    assert seen == expected


async def test_window_keeps_events_with_an_occurrence_in_it(client):
    _, _, headers = await user_with_token(client)
    _, single = await create_event(client, headers)  # 1 Dec 09:00-09:15 Berlin
    _, weekly = await create_event(client, headers, start_time="2026-11-30T12:00:00+01:00",
                                   end_time="2026-11-30T13:00:00+01:00",
                                   recurrence={"rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=4"})
    # 2 Dec: inside the weekly envelope but no Monday: neither
    assert (await ids(client, headers, start="2026-12-02T00:00:00+01:00", end="2026-12-03T00:00:00+01:00"))[0] == []
    # 7 Dec (a Monday), an unencoded "+" included: the series only
    assert (await ids(client, headers, start="2026-12-07T00:00:00 01:00", end="2026-12-08T00:00:00+01:00"))[0] == [weekly["id"]]
    # back-to-back with the single event is no overlap
    assert (await ids(client, headers, start="2026-12-01T09:15:00+01:00", end="2026-12-01T10:00:00+01:00"))[0] == []
    # open-ended windows (the last Monday is 21 Dec, 12:00-13:00)
    assert (await ids(client, headers, start="2026-12-21T12:59:00+01:00"))[0] == [weekly["id"]]
    assert (await ids(client, headers, start="2026-12-21T13:00:00+01:00"))[0] == []
    assert (await ids(client, headers, end="2026-12-01T00:00:00+01:00"))[0] == [weekly["id"]]


async def test_listing_filters_and_errors(client):
    _, _, headers = await user_with_token(client)
    _, _, other = await user_with_token(client)
    _, a = await create_event(client, headers, title="Quarterly review", description="numbers")
    _, b = await create_event(client, headers, title="Lunch", description="the 100% plan", on_conflict="allow")
    await create_event(client, other, title="Not mine")
    assert (await ids(client, headers, q="REVIEW"))[0] == [a["id"]]
    assert (await ids(client, headers, q="100%"))[0] == [b["id"]]
    assert (await ids(client, headers, q="_"))[0] == []
    assert sorted((await ids(client, headers, role="owner"))[0]) == sorted([a["id"], b["id"]])
    assert (await ids(client, headers, role="viewer"))[0] == []
    for params, loc in (({"limit": "501"}, "limit"), ({"role": "boss"}, "role"), ({"start": "2026-12-01T09:00:00"}, "start"),
                        ({"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "end"),
                        ({"cursor": "nope"}, "cursor"), ({"expand": "true"}, "start")):
        resp = await client.get("/api/events", params=params, headers=headers)
        problem = await assert_problem(resp, 422, "validation")
        assert problem["errors"][0]["loc"] == ["query", loc], problem


async def occurrences(client, headers, path, **params):
    resp = await client.get(path, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_occurrences_keep_wall_clock_across_dst(client):
    _, _, headers = await user_with_token(client)
    _, weekly = await create_event(client, headers, start_time="2026-10-19T09:00:00+02:00",
                                   end_time="2026-10-19T10:00:00+02:00",
                                   recurrence={"rrule": "FREQ=WEEKLY;BYDAY=MO", "exdates": ["2026-11-02T08:00:00Z"]})
    body = await occurrences(client, headers, f"/api/events/{weekly['id']}/occurrences",
                             start="2026-10-19T00:00:00Z", end="2026-11-10T00:00:00Z")
    starts = [o["start_time"] for o in body["items"]]
    # Berlin leaves summer time on 25 Oct: 09:00 local stays 09:00; 2 Nov is an EXDATE
    assert starts == ["2026-10-19T09:00:00+02:00", "2026-10-26T09:00:00+01:00", "2026-11-09T09:00:00+01:00"]
    first = body["items"][0]
    assert first == {"event_id": weekly["id"], "occurrence_start": "2026-10-19T09:00:00+02:00",
                     "start_time": "2026-10-19T09:00:00+02:00", "end_time": "2026-10-19T10:00:00+02:00",
                     "title": "Standup", "is_exception": False, "cancelled": False}
    assert body["next_cursor"] is None


async def test_occurrence_windows_are_bounded(client):
    _, _, headers = await user_with_token(client)
    _, daily = await create_event(client, headers, recurrence={"rrule": "FREQ=HOURLY"})
    path = f"/api/events/{daily['id']}/occurrences"
    for params in ({"start": "2026-12-01T00:00:00Z", "end": "2029-12-01T00:00:00Z"},   # over 2 years
                   {"start": "2026-12-01T00:00:00Z", "end": "2027-12-01T00:00:00Z"},   # over 5,000
                   {"start": "2026-12-01T00:00:00Z"}):
        resp = await client.get(path, params=params, headers=headers)
        await assert_problem(resp, 422, "validation")
    _, _, stranger = await user_with_token(client)
    resp = await client.get(path, params={"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"},
                            headers=stranger)
    await assert_problem(resp, 404, "not-found")


async def test_expand_lists_occurrences_of_all_events_in_order(client):
    _, _, headers = await user_with_token(client)
    _, single = await create_event(client, headers, start_time="2026-12-02T10:00:00+01:00", end_time="2026-12-02T11:00:00+01:00")
    _, daily = await create_event(client, headers, start_time="2026-12-01T09:00:00+01:00", end_time="2026-12-01T09:30:00+01:00",
                                  recurrence={"rrule": "FREQ=DAILY;COUNT=3"})
    window = {"start": "2026-12-01T00:00:00+01:00", "end": "2026-12-04T00:00:00+01:00", "expand": "true"}
    body = await occurrences(client, headers, "/api/events", **window)
    got = [(o["event_id"], o["start_time"]) for o in body["items"]]
    assert got == [(daily["id"], "2026-12-01T09:00:00+01:00"), (daily["id"], "2026-12-02T09:00:00+01:00"),
                   (single["id"], "2026-12-02T10:00:00+01:00"), (daily["id"], "2026-12-03T09:00:00+01:00")]
    paged, cursor = [], None
    while True:
        body = await occurrences(client, headers, "/api/events", limit="3", **window, **({"cursor": cursor} if cursor else {}))
        paged += [(o["event_id"], o["start_time"]) for o in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert paged == got
    resp = await client.get("/api/events", params={"expand": "true", "start": "2026-12-01T00:00:00Z"}, headers=headers)
    problem = await assert_problem(resp, 422, "validation")
    assert problem["errors"][0]["loc"] == ["query", "end"]


# -- conflicts ----------------------------------------------------------------------------

async def test_reject_is_the_default_and_writes_nothing(client, database_url):
    _, _, headers = await user_with_token(client)
    _, first = await create_event(client, headers)
    resp = await client.post("/api/events", json={**STANDUP, "title": "Clash",
                                                  "start_time": "2026-12-01T09:10:00+01:00",
                                                  "end_time": "2026-12-01T09:40:00+01:00"}, headers=headers)
    problem = await assert_problem(resp, 409, "scheduling-conflict")
    assert problem["conflicts"] == [{"event_id": first["id"], "title": "Standup",
                                     "start_time": "2026-12-01T09:00:00+01:00",
                                     "end_time": "2026-12-01T09:15:00+01:00"}]
    async with connect(database_url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 1


async def test_back_to_back_is_no_conflict(client):
    _, _, headers = await user_with_token(client)
    await create_event(client, headers)
    await create_event(client, headers, start_time="2026-12-01T09:15:00+01:00", end_time="2026-12-01T09:30:00+01:00")
    await create_event(client, headers, start_time="2026-12-01T08:30:00+01:00", end_time="2026-12-01T09:00:00+01:00")


async def test_a_single_event_on_the_third_occurrence_of_a_weekly_series(client):
    _, _, headers = await user_with_token(client)
    _, weekly = await create_event(client, headers, title="Weekly", start_time="2026-11-02T10:00:00+01:00",
                                   end_time="2026-11-02T11:00:00+01:00", recurrence={"rrule": "FREQ=WEEKLY"})
    # between occurrences: fine
    await create_event(client, headers, start_time="2026-11-17T10:00:00+01:00", end_time="2026-11-17T11:00:00+01:00")
    resp = await client.post("/api/events", json={**STANDUP, "start_time": "2026-11-16T10:30:00+01:00",
                                                  "end_time": "2026-11-16T10:45:00+01:00"}, headers=headers)
    problem = await assert_problem(resp, 409, "scheduling-conflict")
    assert [(c["event_id"], c["start_time"]) for c in problem["conflicts"]] == [(weekly["id"], "2026-11-16T10:00:00+01:00")]


async def test_allow_writes_and_lists_the_conflicts(client):
    _, _, headers = await user_with_token(client)
    _, first = await create_event(client, headers)
    resp = await client.post("/api/events", params={"on_conflict": "allow"}, json=STANDUP, headers=headers)
    assert resp.status == 201
    body = await resp.json()
    assert [c["event_id"] for c in body["conflicts"]] == [first["id"]]


async def test_shift_moves_to_the_earliest_free_slot(client):
    _, _, headers = await user_with_token(client)
    await create_event(client, headers)  # 09:00-09:15
    await create_event(client, headers, start_time="2026-12-01T09:15:00+01:00", end_time="2026-12-01T09:45:00+01:00")
    _, moved = await create_event(client, headers, on_conflict="shift", title="Moved",
                                  start_time="2026-12-01T09:05:00+01:00", end_time="2026-12-01T09:25:00+01:00")
    assert (moved["start_time"], moved["end_time"]) == ("2026-12-01T09:45:00+01:00", "2026-12-01T10:05:00+01:00")
    resp = await client.post("/api/events", params={"on_conflict": "shift"},
                             json={**STANDUP, "recurrence": {"rrule": "FREQ=DAILY"}}, headers=headers)
    await assert_problem(resp, 422, "validation")


async def test_shift_without_a_free_slot_in_30_days_is_409(client):
    _, _, headers = await user_with_token(client)
    await create_event(client, headers, title="Block", start_time="2026-12-01T00:00:00+01:00",
                       end_time="2027-01-15T00:00:00+01:00")
    resp = await client.post("/api/events", params={"on_conflict": "shift"}, json=STANDUP, headers=headers)
    await assert_problem(resp, 409, "scheduling-conflict")


async def test_concurrent_creates_in_one_slot_exactly_one_wins(client):
    import asyncio

    _, _, headers = await user_with_token(client)
    answers = await asyncio.gather(*[
        client.post("/api/events", json={**STANDUP, "title": f"Race {i}"}, headers=headers) for i in range(20)
    ])
    statuses = sorted(r.status for r in answers)
    assert statuses == [201] + [409] * 19, statuses


async def test_conflicts_endpoint_lists_overlapping_pairs(client):
    _, _, headers = await user_with_token(client)
    _, a = await create_event(client, headers, title="A", start_time="2026-12-01T09:00:00Z", end_time="2026-12-01T10:00:00Z",
                              timezone="UTC")
    _, b = await create_event(client, headers, title="B", start_time="2026-12-01T09:30:00Z", end_time="2026-12-01T11:00:00Z",
                              timezone="UTC", on_conflict="allow")
    await create_event(client, headers, title="C", start_time="2026-12-01T11:00:00Z", end_time="2026-12-01T12:00:00Z",
                       timezone="UTC")
    resp = await client.get("/api/events/conflicts", params={"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"},
                            headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body == {"items": [{"event_ids": sorted([a["id"], b["id"]]), "start": "2026-12-01T09:30:00Z",
                               "end": "2026-12-01T10:00:00Z"}], "next_cursor": None}


async def test_freebusy_for_self_and_people_sharing_nothing(client):
    user, _, headers = await user_with_token(client)
    stranger, _, _ = await user_with_token(client)
    await create_event(client, headers, start_time="2026-12-01T09:00:00Z", end_time="2026-12-01T10:00:00Z", timezone="UTC")
    await create_event(client, headers, start_time="2026-12-01T10:00:00Z", end_time="2026-12-01T11:00:00Z", timezone="UTC")
    window = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}
    resp = await client.get("/api/freebusy", params=window, headers=headers)
    assert resp.status == 200
    assert (await resp.json())["items"] == [{"user_id": user["id"], "busy": [
        {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T11:00:00Z"}]}]
    resp = await client.get("/api/freebusy", params={**window, "users": str(stranger["id"])}, headers=headers)
    await assert_problem(resp, 404, "not-found")
    resp = await client.get("/api/freebusy", params={**window, "users": "1,x"}, headers=headers)
    await assert_problem(resp, 422, "validation")


async def test_freebusy_needs_the_consent_of_the_user_shown(client, database_url):
    """Busy times are shown to people the user gave access to an event they own; a share made
    the other way (the asker's own act), or an event handed over to the user, is no consent."""
    (asker, ah), (victim, vh), (third, th) = [(u, h) for u, _, h in [await user_with_token(client) for _ in range(3)]]
    window = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "users": str(victim["id"])}
    # the victim's calendar holds an event of a third party the asker cannot read
    _, private = await create_event(client, th, title="Private", start_time="2026-12-01T09:00:00Z",
                                    end_time="2026-12-01T10:00:00Z", timezone="UTC")
    resp = await client.post(f"/api/events/{private['id']}/share", headers=th, json={"user_id": victim["id"], "role": "viewer"})
    assert resp.status == 200
    # the asker shares a throwaway event with the victim, and hands another over to them
    _, throwaway = await create_event(client, ah, title="Throwaway", start_time="2026-12-05T09:00:00Z",
                                      end_time="2026-12-05T10:00:00Z", timezone="UTC")
    resp = await client.post(f"/api/events/{throwaway['id']}/share", headers=ah, json={"user_id": victim["id"], "role": "editor"})
    assert resp.status == 200
    _, handed = await create_event(client, ah, title="Handed over", start_time="2026-12-06T09:00:00Z",
                                   end_time="2026-12-06T10:00:00Z", timezone="UTC")
    resp = await client.post(f"/api/events/{handed['id']}/share", headers=ah, json={"user_id": victim["id"], "role": "viewer"})
    assert resp.status == 200
    resp = await client.put(f"/api/events/{handed['id']}/permissions/{victim['id']}", headers=ah, json={"role": "owner"})
    assert resp.status == 200, await resp.text()
    await assert_problem(await client.get("/api/freebusy", params=window, headers=ah), 404, "not-found")
    # once the victim shares an event of their own with the asker, the asker sees their busy times
    _, own = await create_event(client, vh, title="Own", start_time="2026-12-07T09:00:00Z",
                                end_time="2026-12-07T10:00:00Z", timezone="UTC")
    resp = await client.post(f"/api/events/{own['id']}/share", headers=vh, json={"user_id": asker["id"], "role": "viewer"})
    assert resp.status == 200
    resp = await client.get("/api/freebusy", params=window, headers=ah)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["items"] == [{"user_id": victim["id"], "busy": [
        {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"}]}]
    # an account an operator removed is gone for free/busy too
    async with connect(database_url) as conn:
        try:
            await conn.execute("UPDATE users SET deleted_at = now() WHERE id = $1", victim["id"])
            await assert_problem(await client.get("/api/freebusy", params=window, headers=ah), 404, "not-found")
        finally:
            await conn.execute("UPDATE users SET deleted_at = NULL WHERE id = $1", victim["id"])
    # the other way round, the throwaway was the asker's consent to the victim
    resp = await client.get("/api/freebusy", params={**window, "users": str(asker["id"])}, headers=vh)
    assert resp.status == 200, await resp.text()


async def test_events_spanning_a_dst_change_are_measured_in_elapsed_time(client):
    """Regressions found by the conflict property test: lengths and overlaps of events whose
    ends lie on both sides of a clock change are instants, not wall clocks."""
    _, _, headers = await user_with_token(client)
    ny = {"timezone": "America/New_York"}
    # 01:45 EDT to 01:00 EST is 15 minutes
    resp = await client.post("/api/events", headers=headers, json={
        **ny, "title": "a", "start_time": "2026-11-01T01:45:00-04:00", "end_time": "2026-11-01T01:00:00-05:00",
        "recurrence": {"rrule": "FREQ=DAILY;COUNT=1"}})
    assert resp.status == 201, await resp.text()
    # the same single event again overlaps it
    clash = await client.post("/api/events", headers=headers, json={
        **ny, "title": "b", "start_time": "2026-11-01T01:50:00-04:00", "end_time": "2026-11-01T01:55:00-04:00"})
    await assert_problem(clash, 409, "scheduling-conflict")
    # a series whose first occurrence lasts 3 h 30 across the change reaches 06:00Z
    await client.post("/api/events", headers=headers, json={
        **ny, "title": "c", "start_time": "2026-11-01T01:00:00-05:00", "end_time": "2026-11-01T01:15:00-05:00"})
    clash = await client.post("/api/events", headers=headers, json={
        **ny, "title": "d", "start_time": "2026-10-31T23:00:00-04:00", "end_time": "2026-11-01T01:30:00-05:00",
        "recurrence": {"rrule": "FREQ=DAILY;COUNT=2"}})
    body = await assert_problem(clash, 409, "scheduling-conflict")
    assert {c["title"] for c in body["conflicts"]} == {"a", "c"}
    # 01:30 CET to 03:30 CEST is one hour: back to back with an event at 03:30 CEST
    berlin = {"timezone": "Europe/Berlin"}
    await client.post("/api/events", headers=headers, json={
        **berlin, "title": "e", "start_time": "2026-03-29T03:30:00+02:00", "end_time": "2026-03-29T04:00:00+02:00"})
    resp = await client.post("/api/events", headers=headers, json={
        **berlin, "title": "f", "start_time": "2026-03-29T01:30:00+01:00", "end_time": "2026-03-29T03:30:00+02:00",
        "recurrence": {"rrule": "FREQ=DAILY;COUNT=2"}})
    assert resp.status == 201, await resp.text()


async def test_a_transfer_is_no_consent_to_see_busy_times(client):
    """An editor changing someone else's event learns of the owner's other events only as
    free/busy would show them: after handing an event over to a victim (no act of the
    victim's), its old owner cannot read the victim's busy times off conflict answers; once
    the victim shares an event of their own with them, the hidden ones show as "busy"."""
    (asker, ah), (victim, vh), (third, th) = [(u, h) for u, _, h in [await user_with_token(client) for _ in range(3)]]
    _, private = await create_event(client, th, title="Private", start_time="2027-01-04T10:00:00Z",
                                    end_time="2027-01-04T11:00:00Z", timezone="UTC")
    resp = await client.post(f"/api/events/{private['id']}/share", headers=th, json={"user_id": victim["id"], "role": "viewer"})
    assert resp.status == 200
    _, handed = await create_event(client, ah, title="Handed", start_time="2027-02-01T09:00:00Z",
                                   end_time="2027-02-01T10:00:00Z", timezone="UTC")
    resp = await client.post(f"/api/events/{handed['id']}/share", headers=ah, json={"user_id": victim["id"], "role": "editor"})
    assert resp.status == 200
    resp = await client.put(f"/api/events/{handed['id']}/permissions/{victim['id']}", headers=ah, json={"role": "owner"})
    assert resp.status == 200
    january = {"start_time": "2027-01-01T00:00:00Z", "end_time": "2027-01-31T00:00:00Z"}
    body = await assert_problem(await client.patch(f"/api/events/{handed['id']}", headers=ah, json=january),
                                409, "scheduling-conflict")
    assert body["conflicts"] == [] and "cannot see" in body["detail"]
    resp = await client.patch(f"/api/events/{handed['id']}", headers=ah, json=january, params={"on_conflict": "allow"})
    assert resp.status == 200 and (await resp.json())["conflicts"] == []
    resp = await client.patch(f"/api/events/{handed['id']}", headers=ah, json={
        "start_time": "2027-02-01T09:00:00Z", "end_time": "2027-02-01T10:00:00Z"})
    assert resp.status == 200
    _, own = await create_event(client, vh, title="Own", start_time="2027-03-01T09:00:00Z",
                                end_time="2027-03-01T10:00:00Z", timezone="UTC")
    resp = await client.post(f"/api/events/{own['id']}/share", headers=vh, json={"user_id": asker["id"], "role": "viewer"})
    assert resp.status == 200
    body = await assert_problem(await client.patch(f"/api/events/{handed['id']}", headers=ah, json=january),
                                409, "scheduling-conflict")
    assert body["conflicts"] == [{"event_id": 0, "title": "busy", "start_time": "2027-01-04T10:00:00Z",
                                  "end_time": "2027-01-04T11:00:00Z"}]
