"""Events that last no time (deadlines, reminders): stored, listed where their start falls,
and occupying nothing: no conflict, not busy, not in overlapping pairs."""
from __future__ import annotations

from tests.conftest import assert_problem
from tests.factories import user_with_token

DEADLINE = {"title": "Report due", "start_time": "2026-12-01T17:00:00Z", "end_time": "2026-12-01T17:00:00Z",
            "timezone": "UTC"}
MEETING = {"title": "Meeting", "start_time": "2026-12-01T16:00:00Z", "end_time": "2026-12-01T18:00:00Z",
           "timezone": "UTC"}


async def test_a_deadline_conflicts_with_nothing_and_is_busy_for_nobody(client):
    user, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", json=MEETING, headers=headers)
    assert resp.status == 201
    meeting = await resp.json()
    # inside a meeting, and the same deadline twice: no conflict under reject
    ids = []
    for _ in range(2):
        resp = await client.post("/api/events", json=DEADLINE, headers=headers)
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        assert (body["start_time"], body["end_time"]) == (DEADLINE["start_time"], DEADLINE["end_time"])
        ids.append(body["id"])
    # a meeting over the deadlines conflicts with the first meeting only
    resp = await client.post("/api/events", json={**MEETING, "title": "Other"}, headers=headers,
                             params={"on_conflict": "allow"})
    assert resp.status == 201
    assert [c["event_id"] for c in (await resp.json())["conflicts"]] == [meeting["id"]]
    window = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}
    resp = await client.get("/api/events/conflicts", params=window, headers=headers)
    assert all(not set(p["event_ids"]) & set(ids) for p in (await resp.json())["items"])
    resp = await client.get("/api/freebusy", params=window, headers=headers)
    assert (await resp.json())["items"] == [{"user_id": user["id"], "busy": [
        {"start": "2026-12-01T16:00:00Z", "end": "2026-12-01T18:00:00Z"}]}]
    # moved onto another deadline's instant, or into a meeting: nothing to refuse
    resp = await client.patch(f"/api/events/{ids[1]}", json={"start_time": "2026-12-01T16:30:00Z",
                                                              "end_time": "2026-12-01T16:30:00Z"}, headers=headers)
    assert resp.status == 200, await resp.text()


async def test_a_deadline_is_listed_in_windows_holding_its_start(client):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", json=DEADLINE, headers=headers)
    deadline = await resp.json()

    async def listed(start: str, end: str, **extra) -> list[int]:
        resp = await client.get("/api/events", params={"start": start, "end": end, **extra}, headers=headers)
        assert resp.status == 200, await resp.text()
        return [item.get("event_id", item.get("id")) for item in (await resp.json())["items"]]

    assert await listed("2026-12-01T17:00:00Z", "2026-12-01T18:00:00Z") == [deadline["id"]]  # at the start
    assert await listed("2026-12-01T16:00:00Z", "2026-12-01T17:00:00Z") == []  # ends at it
    assert await listed("2026-12-01T16:59:59Z", "2026-12-01T17:00:01Z") == [deadline["id"]]
    assert await listed("2026-12-01T17:00:00.000001Z", "2026-12-02T00:00:00Z") == []
    assert await listed("2026-12-01T17:00:00Z", "2026-12-01T18:00:00Z", expand="true") == [deadline["id"]]


async def test_a_series_of_reminders(client):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", headers=headers, json={
        "title": "Take pills", "start_time": "2026-12-01T08:00:00+01:00", "end_time": "2026-12-01T08:00:00+01:00",
        "timezone": "Europe/Berlin", "recurrence": {"rrule": "FREQ=DAILY;COUNT=3"}})
    assert resp.status == 201, await resp.text()
    series = await resp.json()
    resp = await client.get(f"/api/events/{series['id']}/occurrences", headers=headers,
                            params={"start": "2026-12-02T07:00:00Z", "end": "2026-12-04T00:00:00Z"})
    items = (await resp.json())["items"]
    assert [(o["start_time"], o["end_time"]) for o in items] == [
        ("2026-12-02T08:00:00+01:00", "2026-12-02T08:00:00+01:00"),
        ("2026-12-03T08:00:00+01:00", "2026-12-03T08:00:00+01:00")]
    # the last occurrence is inside the series' envelope: a window holding just it lists it
    resp = await client.get("/api/events", headers=headers,
                            params={"start": "2026-12-03T07:00:00Z", "end": "2026-12-03T07:00:01Z"})
    assert [e["id"] for e in (await resp.json())["items"]] == [series["id"]]
    # one occurrence moved to be a zero-length one elsewhere, and still found
    resp = await client.put(f"/api/events/{series['id']}/occurrences/2026-12-02T07:00:00Z", headers=headers,
                            json={"start_time": "2026-12-05T10:00:00Z", "end_time": "2026-12-05T10:00:00Z"})
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/events", headers=headers,
                            params={"start": "2026-12-05T10:00:00Z", "end": "2026-12-05T10:00:01Z"})
    assert [e["id"] for e in (await resp.json())["items"]] == [series["id"]]


async def test_what_still_cannot_be_zero_length(client):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", headers=headers, json={**DEADLINE, "end_time": "2026-12-01T16:59:59Z"})
    body = await assert_problem(resp, 422, "validation")
    assert body["errors"][0]["loc"] == ["body", "end_time"]
    resp = await client.post("/api/events", headers=headers, json={
        **DEADLINE, "all_day": True, "start_time": "2026-12-01T00:00:00Z", "end_time": "2026-12-01T00:00:00Z"})
    body = await assert_problem(resp, 422, "validation")
    assert "at least one day" in body["errors"][0]["msg"]
