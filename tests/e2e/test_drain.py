"""SIGTERM drains: a rolling restart of two `calsvc serve` processes behind a real HAProxy
that checks `/readyz` every 500 ms fails no request, and what a single process does between
the signal and its exit (`/readyz` 503, `Connection: close`, streams ended with a retry hint).

Without haproxy the balancer test is skipped, unless CALSVC_TEST_REQUIRE_HAPROXY=1 (set by
.ci/run, which installs it), where a missing haproxy fails it."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import shutil
import signal
import statistics
import subprocess
import time
import uuid

import aiohttp
import pytest

from tests.e2e.clients import EVENT, call, user
from tests.e2e.conftest import free_port
from tests.factories import bearer

pytestmark = pytest.mark.e2e

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
DRAIN = "2"  # the documented default, spelt out: base_env turns draining off for the other tests

SLOTS_FROM = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
HAPROXY_CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    option http-keep-alive

frontend calsvc
    bind 127.0.0.1:{port}
    default_backend backends

backend backends
    balance roundrobin
    http-reuse always
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 500 fall 3 rise 2
    server a 127.0.0.1:{a}
    server b 127.0.0.1:{b}

listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
"""


class HAProxy:
    def __init__(self, tmp_path, a: int, b: int) -> None:
        self.port, self.stats_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(port=self.port, stats=self.stats_port, a=a, b=b))
        self.log_path = tmp_path / "haproxy.log"
        self._log = open(self.log_path, "wb")
        assert HAPROXY is not None
        self.process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=self._log,
                                        stderr=subprocess.STDOUT)

    async def status(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it (UP, DOWN, MAINT...)."""
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.stats_port}/stats;csv") as resp:
                text = (await resp.text()).lstrip("# ")
        return {row["svname"]: row["status"] for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "backends"}

    async def wait_up(self, *names: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = await self.status()
                if all(status.get(name, "").startswith("UP") for name in names):
                    return
            except aiohttp.ClientError:
                status = {}
            assert time.monotonic() < deadline, f"HAProxy never saw {names} up: {status}"
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def haproxy_binary() -> str:
    if HAPROXY is None:
        if os.environ.get("CALSVC_TEST_REQUIRE_HAPROXY") == "1":
            pytest.fail("haproxy is required here (CALSVC_TEST_REQUIRE_HAPROXY=1): apt-get install haproxy")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    return HAPROXY


class Load:
    """Clients sending reads and creates (with an Idempotency-Key) through the balancer on
    kept-alive connections, never retrying: every request that does not get its answer counts."""

    def __init__(self, base: str, token: str, event_id: int, clients: int = 8) -> None:
        self.base, self.token, self.event_id, self.clients = base, token, event_id, clients
        self.ok = 0
        self._slot = 0
        self.took: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self) -> None:
        connector = aiohttp.TCPConnector(limit=1)  # one kept-alive connection per client
        async with aiohttp.ClientSession(self.base, connector=connector) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                if n % 2:
                    await self._one(http, "GET", f"/api/events/{self.event_id}", 200)
                else:
                    key = uuid.uuid4().hex
                    self._slot += 1  # each create at a time of its own: an overlap would be a 409
                    start = SLOTS_FROM + dt.timedelta(minutes=30 * self._slot)
                    body = {"title": "Load", "start_time": start.isoformat(),
                            "end_time": (start + dt.timedelta(minutes=15)).isoformat()}
                    await self._one(http, "POST", "/api/events", 201, json=body,
                                    headers={**bearer(self.token), "Idempotency-Key": key})

    async def _one(self, http: aiohttp.ClientSession, method: str, path: str, status: int, **kwargs) -> None:
        kwargs.setdefault("headers", bearer(self.token))
        started = time.monotonic()
        try:
            async with http.request(method, path, timeout=aiohttp.ClientTimeout(total=10), **kwargs) as resp:
                await resp.read()
                if resp.status == status:
                    self.ok += 1
                    self.took.setdefault(method, []).append(time.monotonic() - started)
                    return
                what = f"{resp.status} {resp.reason}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            what = f"{type(exc).__name__}: {exc}"
        self.failures.append(f"{method} {path} at {started:.2f}: {what}")


async def test_rolling_restart_behind_haproxy_fails_no_request(haproxy_binary, start_server, server_env, tmp_path):
    env = {**server_env, "CALSVC_SERVER_DRAIN_SECONDS": DRAIN}
    a = start_server(**env)
    b = start_server("--workers", "2", **env)  # the parent forwards SIGTERM to its workers
    a.wait_ready()
    b.wait_ready()
    balancer = HAProxy(tmp_path, a.port, b.port)
    try:
        await balancer.wait_up("a", "b")
        _, token = await user(balancer.base, f"rolling_{uuid.uuid4().hex[:6]}")
        event = await call(balancer.base, "POST", "/api/events", token, 201, json=EVENT)
        assert event is not None
        load = Load(balancer.base, token, event["id"])
        load.start()
        await asyncio.sleep(1)
        for name, old, args in (("a", a, ()), ("b", b, ("--workers", "2"))):
            signalled = time.monotonic()
            assert await asyncio.to_thread(old.stop) == 0, old.log()
            stopped = time.monotonic() - signalled
            new = start_server(*args, port=old.port, **env)
            await asyncio.to_thread(new.wait_ready)
            await balancer.wait_up(name)
            await asyncio.sleep(0.5)
            print(f"{name}: stopped {stopped:.2f} s after SIGTERM; {load.ok} answers so far")
        await load.stop()
        print({method: (len(took), round(statistics.median(took), 3), round(max(took), 3))
               for method, took in load.took.items()})
    finally:
        balancer.stop()
    assert load.ok > 200, f"too few requests to tell: {load.ok}"
    assert not load.failures, f"{len(load.failures)} of {load.ok + len(load.failures)} failed: {load.failures[:10]}"


async def test_sigterm_drains_then_stops(start_server, server_env):
    """One process: for the drain period `/readyz` says 503, answers close their connection,
    new connections are still served; then streams end with a retry hint and it exits 0."""
    server = start_server(**{**server_env, "CALSVC_SERVER_DRAIN_SECONDS": DRAIN})
    server.wait_ready()
    _, token = await user(server.base, f"drain_{uuid.uuid4().hex[:6]}")
    event = await call(server.base, "POST", "/api/events", token, 201, json=EVENT)
    assert event is not None
    async with aiohttp.ClientSession(server.base) as kept, aiohttp.ClientSession(server.base) as streams:
        async with kept.get("/readyz") as resp:
            assert resp.status == 200 and resp.headers.get("Connection", "").lower() != "close"
        stream = await streams.get("/api/notifications/stream", headers=bearer(token))
        assert stream.status == 200
        await stream.content.readline()  # the first retry hint
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        async with kept.get("/readyz") as resp:  # the same kept-alive connection
            assert resp.status == 503, await resp.text()
            assert resp.headers.get("Connection", "").lower() == "close"
        async with kept.get("/healthz") as resp:
            assert resp.status == 200
        await asyncio.sleep(0.5)
        # still accepting new connections and serving them
        await call(server.base, "GET", f"/api/events/{event['id']}", token)
        assert server.process.poll() is None
        rest = await asyncio.wait_for(stream.content.read(), 10)
        stream.close()
        elapsed = time.monotonic() - signalled
        assert b"retry:" in rest, rest
        assert 1.8 <= elapsed < 4, elapsed
    assert await asyncio.to_thread(server.process.wait, 10) == 0
    assert "Traceback" not in server.log()
