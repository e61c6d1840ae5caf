"""Heavy requests against one server process, and what the others see meanwhile.

The questions: how long does a valid but heavy request take, and does the process keep
answering everybody else while it runs? Each scenario sends its heavy request while a probe
(one connection, one request after the other) reads one event of another user, and reports
the heavy request's time and the probe's latencies during it beside a quiet baseline.

- batch500_allow: POST /api/events/batch, 500 endless daily series at one time of day,
  on_conflict=allow (each item overlaps every earlier one at each of its 731 occurrences
  over the two years checked; each lists 100 of them).
- batch500_reject: 500 endless daily series at 500 different 2-minute slots, on_conflict=reject
  (nothing overlaps: every occurrence is asked and placed).
- freebusy: GET /api/freebusy over two years of a calendar of 130 daily series (95,000
  occurrences).
- exceptions: a daily series brought to 999 changed or cancelled occurrences by the API, then
  changes of one more occurrence at 1,000 (renaming it, alternately, so each is a new
  version): the time of each PUT, one after the other, with nothing else running.

How: a fresh database (calsvc_bench_heavy) on the PostgreSQL at --pg, `calsvc serve` with the
default configuration (one worker, the access log on at INFO) but rate limits off (the probe
alone sends thousands of requests a minute) and 10-hour access tokens.

    .venv/bin/python bench/heavy_requests.py [--pg postgresql://postgres@127.0.0.1:5432] [--markdown FILE]
        [--only exceptions]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "calsvc_bench_heavy"
PASSWORD = "bench password 1"
DAILY = {
    "start_time": "2027-01-04T09:00:00Z",
    "end_time": "2027-01-04T09:30:00Z",
    "timezone": "UTC",
    "recurrence": {"rrule": "FREQ=DAILY"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_database(pg: str) -> str:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return f"{pg}/{DB_NAME}"


def start_server(url: str, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSVC_")}
    env.update(
        CALSVC_DATABASE_URL=url,
        CALSVC_AUTH_SECRET=secrets.token_hex(32),
        CALSVC_RATE_LIMIT_AUTH_PER_MINUTE="0",
        CALSVC_RATE_LIMIT_USER_PER_MINUTE="0",
        CALSVC_AUTH_ACCESS_TOKEN_MINUTES="600",
    )
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "calsvc", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"calsvc exited ({proc.returncode}); see {log}") from None
            time.sleep(0.1)
    raise SystemExit(f"calsvc did not become ready; see {log}")


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(
        self, method: str, path: str, headers: dict | None = None, expect: int | None = None, **kwargs: Any
    ) -> Any:
        async with self.session.request(method, self.base + path, headers=headers, **kwargs) as resp:
            body = await resp.read()
            if expect is not None and resp.status != expect:
                raise SystemExit(f"{method} {path}: {resp.status} {body[:300]!r}")
            return resp.status, body

    async def user(self, name: str) -> dict[str, str]:
        await self.call(
            "POST",
            "/api/auth/register",
            expect=201,
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        _, body = await self.call("POST", "/api/auth/login", expect=200, json={"username": name, "password": PASSWORD})
        return {"Authorization": f"Bearer {json.loads(body)['access_token']}"}


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"n": len(ordered), "p50": pick(0.5), "p99": pick(0.99), "max": ordered[-1] * 1000}


async def probe_while(
    api: Api, path: str, headers: dict, work: Callable[[], Awaitable[Any]]
) -> tuple[float, dict, Any]:
    """Run `work()` while one connection reads `path` over and over: (seconds `work` took,
    the probe's latencies meanwhile, what `work` answered)."""
    samples: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await api.call("GET", path, headers=headers, expect=200)
            samples.append(time.perf_counter() - t)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.2)
    samples.clear()
    start = time.perf_counter()
    try:
        answer = await work()
    finally:
        took = time.perf_counter() - start
        done.set()
        await task
    return took, summary(samples), answer


