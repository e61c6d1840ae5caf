"""Clients of a real server (tests/e2e/conftest.py's Server): users, requests each on a
connection of its own, event streams and the worker process that holds each of them."""
from __future__ import annotations

import asyncio
import uuid

import aiohttp
import psutil

from tests.factories import bearer, user_with_token
from tests.sse import Reader

EVENT = {"title": "Standup", "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T09:15:00Z"}


async def user(base: str, name: str) -> tuple[int, str]:
    """(id, access token) of a new user."""
    async with aiohttp.ClientSession(base) as http:
        created, tokens, _ = await user_with_token(http, name)
        return created["id"], tokens["access_token"]


async def call(base: str, method: str, path: str, token: str, status: int = 200, **kwargs) -> dict | None:
    """One request on a connection of its own (so the kernel may hand it to either worker)."""
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.request(method, path, headers=bearer(token), **kwargs) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json() if resp.content_type == "application/json" else None


async def shared_event(base: str) -> tuple[str, str, int, dict]:
    """(owner token, listener token, listener id, event): an event shared with the listener."""
    tag = uuid.uuid4().hex[:6]
    _, owner = await user(base, f"owner_{tag}")
    listener_id, listener = await user(base, f"listener_{tag}")
    event = await call(base, "POST", "/api/events", owner, 201, json=EVENT)
    await call(base, "POST", f"/api/events/{event['id']}/share", owner,
               json={"user_id": listener_id, "role": "viewer"})
    return owner, listener, listener_id, event


def holder(server, client_port: int) -> int | None:
    """The pid of the worker holding the connection from `client_port`."""
    for worker in psutil.Process(server.process.pid).children():
        for conn in worker.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == server.port and conn.raddr and conn.raddr.port == client_port:
                return worker.pid
    return None


class Subscriber:
    def __init__(self, session: aiohttp.ClientSession, resp: aiohttp.ClientResponse, pid: int | None) -> None:
        self.session, self.resp, self.pid = session, resp, pid
        self.reader = Reader(resp)

    async def close(self) -> None:
        self.resp.close()
        await self.session.close()


async def subscribe(server, token: str, last_event_id: int | None = None, find_worker: bool = True) -> Subscriber:
    session = aiohttp.ClientSession(server.base)
    headers = bearer(token) if last_event_id is None else {**bearer(token), "Last-Event-ID": str(last_event_id)}
    resp = await session.get("/api/notifications/stream", headers=headers)
    assert resp.status == 200, await resp.text()
    port = resp.connection.transport.get_extra_info("sockname")[1]
    pid = None
    for _ in range(50 if find_worker else 0):
        pid = holder(server, port)
        if pid is not None:
            break
        await asyncio.sleep(0.02)
    return Subscriber(session, resp, pid)


async def on_both_workers(server, token: str) -> list[Subscriber]:
    """Streams of one user until both workers hold at least one."""
    subs: list[Subscriber] = []
    while len({s.pid for s in subs}) < 2:
        assert len(subs) < 40, "every stream went to one worker"
        subs.append(await subscribe(server, token))
    return subs
