"""Fixed-window rate limits: in process (per worker) by default, shared by every process
and machine through Redis when it is configured. While Redis cannot be reached the limits
fall back to the process's own (and it is logged); Redis is tried again every few seconds
and takes over again as soon as it answers."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset)
        return headers


class MemoryLimiter:
    """`limit` hits per key per `window` seconds; 0 turns the limit off."""

    def __init__(self, limit: int, window: int = 60, clock=time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._window_index = -1

    def hit(self, key: str) -> Verdict | None:
        """Count one hit of `key`; None when limits are off."""
        if self.limit <= 0:
            return None
        now = self._clock()
        index = int(now // self.window)
        if index != self._window_index:
            # A new window: every key starts again from zero.
            self._counts = {}
            self._window_index = index
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        reset = max(1, int((index + 1) * self.window - now + 0.999))
        return Verdict(count <= self.limit, self.limit, max(0, self.limit - count), reset)

    async def count(self, key: str) -> Verdict | None:
        return self.hit(key)


class RedisLimiter:
    """The same limits, counted in Redis (INCR of a key per window, expiring with it), so
    every process that shares the Redis shares the count. Windows follow the wall clock."""

    RETRY_EVERY = 2.0  # seconds between attempts while Redis is unreachable

    def __init__(self, redis: Any, limit: int, prefix: str, window: int = 60, clock=time.time, name: str = "") -> None:
        self.redis = redis
        self.name = name or prefix
        self.limit = limit
        self.window = window
        self.prefix = prefix
        self.fallback = MemoryLimiter(limit, window)
        self._clock = clock
        self._down_until = 0.0
        self.down = False

    async def count(self, key: str) -> Verdict | None:
        """Count one hit of `key`; None when limits are off."""
        if self.limit <= 0:
            return None
        if time.monotonic() >= self._down_until:
            now = self._clock()
            index = int(now // self.window)
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.incr(f"{self.prefix}{index}:{key}")
                    pipe.expire(f"{self.prefix}{index}:{key}", self.window + 1, nx=True)
                    count, _ = await pipe.execute()
            except Exception as exc:  # redis.RedisError, OSError, timeouts
                if not self.down:
                    log.warning(
                        "Redis unreachable (%s: %s): the %s rate limit is counted per process until it is back",
                        type(exc).__name__,
                        exc,
                        self.name,
                    )
                self.down = True
                self._down_until = time.monotonic() + self.RETRY_EVERY
            else:
                if self.down:
                    log.warning("Redis is back: the %s rate limit is shared again", self.name)
                self.down = False
                reset = max(1, int((index + 1) * self.window - now + 0.999))
                return Verdict(count <= self.limit, self.limit, max(0, self.limit - count), reset)
        return self.fallback.hit(key)
