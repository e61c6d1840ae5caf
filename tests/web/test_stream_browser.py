"""A browser's EventSource on the event stream (headless chromium, tests/browser.py), with
access tokens that live 5 seconds: one opened with `?access_token=` dies at expiry (its
reconnect gets a 401, readyState CLOSED for good), one opened with a stream token keeps
receiving across that expiry, and stops when its login ends (logout, a closed account)."""
from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from calsvc.web import keys
from tests.browser import browser_page, skip_without_browser
from tests.factories import PASSWORD, create_event, login, register

skip_without_browser()

ACCESS_SECONDS = 5
KINDS = ("event.shared", "event.updated", "event.deleted", "permission.changed", "permission.revoked")
OPEN_SOURCES = """
(() => {
  window.seen = {byToken: [], byAccess: []};
  window.errors = {byToken: 0, byAccess: 0};
  window.sources = {};
  for (const [name, query] of Object.entries(%s)) {
    const source = new EventSource("/api/notifications/stream?" + query);
    for (const kind of %s) {
      source.addEventListener(kind, e => window.seen[name].push([e.lastEventId, JSON.parse(e.data).summary]));
    }
    source.onerror = () => { window.errors[name] += 1; };
    window.sources[name] = source;
  }
})()
"""


def state(name: str) -> str:
    return f"window.sources.{name}.readyState"


async def fresh(client, username: str) -> dict[str, str]:
    """Headers of a new login: with 5-second access tokens, each step logs in again."""
    return {"Authorization": f"Bearer {(await login(client, username))['access_token']}"}


async def rename(client, owner: str, event_id: int, title: str) -> None:
    resp = await client.patch(f"/api/events/{event_id}", headers=await fresh(client, owner), json={"title": title})
    assert resp.status == 200, await resp.text()


async def close_account(client, pair: dict) -> None:
    headers = await fresh(client, pair["username"])
    resp = await client.request("DELETE", "/api/auth/me", headers=headers, json={"password": PASSWORD})
    assert resp.status == 204, await resp.text()


async def logout(client, pair: dict) -> None:
    """Log out of the login the stream token came from, as a browser app does: its access
    token has expired, so it refreshes first, then logs out with the new one."""
    resp = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status == 200, await resp.text()
    headers = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    resp = await client.post("/api/auth/logout", headers=headers, json={})
    assert resp.status == 204, await resp.text()


@pytest.mark.parametrize("end", [logout, close_account], ids=["logout", "closed account"])
async def test_an_eventsource_with_a_stream_token_outlives_access_tokens(client, tmp_path, end):
    client.server.app[keys.TOKENS].access_ttl = dt.timedelta(seconds=ACCESS_SECONDS)
    owner, reader = await register(client), await register(client)
    pair = await login(client, reader["username"])
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    resp = await client.post("/api/notifications/stream-token", headers=headers)
    assert resp.status == 200, await resp.text()
    stream_token = (await resp.json())["stream_token"]
    _, event = await create_event(client, await fresh(client, owner["username"]), title="Planning")
    resp = await client.post(f"/api/events/{event['id']}/share", headers=await fresh(client, owner["username"]),
                             json={"user_id": reader["id"], "role": "viewer"})
    assert resp.status == 200

    async with browser_page(tmp_path / "profile") as tools:
        await tools.open(str(client.make_url("/healthz")))  # any page of the service: same origin
        access = (await login(client, reader["username"]))["access_token"]  # another login: fresh at the start
        queries = {"byToken": f"stream_token={stream_token}", "byAccess": f"access_token={access}"}
        await tools.evaluate(OPEN_SOURCES % (json.dumps(queries), json.dumps(KINDS)))
        await tools.wait_until(f"{state('byToken')} === 1 && {state('byAccess')} === 1")
        await rename(client, owner["username"], event["id"], "Before expiry")
        await tools.wait_until("window.seen.byToken.length === 1 && window.seen.byAccess.length === 1")

        # the access token expires: that stream ends, its reconnect is refused, it stays closed
        await tools.wait_until(f"{state('byAccess')} === 2", timeout=ACCESS_SECONDS + 10)
        await asyncio.sleep(1)
        await rename(client, owner["username"], event["id"], "After expiry")
        await tools.wait_until("window.seen.byToken.length === 2")
        assert await tools.evaluate(state("byToken")) == 1  # open all along
        seen = await tools.evaluate("window.seen")

        # the login ends: the stream is closed by the server, its reconnect refused
        await end(client, {**pair, "username": reader["username"]})
        await tools.wait_until(f"{state('byToken')} === 2", timeout=10)
        if end is logout:
            await rename(client, owner["username"], event["id"], "After logout")
            await asyncio.sleep(1)
        after = await tools.evaluate("window.seen")
        statuses = [e["params"]["response"]["status"] for e in tools.events
                    if e.get("method") == "Network.responseReceived"
                    and "/api/notifications/stream" in e["params"]["response"]["url"]]

    assert [s.split('"')[1] for _, s in seen["byAccess"]] == ["Before expiry"]
    assert [s.split('"')[1] for _, s in seen["byToken"]] == ["Before expiry", "After expiry"]
    assert after["byToken"] == seen["byToken"]  # nothing once the login ended
    assert statuses.count(401) == 2, statuses  # one refused reconnect of each source
