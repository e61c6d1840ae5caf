"""Notifications across worker processes: a real `calsvc serve --workers 2`,
subscribers held by each worker, changes made through either; the LISTEN/NOTIFY path, the
Redis path, Redis stopped and started again in the middle, and a clean shutdown."""
from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import time
import uuid

import aiohttp
import pytest

from calsvc.notify.broker import LISTENER_NAME, STEADY
from tests.e2e.clients import call, on_both_workers, shared_event, subscribe, user
from tests.e2e.conftest import free_port
from tests.factories import bearer, connect
from tests.sse import Reader

pytestmark = pytest.mark.e2e

async def changes_reach_every_worker(server) -> None:
    owner, listener, _, event = await shared_event(server.base)
    subs = await on_both_workers(server, listener)
    try:
        for i in range(5):
            await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": f"v{i}"})
            started = time.monotonic()
            for sub in subs:
                message = await sub.reader.next(timeout=5)
                assert message is not None and message.event == "event.updated"
                assert message.item["summary"].endswith(f'"v{i}" (title)')
            # a wake-up, not the 5 s heal
            assert time.monotonic() - started < 1.5, f"change {i} took {time.monotonic() - started:.2f} s"
        for sub in subs:
            await sub.reader.silent(0.2)
    finally:
        for sub in subs:
            await sub.close()


async def replay_after_reconnect(server) -> None:
    owner, listener, _, event = await shared_event(server.base)
    first = await subscribe(server, listener)
    await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": "seen"})
    seen = await first.reader.next()
    await first.close()
    for i in range(3):  # missed while away
        await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": f"missed {i}"})
    again = await subscribe(server, listener, last_event_id=int(seen.id))
    try:
        replayed = await again.reader.take(3)
        assert [m.item["summary"] for m in replayed] == [
            f'{m.item["actor"]["username"]} updated "missed {i}" (title)' for i, m in enumerate(replayed)]
        ids = [int(m.id) for m in replayed]
        assert ids == sorted(ids) and ids[0] > int(seen.id)
        await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": "live again"})
        live = await again.reader.next()
        assert live.item["summary"].endswith('"live again" (title)') and int(live.id) > ids[-1]
        await again.reader.silent(0.3)
    finally:
        await again.close()


async def test_listen_notify_across_two_workers(start_server, server_env):
    # a quick heartbeat: a stream whose client left ends (and is logged) at the next one
    server = start_server("--workers", "2", CALSVC_SERVER_SSE_HEARTBEAT="0.2", **server_env)
    server.wait_ready()
    await changes_reach_every_worker(server)
    await replay_after_reconnect(server)
    # EventSource's way in: the token in the query, which the log must not show
    owner, listener, _, event = await shared_event(server.base)
    async with aiohttp.ClientSession(server.base) as http:
        async with http.get("/api/notifications/stream", params={"access_token": listener}) as resp:
            assert resp.status == 200
            await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": "query"})
            reader = Reader(resp)
            assert (await reader.next()).event == "event.updated"
            # ended by the server (a logout revokes the token), the stream is logged as it ends
            await call(server.base, "POST", "/api/auth/logout", listener, 204, json={})
            assert await reader.next(timeout=5) is None
    deadline = time.monotonic() + 5
    while "access_token=[redacted]" not in server.log():
        assert time.monotonic() < deadline, "the stream's access log line never came"
        await asyncio.sleep(0.1)
    log = server.log()
    assert "access_token=[redacted]" in log and listener not in log and owner not in log
    assert "Traceback" not in log


async def test_redis_pubsub_across_two_workers(start_server, server_env):
    prefix = f"calsvc-test-{uuid.uuid4().hex[:8]}"
    server = start_server("--workers", "2", CALSVC_REDIS_URL="redis://127.0.0.1:6379/0",
                          CALSVC_REDIS_PREFIX=prefix, **server_env)
    server.wait_ready()
    await changes_reach_every_worker(server)
    await replay_after_reconnect(server)
    assert "RedisBroker: listening for wake-ups" in server.log()
    assert "Traceback" not in server.log()


