"""No request stops the process from answering others: the CPU work of a big batch of
series, and of free/busy or conflicts over a crowded calendar, runs off the event loop. The
test server shares the test's event loop, so a task that wakes every 5 ms sees how long the
loop was held."""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.conftest import assert_problem
from tests.factories import user_with_token

DAILY = {"title": "Daily", "start_time": "2027-01-04T09:00:00Z", "end_time": "2027-01-04T09:30:00Z",
         "timezone": "UTC", "recurrence": {"rrule": "FREQ=DAILY"}}
STALL = 0.25  # seconds: well above a thread's GIL turns (5 ms), far below what the work takes


@contextlib.asynccontextmanager
async def longest_stall():
    """Yields a list that holds, once the block ends, the longest time the loop went
    without running the watcher (beyond its 5 ms sleep)."""
    out: list[float] = []
    worst = 0.0
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal worst
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - before - 0.005)

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.02)
    try:
        yield out
    finally:
        stop.set()
        await task
        out.append(worst)


@pytest.mark.parametrize("strategy,atomic", [("allow", True), ("reject", False)])
async def test_a_batch_of_daily_series_does_not_hold_the_loop(client, strategy, atomic):
    """Endless daily series checked over two years each, all at the same time of day: under
    `allow` every item overlaps every earlier one at every occurrence."""
    _, _, headers = await user_with_token(client)
    items = [{**DAILY, "title": f"Daily {i}"} for i in range(60)]
    async with longest_stall() as stall:
        resp = await client.post("/api/events/batch", headers=headers,
                                 json={"events": items, "on_conflict": strategy, "atomic": atomic})
    assert resp.status == (201 if atomic else 207), await resp.text()
    body = await resp.json()
    # each item lists the first 100 of its conflicts (with item 0 alone: 731)
    if atomic:
        assert [len(e["conflicts"]) for e in body["items"]] == [0] + [100] * 59
    else:
        assert [r["status"] for r in body["results"]] == [201] + [409] * 59
        assert all(len(r["error"]["conflicts"]) == 100 and "at least 100" in r["error"]["detail"]
                   for r in body["results"][1:])
    assert stall[0] < STALL, f"the loop was held {stall[0]:.3f} s"




async def test_free_busy_and_conflicts_of_crowded_calendars(client):
    """Two people with three hourly series each (52,605 occurrences each in the window): each
    calendar alone is expanded, merged and paired off the loop; both at once pass the 100,000
    occurrences one request may expand: a 422, also off the loop."""
    (me, _, mine), (friend, _, theirs) = [await user_with_token(client) for _ in range(2)]
    for headers in (mine, theirs):
        items = [{**DAILY, "title": f"Hourly {i}", "start_time": f"2027-01-04T09:{i * 10:02d}:00Z",
                  "end_time": f"2027-01-04T09:{i * 10 + 10:02d}:00Z", "recurrence": {"rrule": "FREQ=HOURLY"}}
                 for i in range(3)]
        resp = await client.post("/api/events/batch", headers=headers, json={"events": items})
        assert resp.status == 201, await resp.text()
    resp = await client.post(f"/api/events/{(await resp.json())['items'][0]['id']}/share", headers=theirs,
                             json={"user_id": me["id"], "role": "viewer"})  # the friend's consent
    assert resp.status == 200
    window = {"start": "2027-01-04T00:00:00Z", "end": "2029-01-04T00:00:00Z"}
    async with longest_stall() as stall:
        free = await client.get("/api/freebusy", params={**window, "users": str(friend["id"])}, headers=mine)
        pairs = await client.get("/api/events/conflicts", params=window, headers=mine)
        both = await client.get("/api/freebusy", params={**window, "users": f"{me['id']},{friend['id']}"},
                                headers=mine)
    assert free.status == 200, await free.text()
    busy = (await free.json())["items"][0]["busy"]
    assert len(busy) == 17535 and busy[0] == {"start": "2027-01-04T09:00:00Z", "end": "2027-01-04T09:30:00Z"}
    assert pairs.status == 200, await pairs.text()
    # my calendar holds the shared series too: it overlaps mine at every one of its hours
    assert len((await pairs.json())["items"]) == 50
    body = await assert_problem(both, 422, "validation")
    assert body["errors"][0]["loc"] == ["query", "end"] and "100,000" in body["detail"]
    assert stall[0] < STALL, f"the loop was held {stall[0]:.3f} s"


async def test_a_batch_brings_at_most_500000_occurrences_to_its_check(client, database_url):
    _, _, headers = await user_with_token(client)
    items = [{**DAILY, "title": f"Hourly {i}", "recurrence": {"rrule": "FREQ=HOURLY"}} for i in range(29)]
    async with longest_stall() as stall:
        resp = await client.post("/api/events/batch", headers=headers, json={"events": items, "on_conflict": "allow"})
    body = await assert_problem(resp, 422, "validation")
    assert body["errors"][0]["loc"] == ["body", "events"] and "500,000" in body["detail"]
    assert stall[0] < STALL, f"the loop was held {stall[0]:.3f} s"


async def test_a_single_event_over_a_crowded_calendar_is_checked_off_the_loop(client):
    """One event of a year over ten hourly series: few occurrences of its own, 80,000 of the
    calendar's to expand. The check runs in a thread; the 409 lists the first 1,000."""
    _, _, headers = await user_with_token(client)
    items = [{**DAILY, "title": f"Hourly {i}", "start_time": f"2027-01-01T00:{i * 5:02d}:00Z",
              "end_time": f"2027-01-01T00:{i * 5 + 5:02d}:00Z", "recurrence": {"rrule": "FREQ=HOURLY;COUNT=8000"}}
             for i in range(10)]
    resp = await client.post("/api/events/batch", headers=headers, json={"events": items})
    assert resp.status == 201, await resp.text()
    year = {"title": "Sabbatical", "start_time": "2027-01-01T00:00:00Z", "end_time": "2027-12-31T00:00:00Z"}
    async with longest_stall() as stall:
        resp = await client.post("/api/events", headers=headers, json=year)
    body = await assert_problem(resp, 409, "scheduling-conflict")
    assert len(body["conflicts"]) == 1000 and "at least 1000" in body["detail"]
    assert stall[0] < STALL, f"the loop was held {stall[0]:.3f} s"


async def test_listing_rare_series_in_a_window_does_not_hold_the_loop(client):
    """29 February on a Monday: whether a window of decades holds an occurrence is a walk of
    the rule day by day (about 10 ms a series); a page of them is decided in a thread, and so
    is their expansion."""
    _, _, headers = await user_with_token(client)
    rare = {**DAILY, "start_time": "2044-02-29T09:00:00Z", "end_time": "2044-02-29T09:30:00Z",
            "recurrence": {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO"}}
    resp = await client.post("/api/events/batch", headers=headers, params={"on_conflict": "allow"},
                             json={"events": [{**rare, "title": f"Leap {i}"} for i in range(100)]})
    assert resp.status == 201, await resp.text()
    async with longest_stall() as stall:
        listed = await client.get("/api/events", headers=headers, params={
            "start": "2045-01-01T00:00:00Z", "end": "2071-12-31T00:00:00Z", "limit": 500})
        expanded = await client.get("/api/events", headers=headers, params={
            "start": "2045-01-01T00:00:00Z", "end": "2046-12-31T00:00:00Z", "expand": "true"})
    assert listed.status == 200 and (await listed.json())["items"] == []
    assert expanded.status == 200 and (await expanded.json())["items"] == []
    assert stall[0] < STALL, f"the loop was held {stall[0]:.3f} s"
