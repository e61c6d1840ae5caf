"""Password hashing: bcrypt over a base64 SHA-256 pre-hash, off the event loop.

The pre-hash makes every character of a long password count (bcrypt alone stops at
72 bytes) and keeps bcrypt's input a fixed 44 ASCII bytes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import bcrypt


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def check_sync(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed)
    except ValueError:  # a malformed stored hash never matches
        return False


class Hasher:
    """Hash and check in a worker thread; `check_unknown` costs what a real check costs."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._dummy: bytes | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(hash_sync, password, self.rounds)

    async def check(self, password: str, hashed: bytes) -> bool:
        return await asyncio.to_thread(check_sync, password, hashed)

    async def warm_up(self) -> bytes:
        """Make the hash that unknown logins are checked against (once); it."""
        if self._dummy is None:
            self._dummy = (await self.hash("calsvc-timing-equaliser")).encode("ascii")
        return self._dummy

    async def check_unknown(self, password: str) -> bool:
        """Spend a check's time for a login name that matched nobody; always False."""
        await self.check(password, await self.warm_up())
        return False
