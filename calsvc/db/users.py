"""Users: insert, look up for login and for the access check, search, change the password,
close the account."""

from __future__ import annotations

import asyncpg

from calsvc import errors
from calsvc.models import Credentials, User

_USER_COLUMNS = "u.id, u.username, u.email, u.full_name, u.created_at"


async def insert_user(
    conn: asyncpg.Connection, username: str, email: str, password_hash: str, full_name: str | None
) -> User:
    """Raises errors.Duplicate naming the field when the username or email is taken."""
    try:
        row = await conn.fetchrow(
            f"""
            INSERT INTO users AS u (username, email, password_hash, full_name)
            VALUES ($1, $2, $3, $4)
            RETURNING {_USER_COLUMNS}
            """,
            username,
            email,
            password_hash,
            full_name,
        )
    except asyncpg.UniqueViolationError as exc:
        field = {"users_username_key": "username", "users_email_key": "email"}.get(exc.constraint_name)
        if field is None:
            raise
        raise errors.Duplicate(
            f"that {field} is already taken",
            errors=[{"loc": ["body", field], "msg": f"{field} already taken", "type": "duplicate"}],
        ) from None
    return User.from_row(row)


async def find_credentials(conn: asyncpg.Connection, login: str) -> Credentials | None:
    """The user whose username or email equals `login` ignoring case; None when there is none."""
    row = await conn.fetchrow(
        f"""
        SELECT {_USER_COLUMNS}, u.password_hash
        FROM users u
        WHERE (lower(u.username) = lower($1) OR lower(u.email) = lower($1)) AND u.deleted_at IS NULL
        ORDER BY lower(u.username) = lower($1) DESC
        LIMIT 1
        """,
        login,
    )
    return None if row is None else Credentials.from_row(row)


async def search_users(conn: asyncpg.Connection, q: str, after: tuple[str, int] | None, limit: int) -> list[User]:
    """Live users whose username starts with `q`, or whose email is `q` (both ignoring case),
    ordered by (lower(username), id), after the keyset `after`; at most `limit`. An email is
    matched whole only: a prefix of one would let anyone recover it letter by letter."""
    after_name, after_id = after if after else ("", 0)
    rows = await conn.fetch(
        f"""
        -- username prefix or whole email, over the two unique indexes; keyset on (lower(username), id)
        SELECT {_USER_COLUMNS}
        FROM users u
        WHERE u.deleted_at IS NULL
          AND (lower(u.username) LIKE $1 OR lower(u.email) = $2)
          AND (lower(u.username), u.id) > ($3, $4)
        ORDER BY lower(u.username), u.id
        LIMIT $5
        """,
        _like_prefix(q.lower()),
        q.lower(),
        after_name,
        after_id,
        limit,
    )
    return [User.from_row(r) for r in rows]


async def find_password_hash(conn: asyncpg.Connection, user_id: int) -> str | None:
    """The password hash of the live user `user_id`; None when there is no such user."""
    return await conn.fetchval("SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL", user_id)


async def replace_password_hash(conn: asyncpg.Connection, user_id: int, old_hash: str, new_hash: str) -> bool:
    """Store `new_hash` if the live user's hash is still `old_hash` (the one the current
    password was checked against); whether it was."""
    status = await conn.execute(
        """
        UPDATE users SET password_hash = $3, updated_at = now()
        WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL
        """,
        user_id,
        old_hash,
        new_hash,
    )
    return status == "UPDATE 1"


async def hold_password(conn: asyncpg.Connection, user_id: int, password_hash: str) -> bool:
    """Whether the live user `user_id` still has the hash `password_hash`, share-locking the
    row until the transaction ends (a password change, which updates the row, waits)."""
    return (
        await conn.fetchval(
            "SELECT true FROM users WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL FOR SHARE",
            user_id,
            password_hash,
        )
        is not None
    )


async def lock_live_user(conn: asyncpg.Connection, user_id: int, password_hash: str) -> bool:
    """Lock the row of the live user `user_id` while their hash is `password_hash`; whether
    there is one. (FOR NO KEY UPDATE: rows that refer to the user may still be written.)"""
    return (
        await conn.fetchval(
            "SELECT true FROM users WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL FOR NO KEY UPDATE",
            user_id,
            password_hash,
        )
        is not None
    )


async def close_user(conn: asyncpg.Connection, user_id: int) -> None:
    """Close the account: email, full name and password hash erased, the username replaced
    by `deleted-user-<id>` (the name every history then shows), the row kept for them; the
    notifications it acted in, written with its name in front, show the new one."""
    await conn.execute(
        """
        -- every summary starts with its actor's name (services.notifications.ACTOR)
        UPDATE notifications n
        SET summary = 'deleted-user-' || u.id || substr(n.summary, length(u.username) + 1)
        FROM users u
        WHERE u.id = $1 AND u.deleted_at IS NULL AND n.actor_id = u.id AND starts_with(n.summary, u.username)
        """,
        user_id,
    )
    await conn.execute(
        """
        UPDATE users
        SET username = 'deleted-user-' || id, email = NULL, full_name = NULL, password_hash = NULL,
            deleted_at = now(), updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        """,
        user_id,
    )


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
