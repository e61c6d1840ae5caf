"""Cases an outside review of events, conflicts and batches found (each failed before its
fix): the hour clocks fall back, rules with too many occurrences, digits that are not ASCII,
names that are not IANA zones, windows outside the years events live in, duplicate overlaps,
batch stand-ins."""
from __future__ import annotations

import pytest

from tests.conftest import assert_problem
from tests.factories import user_with_token


def berlin(start: str, end: str, **extra) -> dict:
    return {"title": "t", "start_time": start, "end_time": end, "timezone": "Europe/Berlin", **extra}


@pytest.mark.parametrize("path_start", ["2027-10-31T02:30:00%2B02:00", "2027-10-31T00:30:00Z",
                                        "2027-10-31T00:30:00z"])
async def test_an_occurrence_in_the_hour_clocks_fall_back_can_be_changed(client, path_start):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", headers=headers, json=berlin(
        "2027-10-30T02:30:00+02:00", "2027-10-30T03:00:00+02:00", recurrence={"rrule": "FREQ=DAILY;COUNT=3"}))
    event = await resp.json()
    url = f"/api/events/{event['id']}/occurrences/{path_start}"
    resp = await client.put(url, headers=headers, json={"title": "moved on"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["occurrence_start"] == "2027-10-31T02:30:00+02:00"
    assert (await client.delete(url, headers=headers)).status == 204


@pytest.mark.parametrize("rule", ["FREQ=HOURLY;UNTIL=20471231T000000Z",
                                  "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23;"
                                  "BYMINUTE=0,5,10,15,20,25,30,35,40,45,50,55"])
async def test_a_rule_with_too_many_occurrences_to_check_is_a_422(client, rule):
    _, _, headers = await user_with_token(client)
    body = {"title": "f", "start_time": "2035-01-01T09:00:00Z", "end_time": "2035-01-01T09:01:00Z",
            "recurrence": {"rrule": rule}}
    problem = await assert_problem(await client.post("/api/events", headers=headers, json=body), 422, "validation")
    assert problem["errors"][0]["loc"] == ["body", "recurrence"]
    resp = await client.post("/api/events/batch", headers=headers, json={"atomic": False, "events": [body]})
    assert resp.status == 207
    assert (await resp.json())["results"][0]["status"] == 422


@pytest.mark.parametrize("rule", ["FREQ=DAILY;COUNT=³", "FREQ=DAILY;INTERVAL=²", "FREQ=DAILY;INTERVAL=١",
                                  "FREQ=DAILY;BYHOUR=٩", "FREQ=MONTHLY;BYDAY=١MO", "FREQ=DAILY;UNTIL=٢٠٢٧0101"])
async def test_digits_other_than_ascii_are_refused(client, rule):
    _, _, headers = await user_with_token(client)
    body = berlin("2027-01-04T09:00:00+01:00", "2027-01-04T10:00:00+01:00", recurrence={"rrule": rule})
    await assert_problem(await client.post("/api/events", headers=headers, json=body), 422, "validation")


@pytest.mark.parametrize("name", ["localtime", "posixrules", "posix/Europe/Berlin", "right/UTC", "Factory "])
async def test_only_names_of_the_time_zone_database_are_zones(client, name):
    _, _, headers = await user_with_token(client)
    body = {"title": "t", "start_time": "2027-01-04T09:00:00Z", "end_time": "2027-01-04T10:00:00Z", "timezone": name}
    problem = await assert_problem(await client.post("/api/events", headers=headers, json=body), 422, "validation")
    assert problem["errors"][0]["loc"] == ["body", "timezone"]


@pytest.mark.parametrize("params", [{"start": "0001-01-01T00:00:00+01:00"}, {"end": "0001-01-02T00:00:00Z"},
                                    {"start": "9999-12-31T23:59:59Z"}])
async def test_windows_outside_the_years_of_events_are_a_422(client, params):
    _, _, headers = await user_with_token(client)
    await client.post("/api/events", headers=headers, json=berlin(
        "2027-01-04T09:00:00+01:00", "2027-01-04T10:00:00+01:00", recurrence={"rrule": "FREQ=DAILY"}))
    await assert_problem(await client.get("/api/events", headers=headers, params=params), 422, "validation")


async def test_an_overlap_found_twice_is_listed_once_and_pages_keep_every_item(client):
    _, _, headers = await user_with_token(client)
    for body in (berlin("2027-03-01T09:00:00+01:00", "2027-03-01T11:00:00+01:00",
                        recurrence={"rrule": "FREQ=HOURLY;COUNT=3"}),
                 berlin("2027-03-01T10:00:00+01:00", "2027-03-01T10:30:00+01:00"),
                 berlin("2027-03-01T10:15:00+01:00", "2027-03-01T12:30:00+01:00")):
        assert (await client.post("/api/events?on_conflict=allow", headers=headers, json=body)).status == 201
    window = {"start": "2027-03-01T00:00:00Z", "end": "2027-03-02T00:00:00Z"}
    whole = (await (await client.get("/api/events/conflicts", headers=headers, params=window)).json())["items"]
    keys = [(i["start"], tuple(i["event_ids"]), i["end"]) for i in whole]
    assert len(keys) == len(set(keys))
    paged, cursor = [], None
    while True:
        page = await (await client.get("/api/events/conflicts", headers=headers,
                                       params={**window, "limit": "1", **({"cursor": cursor} if cursor else {})})).json()
        paged += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == whole


async def test_a_refused_batch_item_names_earlier_items_by_their_new_ids(client):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events/batch", headers=headers, json={"atomic": False, "events": [
        berlin("2027-12-01T09:00:00+01:00", "2027-12-01T10:00:00+01:00"),
        berlin("2027-12-01T09:30:00+01:00", "2027-12-01T10:30:00+01:00")]})
    assert resp.status == 207
    first, second = (await resp.json())["results"]
    assert first["status"] == 201 and second["status"] == 409
    assert [c["event_id"] for c in second["error"]["conflicts"]] == [first["event"]["id"]]


