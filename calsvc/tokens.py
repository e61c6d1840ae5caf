"""JWTs: access, refresh and stream tokens, each with `sub`, `exp`, `iat`, `jti`, `typ` and
the refresh family `fid`. Pure: no I/O. Decoding raises errors.Unauthorized.

A stream token is good only for the event stream (`?stream_token=`), and for as long as the
login (the family) it was made in: its `exp` is the family's, and revoking the family ends it
like every other token of that login."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

import jwt

from calsvc import errors
from calsvc.config import AuthSettings

ACCESS = "access"
REFRESH = "refresh"
STREAM = "stream"
VERIFIED_CACHE = 10_000  # verified access tokens kept per process (then the cache starts over)
MAX_CACHED_TOKEN = 1024  # longer texts are verified every time (a bound on the cache's memory)


@dataclasses.dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    jti: uuid.UUID
    family_id: uuid.UUID
    typ: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Issued:
    token: str
    claims: Claims


class TokenCodec:
    def __init__(self, settings: AuthSettings) -> None:
        self._secret = str(settings.secret)
        self._algorithm = settings.algorithm
        self.access_ttl = dt.timedelta(minutes=settings.access_token_minutes)
        self.refresh_ttl = dt.timedelta(days=settings.refresh_token_days)
        self._verified: dict[str, tuple[Claims, float]] = {}  # access token -> claims, expiry

    def issue(
        self,
        typ: str,
        user_id: int,
        family_id: uuid.UUID,
        now: dt.datetime | None = None,
        expires: dt.datetime | None = None,
    ) -> Issued:
        """A token of kind `typ`, expiring after its kind's lifetime, or at `expires`."""
        now = now or dt.datetime.now(dt.UTC)
        now = now.replace(microsecond=0)
        if expires is None:
            expires = now + (self.access_ttl if typ == ACCESS else self.refresh_ttl)
        expires = expires.replace(microsecond=0)
        jti = uuid.uuid4()
        payload = {"sub": str(user_id), "iat": now, "exp": expires, "jti": str(jti), "typ": typ, "fid": str(family_id)}
        token = jwt.encode(payload, self._secret, algorithm=self._algorithm)
        return Issued(token, Claims(user_id, jti, family_id, typ, expires))

    def decode(self, token: str, typ: str) -> Claims:
        """The claims of a valid token of kind `typ`; errors.Unauthorized for anything else.

        A client sends the same access token with every request until it expires: its claims
        are kept once verified (they cannot change for the same text), and each use checks
        only the expiry again. Revocation is not the codec's concern (AuthService checks it
        on every request)."""
        if typ == ACCESS:
            known = self._verified.get(token)
            if known is not None and time.time() < known[1]:
                return known[0]
        claims = self._decode(token, typ)
        if typ == ACCESS and len(token) <= MAX_CACHED_TOKEN:  # ours are about 280 characters
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = (claims, claims.expires_at.timestamp())
        return claims

    def _decode(self, token: str, typ: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                options={"require": ["exp", "iat", "jti", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthorized("token expired") from None
        except (jwt.PyJWTError, UnicodeError, OverflowError, ValueError, TypeError):
            raise errors.Unauthorized("invalid token") from None
        if payload.get("typ") != typ:
            raise errors.Unauthorized(f"not an {typ} token" if typ == ACCESS else f"not a {typ} token")
        try:
            user_id = int(payload["sub"])
            if not 1 <= user_id < 2**63:
                raise ValueError("sub out of range")
            return Claims(
                user_id,
                uuid.UUID(payload["jti"]),
                uuid.UUID(payload["fid"]),
                typ,
                dt.datetime.fromtimestamp(int(payload["exp"]), dt.UTC),
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            raise errors.Unauthorized("invalid token") from None
