"""The windowed list (GET /api/events?start&end) reads regular rows from the (user_id,
starts_at) index from a day before the window and the irregular ones (series, long events,
envelopes that do not start at the event's start) from a GiST index of their own (migration
0008). Whatever the mix, each page must be exactly the rows whose envelope overlaps the
window, in (start, id) order, as the plain overlap query gives them."""
from __future__ import annotations

import datetime as dt

from calsvc.db import events as event_db
from tests.factories import connect, event_json, grant, occurrence_url, user_with_token

T = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)  # the day Europe's clocks go forward
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = 24 * HOUR
TRUTH = """
SELECT event_id FROM event_permissions
WHERE user_id = $1 AND live AND during && tstzrange($2, $3)
  AND ($4::timestamptz IS NULL OR (starts_at, event_id) > ($4, $5))
ORDER BY starts_at, event_id LIMIT $6
"""


async def test_windowed_pages_are_exactly_the_overlapping_rows_in_order(client, database_url):
    user, _, headers = await user_with_token(client)
    other, _, other_headers = await user_with_token(client)
    lengths = [15 * MINUTE, 23 * HOUR + 59 * MINUTE, DAY, DAY + MINUTE, 49 * HOUR,
               dt.timedelta(days=366)]
    items = [event_json(f"{length} {k}", T - length + k * 7 * MINUTE + shift, length)
             for k, length in enumerate(lengths) for shift in (-3 * DAY, -DAY, dt.timedelta(0), DAY)]
    items += [
        event_json("three hours", T, 30 * MINUTE, recurrence={"rrule": "FREQ=HOURLY;COUNT=3"}),
        event_json("weekly", T - 7 * DAY, HOUR, recurrence={"rrule": "FREQ=WEEKLY"}),
        event_json("daily until", T - 2 * DAY, HOUR, recurrence={"rrule": "FREQ=DAILY;UNTIL=20260331T120000Z"}),
        # two occurrences in a day, the second to be moved before the first (below)
        event_json("moved far", T + 2 * DAY, HOUR, recurrence={"rrule": "FREQ=HOURLY;INTERVAL=2;COUNT=2"}),
        event_json("moved near", T, HOUR, recurrence={"rrule": "FREQ=HOURLY;INTERVAL=2;COUNT=2"}),
    ]
    resp = await client.post("/api/events/batch?on_conflict=allow", json={"events": items}, headers=headers)
    assert resp.status == 201, await resp.text()
    created = {e["title"]: e for e in (await resp.json())["items"]}
    # short envelopes that start before the event's start (an occurrence moved earlier):
    # irregular rows, found in windows before the event starts
    for title, moved_to in (("moved far", T + 2 * DAY - 20 * HOUR), ("moved near", T - 10 * HOUR)):
        event = created[title]
        second = (dt.datetime.fromisoformat(event["start_time"]) + 2 * HOUR).isoformat()
        resp = await client.put(occurrence_url(event, second) + "?on_conflict=allow", headers=headers, json={
            "start_time": moved_to.isoformat(), "end_time": (moved_to + HOUR).isoformat()})
        assert resp.status == 200, await resp.text()
    resp = await client.post("/api/events", json=event_json("theirs", T + 3 * HOUR, 25 * HOUR), headers=other_headers)
    assert resp.status == 201
    await grant(database_url, (await resp.json())["id"], user["id"], "viewer")

    async with connect(database_url) as conn:
        irregular = await conn.fetchval(
            "SELECT count(*) FROM event_permissions WHERE user_id = $1 AND irregular AND NOT long", user["id"])
        assert irregular == 2  # the two moved series
        edges = set()
        for lower, upper in await conn.fetch("SELECT lower(during), upper(during) FROM event_permissions"):
            edges |= {e for e in (lower, upper) if e is not None}
        windows = [(edge + shift, None if length is None else edge + shift + length)
                   for edge in edges
                   for shift in (-DAY - MINUTE, -DAY, -MINUTE, dt.timedelta(0), MINUTE)
                   for length in (MINUTE, DAY, dt.timedelta(days=3), None)]
        checked = 0
        for lower, upper in windows:
            for limit in (3, 50):
                after = None
                while True:
                    rows = await event_db.list_visible(conn, user["id"], role=None, window=(lower, upper),
                                                       q=None, after=after, limit=limit)
                    truth = [r["event_id"] for r in await conn.fetch(
                        TRUTH, user["id"], lower, upper, after and after[0], after and after[1], limit)]
                    assert [e.id for e in rows] == truth, (lower, upper, after, limit)
                    checked += 1
                    if len(rows) < limit:
                        break
                    after = (rows[-1].start_time, rows[-1].id)
        assert checked > 1000


async def test_the_api_pages_through_a_window_across_both_indexes(client):
    _, _, headers = await user_with_token(client)
    items = [event_json(f"single {k}", T + k * HOUR, 30 * MINUTE) for k in range(-30, 30)]
    items += [event_json("started long before", T - 10 * DAY, 11 * DAY),
              event_json("weekly", T - 70 * DAY, HOUR, recurrence={"rrule": "FREQ=WEEKLY"}),
              event_json("late short", T - 3 * DAY, HOUR, recurrence={"rrule": "FREQ=DAILY;INTERVAL=3;COUNT=2"})]
    resp = await client.post("/api/events/batch?on_conflict=allow", json={"events": items}, headers=headers)
    assert resp.status == 201, await resp.text()
    titles, cursor = [], None
    while True:
        params = {"start": T.isoformat(), "end": (T + DAY).isoformat(), "limit": "7"}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get("/api/events", params=params, headers=headers)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        titles += [item["title"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # in start order: the series and the long event (started before), then the singles from
    # T on (the one at T - 1 h ends at T - 30 min), the late series' one occurrence at T among them
    assert titles[:2] == ["weekly", "started long before"]
    singles = [t for t in titles if t.startswith("single")]
    assert singles == [f"single {k}" for k in range(0, 24)]
    assert "late short" in titles and len(titles) == 2 + 24 + 1
