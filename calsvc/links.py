"""Signed links: a URL that carries its own proof of who may open it and until when, for a
browser that sends no Authorization header (the diff page's `html_url`). Pure: no I/O.

A link names the user, the login it was made in (the refresh family) and its expiry in its
query, and signs them with the request path (which names the event and the versions) under
HMAC-SHA256 with a key derived from the service's secret (so a link's signature can never
stand for a JWT's, or the reverse). Verifying one gives claims like an access token's, so it
is then checked like one: its login not revoked, its user live (AuthService.authenticate),
and the user's access to the event at the moment it is opened (the handler's service call).
A link has no token id of its own: its claims carry the nil UUID, which no revocation names.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping

from calsvc import errors
from calsvc.tokens import Claims

LINK = "link"  # Claims.typ of a signed link
LINK_TTL = dt.timedelta(minutes=15)
PARAMS = ("user", "login", "expires", "signature")  # the query parameters of a link, in order
NO_TOKEN = uuid.UUID(int=0)
_KEY_LABEL = b"calsvc signed link v1"
_DIGITS = re.compile(r"[0-9]{1,19}")
_HEX = re.compile(r"[0-9a-f]{32}")


class LinkSigner:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, path: str, user: str, login: str, expires: str) -> str:
        message = "\n".join((path, user, login, expires)).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(
        self, path: str, user_id: int, family_id: uuid.UUID, now: float | None = None
    ) -> tuple[dict[str, str], dt.datetime]:
        """The query parameters (PARAMS) that let `user_id`'s login `family_id` open `path`
        without a header for LINK_TTL from `now` (seconds since the epoch), and that expiry."""
        expires = int(time.time() if now is None else now) + int(LINK_TTL.total_seconds())
        params = {"user": str(user_id), "login": family_id.hex, "expires": str(expires)}
        params["signature"] = self._mac(path, params["user"], params["login"], params["expires"])
        return params, dt.datetime.fromtimestamp(expires, dt.UTC)

    def verify(self, path: str, query: Mapping[str, str], now: float | None = None) -> Claims:
        """The claims of a link to `path` whose PARAMS are in `query`; errors.Unauthorized, in
        words a person reading it in a browser understands, when it is incomplete, altered or
        made with another secret (the signature is compared in constant time), or expired."""
        values = [query.get(name, "") for name in PARAMS]
        user, login, expires, signature = values
        if not all(values):
            missing = ", ".join(name for name, value in zip(PARAMS, values) if not value)
            raise errors.Unauthorized(f"this link is incomplete (it lacks {missing}): copy the whole html_url")
        expected = self._mac(path, user, login, expires)
        well_formed = _DIGITS.fullmatch(user) and _HEX.fullmatch(login) and _DIGITS.fullmatch(expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()) or not well_formed:
            raise errors.Unauthorized(
                "this link is not valid: it was changed, or it was not made by this service; "
                "ask for the diff again for a new html_url"
            )
        ends = int(expires)
        if ends <= (time.time() if now is None else now):
            when = dt.datetime.fromtimestamp(ends, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise errors.Unauthorized(
                f"this link expired at {when} (links last {int(LINK_TTL.total_seconds()) // 60} minutes); "
                "ask for the diff again for a new html_url"
            )
        return Claims(int(user), NO_TOKEN, uuid.UUID(login), LINK, dt.datetime.fromtimestamp(ends, dt.UTC))