async def run(args: argparse.Namespace) -> list[str]:
    url = fresh_database(args.pg)
    port = free_port()
    log = Path(args.server_log)
    proc = start_server(url, port, log)
    rows: list[str] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            api = Api(session, f"http://127.0.0.1:{port}")
            reader = await api.user("reader")
            _, body = await api.call(
                "POST",
                "/api/events",
                headers=reader,
                expect=201,
                json={"title": "Probe", "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T10:00:00Z"},
            )
            probe_path = f"/api/events/{json.loads(body)['id']}"

            if args.only == "exceptions":
                rows.append(await exceptions(api))
                return rows

            async def quiet() -> None:
                await asyncio.sleep(3)

            _, base, _ = await probe_while(api, probe_path, reader, quiet)
            rows.append(row("quiet (baseline)", None, base, ""))

            async def batch(headers: dict, items: list[dict], strategy: str) -> Callable[[], Awaitable[Any]]:
                async def work() -> Any:
                    status, _ = await api.call(
                        "POST", "/api/events/batch", headers=headers, json={"events": items, "on_conflict": strategy}
                    )
                    return status

                return work

            for name, items, strategy in (
                ("batch500_allow", [{**DAILY, "title": f"Daily {i}"} for i in range(500)], "allow"),
                (
                    "batch500_reject",
                    [
                        {
                            **DAILY,
                            "title": f"Slot {i}",
                            "start_time": f"2027-01-04T{i * 2 // 60:02d}:{i * 2 % 60:02d}:00Z",
                            "end_time": f"2027-01-04T{(i * 2 + 1) // 60:02d}:{(i * 2 + 1) % 60:02d}:00Z",
                        }
                        for i in range(500)
                    ],
                    "reject",
                ),
            ):
                owner = await api.user(name)
                took, seen, status = await probe_while(api, probe_path, reader, await batch(owner, items, strategy))
                rows.append(row(name, took, seen, f"status {status}"))

            crowded = await api.user("crowded")
            items = [
                {
                    **DAILY,
                    "title": f"Daily {i}",
                    "start_time": f"2027-01-04T{9 + i // 12:02d}:{i % 12 * 5:02d}:00Z",
                    "end_time": f"2027-01-04T{9 + (i + 1) // 12:02d}:{(i + 1) % 12 * 5:02d}:00Z",
                }
                for i in range(130)
            ]
            await api.call("POST", "/api/events/batch", headers=crowded, expect=201, json={"events": items})

            async def freebusy() -> Any:
                status, _ = await api.call(
                    "GET",
                    "/api/freebusy",
                    headers=crowded,
                    params={"start": "2027-01-04T00:00:00Z", "end": "2029-01-04T00:00:00Z"},
                )
                return status

            took, seen, status = await probe_while(api, probe_path, reader, freebusy)
            rows.append(row("freebusy (95,030 occurrences)", took, seen, f"status {status}"))

            rows.append(await exceptions(api))
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


async def exceptions(api: Api) -> str:
    headers = await api.user("exceptional")
    _, body = await api.call("POST", "/api/events", headers=headers, expect=201, json={**DAILY, "title": "Daily"})
    event = json.loads(body)["id"]

    def at(i: int) -> str:
        start = dt.datetime(2027, 1, 4, 9) + dt.timedelta(days=i)
        return f"/api/events/{event}/occurrences/{start.isoformat()}Z"

    for i in range(999):
        if i % 2:
            await api.call("DELETE", at(i), headers=headers, expect=204)
        else:
            await api.call("PUT", at(i), headers=headers, expect=200, json={"title": f"Changed {i}"})
    samples = []
    for n in range(200):
        t = time.perf_counter()
        await api.call("PUT", at(999), headers=headers, expect=200, json={"title": f"The 1,000th ({n})"})
        samples.append(time.perf_counter() - t)
    status, _ = await api.call("PUT", at(1000), headers=headers, json={"title": "One too many"})
    return row("exceptions: a change at 1,000", None, summary(samples), f"the 1,001st: {status}")


def row(name: str, took: float | None, seen: dict, note: str) -> str:
    took_text = "" if took is None else f"{took:.2f} s"
    return (
        f"| {name} | {took_text} | {seen['n']:,} | {seen['p50']:.1f} | {seen['p99']:.1f} | {seen['max']:.1f} | {note} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg", default=os.environ.get("CALSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--server-log", default="/tmp/calsvc-heavy.log")
    parser.add_argument("--markdown")
    parser.add_argument("--only", choices=["exceptions"], help="run this scenario alone")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    head = [
        "| scenario | heavy request | requests measured | p50 ms | p99 ms | max ms | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    text = "\n".join(head + rows)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
