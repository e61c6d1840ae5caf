"""SSE fan-out benchmark: N subscribers of GET /api/notifications/stream on one server process.

Measures, for one write that every subscriber hears about, the time from the write's response
arriving at the writer to the message arriving at each subscriber (min/p50/p90/p99/max over
N x rounds samples; negative when delivery beats the response, and kept so), the time to the
first and to the last subscriber per round, and the server's RSS (peak, sampled every 50 ms;
before the streams open; with them open; after the rounds). Goal (the issue): 2,000
subscribers, p99 < 250 ms, peak RSS < 300 MB.

How: a fresh database (calsvc_bench_sse), `calsvc serve --workers 1` (it serves in-process;
its output goes to --server-log), one owner and N users (register + login), ceil(N/999) events
of the owner, each shared with up to 999 of them (1,000 people per event, the owner included),
so every subscriber sees exactly one event. --clients processes (spawned, uvloop) hold the N
streams in one aiohttp session each, parse the lines themselves and timestamp each message
when its blank line arrives. Each round the owner sends one POST /api/transactions updating
every event's title to a fresh unique title; a subscriber's receipt is the message whose
summary names that title. The second scenario (--patch-rounds) PATCHes one event only (its
999 subscribers). Server, PostgreSQL and client CPU over the rounds are reported: the
machine's cores are shared by all three. Exit status 1 if any subscriber missed a message.

    .venv/bin/python bench/sse_fanout.py [--subscribers 2000] [--rounds 20] [--patch-rounds 5] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import re
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import aiohttp
import asyncpg
import psutil

DB = "calsvc_bench_sse"
PG = "postgresql://postgres@127.0.0.1:5432"
PER_EVENT = 999
TITLE = re.compile(r'updated "(.*)" \(')  # `owner updated "TITLE" (title)`
PASSWORD = "bench-password-1"
MB = 2**20


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


# -- client processes: the subscribers --------------------------------------------------------


def client_main(base: str, subs: list[tuple[int, str, int]], conn) -> None:
    """Hold one stream per (user_id, token, event_id) and answer the parent's commands."""
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(_client(base, subs, conn))


async def _client(base: str, subs: list[tuple[int, str, int]], conn) -> None:
    arrivals: dict[str, list[float]] = {}  # title -> receipt times
    errors: list[str] = []
    changed = asyncio.Event()
    state = {"connected": 0, "dupes": 0}  # dupes: a title heard twice by one subscriber
    handshake = asyncio.Semaphore(64)  # streams opening at once (the server's pool is small)

    async def subscribe(session: aiohttp.ClientSession, token: str) -> None:
        seen: set[str] = set()
        for attempt in range(5):
            try:
                async with handshake:
                    resp = await session.get(
                        f"{base}/api/notifications/stream", headers={"Authorization": f"Bearer {token}"}
                    )
                async with resp:
                    if resp.status != 200:
                        errors.append(f"stream: HTTP {resp.status} {(await resp.text())[:120]}")
                        await asyncio.sleep(1 + attempt)
                        continue
                    state["connected"] += 1
                    changed.set()
                    data = None
                    async for raw in resp.content:  # split on \n; the lines end with \r\n
                        line = raw.rstrip(b"\r\n")
                        if line.startswith(b"data:"):
                            data = line[5:]
                        elif not line and data is not None:
                            now = time.time()
                            m = TITLE.search(json.loads(data)["summary"])
                            data = None
                            if m and m.group(1) in seen:
                                state["dupes"] += 1
                            elif m:
                                seen.add(m.group(1))
                                arrivals.setdefault(m.group(1), []).append(now)
                                changed.set()
                    state["connected"] -= 1
                    errors.append("a stream ended")
                    return
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(f"stream: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1 + attempt)

    async def wait_for(pred, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not pred() and time.monotonic() < end:
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), end - time.monotonic())
            except TimeoutError:
                pass

    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        tasks = [asyncio.create_task(subscribe(session, tok)) for _, tok, _ in subs]
        while True:
            cmd = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            if cmd[0] == "connect":
                await wait_for(lambda: state["connected"] >= len(subs), cmd[1])
                conn.send((state["connected"], errors[:5]))
            elif cmd[0] == "cpu":
                conn.send(time.process_time())
            elif cmd[0] == "round":  # ("round", title, event ids written, timeout)
                _, title, events, limit = cmd
                expect = sum(1 for _, _, e in subs if e in events)
                await wait_for(lambda t=title, n=expect: len(arrivals.get(t, ())) >= n, limit)
                got = arrivals.pop(title, [])
                conn.send((got, expect - len(got), state["dupes"], errors[:5]))
                state["dupes"] = 0
            else:  # stop
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                conn.send("stopped")
                return


def ask(pipes, cmd: tuple) -> list:
    for p in pipes:
        p.send(cmd)
    return [p.recv() for p in pipes]


# -- the server, its RSS, the database --------------------------------------------------------