async def test_all_day_occurrences_stay_midnight_to_midnight_across_dst(client):
    _, _, headers = await user_with_token(client)
    resp = await client.post("/api/events", headers=headers, json=berlin(
        "2033-03-24T00:00:00+01:00", "2033-03-25T00:00:00+01:00", all_day=True,
        recurrence={"rrule": "FREQ=DAILY;COUNT=7"}))
    assert resp.status == 201, await resp.text()
    series = await resp.json()
    window = {"start": "2033-03-24T00:00:00+01:00", "end": "2033-04-01T00:00:00+02:00"}
    items = (await (await client.get(f"/api/events/{series['id']}/occurrences", headers=headers,
                                     params=window)).json())["items"]
    assert [(o["start_time"], o["end_time"]) for o in items[2:5]] == [
        ("2033-03-26T00:00:00+01:00", "2033-03-27T00:00:00+01:00"),
        ("2033-03-27T00:00:00+01:00", "2033-03-28T00:00:00+02:00"),  # 23 hours: the clocks went forward
        ("2033-03-28T00:00:00+02:00", "2033-03-29T00:00:00+02:00")]
    # the day after the series ends is free; the series' own days are not
    after = berlin("2033-03-31T00:00:00+02:00", "2033-04-01T00:00:00+02:00", all_day=True)
    assert (await client.post("/api/events", headers=headers, json=after)).status == 201
    during = berlin("2033-03-27T23:30:00+02:00", "2033-03-28T00:30:00+02:00")
    problem = await assert_problem(await client.post("/api/events", headers=headers, json=during),
                                   409, "scheduling-conflict")
    assert [c["start_time"] for c in problem["conflicts"]] == ["2033-03-27T00:00:00+01:00",
                                                               "2033-03-28T00:00:00+02:00"]
    # an occurrence renamed on that day keeps its calendar day, no end override
    url = f"/api/events/{series['id']}/occurrences/2033-03-27T00:00:00%2B01:00"
    changed = await (await client.put(url, headers=headers, json={"title": "short day"})).json()
    assert changed["end_time"] == "2033-03-28T00:00:00+02:00"


async def test_weekly_all_day_in_new_york_keeps_midnight_in_autumn(client):
    _, _, headers = await user_with_token(client)
    body = {"title": "w", "timezone": "America/New_York", "all_day": True, "start_time": "2033-10-23T00:00:00-04:00",
            "end_time": "2033-10-24T00:00:00-04:00", "recurrence": {"rrule": "FREQ=WEEKLY;COUNT=3"}}
    series = await (await client.post("/api/events", headers=headers, json=body)).json()
    items = (await (await client.get(f"/api/events/{series['id']}/occurrences", headers=headers, params={
        "start": "2033-10-01T00:00:00Z", "end": "2033-12-01T00:00:00Z"})).json())["items"]
    assert [(o["start_time"], o["end_time"]) for o in items] == [
        ("2033-10-23T00:00:00-04:00", "2033-10-24T00:00:00-04:00"),
        ("2033-10-30T00:00:00-04:00", "2033-10-31T00:00:00-04:00"),
        ("2033-11-06T00:00:00-04:00", "2033-11-07T00:00:00-05:00")]  # 25 hours: clocks fall back at 02:00


async def test_a_batch_retried_with_its_members_in_another_order_is_replayed(client):
    _, _, headers = await user_with_token(client)
    item = berlin("2027-05-03T09:00:00+02:00", "2027-05-03T10:00:00+02:00")
    reordered = dict(reversed(list(item.items())))
    key = {**headers, "Idempotency-Key": "batch-order"}
    first = await client.post("/api/events/batch", headers=key, json={"events": [item]})
    again = await client.post("/api/events/batch", headers=key, json={"events": [reordered]})
    assert first.status == again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true" and await again.json() == await first.json()


async def test_conflict_times_read_alike_in_a_409_and_under_allow(client):
    _, _, headers = await user_with_token(client)
    body = {"title": "u", "start_time": "2027-05-03T09:00:00Z", "end_time": "2027-05-03T10:00:00Z"}
    assert (await client.post("/api/events", headers=headers, json=body)).status == 201
    refused = await assert_problem(await client.post("/api/events", headers=headers, json=body),
                                   409, "scheduling-conflict")
    allowed = await (await client.post("/api/events?on_conflict=allow", headers=headers, json=body)).json()
    assert refused["conflicts"] == allowed["conflicts"]
    assert refused["conflicts"][0]["start_time"] == "2027-05-03T09:00:00Z"


async def test_renaming_an_occurrence_is_not_refused_for_overlaps_it_already_had(client):
    _, _, headers = await user_with_token(client)
    series = await (await client.post("/api/events", headers=headers, json=berlin(
        "2027-06-07T09:00:00+02:00", "2027-06-07T10:00:00+02:00", recurrence={"rrule": "FREQ=DAILY;COUNT=3"}))).json()
    other = berlin("2027-06-08T09:30:00+02:00", "2027-06-08T10:30:00+02:00")
    assert (await client.post("/api/events?on_conflict=allow", headers=headers, json=other)).status == 201
    url = f"/api/events/{series['id']}/occurrences/2027-06-08T09:00:00%2B02:00"
    assert (await client.put(url, headers=headers, json={"title": "renamed"})).status == 200
    await assert_problem(await client.put(url, headers=headers, json={
        "start_time": "2027-06-08T09:15:00+02:00", "end_time": "2027-06-08T10:15:00+02:00"}),
        409, "scheduling-conflict")
