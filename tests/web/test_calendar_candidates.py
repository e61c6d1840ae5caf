"""The candidates of a conflict check (migration 0005): short rows and long ones from two
GiST indexes, the long ones' content by version from a cache of the service. They must be
exactly the permission rows whose envelope overlaps the range, and a check must see a series
as it is now, whichever process changed it."""
from __future__ import annotations

import datetime as dt

from calsvc.db import events as event_db
from tests.conftest import assert_problem
from tests.factories import connect, event_json, grant, user_with_token

UTC = dt.UTC
# Berlin's clocks go forward at 01:00 UTC on 29 March 2026: the events span that night, and
# the answer must not depend on the session's zone (no '1 day' arithmetic that would follow it).
T = dt.datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)

TRUTH = """
SELECT event_id FROM event_permissions
WHERE user_id = $1 AND live AND during && tstzrange($2, $3)
"""


async def test_candidates_are_exactly_the_overlapping_envelopes(client, database_url):
    user, _, headers = await user_with_token(client)
    other, _, other_headers = await user_with_token(client)
    lengths = [15 * MINUTE, 23 * HOUR + 59 * MINUTE, 24 * HOUR, 24 * HOUR + MINUTE, 49 * HOUR,
               dt.timedelta(days=366)]
    items = [event_json(f"{length}", T - length + k * 7 * MINUTE, length) for k, length in enumerate(lengths)]
    items += [
        # a series whose envelope is short (its occurrences all within 24 hours), one long
        event_json("three hours", T, 30 * MINUTE, recurrence={"rrule": "FREQ=HOURLY;COUNT=3"}),
        event_json("weekly", T - 7 * 24 * HOUR, HOUR, recurrence={"rrule": "FREQ=WEEKLY"}),
        event_json("daily until", T - 2 * 24 * HOUR, HOUR, recurrence={"rrule": "FREQ=DAILY;UNTIL=20260331T120000Z"}),
    ]
    resp = await client.post("/api/events/batch?on_conflict=allow", json={"events": items}, headers=headers)
    assert resp.status == 201, await resp.text()
    # and one of another user's, shared with the first: in their calendar too
    resp = await client.post("/api/events", json=event_json("theirs", T + 3 * HOUR, 25 * HOUR), headers=other_headers)
    assert resp.status == 201
    await grant(database_url, (await resp.json())["id"], user["id"], "viewer")

    edges = set()
    async with connect(database_url) as conn:
        for lower, upper in await conn.fetch("SELECT lower(during), upper(during) FROM event_permissions"):
            edges |= {lower, upper or T + dt.timedelta(days=400)}
        windows = [(edge + shift, edge + shift + length)
                   for edge in edges
                   for shift in (-24 * HOUR - MINUTE, -24 * HOUR, -24 * HOUR + MINUTE, -MINUTE, dt.timedelta(0), MINUTE)
                   for length in (MINUTE, 24 * HOUR, dt.timedelta(days=3))]
        for zone in ("UTC", "Europe/Berlin"):
            await conn.execute(f"SET TimeZone = '{zone}'")
            seen_long = set()
            for lower, upper in windows:
                short, long = await event_db.list_calendar(conn, user["id"], lower, upper)
                truth = {r["event_id"] for r in await conn.fetch(TRUTH, user["id"], lower, upper)}
                found = [e.id for e in short] + [event_id for event_id, _ in long]
                assert sorted(found) == sorted(truth), (zone, lower, upper)
                seen_long |= {event_id for event_id, _ in long}
            # with pieces (a draft of many occurrences): the short rows overlapping one of
            # them, the long rows overlapping the whole range, whatever the pieces
            for lower, upper in windows[::7]:
                pieces = [(lower + k * (upper - lower) / 5, lower + (k + 1) * (upper - lower) / 5)
                          for k in range(0, 5, 2)]
                short, long = await event_db.list_calendar(conn, user["id"], lower, upper, pieces)
                near = set()
                for a, b in pieces:
                    near |= {r["event_id"] for r in await conn.fetch(
                        TRUTH + " AND NOT long", user["id"], a, b)}
                assert sorted(e.id for e in short) == sorted(near), (zone, lower, upper)
                assert sorted(i for i, _ in long) == sorted(r["event_id"] for r in await conn.fetch(
                    TRUTH + " AND long", user["id"], lower, upper)), (zone, lower, upper)
            # long: an envelope of more than 24 hours, the rest short
            expected_long = {r["event_id"] for r in await conn.fetch(
                "SELECT event_id FROM event_permissions WHERE user_id = $1 AND "
                "(upper(during) IS NULL OR upper(during) - lower(during) > interval '24 hours')", user["id"])}
            assert seen_long == expected_long and len(expected_long) == 6


async def test_a_check_sees_a_series_as_another_process_left_it(make_client):
    here, there = await make_client(), await make_client()  # two apps: two caches, one database
    _, _, headers = await user_with_token(here)
    resp = await here.post("/api/events", headers=headers, json=event_json(
        "weekly", T, HOUR, recurrence={"rrule": "FREQ=WEEKLY"}))
    assert resp.status == 201
    series = await resp.json()
    third = T + 14 * 24 * HOUR
    resp = await here.post("/api/events", json=event_json("clash", third, 30 * MINUTE), headers=headers)
    await assert_problem(resp, 409, "scheduling-conflict")  # `here` has the series cached now

    resp = await there.patch(f"/api/events/{series['id']}", headers=headers, json={
        "start_time": (T + 2 * HOUR).isoformat(), "end_time": (T + 3 * HOUR).isoformat()})
    assert resp.status == 200, await resp.text()
    resp = await here.post("/api/events", json=event_json("moved away", third + 2 * HOUR, 30 * MINUTE), headers=headers)
    body_ = await assert_problem(resp, 409, "scheduling-conflict")
    assert [c["event_id"] for c in body_["conflicts"]] == [series["id"]]
    resp = await here.post("/api/events", json=event_json("free now", third, 30 * MINUTE), headers=headers)
    assert resp.status == 201, await resp.text()

    resp = await there.delete(f"/api/events/{series['id']}", headers=headers)
    assert resp.status == 204
    resp = await here.post("/api/events", json=event_json("gone", third + 2 * HOUR, 30 * MINUTE), headers=headers)
    assert resp.status == 201, await resp.text()