class RssSampler(threading.Thread):
    """The peak RSS of a process and its children, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def now(self) -> int:
        try:
            return sum(p.memory_info().rss for p in [self.proc, *self.proc.children(recursive=True)])
        except psutil.Error:
            return 0

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.05)


def pg_cpu() -> float:
    """CPU seconds of the PostgreSQL processes alive now (best effort)."""
    return sum(
        p.info["cpu_times"].user + p.info["cpu_times"].system
        for p in psutil.process_iter(["name", "cpu_times"])
        if p.info["name"] == "postgres" and p.info["cpu_times"] is not None
    )


async def reset_db(create: bool) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if create:
            await conn.execute(f"CREATE DATABASE {DB}")
    finally:
        await conn.close()


def start_server(port: int, log, level: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        CALSVC_DATABASE_URL=f"{PG}/{DB}",
        CALSVC_AUTH_SECRET=secrets.token_hex(32),
        CALSVC_AUTH_BCRYPT_ROUNDS="4",
        CALSVC_RATE_LIMIT_AUTH_PER_MINUTE="0",
        CALSVC_RATE_LIMIT_USER_PER_MINUTE="0",
        CALSVC_SERVER_LOG_LEVEL=level,
        CALSVC_AUTH_ACCESS_TOKEN_MINUTES="120",
    )  # a stream ends when its token expires
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen(
        [sys.executable, "-m", "calsvc", "serve", "--port", str(port), "--workers", "1"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"the server exited ({server.returncode}); see {log.name}") from None
            time.sleep(0.2)
    raise SystemExit("the server did not become ready")


# -- seeding and the writer --------------------------------------------------------------------


async def call(s: aiohttp.ClientSession, method: str, url: str, body=None, token=None, ok=(200, 201)):
    async with s.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"} if token else {}) as r:
        data = await r.json(content_type=None)
        if r.status not in ok:
            raise RuntimeError(f"{method} {url}: {r.status} {data}")
        return data


async def user(s, base: str, name: str) -> tuple[int, str]:
    u = await call(
        s,
        "POST",
        f"{base}/api/auth/register",
        {"username": name, "email": f"{name}@bench.example", "password": PASSWORD},
    )
    t = await call(s, "POST", f"{base}/api/auth/login", {"username": name, "password": PASSWORD})
    return u["id"], t["access_token"]


async def seed(base: str, n: int) -> tuple[str, list[int], list[tuple[int, str, int]]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
        _, owner = await user(s, base, "owner")
        users = await asyncio.gather(*(user(s, base, f"sub{i:05d}") for i in range(n)))
        events, subs = [], []
        for k in range(math.ceil(n / PER_EVENT)):
            day = f"2026-12-{k % 28 + 1:02d}"  # a day each: the owner's events must not overlap
            ev = await call(
                s,
                "POST",
                f"{base}/api/events",
                {"title": f"fan-out {k}", "start_time": f"{day}T09:00:00Z", "end_time": f"{day}T10:00:00Z"},
                owner,
            )
            group = users[k * PER_EVENT : (k + 1) * PER_EVENT]
            for i in range(0, len(group), 100):
                await call(
                    s,
                    "POST",
                    f"{base}/api/events/{ev['id']}/share",
                    {"users": [{"user_id": uid, "role": "viewer"} for uid, _ in group[i : i + 100]]},
                    owner,
                )
            events.append(ev["id"])
            subs += [(uid, tok, ev["id"]) for uid, tok in group]
        return owner, events, subs


async def scenario(base, owner, events, pipes, rounds, patch, timeout, verbose) -> dict:
    r = {"lat": [], "last": [], "first": [], "req": [], "missing": 0, "dupes": 0}
    written = {events[0]} if patch else set(events)
    async with aiohttp.ClientSession() as s:
        for i in range(rounds):
            title = f"round {i} {'patch' if patch else 'tx'} {uuid.uuid4().hex[:12]}"
            t0 = time.time()
            if patch:
                await call(s, "PATCH", f"{base}/api/events/{events[0]}", {"title": title}, owner, ok=(200,))
            else:
                await call(
                    s,
                    "POST",
                    f"{base}/api/transactions",
                    {"operations": [{"op": "update", "id": e, "changes": {"title": title}} for e in events]},
                    owner,
                    ok=(200,),
                )
            t_resp = time.time()
            ms = []
            for got, missing, dupes, errs in ask(pipes, ("round", title, written, timeout)):
                ms += [(t - t_resp) * 1000 for t in got]
                r["missing"] += missing
                r["dupes"] += dupes
                if missing:
                    print(f"  round {i}: {missing} missing; client errors: {errs}", file=sys.stderr)
            r["req"].append((t_resp - t0) * 1000)
            r["lat"] += ms
            if ms:
                r["first"].append(min(ms))
                r["last"].append(max(ms))
                if verbose:
                    print(
                        f"  round {i:2}: write {(t_resp - t0) * 1000:6.1f} ms; first {min(ms):6.1f}  "
                        f"p50 {pct(ms, 50):6.1f}  last {max(ms):6.1f} ms"
                    )
            await asyncio.sleep(0.5)
    return r


def report(name: str, r: dict, expected: int) -> None:
    lat, med = r["lat"], statistics.median
    print(f"{name}: samples {len(lat)}/{expected}, missing {r['missing']}, duplicates {r['dupes']}")
    if lat:
        print(
            f"  latency ms: min {min(lat):.1f}  p50 {pct(lat, 50):.1f}  p90 {pct(lat, 90):.1f}  "
            f"p99 {pct(lat, 99):.1f}  max {max(lat):.1f}"
        )
        print(
            f"  per round ms: to last subscriber median {med(r['last']):.1f} max {max(r['last']):.1f}; "
            f"to first median {med(r['first']):.1f}; write request median {med(r['req']):.1f} "
            f"max {max(r['req']):.1f}"
        )


def run(args, base: str, log) -> int:
    server, sampler, procs, pipes, failed = None, None, [], [], True
    try:
        server = start_server(args.port, log, args.log_level)
        sampler = RssSampler(server.pid)
        sampler.start()
        t = time.time()
        owner, events, subs = asyncio.run(seed(base, args.subscribers))
        print(f"seeded {len(subs)} subscribers over {len(events)} events in {time.time() - t:.1f} s")
        rss_before = sampler.now()
        ctx = mp.get_context("spawn")
        for k in range(args.clients):
            parent, child = ctx.Pipe()
            procs.append(ctx.Process(target=client_main, args=(base, subs[k :: args.clients], child), daemon=True))
            procs[-1].start()
            pipes.append(parent)
        t = time.time()
        states = ask(pipes, ("connect", 120.0))
        opened = sum(c for c, _ in states)
        if opened < len(subs):
            raise SystemExit(f"only {opened} of {len(subs)} streams opened: {states}")
        print(f"{opened} streams open in {time.time() - t:.1f} s")
        time.sleep(1.0)
        rss_open = sampler.now()
        srv = psutil.Process(server.pid)
        cpu0, pg0, ccpu0, wall0 = srv.cpu_times(), pg_cpu(), ask(pipes, ("cpu",)), time.time()
        tx = asyncio.run(scenario(base, owner, events, pipes, args.rounds, False, args.timeout, args.verbose))
        wall, cpu1, pg1, ccpu1 = time.time() - wall0, srv.cpu_times(), pg_cpu(), ask(pipes, ("cpu",))
        patch = None
        if args.patch_rounds:
            patch = asyncio.run(
                scenario(base, owner, events, pipes, args.patch_rounds, True, args.timeout, args.verbose)
            )
        rss_after = sampler.now()

        print(
            f"\nsubscribers {len(subs)} ({args.clients} client processes), events {len(events)}, "
            f"rounds {args.rounds}; {os.cpu_count()} cores shared by PostgreSQL, the server and the clients"
        )
        report("transaction touching every event", tx, len(subs) * args.rounds)
        if patch is not None:
            n = sum(1 for s in subs if s[2] == events[0])
            report(f"PATCH of one event ({n} subscribers)", patch, n * args.patch_rounds)
        server_cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
        print(
            f"CPU over the transaction rounds ({wall:.1f} s wall), in % of one core: server "
            f"{server_cpu / wall:.0%}, PostgreSQL {(pg1 - pg0) / wall:.0%}, clients "
            + ", ".join(f"{(b - a) / wall:.0%}" for a, b in zip(ccpu0, ccpu1))
        )
        print(
            f"server RSS MB: before the streams {rss_before / MB:.0f}, streams open {rss_open / MB:.0f}, "
            f"after the rounds {rss_after / MB:.0f}, peak {sampler.peak / MB:.0f}"
        )
        missed = tx["missing"] + (patch["missing"] if patch else 0)
        p99 = pct(tx["lat"], 99) if tx["lat"] else math.inf
        print(
            f"goal: p99 {p99:.1f} ms < 250 ms: {'yes' if p99 < 250 else 'NO'}; peak RSS "
            f"{sampler.peak / MB:.0f} MB < 300 MB: {'yes' if sampler.peak < 300 * MB else 'NO'}; "
            f"missed messages: {missed}"
        )
        failed = missed > 0
    finally:
        for pipe, proc in zip(pipes, procs):
            try:
                pipe.send(("stop",))
                pipe.poll(10) and pipe.recv()
            except (OSError, EOFError):
                pass
            proc.join(5)
            proc.terminate()  # if it is still there
        if sampler is not None:
            sampler.done.set()
        if server is not None:
            server.terminate()  # SIGTERM: a clean stop
            server.wait(30)
        asyncio.run(reset_db(create=False))
        print(f"server log: {args.server_log}")
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--patch-rounds", type=int, default=5, help="rounds of the one-event PATCH (0: skip)")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--clients", type=int, default=2, help="client processes holding the streams")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a round waits for every subscriber")
    ap.add_argument("--server-log", default=os.path.join(tempfile.gettempdir(), "calsvc_sse_fanout_server.log"))
    ap.add_argument("--log-level", default="WARNING", help="the server's")
    ap.add_argument("--verbose", action="store_true", help="a line per round")
    args = ap.parse_args()
    raise_nofile()  # inherited by the server and the clients
    if not args.port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{args.port}"
    asyncio.run(reset_db(create=True))
    with open(args.server_log, "w") as log:
        return run(args, base, log)


if __name__ == "__main__":
    sys.exit(main())
