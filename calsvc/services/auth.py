"""Register, log in, refresh with rotation and reuse detection, log out, authenticate, change
the password."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING

from calsvc import errors
from calsvc.db import tokens as token_db
from calsvc.db import users as user_db
from calsvc.db.pool import Database
from calsvc.db.tx import Tx, run_in_tx
from calsvc.models import User
from calsvc.passwords import Hasher
from calsvc.tokens import ACCESS, REFRESH, STREAM, Claims, Issued, TokenCodec

if TYPE_CHECKING:
    from calsvc.notify.broker import Broker

log = logging.getLogger(__name__)

BAD_LOGIN = "incorrect username or password"
BAD_PASSWORD = "incorrect password"
CLOSED_NAME = "deleted-user-"  # a closed account's username is this and its id (migration 0011)


@dataclasses.dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class AuthService:
    def __init__(self, db: Database, codec: TokenCodec, hasher: Hasher, broker: Broker) -> None:
        self.db = db
        self.codec = codec
        self.hasher = hasher
        self.broker = broker  # tells every process's event streams of a revocation

    async def register(self, username: str, email: str, password: str, full_name: str | None) -> User:
        """Raises errors.Duplicate when the username or email is taken (ignoring case), and
        errors.Validation for a name of the form closed accounts are shown with."""
        if username.lower().startswith(CLOSED_NAME):
            raise errors.Validation.at(
                ("body", "username"), f"usernames starting with {CLOSED_NAME} are reserved for closed accounts"
            )
        hashed = await self.hasher.hash(password)
        async with self.db.acquire() as conn:
            return await user_db.insert_user(conn, username, email, hashed, full_name)

    async def login(self, login: str, password: str) -> TokenPair:
        """One message for an unknown user and a wrong password, at the same cost."""
        async with self.db.acquire() as conn:
            creds = await user_db.find_credentials(conn, login)
        if creds is None:
            await self.hasher.check_unknown(password)
            raise errors.Unauthorized(BAD_LOGIN)
        if not await self.hasher.check(password, creds.password_hash):
            raise errors.Unauthorized(BAD_LOGIN)
        return await run_in_tx(self.db, "login", self._login, creds.user.id, creds.password_hash.decode())

    async def _login(self, tx: Tx, user_id: int, checked_hash: str) -> TokenPair:
        # The password was checked against a hash read before: a password change (or a close)
        # that committed meanwhile refuses the old password; one under way waits for this
        # login, and then revokes it with every other.
        if not await user_db.hold_password(tx.conn, user_id, checked_hash):
            raise errors.Unauthorized(BAD_LOGIN)
        return await self._new_family(tx, user_id)

    async def _new_family(self, tx: Tx, user_id: int) -> TokenPair:
        family = uuid.uuid4()
        access = self.codec.issue(ACCESS, user_id, family)
        refresh = self.codec.issue(REFRESH, user_id, family)
        await token_db.insert_family(tx.conn, family, user_id, refresh.claims.expires_at)
        await token_db.insert_refresh_token(tx.conn, refresh.claims.jti, family, refresh.claims.expires_at)
        return TokenPair(access.token, refresh.token, int(self.codec.access_ttl.total_seconds()))

    async def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair in the same family; the presented token is used up. A used-up token
        presented again revokes its whole family (someone else has a copy)."""
        claims = self.codec.decode(refresh_token, REFRESH)
        outcome = await run_in_tx(self.db, "refresh", self._rotate, claims)
        if isinstance(outcome, errors.Problem):
            raise outcome
        return outcome

    async def _rotate(self, tx: Tx, claims: Claims) -> TokenPair | errors.Problem:
        stored = await token_db.lock_refresh_token(tx.conn, claims.jti)
        if stored is None or stored.user_id != claims.user_id:
            return errors.Unauthorized("invalid refresh token")
        if not stored.user_live:
            return errors.Unauthorized("the account is closed")
        if stored.family_revoked_at is not None:
            return errors.Unauthorized("refresh token revoked")
        if stored.rotated_at is not None:
            # Returned rather than raised, so the revocation commits.
            await token_db.revoke_family(tx.conn, stored.family_id, "reuse")
            await self.broker.revoked(tx, stored.user_id)
            log.warning("refresh token reuse detected for user %s; family revoked", stored.user_id)
            return errors.Unauthorized("refresh token reused; all sessions of this login are revoked")
        await token_db.mark_rotated(tx.conn, stored.jti)
        access = self.codec.issue(ACCESS, stored.user_id, stored.family_id)
        refresh = self.codec.issue(REFRESH, stored.user_id, stored.family_id)
        await token_db.insert_refresh_token(tx.conn, refresh.claims.jti, stored.family_id, refresh.claims.expires_at)
        return TokenPair(access.token, refresh.token, int(self.codec.access_ttl.total_seconds()))

    async def logout(self, access: Claims, refresh_token: str | None) -> None:
        """Kill the access token and its family, and the family of `refresh_token` when it is
        a valid refresh token of the same user (anything else in it is ignored)."""
        families = [access.family_id]
        if refresh_token:
            try:
                other = self.codec.decode(refresh_token, REFRESH)
            except errors.Unauthorized:
                other = None
            if other is not None and other.user_id == access.user_id:
                families.append(other.family_id)
        await run_in_tx(self.db, "logout", self._logout, access, families)

    async def _logout(self, tx: Tx, access: Claims, families: list[uuid.UUID]) -> None:
        await token_db.revoke_access_token(tx.conn, access.jti, access.expires_at)
        for family in families:
            await token_db.revoke_family(tx.conn, family, "logout", access.user_id)
        await self.broker.revoked(tx, access.user_id)

    async def check_password(self, user_id: int, password: str) -> str:
        """The stored hash of the live user, once `password` is found to match it (checked in
        a thread); errors.Unauthorized when it does not."""
        async with self.db.acquire() as conn:
            hashed = await user_db.find_password_hash(conn, user_id)
        if hashed is None or not await self.hasher.check(password, hashed.encode()):
            raise errors.Unauthorized(BAD_PASSWORD)
        return hashed

    async def change_password(self, user_id: int, current: str, new: str) -> TokenPair:
        """A new login with the new password. Every other token of the user stops working at
        once: every family is revoked (their refresh and access tokens), and the streams of
        every process check theirs. errors.Unauthorized when `current` is not the password."""
        old_hash = await self.check_password(user_id, current)
        new_hash = await self.hasher.hash(new)
        return await run_in_tx(self.db, "change_password", self._change_password, user_id, old_hash, new_hash)

    async def _change_password(self, tx: Tx, user_id: int, old_hash: str, new_hash: str) -> TokenPair:
        # only over the hash the current password was checked against: a change (or a close)
        # that committed meanwhile wins, and this one is refused as if the password were wrong
        if not await user_db.replace_password_hash(tx.conn, user_id, old_hash, new_hash):
            raise errors.Unauthorized(BAD_PASSWORD)
        await self.revoke_everything(tx, user_id, "password changed")
        return await self._new_family(tx, user_id)

    async def revoke_everything(self, tx: Tx, user_id: int, reason: str) -> None:
        """Revoke every token of the user in `tx`; once it commits, every process checks the
        tokens of that user's streams."""
        await token_db.revoke_user_families(tx.conn, user_id, reason)
        await self.broker.revoked(tx, user_id)

    async def authenticate(self, claims: Claims) -> User:
        """The user behind valid access-token claims; errors.Unauthorized when the token was
        revoked or the user is gone."""
        async with self.db.acquire() as conn:
            user = await token_db.find_access_user(conn, claims.user_id, claims.jti, claims.family_id)
        if user is None:
            raise errors.Unauthorized("token revoked")
        return user

    async def stream_token(self, access: Claims) -> Issued:
        """A token for the event stream alone, lasting as long as the login of `access` (until
        its newest refresh token expires; logout, a password change, a closed account or a
        reused refresh token end it sooner, with the family). errors.Unauthorized when that
        login has ended meanwhile."""
        async with self.db.acquire() as conn:
            ends = await token_db.find_login_expiry(conn, access.user_id, access.family_id)
        if ends is None:
            raise errors.Unauthorized("token revoked")
        return self.codec.issue(STREAM, access.user_id, access.family_id, expires=ends)

    async def search_users(self, prefix: str, after: tuple[str, int] | None, limit: int) -> list[User]:
        async with self.db.acquire() as conn:
            return await user_db.search_users(conn, prefix, after, limit)

    async def purge_expired(self) -> int:
        async with self.db.acquire() as conn:
            return await token_db.delete_expired(conn)
