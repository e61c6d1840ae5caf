"""Answers remembered under an Idempotency-Key, per user, for 24 hours. A write claims the
key in its transaction (claim_key), saves its answer there before the commit (save_answer)
or releases the key (release_key); a retry finds the answer (find_answer) and replays it."""

from __future__ import annotations

import datetime as dt

import asyncpg

from calsvc.models import StoredAnswer


async def find_answer(conn: asyncpg.Connection, user_id: int, key: str, since: dt.datetime) -> StoredAnswer | None:
    """The answer stored under the user's key since `since`; None when there is none."""
    row = await conn.fetchrow(
        """
        SELECT route, request_hash, status, body, location
        FROM idempotency_keys
        WHERE user_id = $1 AND key = $2 AND created_at >= $3
        """,
        user_id,
        key,
        since,
    )
    return None if row is None else StoredAnswer.from_row(row)


async def claim_key(
    conn: asyncpg.Connection, user_id: int, key: str, route: str, request_hash: bytes, since: dt.datetime
) -> bool:
    """Take the user's key for a request (`route`, `request_hash`), its answer not saved yet
    (status 0), replacing a row older than `since`; False when the key holds a newer one (a
    concurrent request with the same key committed first: the insert waits for it, so the
    caller can roll back and replay that answer)."""
    claimed = await conn.fetchval(
        """
        -- a key expires after `since`; until then the first claim stays
        INSERT INTO idempotency_keys AS k (user_id, key, route, request_hash, status, content_type, body, location)
        VALUES ($1, $2, $3, $4, 0, 'application/json', '', NULL)
        ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE
            SET route = EXCLUDED.route, request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
                body = EXCLUDED.body, location = EXCLUDED.location, created_at = now()
            WHERE k.created_at < $5
        RETURNING true
        """,
        user_id,
        key,
        route,
        request_hash,
        since,
    )
    return bool(claimed)


async def save_answer(
    conn: asyncpg.Connection, user_id: int, key: str, status: int, body: bytes, location: str | None
) -> None:
    """Put the answer into the row this transaction claimed with claim_key."""
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, body = $4, location = $5 WHERE user_id = $1 AND key = $2",
        user_id,
        key,
        status,
        body,
        location,
    )


async def release_key(conn: asyncpg.Connection, user_id: int, key: str) -> None:
    """Give up the key this transaction claimed (the request wrote nothing)."""
    await conn.execute("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2", user_id, key)


async def delete_older(conn: asyncpg.Connection, before: dt.datetime) -> int:
    result = await conn.execute("DELETE FROM idempotency_keys WHERE created_at < $1", before)
    return int(result.split()[-1])
