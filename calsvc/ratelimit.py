"""Fixed-window rate limits, in process (per worker). A shared Redis backend can take its
place behind the same `hit()` (the notifications issue adds it)."""
from __future__ import annotations

import dataclasses
import time


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
