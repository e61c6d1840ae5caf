"""Idempotency-Key: a retry with the same key and the same request gets the first
answer instead of writing twice; the same key with another request is a 422. The answer is
stored in the transaction of the write it reports, so both commit or neither does; only
answers of writes that happened are kept (a 409 or 422 leaves the key free)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

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
        return dt.datetime.now(dt.UTC) - KEEP

    async def replay(self, user_id: int, key: str, route: str, request_hash: bytes) -> StoredAnswer | None:
        """The answer stored under the key for this same request; None when there is none;
        errors.Validation when the key was used for another request. (A claimed key gets its
        answer in the transaction that claimed it, so a committed row always holds one.)"""
        async with self.db.acquire() as conn:
            answer = await idem_db.find_answer(conn, user_id, key, self._since())
        if answer is not None and (answer.route, answer.request_hash) != (route, request_hash):
            raise errors.Validation.at(LOC, "this Idempotency-Key was used with another request in the last 24 hours")
        return answer

    def recorder(
        self,
        user_id: int,
        key: str,
        route: str,
        request_hash: bytes,
        render: Callable[[Any], tuple[int, bytes, str | None]],
    ) -> Recorder:
        return Recorder(user_id, key, route, request_hash, render)

    async def purge_expired(self) -> int:
        async with self.db.acquire() as conn:
            return await idem_db.delete_older(conn, self._since())


class Recorder:
    """Keeps an answer with the write it reports. A write calls `claim` first in its
    transaction: the key's row is inserted, so a concurrent request with the same key waits
    on it and then gets KeyTaken (its write rolls back and it replays the answer). `save`
    puts the rendered answer into the row just before the commit; `release` gives the key
    up instead."""

    def __init__(
        self,
        user_id: int,
        key: str,
        route: str,
        request_hash: bytes,
        render: Callable[[Any], tuple[int, bytes, str | None]],
    ) -> None:
        self.user_id, self.key, self.route, self.request_hash = user_id, key, route, request_hash
        self.render = render

    async def claim(self, tx: Tx) -> None:
        since = dt.datetime.now(dt.UTC) - KEEP
        if not await idem_db.claim_key(tx.conn, self.user_id, self.key, self.route, self.request_hash, since):
            raise KeyTaken(self.key)

    async def release(self, tx: Tx) -> None:
        """Give the claimed key up (the request wrote nothing)."""
        await idem_db.release_key(tx.conn, self.user_id, self.key)

    async def save(self, tx: Tx, result: Any) -> None:
        status, body, location = self.render(result)
        await idem_db.save_answer(tx.conn, self.user_id, self.key, status, body, location)
