"""The in-process fixed-window limiter, driven by an injected clock."""
from __future__ import annotations

import pytest

from calsvc.ratelimit import MemoryLimiter, Verdict


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_down_then_refuses_within_the_window():
    clock = Clock(120.0)  # the start of a window
    limiter = MemoryLimiter(3, window=60, clock=clock)
    verdicts = [limiter.hit("ip:1") for _ in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0, 0]
    assert all(v.limit == 3 for v in verdicts)
    assert all(v.reset == 60 for v in verdicts)


def test_reset_counts_the_seconds_left_rounded_up():
    clock = Clock(0.0)
    limiter = MemoryLimiter(10, window=60, clock=clock)
    assert limiter.hit("k").reset == 60
    clock.now = 30.2
    assert limiter.hit("k").reset == 30
    clock.now = 59.5
    assert limiter.hit("k").reset == 1
    clock.now = 59.999
    assert limiter.hit("k").reset == 1


def test_a_new_window_starts_from_zero():
    clock = Clock(10.0)
    limiter = MemoryLimiter(2, window=60, clock=clock)
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    clock.now = 59.9  # same window
    assert limiter.hit("k").allowed is False
    clock.now = 60.0  # next window
    v = limiter.hit("k")
    assert v.allowed is True and v.remaining == 1 and v.reset == 60
    assert limiter.hit("k").allowed is True
    assert limiter.hit("k").allowed is False
    clock.now = 500.0  # several windows later
    assert limiter.hit("k").remaining == 1


def test_keys_are_counted_apart():
    clock = Clock()
    limiter = MemoryLimiter(1, window=60, clock=clock)
    assert limiter.hit("ip:a").allowed is True
    assert limiter.hit("ip:a").allowed is False
    assert limiter.hit("ip:b").allowed is True
    assert limiter.hit("user:1").allowed is True
    assert limiter.hit("user:1").allowed is False
    assert limiter.hit("ip:b").allowed is False


def test_other_window_lengths():
    clock = Clock(5.0)
    limiter = MemoryLimiter(1, window=10, clock=clock)
    v = limiter.hit("k")
    assert v.allowed and v.reset == 5
    assert limiter.hit("k").allowed is False
    clock.now = 10.0
    assert limiter.hit("k").allowed is True


@pytest.mark.parametrize("limit", [0, -1])
def test_zero_turns_the_limit_off(limit):
    limiter = MemoryLimiter(limit, clock=Clock())
    assert all(limiter.hit("k") is None for _ in range(1000))


def test_headers_when_allowed_and_refused():
    clock = Clock(0.0)
    limiter = MemoryLimiter(1, window=60, clock=clock)
    allowed = limiter.hit("k")
    assert allowed.headers() == {"RateLimit-Limit": "1", "RateLimit-Remaining": "0", "RateLimit-Reset": "60"}
    clock.now = 15.0
    refused = limiter.hit("k")
    assert refused.headers() == {
        "RateLimit-Limit": "1", "RateLimit-Remaining": "0", "RateLimit-Reset": "45", "Retry-After": "45",
    }


def test_verdict_headers_are_strings():
    v = Verdict(allowed=False, limit=20, remaining=0, reset=7)
    assert v.headers()["Retry-After"] == "7"
    assert all(isinstance(x, str) for x in v.headers().values())
