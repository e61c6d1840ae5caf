"""Occurrence exceptions: change or cancel one occurrence of a series, see it in
/occurrences and expand=true listings, conflict-checked like an update, dropped when the
series no longer has that occurrence."""
from __future__ import annotations

import datetime as dt

import orjson

from tests.conftest import assert_problem
from tests.factories import connect, create_event, grant, occurrence_url, user_with_token, versions

WEEKLY = {
    "title": "Weekly", "start_time": "2026-10-19T09:00:00+02:00", "end_time": "2026-10-19T10:00:00+02:00",
    "timezone": "Europe/Berlin", "recurrence": {"rrule": "FREQ=WEEKLY;COUNT=4"},
}
# Occurrences: 19 Oct (CEST), 26 Oct, 2 Nov, 9 Nov (CET): 09:00 local each.
WINDOW = "start=2026-10-01T00:00:00Z&end=2026-12-01T00:00:00Z"


async def series(client, headers, **changes):
    _, event = await create_event(client, headers, **{**WEEKLY, **changes})
    return event


async def occurrences(client, headers, event, window=WINDOW):
    resp = await client.get(f"/api/events/{event['id']}/occurrences?{window}", headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def test_change_one_occurrence(client, database_url):
    user, _, headers = await user_with_token(client)
    event = await series(client, headers)
    resp = await client.put(occurrence_url(event, "2026-11-02T09:00:00+01:00"),
                            json={"start_time": "2026-11-02T14:00:00+01:00", "end_time": "2026-11-02T15:30:00+01:00",
                                  "title": "Weekly (afternoon)"}, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["ETag"] == '"2"'
    assert await resp.json() == {
        "event_id": event["id"], "occurrence_start": "2026-11-02T09:00:00+01:00",
        "start_time": "2026-11-02T14:00:00+01:00", "end_time": "2026-11-02T15:30:00+01:00",
        "title": "Weekly (afternoon)", "is_exception": True, "cancelled": False}
    items = await occurrences(client, headers, event)
    assert [(o["start_time"], o["title"], o["is_exception"]) for o in items] == [
        ("2026-10-19T09:00:00+02:00", "Weekly", False), ("2026-10-26T09:00:00+01:00", "Weekly", False),
        ("2026-11-02T14:00:00+01:00", "Weekly (afternoon)", True), ("2026-11-09T09:00:00+01:00", "Weekly", False)]
    rows = await versions(database_url, event["id"])
    assert [(v, k, a, f) for v, k, a, f, _ in rows][-1] == (2, "occurrence_changed", user["id"], ["exceptions"])
    # any offset naming the same instant names the occurrence; a title-only change keeps the times
    resp = await client.put(occurrence_url(event, "2026-11-02T08:00:00Z"), json={"title": "Renamed"},
                            headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["title"] == "Renamed" and body["start_time"] == "2026-11-02T14:00:00+01:00"


async def test_cancel_one_occurrence(client, database_url):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers)
    url = occurrence_url(event, "2026-10-26T09:00:00+01:00")
    resp = await client.delete(url, headers=headers)
    assert resp.status == 204
    items = await occurrences(client, headers, event)
    cancelled = [o for o in items if o["cancelled"]]
    assert [(o["occurrence_start"], o["is_exception"]) for o in cancelled] == [("2026-10-26T09:00:00+01:00", True)]
    assert len(items) == 4
    expanded = await (await client.get(f"/api/events?expand=true&{WINDOW}", headers=headers)).json()
    assert [o["start_time"] for o in expanded["items"]] == [
        "2026-10-19T09:00:00+02:00", "2026-11-02T09:00:00+01:00", "2026-11-09T09:00:00+01:00"]
    # cancelling again changes nothing; the version is the cancellation
    assert (await client.delete(url, headers=headers)).status == 204
    assert [k for _, k, *_ in await versions(database_url, event["id"])] == ["created", "occurrence_cancelled"]
    # the cancelled slot is free
    resp = await client.post("/api/events", json={"title": "Dentist", "start_time": "2026-10-26T09:00:00+01:00",
                                                  "end_time": "2026-10-26T09:30:00+01:00"}, headers=headers)
    assert resp.status == 201, await resp.text()
    # changing a cancelled occurrence brings it back, changed
    resp = await client.put(url, json={"start_time": "2026-10-26T11:00:00+01:00",
                                       "end_time": "2026-10-26T12:00:00+01:00"}, headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["cancelled"] is False and body["start_time"] == "2026-10-26T11:00:00+01:00"


async def test_a_series_with_only_cancelled_occurrences_in_a_window_is_not_listed(client):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers)
    await client.delete(occurrence_url(event, "2026-10-26T09:00:00+01:00"), headers=headers)
    window = "start=2026-10-26T00:00:00Z&end=2026-10-27T00:00:00Z"
    listed = await (await client.get(f"/api/events?{window}", headers=headers)).json()
    assert listed["items"] == []


async def test_a_moved_occurrence_is_found_where_it_went(client):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers)
    # moved past the end of the series: the envelope grows to hold it
    resp = await client.put(occurrence_url(event, "2026-11-09T09:00:00+01:00"),
                            json={"start_time": "2026-12-20T09:00:00+01:00", "end_time": "2026-12-20T10:00:00+01:00"},
                            headers=headers)
    assert resp.status == 200, await resp.text()
    window = "start=2026-12-20T00:00:00Z&end=2026-12-21T00:00:00Z"
    listed = await (await client.get(f"/api/events?{window}", headers=headers)).json()
    assert [e["id"] for e in listed["items"]] == [event["id"]]
    expanded = await (await client.get(f"/api/events?expand=true&{window}", headers=headers)).json()
    assert [(o["occurrence_start"], o["start_time"]) for o in expanded["items"]] == [
        ("2026-11-09T09:00:00+01:00", "2026-12-20T09:00:00+01:00")]
    # and it blocks its new slot
    clash = await client.post("/api/events", json={"title": "x", "start_time": "2026-12-20T09:30:00+01:00",
                                                   "end_time": "2026-12-20T09:45:00+01:00"}, headers=headers)
    body = await assert_problem(clash, 409, "scheduling-conflict")
    assert body["conflicts"] == [{"event_id": event["id"], "title": "Weekly",
                                  "start_time": "2026-12-20T09:00:00+01:00", "end_time": "2026-12-20T10:00:00+01:00"}]
    # its old slot is free
    free = await client.post("/api/events", json={"title": "y", "start_time": "2026-11-09T09:00:00+01:00",
                                                  "end_time": "2026-11-09T10:00:00+01:00"}, headers=headers)
    assert free.status == 201


async def test_an_occurrence_change_is_conflict_checked(client):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers)
    _, other = await create_event(client, headers, title="Lunch", start_time="2026-10-26T12:00:00+01:00",
                                  end_time="2026-10-26T13:00:00+01:00")
    url = occurrence_url(event, "2026-10-26T09:00:00+01:00")
    move = {"start_time": "2026-10-26T12:30:00+01:00", "end_time": "2026-10-26T13:30:00+01:00"}
    body = await assert_problem(await client.put(url, json=move, headers=headers), 409, "scheduling-conflict")
    assert [c["event_id"] for c in body["conflicts"]] == [other["id"]]
    items = await occurrences(client, headers, event)
    assert not any(o["is_exception"] for o in items)
    resp = await client.put(url + "?on_conflict=allow", json=move, headers=headers)
    body = await resp.json()
    assert resp.status == 200 and [c["event_id"] for c in body["conflicts"]] == [other["id"]]
    # moving onto another occurrence of the same series is no conflict with itself
    resp = await client.put(occurrence_url(event, "2026-11-02T09:00:00+01:00"),
                            json={"start_time": "2026-11-09T09:30:00+01:00", "end_time": "2026-11-09T10:30:00+01:00"},
                            headers=headers)
    assert resp.status == 200, await resp.text()
    await assert_problem(await client.put(url + "?on_conflict=shift", json=move, headers=headers), 422, "validation")


