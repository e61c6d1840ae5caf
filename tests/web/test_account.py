"""Changing the password (POST /api/auth/password): a new pair, and every other token and
stream of the user ends at once, in every worker."""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, assert_problem, login, user_with_token
from tests.web.test_auth import bearer, me_status, refresh
from tests.web.test_notification_stream import subscribe

NEW_PASSWORD = "a brand new passphrase"


async def change_password(client, headers, current=PASSWORD, new=NEW_PASSWORD):
    return await client.post("/api/auth/password", headers=headers,
                             json={"current_password": current, "new_password": new})


# -- changing the password --------------------------------------------------------------------

async def test_password_change_ends_every_other_token_and_the_new_pair_works(client):
    user, first, headers = await user_with_token(client)
    second = await login(client, user["username"])  # another login (another device)
    refreshed = await (await refresh(client, second["refresh_token"])).json()  # and its rotation
    async with subscribe(client, headers) as stream:
        resp = await change_password(client, headers)
        assert resp.status == 200, await resp.text()
        pair = await resp.json()
        assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
        assert await stream.next(timeout=5) is None  # the open stream ended
    for access in (first["access_token"], second["access_token"], refreshed["access_token"]):
        assert await me_status(client, access) == 401
    for token in (first["refresh_token"], refreshed["refresh_token"]):
        await assert_problem(await refresh(client, token), 401, "unauthorized")
    # the new pair works, and so does its rotation
    assert await me_status(client, pair["access_token"]) == 200
    rotated = await refresh(client, pair["refresh_token"])
    assert rotated.status == 200, await rotated.text()
    # the new password logs in, the old one no longer
    await login(client, user["username"], NEW_PASSWORD)
    resp = await client.post("/api/auth/login", json={"username": user["username"], "password": PASSWORD})
    await assert_problem(resp, 401, "unauthorized")


async def test_password_change_reaches_every_worker(make_client):
    """Two app instances over one database stand for two workers."""
    one, two = await make_client(), await make_client()
    user, tokens, headers = await user_with_token(one)
    elsewhere = await login(two, user["username"])
    async with subscribe(two, bearer(elsewhere["access_token"])) as stream:
        assert (await change_password(one, headers)).status == 200
        assert await stream.next(timeout=5) is None
    assert await me_status(two, elsewhere["access_token"]) == 401
    assert await me_status(two, tokens["access_token"]) == 401


async def test_wrong_current_password_is_401_and_changes_nothing(client):
    user, tokens, headers = await user_with_token(client)
    resp = await change_password(client, headers, current="not my password")
    body = await assert_problem(resp, 401, "unauthorized")
    assert "password" in body["detail"]
    assert await me_status(client, tokens["access_token"]) == 200
    assert (await refresh(client, tokens["refresh_token"])).status == 200
    await login(client, user["username"], PASSWORD)
    resp = await client.post("/api/auth/login", json={"username": user["username"], "password": NEW_PASSWORD})
    await assert_problem(resp, 401, "unauthorized")


@pytest.mark.parametrize("body, loc", [
    ({"current_password": PASSWORD, "new_password": "short"}, ["body", "new_password"]),
    ({"current_password": PASSWORD, "new_password": "x" * 129}, ["body", "new_password"]),
    ({"current_password": PASSWORD}, ["body", "new_password"]),
    ({"new_password": NEW_PASSWORD}, ["body", "current_password"]),
])
async def test_password_change_validation(client, body, loc):
    user, tokens, headers = await user_with_token(client)
    resp = await client.post("/api/auth/password", headers=headers, json=body)
    problem = await assert_problem(resp, 422, "validation")
    assert [e["loc"] for e in problem["errors"]] == [loc]
    assert await me_status(client, tokens["access_token"]) == 200
    await login(client, user["username"], PASSWORD)
