"""Concurrent edits: If-Match under contention, and edit_strategy=merge against a
base version (different fields both survive; the same field is a 409 unless prefer says)."""
from __future__ import annotations

import asyncio

from tests.conftest import assert_problem
from tests.factories import create_event, user_with_token, versions


async def test_fifty_concurrent_if_match_edits_lose_nothing(client, database_url):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, description="")
    url = f"/api/events/{event['id']}"

    async def append(line: str) -> int:
        stale = 0
        while True:
            current = await client.get(url, headers=headers)
            body = await current.json()
            lines = body["description"] + line + "\n"
            resp = await client.patch(url, json={"description": lines},
                                      headers={**headers, "If-Match": current.headers["ETag"]})
            if resp.status == 200:
                return stale
            assert resp.status == 412, await resp.text()
            stale += 1

    stale = await asyncio.gather(*(append(f"writer {i}") for i in range(50)))
    final = await (await client.get(url, headers=headers)).json()
    assert final["version"] == 51
    assert sorted(final["description"].splitlines()) == sorted(f"writer {i}" for i in range(50))
    assert [v for v, *_ in await versions(database_url, event["id"])] == list(range(1, 52))
    assert sum(stale) > 0  # they did collide


async def test_a_merge_keeps_changes_to_different_fields(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, description="base")
    url = f"/api/events/{event['id']}"
    assert (await client.patch(url, headers=headers, json={"title": "Theirs"})).status == 200  # v2
    resp = await client.patch(url, headers=headers, params={"edit_strategy": "merge", "base_version": "1"},
                              json={"location": "Mine", "description": "base"})
    assert resp.status == 200, await resp.text()
    merged = await resp.json()
    assert (merged["title"], merged["location"], merged["description"], merged["version"]) == (
        "Theirs", "Mine", "base", 3)
    # the same, with the merge asked in the body
    assert (await client.patch(url, headers=headers, json={"title": "Theirs again"})).status == 200  # v4
    resp = await client.put(url, headers=headers, json={"edit_strategy": "merge", "base_version": 3,
                                                        "start_time": "2026-12-01T10:00:00+01:00",
                                                        "end_time": "2026-12-01T10:15:00+01:00"})
    merged = await resp.json()
    assert (merged["title"], merged["start_time"], merged["version"]) == ("Theirs again", "2026-12-01T10:00:00+01:00", 5)


async def test_the_same_field_changed_on_both_sides_is_an_edit_conflict(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    url = f"/api/events/{event['id']}"
    assert (await client.patch(url, headers=headers, json={"title": "Theirs", "location": "Room T"})).status == 200
    merge = {"edit_strategy": "merge", "base_version": "1"}
    mine = {"title": "Mine", "location": "Room M", "description": "only mine"}
    problem = await assert_problem(await client.patch(url, headers=headers, params=merge, json=mine),
                                   409, "edit-conflict")
    assert problem["fields"] == ["title", "location"]
    assert (await (await client.get(url, headers=headers)).json())["version"] == 2  # nothing written

    theirs = await (await client.patch(url, headers=headers, params={**merge, "prefer": "theirs"}, json=mine)).json()
    assert (theirs["title"], theirs["location"], theirs["description"]) == ("Theirs", "Room T", "only mine")
    resp = await client.patch(url, headers=headers, params={**merge, "prefer": "mine"}, json=mine)
    ours = await resp.json()
    assert (ours["title"], ours["location"], ours["description"], ours["version"]) == ("Mine", "Room M", "only mine", 4)


async def test_the_same_change_on_both_sides_is_no_conflict(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    url = f"/api/events/{event['id']}"
    theirs = await client.patch(url, headers=headers, json={"start_time": "2026-12-01T10:00:00+01:00",
                                                            "end_time": "2026-12-01T10:15:00+01:00"})
    assert (await theirs.json())["version"] == 2
    resp = await client.patch(url, headers=headers, params={"edit_strategy": "merge", "base_version": "1"},
                              json={"start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T09:15:00Z",
                                    "title": "Renamed"})
    assert resp.status == 200, await resp.text()  # the same instants as theirs, written another way
    body = await resp.json()
    assert (body["title"], body["start_time"], body["version"]) == ("Renamed", "2026-12-01T10:00:00+01:00", 3)


async def test_bad_merges_are_422(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    url = f"/api/events/{event['id']}"
    for params, loc in (({"edit_strategy": "merge"}, "base_version"),
                        ({"edit_strategy": "merge", "base_version": "2"}, "base_version"),
                        ({"edit_strategy": "merge", "base_version": "0"}, "base_version"),
                        ({"base_version": "1"}, "edit_strategy"), ({"prefer": "mine"}, "edit_strategy"),
                        ({"edit_strategy": "rebase", "base_version": "1"}, "edit_strategy")):
        problem = await assert_problem(await client.patch(url, headers=headers, params=params, json={"title": "x"}),
                                       422, "validation")
        assert problem["errors"][0]["loc"] == ["query", loc], params