async def test_unknown_occurrences_and_bad_paths(client):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers)
    for start in ("2026-10-20T09:00:00+02:00", "2026-11-16T09:00:00+01:00", "2026-10-19T09:00:01+02:00"):
        await assert_problem(await client.put(occurrence_url(event, start), json={"title": "x"}, headers=headers),
                             404, "not-found")
        await assert_problem(await client.delete(occurrence_url(event, start), headers=headers), 404, "not-found")
    for bad in ("yesterday", "2026-10-19T09:00:00"):
        body = await assert_problem(await client.delete(occurrence_url(event, bad), headers=headers), 422, "validation")
        assert body["errors"][0]["loc"] == ["path", "occurrence_start"]
    _, single = await create_event(client, headers, title="Once", start_time="2027-01-01T10:00:00Z",
                                   end_time="2027-01-01T11:00:00Z")
    await assert_problem(await client.delete(occurrence_url(single, "2027-01-01T10:00:00Z"), headers=headers),
                         422, "validation")
    url = occurrence_url(event, "2026-10-19T09:00:00+02:00")
    for changes in ({"end_time": "2026-10-19T08:00:00+02:00"}, {"title": ""}, {"title": None},
                    {"start_time": "2026-10-19T09:00:00"}):
        await assert_problem(await client.put(url, json=changes, headers=headers), 422, "validation")
    await assert_problem(await client.put(occurrence_url({"id": 999999}, "2026-10-19T09:00:00+02:00"),
                                          json={"title": "x"}, headers=headers), 404, "not-found")


