"""A browser's EventSource with a stream token across a server restart (real server
processes, headless chromium): the stream ends when the server stops, the EventSource
reconnects by itself to the restarted server with its stream token and `Last-Event-ID`, and
gets what was written while it was away (by another server on the same database), once each,
in order."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.browser import browser_page, skip_without_browser
from tests.e2e.conftest import Server, base_env, free_port
from tests.factories import PASSWORD

skip_without_browser()
pytestmark = pytest.mark.e2e

OPEN_SOURCE = """
(() => {
  window.seen = [];
  window.source = new EventSource("/api/notifications/stream?stream_token=" + %s);
  for (const kind of ["event.shared", "event.updated"]) {
    window.source.addEventListener(kind, e => window.seen.push([e.lastEventId, JSON.parse(e.data).summary]));
  }
})()
"""


async def call(http, method: str, url: str, token: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, headers=headers, **kwargs) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json() if resp.status != 204 else None


async def test_an_eventsource_with_a_stream_token_follows_a_restart(server_env, tmp_path):
    env = base_env(**server_env)
    port, other_port = free_port(), free_port()
    servers: list[Server] = []

    def start(on: int) -> Server:
        server = Server(tmp_path, env, [], port=on)
        servers.append(server)
        server.wait_ready()
        return server

    try:
        first = start(port)
        async with aiohttp.ClientSession() as http:
            users = {}
            for name in ("owner", "reader"):
                username = f"{name}_{tmp_path.name[-6:]}".replace("-", "_")
                body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
                user = await call(http, "POST", f"{first.base}/api/auth/register", json=body)
                pair = await call(http, "POST", f"{first.base}/api/auth/login",
                                  json={"username": username, "password": PASSWORD})
                users[name] = (user, pair["access_token"])
            (_owner, owner_token), (reader, reader_token) = users["owner"], users["reader"]
            answer = await call(http, "POST", f"{first.base}/api/notifications/stream-token", reader_token)
            event = await call(http, "POST", f"{first.base}/api/events", owner_token, json={
                "title": "T0", "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T10:00:00Z"})

            async def rename(base: str, title: str) -> None:
                await call(http, "PATCH", f"{base}/api/events/{event['id']}", owner_token, json={"title": title})

            async with browser_page(tmp_path / "profile") as tools:
                await tools.open(first.base + "/healthz")
                await tools.evaluate(OPEN_SOURCE % json.dumps(answer["stream_token"]))
                await tools.wait_until("window.source.readyState === 1")
                await call(http, "POST", f"{first.base}/api/events/{event['id']}/share", owner_token,
                           json={"user_id": reader["id"], "role": "viewer"})
                await rename(first.base, "T1")
                await tools.wait_until("window.seen.length === 2")

                first.stop()  # the stream ends; the EventSource keeps trying
                await tools.wait_until("window.source.readyState === 0")
                other = start(other_port)  # meanwhile, changes go through another server
                for title in ("T2", "T3", "T4"):
                    await rename(other.base, title)
                again = start(port)  # the restart, on the same address
                await tools.wait_until("window.seen.length === 5", timeout=30)
                await rename(again.base, "T5")
                await tools.wait_until("window.seen.length === 6")
                await asyncio.sleep(0.5)
                seen = await tools.evaluate("window.seen")
                state = await tools.evaluate("window.source.readyState")
    finally:
        for server in servers:
            server.stop()
    titles = [summary.split('"')[1] if '"' in summary else summary for _, summary in seen]
    assert titles[1:] == ["T1", "T2", "T3", "T4", "T5"], seen
    ids = [int(i) for i, _ in seen]
    assert ids == sorted(set(ids))  # once each, in order
    assert state == 1
