"""JWTs: access and refresh tokens, each with `sub`, `exp`, `iat`, `jti`, `typ` and the
refresh family `fid`. Pure: no I/O. Decoding raises errors.Unauthorized."""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import jwt

from calsvc import errors
from calsvc.config import AuthSettings

ACCESS = "access"
REFRESH = "refresh"


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

    def issue(self, typ: str, user_id: int, family_id: uuid.UUID, now: dt.datetime | None = None) -> Issued:
        now = now or dt.datetime.now(dt.timezone.utc)
        now = now.replace(microsecond=0)
        expires = now + (self.access_ttl if typ == ACCESS else self.refresh_ttl)
        jti = uuid.uuid4()
        payload = {
            "sub": str(user_id), "iat": now, "exp": expires, "jti": str(jti),
            "typ": typ, "fid": str(family_id),
        }
        token = jwt.encode(payload, self._secret, algorithm=self._algorithm)
        return Issued(token, Claims(user_id, jti, family_id, typ, expires))

    def decode(self, token: str, typ: str) -> Claims:
        """The claims of a valid token of kind `typ`; errors.Unauthorized for anything else."""
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=[self._algorithm],
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
                user_id, uuid.UUID(payload["jti"]), uuid.UUID(payload["fid"]), typ,
                dt.datetime.fromtimestamp(int(payload["exp"]), dt.timezone.utc),
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            raise errors.Unauthorized("invalid token") from None
