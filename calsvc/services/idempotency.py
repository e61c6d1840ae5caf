"""Idempotency-Key (SPEC 5): a retry with the same key and the same request gets the first
answer instead of writing twice; the same key with another request is a 422. The answer is
stored in the transaction of the write it reports, so both commit or neither does."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from calsvc import errors
from calsvc.db import idempotency as idem_db
from calsvc.db.pool import Database
from calsvc.db.tx import Tx
from calsvc.models import StoredAnswer

KEEP = dt.timedelta(hours=24)
LOC = ("header", "Idempotency-Key")


class KeyTaken(Exception):
    """A concurrent request with the same key committed its answer first."""


def check_key(key: str) -> str:
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise errors.Validation.at(LOC, "Idempotency-Key must be 1-255 printable ASCII characters")
    return key


class Idempotency:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _since() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) - KEEP

    async def replay(self, user_id: int, key: str, route: str, request_hash: bytes) -> StoredAnswer | None:
        """The answer stored under the key for this same request; None when there is none;
        errors.Validation when the key was used for another request."""
        async with self.db.acquire() as conn:
            answer = await idem_db.find(conn, user_id, key, self._since())
        if answer is not None and (answer.route, answer.request_hash) != (route, request_hash):
            raise errors.Validation.at(LOC, "this Idempotency-Key was used with another request in the last 24 hours")
        return answer

    def recorder(self, user_id: int, key: str, route: str, request_hash: bytes,
                 render: Callable[[Any], tuple[int, bytes, str | None]]):
        """The `record(tx, result)` hook a write calls in its transaction: it stores the
        rendered answer, or raises KeyTaken (rolling the write back) when a concurrent
        request with the same key got there first."""
        async def record(tx: Tx, result: Any) -> None:
            status, body, location = render(result)
            answer = StoredAnswer(route, request_hash, status, body, location)
            if not await idem_db.save(tx.conn, user_id, key, answer, self._since()):
                raise KeyTaken(key)
        return record

    async def purge_expired(self) -> int:
        async with self.db.acquire() as conn:
            return await idem_db.delete_older(conn, self._since())
