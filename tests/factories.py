"""What many tests build first, made through the API as a client would (users and their
tokens, events, shares, the inbox), and `connect`, a connection of the test's own to its
database for what the API does not show or cannot do."""
from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import asyncpg

PASSWORD = "correct horse battery"
STANDUP = {
    "title": "Standup", "start_time": "2026-12-01T09:00:00+01:00", "end_time": "2026-12-01T09:15:00+01:00",
    "timezone": "Europe/Berlin",
}


@contextlib.asynccontextmanager
async def connect(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, closed when the block ends (a transaction left
    open in it is rolled back)."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


# -- users ----------------------------------------------------------------------------------

def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client, username: str | None = None, **fields: Any) -> dict[str, Any]:
    """A new user (a random name unless given); asserts the 201."""
    username = username or f"user_{uuid.uuid4().hex[:8]}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD, **fields}
    resp = await client.post("/api/auth/register", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def login(client, username: str, password: str = PASSWORD) -> dict[str, Any]:
    """The tokens of a new session; asserts the 200."""
    resp = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def user_with_token(client, username: str | None = None) -> tuple[dict, dict, dict]:
    """(user, tokens, headers) of a newly registered, logged-in user."""
    user = await register(client, username)
    tokens = await login(client, user["username"])
    return user, tokens, bearer(tokens["access_token"])


async def people(client, n: int) -> list[tuple[dict, dict]]:
    """(user, headers) of `n` new users."""
    out = []
    for _ in range(n):
        user, _, headers = await user_with_token(client)
        out.append((user, headers))
    return out


async def me_status(client, access_token: str) -> int:
    """The status GET /api/auth/me answers with this token."""
    resp = await client.get("/api/auth/me", headers=bearer(access_token))
    await resp.read()
    return resp.status


async def refresh(client, refresh_token: str):
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


# -- events ---------------------------------------------------------------------------------

def event_json(title: str, start: dt.datetime, length: dt.timedelta, **extra: Any) -> dict[str, Any]:
    """The body of an event in UTC starting at `start`, `length` long."""
    return {"title": title, "start_time": start.isoformat(), "end_time": (start + length).isoformat(),
            "timezone": "UTC", **extra}


async def create_event(client, headers, **changes: Any):
    """(response, event) of a new event: STANDUP with `changes`; asserts the 201."""
    resp = await client.post("/api/events", json={**STANDUP, **changes}, headers=headers)
    assert resp.status == 201, await resp.text()
    return resp, await resp.json()


def occurrence_url(event, start: str) -> str:
    return f"/api/events/{event['id']}/occurrences/{quote(start, safe='')}"


async def shared_event(client, n_others: int, roles=("editor",), **fields: Any):
    """((owner, headers), [(user, headers)...], event): an event of a new owner shared through
    the API with `n_others` new users (roles in turn)."""
    everyone = await people(client, 1 + n_others)
    (owner, oh), others = everyone[0], everyone[1:]
    _, event = await create_event(client, oh, **fields)
    users = [{"user_id": u["id"], "role": roles[i % len(roles)]} for i, (u, _) in enumerate(others)]
    if users:
        resp = await client.post(f"/api/events/{event['id']}/share", headers=oh, json={"users": users})
        assert resp.status == 200, await resp.text()
    return (owner, oh), others, event


async def grant(database_url: str, event_id: int, user_id: int, role: str) -> None:
    """Give `user_id` a role on the event straight in the database, past the API and its
    checks (and without a notification or an entry in the access log)."""
    async with connect(database_url) as conn:
        await conn.execute(
            """
            INSERT INTO event_permissions (event_id, user_id, role, granted_by, starts_at, during, version)
            SELECT id, $2, $3, owner_id, start_time, during, version FROM events WHERE id = $1
            """,
            event_id, user_id, role)


async def versions(database_url: str, event_id: int) -> list[tuple]:
    """(version, kind, actor_id, changed_fields, snapshot as text) of each stored version."""
    async with connect(database_url) as conn:
        rows = await conn.fetch(
            "SELECT version, kind, actor_id, changed_fields, snapshot::text AS snapshot FROM event_versions "
            "WHERE event_id = $1 ORDER BY version", event_id)
    return [tuple(r) for r in rows]


# -- notifications --------------------------------------------------------------------------

async def inbox(client, headers, **params: Any) -> dict:
    """A page of GET /api/notifications; asserts the 200."""
    resp = await client.get("/api/notifications", headers=headers, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def kinds(client, headers) -> list[tuple[str, int, str]]:
    """(kind, event id, summary) of every notification, oldest first."""
    items = (await inbox(client, headers, limit=500))["items"]
    return [(n["kind"], n["event_id"], n["summary"]) for n in reversed(items)]
