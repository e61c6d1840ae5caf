"""Refresh-token families, refresh tokens, and revoked access tokens."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from calsvc.models import RefreshToken, User


async def insert_family(conn: asyncpg.Connection, family_id: uuid.UUID, user_id: int, expires_at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO token_families (id, user_id, expires_at) VALUES ($1, $2, $3)", family_id, user_id, expires_at
    )


async def insert_refresh_token(
    conn: asyncpg.Connection, jti: uuid.UUID, family_id: uuid.UUID, expires_at: dt.datetime
) -> None:
    """Also extends the family's lifetime to the new token's."""
    await conn.execute(
        """
        WITH f AS (UPDATE token_families SET expires_at = greatest(expires_at, $3) WHERE id = $2)
        INSERT INTO refresh_tokens (jti, family_id, expires_at) VALUES ($1, $2, $3)
        """,
        jti,
        family_id,
        expires_at,
    )


async def lock_refresh_token(conn: asyncpg.Connection, jti: uuid.UUID) -> RefreshToken | None:
    """The token with its family's state and whether its user is live, locked for the
    rotation; None when unknown."""
    row = await conn.fetchrow(
        """
        SELECT t.jti, t.family_id, f.user_id, t.expires_at, t.rotated_at, f.revoked_at AS family_revoked_at,
               u.deleted_at IS NULL AS user_live
        FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id JOIN users u ON u.id = f.user_id
        WHERE t.jti = $1
        FOR UPDATE OF t, f
        """,
        jti,
    )
    return None if row is None else RefreshToken.from_row(row)


async def mark_rotated(conn: asyncpg.Connection, jti: uuid.UUID) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE jti = $1", jti)


async def revoke_family(
    conn: asyncpg.Connection, family_id: uuid.UUID, reason: str, user_id: int | None = None
) -> bool:
    """Revoke a family (of `user_id`, when given). False when none matched or it was revoked already."""
    status = await conn.execute(
        """
        UPDATE token_families SET revoked_at = now(), revoked_reason = $2
        WHERE id = $1 AND revoked_at IS NULL AND ($3::bigint IS NULL OR user_id = $3)
        """,
        family_id,
        reason,
        user_id,
    )
    return status != "UPDATE 0"


async def revoke_user_families(conn: asyncpg.Connection, user_id: int, reason: str) -> int:
    """Revoke every family of the user not yet revoked (so every refresh and access token
    issued in them); how many there were."""
    status = await conn.execute(
        "UPDATE token_families SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        reason,
    )
    return int(status.split()[-1])


async def revoke_access_token(conn: asyncpg.Connection, jti: uuid.UUID, expires_at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", jti, expires_at
    )


async def find_access_user(conn: asyncpg.Connection, user_id: int, jti: uuid.UUID, family_id: uuid.UUID) -> User | None:
    """The live user of an access token, or None when the user is gone or the token
    (itself, or its family) has been revoked."""
    row = await conn.fetchrow(
        """
        -- one round trip: the user, unless the token or its family is revoked
        SELECT u.id, u.username, u.email, u.full_name, u.created_at
        FROM users u
        JOIN token_families f ON f.id = $3 AND f.user_id = u.id AND f.revoked_at IS NULL
        WHERE u.id = $1 AND u.deleted_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = $2)
        """,
        user_id,
        jti,
        family_id,
    )
    return None if row is None else User.from_row(row)


async def find_login_expiry(conn: asyncpg.Connection, user_id: int, family_id: uuid.UUID) -> dt.datetime | None:
    """When the login (refresh family) of the live user ends unless refreshed again: its
    newest refresh token's expiry; None when it is revoked, someone else's, or its user is gone."""
    return await conn.fetchval(
        """
        SELECT f.expires_at FROM token_families f JOIN users u ON u.id = f.user_id AND u.deleted_at IS NULL
        WHERE f.id = $2 AND f.user_id = $1 AND f.revoked_at IS NULL
        """,
        user_id,
        family_id,
    )


async def delete_expired(conn: asyncpg.Connection) -> int:
    """Forget what has expired anyway; returns how many rows went."""
    # An expired refresh token is refused by its `exp` before the database is asked, so its
    # row is no longer needed for reuse detection.
    statements = (
        "DELETE FROM revoked_access_tokens WHERE expires_at < now()",
        "DELETE FROM refresh_tokens WHERE expires_at < now()",
        "DELETE FROM token_families WHERE expires_at < now() - interval '1 day'",
    )
    return sum([int((await conn.execute(sql)).split()[-1]) for sql in statements])


async def valid_access_tokens(
    conn: asyncpg.Connection, tokens: list[tuple[int, uuid.UUID, uuid.UUID]]
) -> set[uuid.UUID]:
    """Those of the (user id, jti, family id) access tokens that are still good (their user
    live, neither they nor their family revoked); expiry is the caller's to check."""
    rows = await conn.fetch(
        """
        SELECT c.jti
        FROM unnest($1::bigint[], $2::uuid[], $3::uuid[]) AS c(user_id, jti, family_id)
        JOIN users u ON u.id = c.user_id AND u.deleted_at IS NULL
        JOIN token_families f ON f.id = c.family_id AND f.user_id = u.id AND f.revoked_at IS NULL
        WHERE NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = c.jti)
        """,
        [t[0] for t in tokens],
        [t[1] for t in tokens],
        [t[2] for t in tokens],
    )
    return {r["jti"] for r in rows}