# -- Redis stopped in the middle --------------------------------------------------------------

class RedisServer:
    """A redis-server of this test's own (stopping the shared one would hurt everything else)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis():
    redis = RedisServer()
    redis.start()
    yield redis
    redis.stop()


LIMIT = 10


async def burst(server, token: str, n: int, *, both: bool = True) -> tuple[int, set[str]]:
    """At least `n` requests on fresh connections: how many were allowed, and which workers
    answered. Workers share one listening socket and the kernel may hand a run of connections to
    one of them, so with `both` the burst goes on, a request at a time, until each has answered."""
    statuses: list[int] = []
    ids: list[str] = []

    async def one() -> None:
        request_id = uuid.uuid4().hex
        ids.append(request_id)
        async with aiohttp.ClientSession(server.base, connector=aiohttp.TCPConnector(force_close=True)) as http:
            async with http.get("/api/notifications", headers={**bearer(token), "X-Request-ID": request_id}) as resp:
                statuses.append(resp.status)

    def answered_by() -> set[str]:
        log = server.log()
        return {m.group(1) for r in ids for m in re.finditer(rf"\[(\d+)\] {r} ", log)}

    for _ in range(n):
        await one()
    await asyncio.sleep(0.3)  # the access log lines
    pids = answered_by()
    while both and len(pids) < 2 and len(ids) < n + 100:
        await one()
        await asyncio.sleep(0.05)
        pids = answered_by()
    assert set(statuses) <= {200, 429}, statuses
    return statuses.count(200), pids


async def until_a_fresh_window() -> None:
    """Not within 8 s of the end of a rate-limit minute (windows follow the wall clock)."""
    left = 60 - time.time() % 60
    if left < 8:
        await asyncio.sleep(left + 0.2)


async def test_redis_stopped_in_the_middle(start_server, server_env, own_redis):
    server = start_server("--workers", "2", CALSVC_REDIS_URL=f"redis://127.0.0.1:{own_redis.port}/0",
                          CALSVC_RATE_LIMIT_USER_PER_MINUTE=str(LIMIT), **server_env)
    server.wait_ready()
    owner, listener, _, event = await shared_event(server.base)
    _, limited = await user(server.base, f"limited_{uuid.uuid4().hex[:6]}")

    # Redis up: one limit for both workers
    await until_a_fresh_window()
    allowed, pids = await burst(server, limited, 3 * LIMIT)
    assert len(pids) == 2, "the burst did not reach both workers"
    assert allowed == LIMIT

    subs = await on_both_workers(server, listener)
    try:
        own_redis.stop()
        # still serving: limits per process, wake-ups healed from the database
        _, other = await user(server.base, f"other_{uuid.uuid4().hex[:6]}")
        allowed, pids = await burst(server, other, 3 * LIMIT)
        assert len(pids) == 2 and allowed > LIMIT  # each process counts alone
        await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": "while down"})
        for sub in subs:
            message = await sub.reader.next(timeout=12)
            assert message is not None and message.item["summary"].endswith('"while down" (title)')
        log = server.log()
        assert "Redis unreachable" in log

        own_redis.start()
        deadline = time.monotonic() + 15  # the listeners reconnect (backing off up to 5 s)
        while server.log().count("RedisBroker: listening for wake-ups") < 4:
            assert time.monotonic() < deadline, server.log()
            await asyncio.sleep(0.2)
        await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": "back"})
        started = time.monotonic()
        for sub in subs:
            message = await sub.reader.next(timeout=5)
            assert message.item["summary"].endswith('"back" (title)')
        assert time.monotonic() - started < 1.5  # by pub/sub again, not by the heal
        # each process's limiter tries Redis again within 2 s of its last failure
        deadline = time.monotonic() + 10
        while len(set(re.findall(r"\[(\d+)\] Redis is back", server.log()))) < 2:
            assert time.monotonic() < deadline, server.log()
            await burst(server, other, 1, both=False)  # answered 200 or 429: either way the limiter ran
            await asyncio.sleep(0.1)
        await until_a_fresh_window()
        _, third = await user(server.base, f"third_{uuid.uuid4().hex[:6]}")
        allowed, pids = await burst(server, third, 3 * LIMIT)
        assert len(pids) == 2 and allowed == LIMIT
        assert "Redis is back" in server.log()
    finally:
        for sub in subs:
            await sub.close()
    assert "Traceback" not in server.log()


async def test_shutdown_ends_streams_cleanly(start_server, server_env):
    server = start_server("--workers", "2", **server_env)
    server.wait_ready()
    owner, listener, _, event = await shared_event(server.base)
    subs = await on_both_workers(server, listener)
    try:
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for sub in subs:
            assert await sub.reader.next(timeout=10) is None  # the end of the response, not an error
        assert server.process.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.close()


async def test_a_closed_stream_frees_its_slot_within_seconds(start_server, server_env):
    """In a real server aiohttp does not cancel the handler of a client that left; without the
    hub's sweep such a stream held its slot until its next heartbeat (15 s), so a client
    reconnecting 20 streams was refused meanwhile."""
    server = start_server(**server_env)  # one worker: every stream in the same process
    server.wait_ready()
    _, token = await user(server.base, f"slots_{uuid.uuid4().hex[:6]}")
    for _ in range(2):
        subs = [await subscribe(server, token, find_worker=False) for _ in range(20)]
        for sub in subs:
            await sub.close()
        deadline = time.monotonic() + 3
        async with aiohttp.ClientSession(server.base) as http:
            while True:
                async with http.get("/api/notifications/stream", headers=bearer(token)) as resp:
                    if resp.status == 200:
                        break
                    assert resp.status == 429 and time.monotonic() < deadline, "the slots were not freed"
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # and this last one's slot, before the next round


async def test_the_listener_reconnects_at_once_after_each_loss(start_server, server_env):
    """The listening connection killed again and again, each time after it had listened for
    a while (STEADY): it reconnects within a second every time, and changes keep arriving by
    wake-up. (Its backoff once only grew: 0.1, 0.2, ... 5 s.)"""
    server = start_server(**server_env)
    server.wait_ready()
    owner, listener, _, event = await shared_event(server.base)
    sub = await subscribe(server, listener, find_worker=False)
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()"
    async with connect(server_env["CALSVC_DATABASE_URL"]) as conn:
        try:
            for i in range(7):
                [old] = [r["pid"] for r in await conn.fetch(query, LISTENER_NAME)]
                await conn.execute("SELECT pg_terminate_backend($1)", old)
                started = time.monotonic()
                while [r["pid"] for r in await conn.fetch(query, LISTENER_NAME)] in ([], [old]):
                    assert time.monotonic() - started < 1.5, f"loss {i}: no listener after 1.5 s"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(STEADY + 0.2)  # let it LISTEN a while
                await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": f"after loss {i}"})
                message = await sub.reader.next(timeout=5)
                assert message.item["summary"].endswith(f'"after loss {i}" (title)')
                assert time.monotonic() - started < 2.5 + STEADY
        finally:
            await sub.close()


async def test_the_listener_uses_database_listen_url(start_server, server_env):
    """`database.listen_url` is the LISTEN connection's (a direct one, when `url` is a pooler):
    pointed at a port where nothing listens, requests still work through `url`, the listener
    keeps failing, and streams get their notifications by the periodic heal (about 5 s)."""
    server = start_server(**server_env, CALSVC_DATABASE_LISTEN_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    server.wait_ready()
    owner, listener, _, event = await shared_event(server.base)
    sub = await subscribe(server, listener, find_worker=False)
    try:
        await call(server.base, "PATCH", f"/api/events/{event['id']}", owner, json={"title": "healed"})
        message = await sub.reader.next(timeout=8)
        assert message is not None and message.item["summary"].endswith('"healed" (title)')
    finally:
        await sub.close()
    assert "listening for wake-ups" not in server.log()  # it never got through (it would have on `url`)
