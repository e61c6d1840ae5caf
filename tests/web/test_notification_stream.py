"""The event stream in one process: live delivery, replay from Last-Event-ID without
gap or duplicate, the heartbeat, ?access_token=, and streams that end (token revoked or
expired, too many streams)."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from calsvc.tokens import ACCESS, TokenCodec
from tests.conftest import assert_problem
from tests.factories import inbox, shared_event, user_with_token
from tests.sse import STREAM, Reader, subscribe


async def rename(client, headers, event, title):
    resp = await client.patch(f"/api/events/{event['id']}", headers=headers, json={"title": title})
    assert resp.status == 200, await resp.text()


async def test_live_messages_are_the_list_items(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    resp = await client.get(STREAM, headers=ah)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    reader = Reader(resp)
    try:
        await rename(client, oh, event, "Live")
        message = await reader.next()
        assert reader.retry == 2000
        [listed] = (await inbox(client, ah, limit=1))["items"]
        assert message.event == "event.updated" and message.id == str(listed["id"])
        assert message.item == listed
        await reader.silent(0.3)  # "event.shared" came before the stream: live only
    finally:
        resp.close()


async def test_last_event_id_replays_then_goes_live_without_gap_or_duplicate(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    for i in range(3):
        await rename(client, oh, event, f"T{i}")
    for how in ("header", "query"):
        ids = [n["id"] for n in reversed((await inbox(client, ah))["items"])]  # shared, T0, T1, T2, ...
        assert len(ids) >= 4
        kwargs = ({"headers": {**ah, "Last-Event-ID": str(ids[-3])}} if how == "header"
                  else {"headers": ah, "last_event_id": str(ids[-3])})
        async with subscribe(client, **kwargs) as reader:
            replayed = await reader.take(2)
            assert [m.id for m in replayed] == [str(ids[-2]), str(ids[-1])]
            await rename(client, oh, event, f"live {how}")
            live = await reader.next()
            assert int(live.id) > ids[-1] and live.item["summary"].endswith(f'"live {how}" (title)')
            await reader.silent(0.3)
    ids = [n["id"] for n in reversed((await inbox(client, ah))["items"])]
    # the header wins over the query parameter
    async with subscribe(client, headers={**ah, "Last-Event-ID": str(ids[-2])}, last_event_id="0") as reader:
        assert [m.id for m in await reader.take(1)] == [str(ids[-1])]
        await reader.silent(0.3)


async def test_messages_written_while_replaying_are_not_lost(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    writes = asyncio.gather(*(rename(client, oh, event, f"R{i}") for i in range(20)))
    async with subscribe(client, headers={**ah, "Last-Event-ID": "0"}) as reader:
        await writes
        got = await reader.take(21)
        listed = [n["id"] for n in reversed((await inbox(client, ah))["items"])]
        assert [int(m.id) for m in got] == listed
        await reader.silent(0.3)


async def test_access_token_parameter_and_refusals(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    token = ah["Authorization"].split()[1]
    async with subscribe(client, access_token=token) as reader:
        await rename(client, oh, event, "Via query")
        assert (await reader.next()).event == "event.updated"
    await assert_problem(await client.get(STREAM), 401, "unauthorized")
    await assert_problem(await client.get(STREAM, params={"access_token": "x.y.z"}), 401, "unauthorized")
    # 19 digits but past bigint: one such cursor once broke every stream of its process
    for bad in ("abc", "-1", "1.5", "99999999999999999999", "9223372036854775808", "9999999999999999999"):
        await assert_problem(await client.get(STREAM, headers={**ah, "Last-Event-ID": bad}), 422, "validation")
        await assert_problem(await client.get(STREAM, headers=ah, params={"last_event_id": bad}), 422, "validation")


async def test_heartbeat_comments(make_client):
    client = await make_client(server={"sse_heartbeat": 0.2})
    _, _, headers = await user_with_token(client)
    async with subscribe(client, headers) as reader:
        await reader.silent(0.7)
        assert reader.comments.count("ping") >= 2


async def test_a_revoked_token_ends_the_stream(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    async with subscribe(client, ah) as reader:
        resp = await client.post("/api/auth/logout", headers=ah, json={})
        assert resp.status == 204
        assert await reader.next(timeout=5) is None  # ended
    await assert_problem(await client.get(STREAM, headers=ah), 401, "unauthorized")


async def test_an_expiring_token_ends_the_stream(client, settings):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    codec = TokenCodec(settings.auth)
    claims = codec.decode(ah["Authorization"].split()[1], ACCESS)
    soon = dt.datetime.now(dt.UTC) - codec.access_ttl + dt.timedelta(seconds=1.5)
    short = codec.issue(ACCESS, a["id"], claims.family_id, now=soon).token
    async with subscribe(client, {"Authorization": f"Bearer {short}"}) as reader:
        await rename(client, oh, event, "Before expiry")
        assert (await reader.next()).event == "event.updated"
        assert await reader.next(timeout=5) is None


async def test_at_most_twenty_streams_per_user(client):
    _, _, headers = await user_with_token(client)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(20):
            await stack.enter_async_context(subscribe(client, headers))
        resp = await client.get(STREAM, headers=headers)
        await assert_problem(resp, 429, "rate-limited")
        assert resp.headers["Retry-After"] == "5"


async def test_an_id_past_the_newest_starts_from_the_newest(client):
    """A Last-Event-ID no notification of the user has reached yet (another database's, made
    up, the largest bigint) means nothing was missed: the stream goes live, it does not wait
    for ids above it."""
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    for far in ("1000000000000", str(2**63 - 1)):
        async with subscribe(client, headers={**ah, "Last-Event-ID": far}) as reader:
            await rename(client, oh, event, f"After {far}")
            message = await reader.next()
            assert message.item["summary"].endswith(f'"After {far}" (title)')
            await reader.silent(0.2)


async def test_head_answers_as_a_get_would_begin(client):
    _, _, headers = await user_with_token(client)
    resp = await client.head(STREAM, headers=headers)
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Accel-Buffering"] == "no"
    assert (await client.head(STREAM)).status == 401



async def test_open_streams_hold_no_pooled_connection(make_client):
    """Requests check their token and run their first queries on one connection
    (Database.lease); a stream, which outlives its queries, must not keep it."""
    client = await make_client(database={"pool_min_size": 1, "pool_max_size": 2})
    _, _, headers = await user_with_token(client)
    for last_event_id in (None, "0", None):  # live only, and with a replay first
        params = {} if last_event_id is None else {"last_event_id": last_event_id}
        resp = await client.get(STREAM, headers=headers, params=params)
        assert resp.status == 200
    async with asyncio.timeout(2):  # not the 2 s acquire timeout's 503
        resp = await client.get("/api/auth/me", headers=headers)
        assert resp.status == 200, await resp.text()