async def test_occurrence_roles_and_if_match(client, database_url):
    _, _, headers = await user_with_token(client)
    editor, _, editor_headers = await user_with_token(client)
    viewer, _, viewer_headers = await user_with_token(client)
    event = await series(client, headers)
    await grant(database_url, event["id"], editor["id"], "editor")
    await grant(database_url, event["id"], viewer["id"], "viewer")
    url = occurrence_url(event, "2026-10-19T09:00:00+02:00")
    await assert_problem(await client.put(url, json={"title": "v"}, headers=viewer_headers), 403, "forbidden")
    await assert_problem(await client.delete(url, headers=viewer_headers), 403, "forbidden")
    assert len(await occurrences(client, viewer_headers, event)) == 4
    resp = await client.put(url, json={"title": "e"}, headers={**editor_headers, "If-Match": '"1"'})
    assert resp.status == 200
    stale = await client.delete(url, headers={**editor_headers, "If-Match": '"1"'})
    body = await assert_problem(stale, 412, "precondition-failed")
    assert body["current"]["version"] == 2
    assert (await client.delete(url, headers={**editor_headers, "If-Match": '"2"'})).status == 204


async def test_changing_the_series_drops_exceptions_that_no_longer_fall_on_an_occurrence(client):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers)
    await client.put(occurrence_url(event, "2026-10-26T09:00:00+01:00"), json={"title": "kept"}, headers=headers)
    await client.delete(occurrence_url(event, "2026-11-09T09:00:00+01:00"), headers=headers)
    # a shorter series: 9 Nov is gone, 26 Oct stays
    resp = await client.patch(f"/api/events/{event['id']}", json={"recurrence": {"rrule": "FREQ=WEEKLY;COUNT=3"}},
                              headers=headers)
    assert resp.status == 200
    items = await occurrences(client, headers, event)
    assert [(o["start_time"], o["title"], o["cancelled"]) for o in items] == [
        ("2026-10-19T09:00:00+02:00", "Weekly", False), ("2026-10-26T09:00:00+01:00", "kept", False),
        ("2026-11-02T09:00:00+01:00", "Weekly", False)]
    # a renamed series renames the occurrences that did not rename themselves
    await client.patch(f"/api/events/{event['id']}", json={"title": "Sync"}, headers=headers)
    assert [o["title"] for o in await occurrences(client, headers, event)] == ["Sync", "kept", "Sync"]
    # new times: no occurrence starts where the exceptions were
    await client.patch(f"/api/events/{event['id']}", json={"start_time": "2026-10-19T10:00:00+02:00",
                                                           "end_time": "2026-10-19T11:00:00+02:00"}, headers=headers)
    items = await occurrences(client, headers, event)
    assert not any(o["is_exception"] for o in items) and len(items) == 3


async def test_dst_exception_keeps_wall_clock_of_other_occurrences(client):
    """Moving the occurrence before the autumn change does not disturb the ones after it."""
    _, _, headers = await user_with_token(client)
    event = await series(client, headers, recurrence={"rrule": "FREQ=DAILY;COUNT=3"},
                         start_time="2026-10-24T09:00:00+02:00", end_time="2026-10-24T10:00:00+02:00")
    await client.put(occurrence_url(event, "2026-10-24T07:00:00Z"), json={"start_time": "2026-10-25T08:00:00+01:00",
                                                                          "end_time": "2026-10-25T08:30:00+01:00"},
                     headers=headers)
    items = await occurrences(client, headers, event)
    assert [(o["occurrence_start"], o["start_time"]) for o in items] == [
        ("2026-10-24T09:00:00+02:00", "2026-10-25T08:00:00+01:00"),
        ("2026-10-25T09:00:00+01:00", "2026-10-25T09:00:00+01:00"),
        ("2026-10-26T09:00:00+01:00", "2026-10-26T09:00:00+01:00")]


