"""Slow clients against a real `calsvc serve`, over raw sockets: headers that do not arrive in
time get a 408 and a closed connection, a body that stops gets a 408 and writes nothing, a
slow body that keeps moving is served, and hundreds of slow connections do not keep the
process from answering others."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest

from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SLACK = 1.5  # seconds a loaded 2-core machine may add to a deadline
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: calsvc\r\n\r\n"
# A request that never completes at a byte a second: a long header before the blank line.
DRIBBLED = b"GET /healthz HTTP/1.1\r\nHost: calsvc\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
EVENT = {"title": "Upload", "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T09:15:00Z",
         "description": "x" * 400}


def slow_server(start_server, server_env, *args: str, header: float = HEADER_TIMEOUT,
                body: float = BODY_TIMEOUT):
    server = start_server(*args, CALSVC_SERVER_HEADER_TIMEOUT=str(header),
                          CALSVC_SERVER_BODY_TIMEOUT=str(body), **server_env)
    server.wait_ready()
    return server


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after `limit` s)."""
    return await asyncio.wait_for(reader.read(), limit)


async def dribble(port: int, data: bytes, every: float, limit: float) -> tuple[bytes, float]:
    """Send `data` a byte every `every` seconds until the server closes the connection:
    (what it answered, seconds from connecting to the close)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed = asyncio.create_task(read_until_closed(reader, limit))
    try:
        for byte in data:
            writer.write(bytes([byte]))
            done, _ = await asyncio.wait([closed], timeout=every)
            if done:
                break
        answer = await closed
        return answer, time.monotonic() - started
    finally:
        writer.close()


async def exchange(port: int, data: bytes, limit: float = 5) -> tuple[bytes, float]:
    """One whole request on a new connection: (the answer's head and body, seconds taken)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limit)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        body = await asyncio.wait_for(reader.readexactly(length), limit)
        return head + body, time.monotonic() - started
    finally:
        writer.close()


def problem_of(answer: bytes) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"content-type: application/problem+json" in head.lower(), answer
    assert b"connection: close" in head.lower(), answer
    problem = json.loads(body)
    assert problem["type"] == "/problems/request-timeout" and problem["status"] == 408, problem
    return problem


async def user_token(base: str) -> str:
    name = f"slow_{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession(base) as http:
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        async with http.post("/api/auth/register", json=body) as resp:
            assert resp.status == 201, await resp.text()
        async with http.post("/api/auth/login", json={"username": name, "password": PASSWORD}) as resp:
            assert resp.status == 200
            return (await resp.json())["access_token"]


async def event_titles(base: str, token: str) -> list[str]:
    async with aiohttp.ClientSession(base) as http:
        async with http.get("/api/events", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
            return [item["title"] for item in (await resp.json())["items"]]


def create_head(token: str, body: bytes) -> bytes:
    return (f"POST /api/events HTTP/1.1\r\nHost: calsvc\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_dribbled_headers_get_408_while_a_proper_request_is_answered_at_once(
        start_server, server_env, workers):
    server = slow_server(start_server, server_env, "--workers", workers)
    slow = asyncio.create_task(dribble(server.port, DRIBBLED, every=1.0, limit=HEADER_TIMEOUT + 10))
    await asyncio.sleep(1.2)  # the slow client is under way
    answer, took = await exchange(server.port, REQUEST)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert took < 1.0, took

    answer, closed_after = await slow
    problem = problem_of(answer)
    assert "headers" in problem["detail"]
    assert HEADER_TIMEOUT - 0.1 <= closed_after <= HEADER_TIMEOUT + SLACK, closed_after
    assert "Traceback" not in server.log()


async def test_a_kept_alive_connection_may_idle_then_its_next_request_has_the_deadline(
        start_server, server_env):
    """A new connection that sends nothing is closed at the deadline without an answer; a
    kept-alive one idles past it (that is the keep-alive timeout's business), and the
    deadline of its next request runs from that request's first byte."""
    server = slow_server(start_server, server_env)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await read_until_closed(reader, HEADER_TIMEOUT + 10) == b""
    assert HEADER_TIMEOUT - 0.1 <= time.monotonic() - started <= HEADER_TIMEOUT + SLACK
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for _ in range(2):
            writer.write(REQUEST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 "), head
            await reader.readuntil(b"}")
            await asyncio.sleep(HEADER_TIMEOUT + 1)  # idle, longer than the header deadline
        writer.write(REQUEST[:10])
        started = time.monotonic()
        problem_of(await read_until_closed(reader, HEADER_TIMEOUT + 10))
        assert HEADER_TIMEOUT - 0.1 <= time.monotonic() - started <= HEADER_TIMEOUT + SLACK
    finally:
        writer.close()


async def read_for(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What arrives in `seconds` (the connection staying open)."""
    data, until = b"", time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            break
        assert chunk, "closed early"
        data += chunk
    return data


async def test_a_request_begun_during_a_long_answer_gets_its_time_after_it(start_server, server_env):
    """Bytes of a next request sent while an event stream is under way on the connection: the
    stream goes on past the deadline (no 408 in the middle of it); the next request's time
    runs once the stream has ended."""
    server = slow_server(start_server, {**server_env, "CALSVC_SERVER_SSE_HEARTBEAT": "0.5"})
    token = await user_token(server.base)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"GET /api/notifications/stream?access_token={token} HTTP/1.1\r\n"
                     "Host: calsvc\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 "), head
        writer.write(REQUEST[:15])
        during = await read_for(reader, HEADER_TIMEOUT + 1.5)
        assert b"ping" in during and b"408" not in during, during

        async with aiohttp.ClientSession(server.base) as http:
            async with http.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 204
        ended = time.monotonic()
        rest = await read_until_closed(reader, HEADER_TIMEOUT + 10)
        waited = time.monotonic() - ended
    finally:
        writer.close()
    assert b"HTTP/1.1 408 " in rest, rest
    problem_of(rest[rest.index(b"HTTP/1.1 408 "):])
    assert HEADER_TIMEOUT - 0.1 <= waited <= HEADER_TIMEOUT + 1 + SLACK, waited


async def test_a_stalled_body_gets_408_and_nothing_is_written(start_server, server_env):
    server = slow_server(start_server, server_env)
    token = await user_token(server.base)
    body = json.dumps(EVENT).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(create_head(token, body) + body[: len(body) // 2])
        started = time.monotonic()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BODY_TIMEOUT + 10)
        answered = time.monotonic()
        rest = await read_until_closed(reader, 5)
        closed = time.monotonic()
    finally:
        writer.close()
    problem = problem_of(head + rest)
    assert "body" in problem["detail"]
    assert BODY_TIMEOUT - 0.1 <= answered - started <= BODY_TIMEOUT + SLACK, answered - started
    assert closed - answered < 1.0, "the connection is closed with the answer, not kept lingering"
    assert await event_titles(server.base, token) == []
    assert "POST /api/events 408" in server.log()


async def test_a_slow_body_that_keeps_moving_is_served(start_server, server_env):
    """Pieces a little under the stall time apart: the whole upload takes far longer than
    either deadline and is fine."""
    server = slow_server(start_server, server_env)
    token = await user_token(server.base)
    body = json.dumps(EVENT).encode()
    pieces = [body[i:i + len(body) // 5 + 1] for i in range(0, len(body), len(body) // 5 + 1)]
    assert len(pieces) >= 5
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        writer.write(create_head(token, body))
        for piece in pieces:
            await asyncio.sleep(BODY_TIMEOUT * 0.6)
            writer.write(piece)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 201 "), head
    assert time.monotonic() - started > 2 * max(HEADER_TIMEOUT, BODY_TIMEOUT)
    assert await event_titles(server.base, token) == ["Upload"]


async def test_300_slow_connections_are_all_closed_while_healthz_answers_fast(
        start_server, server_env):
    header_timeout = 3.0
    server = slow_server(start_server, server_env, header=header_timeout)
    connections = 300
    latencies: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection each time
        async with aiohttp.ClientSession(server.base, connector=connector) as http:
            while not done.is_set():
                started = time.monotonic()
                async with http.get("/healthz", timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    assert resp.status == 200
                    await resp.read()
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.05)

    async def slow_client(i: int) -> tuple[bytes, float]:
        await asyncio.sleep(i * 0.002)  # opened over about half a second
        return await dribble(server.port, DRIBBLED, every=1.0, limit=header_timeout + 15)

    probing = asyncio.create_task(probe())
    results = await asyncio.gather(*(slow_client(i) for i in range(connections)))
    done.set()
    await probing

    for answer, closed_after in results:
        problem_of(answer)
        assert closed_after <= header_timeout + SLACK + 0.5, closed_after
    assert len(latencies) >= 20, latencies
    assert max(latencies) < 0.5, sorted(latencies)[-5:]
