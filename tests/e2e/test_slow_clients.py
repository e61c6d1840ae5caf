"""Slow clients against a real `calsvc serve`, over raw sockets: a body that stops gets a 408
and writes nothing, a slow body that keeps moving is served."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SLACK = 1.5  # seconds a loaded 2-core machine may add to a deadline
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
