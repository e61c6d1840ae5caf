"""Stream tokens: `POST /api/notifications/stream-token` and `?stream_token=` on the event
stream. A stream token is good for the stream alone, outlives the access token it was asked
with, and lives exactly as long as its login: logout, a new password and a closed account end
it, and the streams it opened, at once."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from calsvc.tokens import ACCESS, STREAM
from calsvc.web import keys
from tests.conftest import assert_problem
from tests.factories import PASSWORD, bearer, login, shared_event, user_with_token
from tests.sse import STREAM as STREAM_PATH
from tests.sse import Reader, subscribe

TOKEN_PATH = "/api/notifications/stream-token"


async def stream_token(client, headers) -> dict:
    resp = await client.post(TOKEN_PATH, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def rename(client, headers, event, title) -> None:
    resp = await client.patch(f"/api/events/{event['id']}", headers=headers, json={"title": title})
    assert resp.status == 200, await resp.text()


async def test_a_stream_token_opens_the_stream_for_as_long_as_the_login(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    answer = await stream_token(client, ah)
    assert set(answer) == {"stream_token", "expires_at"}
    claims = client.server.app[keys.TOKENS].decode(answer["stream_token"], STREAM)
    access = client.server.app[keys.TOKENS].decode(ah["Authorization"].split()[1], ACCESS)
    assert claims.user_id == a["id"] and claims.family_id == access.family_id
    ends = dt.datetime.fromisoformat(answer["expires_at"])
    assert answer["expires_at"].endswith("Z") and ends == claims.expires_at
    # the login's end (its refresh token's expiry, 30 days), not the access token's 15 minutes
    assert dt.timedelta(days=29) < ends - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    async with subscribe(client, stream_token=answer["stream_token"]) as reader:
        await rename(client, oh, event, "Via stream token")
        message = await reader.next()
        assert message.event == "event.updated" and message.item["summary"].endswith('"Via stream token" (title)')


async def test_a_stream_token_is_good_for_the_stream_alone(client):
    _, _, headers = await user_with_token(client)
    token = (await stream_token(client, headers))["stream_token"]
    access = headers["Authorization"].split()[1]
    for refused in (
        client.get("/api/auth/me", headers=bearer(token)),  # not an access token
        client.get(STREAM_PATH, headers=bearer(token)),  # nor in the header of the stream
        client.get(STREAM_PATH, params={"access_token": token}),
        client.post(TOKEN_PATH, headers=bearer(token)),  # it makes no other
        client.get(STREAM_PATH, params={"stream_token": access}),  # an access token is no stream token
        client.get(STREAM_PATH, params={"stream_token": token[:-2] + "xx"}),
        client.get("/api/notifications", params={"stream_token": token}),  # the list does not take one
    ):
        await assert_problem(await refused, 401, "unauthorized")
    resp = await client.get("/api/notifications", params={"stream_token": token}, headers=headers)
    await assert_problem(resp, 422, "validation")  # a parameter the list does not define
    # the header wins over the query, and stream_token over access_token
    async with subscribe(client, headers, stream_token="x.y.z"):
        pass
    async with subscribe(client, stream_token=token, access_token="x.y.z"):
        pass


async def test_a_stream_token_outlives_the_access_token(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    codec = client.server.app[keys.TOKENS]
    family = codec.decode(ah["Authorization"].split()[1], ACCESS).family_id
    soon = dt.datetime.now(dt.UTC) - codec.access_ttl + dt.timedelta(seconds=1.5)
    short = bearer(codec.issue(ACCESS, a["id"], family, now=soon).token)  # expires in 1.5 s
    token = (await stream_token(client, short))["stream_token"]
    async with subscribe(client, short) as by_access, subscribe(client, stream_token=token) as by_token:
        await rename(client, oh, event, "Before expiry")
        assert (await by_access.next()).event == "event.updated"
        assert (await by_token.next()).event == "event.updated"
        assert await by_access.next(timeout=5) is None  # ended with its access token
        await assert_problem(await client.get("/api/auth/me", headers=short), 401, "unauthorized")
        await rename(client, oh, event, "After expiry")
        message = await by_token.next()
        assert message.item["summary"].endswith('"After expiry" (title)')
    async with subscribe(client, stream_token=token) as again:  # and a reconnect is let in
        await rename(client, oh, event, "Reconnected")
        assert (await again.next()).item["summary"].endswith('"Reconnected" (title)')


async def test_a_refresh_keeps_the_stream_token(client):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    pair = await login(client, a["username"])
    token = (await stream_token(client, bearer(pair["access_token"])))["stream_token"]
    resp = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status == 200
    async with subscribe(client, stream_token=token) as reader:
        await rename(client, oh, event, "After refresh")
        assert (await reader.next()).event == "event.updated"


async def _logout(client, user, headers, pair):
    resp = await client.post("/api/auth/logout", headers=bearer(pair["access_token"]), json={})
    assert resp.status == 204


async def _new_password(client, user, headers, pair):
    resp = await client.post("/api/auth/password", headers=headers,
                             json={"current_password": PASSWORD, "new_password": "another long password"})
    assert resp.status == 200, await resp.text()


async def _close_account(client, user, headers, pair):
    resp = await client.request("DELETE", "/api/auth/me", headers=headers, json={"password": PASSWORD})
    assert resp.status == 204, await resp.text()


async def _reuse_refresh(client, user, headers, pair):
    for expected in (200, 401):  # the second use of the same refresh token revokes its login
        resp = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert resp.status == expected


@pytest.mark.parametrize("end", [_logout, _new_password, _close_account, _reuse_refresh],
                         ids=["logout", "new password", "closed account", "refresh reuse"])
async def test_the_end_of_the_login_ends_the_stream_token_and_its_streams(client, end):
    (owner, oh), [(a, ah)], event = await shared_event(client, 1)
    pair = await login(client, a["username"])
    token = (await stream_token(client, bearer(pair["access_token"])))["stream_token"]
    resp = await client.get(STREAM_PATH, params={"stream_token": token})
    assert resp.status == 200
    reader = Reader(resp)
    try:
        await end(client, a, ah, pair)
        assert await asyncio.wait_for(reader.next(), 5) is None  # ended at once, not at expiry
    finally:
        resp.close()
    problem = await assert_problem(await client.get(STREAM_PATH, params={"stream_token": token}),
                                   401, "unauthorized")
    assert problem["detail"] == "token revoked"
    await assert_problem(await client.post(TOKEN_PATH, headers=bearer(pair["access_token"])), 401, "unauthorized")

