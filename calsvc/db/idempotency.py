"""Answers remembered under an Idempotency-Key (SPEC 5), per user, for 24 hours."""
from __future__ import annotations

import datetime as dt

import asyncpg

from calsvc.models import StoredAnswer


async def find(conn: asyncpg.Connection, user_id: int, key: str, since: dt.datetime) -> StoredAnswer | None:
    """The answer stored under the user's key since `since`; None when there is none."""
    row = await conn.fetchrow(
        """
        SELECT route, request_hash, status, body, location
        FROM idempotency_keys
        WHERE user_id = $1 AND key = $2 AND created_at >= $3
        """,
        user_id, key, since,
    )
    return None if row is None else StoredAnswer.from_row(row)


async def save(conn: asyncpg.Connection, user_id: int, key: str, answer: StoredAnswer,
               since: dt.datetime) -> bool:
    """Store the answer under the user's key (replacing one older than `since`); False when
    the key holds a newer answer (a concurrent request with the same key committed first:
    the insert waits for it, so the caller can roll back and replay that answer)."""
    stored = await conn.fetchval(
        """
        -- a key expires after `since`; until then the first answer stays
        INSERT INTO idempotency_keys AS k (user_id, key, route, request_hash, status, content_type, body, location)
        VALUES ($1, $2, $3, $4, $5, 'application/json', $6, $7)
        ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE
            SET route = EXCLUDED.route, request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
                body = EXCLUDED.body, location = EXCLUDED.location, created_at = now()
            WHERE k.created_at < $8
        RETURNING true
        """,
        user_id, key, answer.route, answer.request_hash, answer.status, answer.body, answer.location, since,
    )
    return bool(stored)


async def fill(conn: asyncpg.Connection, user_id: int, key: str, status: int, body: bytes,
               location: str | None) -> None:
    """Put the answer into the row a transaction claimed with `save`."""
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, body = $4, location = $5 WHERE user_id = $1 AND key = $2",
        user_id, key, status, body, location,
    )


async def forget(conn: asyncpg.Connection, user_id: int, key: str) -> None:
    await conn.execute("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2", user_id, key)


async def delete_older(conn: asyncpg.Connection, before: dt.datetime) -> int:
    result = await conn.execute("DELETE FROM idempotency_keys WHERE created_at < $1", before)
    return int(result.split()[-1])