async def test_paging_keeps_two_occurrences_at_one_time_apart(client):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers)
    resp = await client.put(occurrence_url(event, "2026-11-02T09:00:00+01:00"),
                            json={"start_time": "2026-11-09T09:00:00+01:00", "end_time": "2026-11-09T10:00:00+01:00"},
                            headers=headers)
    assert resp.status == 200, await resp.text()
    seen, cursor = [], None
    while True:
        query = f"{WINDOW}&limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(f"/api/events/{event['id']}/occurrences?{query}", headers=headers)).json()
        seen += [o["occurrence_start"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["2026-10-19T09:00:00+02:00", "2026-10-26T09:00:00+01:00",
                    "2026-11-02T09:00:00+01:00", "2026-11-09T09:00:00+01:00"]


async def test_a_series_keeps_at_most_1000_exceptions(client, database_url):
    """The 1,001st changed or cancelled occurrence is a 422 that says to split the series;
    changing an occurrence that already is an exception, or bringing one back, still works.
    (999 exceptions are written by SQL: they change no envelope, so nothing else moves.)"""
    _, _, headers = await user_with_token(client)
    event = await series(client, headers, start_time="2026-01-05T08:00:00Z", end_time="2026-01-05T08:15:00Z",
                         timezone="UTC", recurrence={"rrule": "FREQ=DAILY"})
    day = dt.timedelta(days=1)
    first = dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC)
    cancelled = {(first + i * day).isoformat(): {"cancelled": True} for i in range(999)}
    async with connect(database_url) as conn:
        await conn.execute("UPDATE events SET exceptions = $2::jsonb WHERE id = $1", event["id"],
                           orjson.dumps(cancelled).decode())
    at = lambda i: occurrence_url(event, (first + i * day).isoformat())  # noqa: E731
    resp = await client.put(at(999), json={"title": "The 1,000th"}, headers=headers)
    assert resp.status == 200, await resp.text()
    for resp in (await client.put(at(1000), json={"title": "One too many"}, headers=headers),
                 await client.delete(at(1001), headers=headers)):
        body = await assert_problem(resp, 422, "validation")
        assert "1,000" in body["detail"] and "split" in body["detail"]
    resp = await client.put(at(999), json={"title": "The 1,000th, renamed"}, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.put(at(3), json={"title": "Back, renamed"}, headers=headers)  # was cancelled
    assert resp.status == 200, await resp.text()
    items = await occurrences(client, headers, event, window="start=2026-01-08T00:00:00Z&end=2026-01-09T00:00:00Z")
    assert [(o["title"], o["cancelled"]) for o in items] == [("Back, renamed", False)]
    # the changelog shows the occurrence each version changed, not the 1,000 others
    resp = await client.get(f"/api/events/{event['id']}/changelog", headers=headers)
    *_, renamed, back = (await resp.json())["items"]
    [change] = back["changes"]
    assert change == {"field": "exceptions", "new": [
        {"occurrence_start": "2026-01-08T08:00:00+00:00", "cancelled": False, "title": "Back, renamed"}], "old": [
        {"occurrence_start": "2026-01-08T08:00:00+00:00", "cancelled": True}]}
    assert [len(c["old"]) + len(c["new"]) for c in renamed["changes"]] == [2]


async def test_the_changed_occurrences_of_a_series_hold_at_most_100000_characters(client):
    _, _, headers = await user_with_token(client)
    event = await series(client, headers, start_time="2026-01-05T08:00:00Z", end_time="2026-01-05T08:15:00Z",
                         timezone="UTC", recurrence={"rrule": "FREQ=DAILY"})
    first = dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC)
    at = lambda i: occurrence_url(event, (first + dt.timedelta(days=i)).isoformat())  # noqa: E731
    for i in range(10):
        resp = await client.put(at(i), json={"description": "x" * 10_000}, headers=headers)
        assert resp.status == 200, await resp.text()
    body = await assert_problem(await client.put(at(10), json={"description": "y"}, headers=headers), 422, "validation")
    assert "100,000 characters" in body["detail"]
    # shortening one is fine, and then there is room again
    resp = await client.put(at(0), json={"description": "short"}, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.put(at(10), json={"description": "y"}, headers=headers)
    assert resp.status == 200, await resp.text()
