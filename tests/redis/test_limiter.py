"""Rate limits shared through the real Redis (127.0.0.1:6379, or CALSVC_TEST_REDIS_URL), and
the fallback to per-process counts while Redis cannot be reached."""
from __future__ import annotations

import asyncio
import logging
import os
import uuid

import pytest
import redis.asyncio

from calsvc.ratelimit import RedisLimiter
from tests.e2e.conftest import free_port

URL = os.environ.get("CALSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def client():
    client = redis.asyncio.Redis.from_url(URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    yield client
    await client.aclose()


async def test_two_processes_share_one_limit(client):
    prefix = f"calsvc-test-{uuid.uuid4().hex}:"
    # two limiters on two connections: what two worker processes have
    other = redis.asyncio.Redis.from_url(URL)
    try:
        a, b = RedisLimiter(client, 10, prefix), RedisLimiter(other, 10, prefix)
        verdicts = await asyncio.gather(*((a if i % 2 else b).count("user:1") for i in range(30)))
        assert sum(v.allowed for v in verdicts) == 10
        assert sorted(v.remaining for v in verdicts)[-1] == 9
        assert all(1 <= v.reset <= 60 and v.limit == 10 for v in verdicts)
        assert (await a.count("user:2")).allowed  # another key, its own count
        assert not a.down and not b.down
        keys = [k async for k in client.scan_iter(f"{prefix}*")]
        assert len(keys) == 2
        for key in keys:
            assert 0 < await client.ttl(key) <= 61
    finally:
        await other.aclose()


async def test_limits_off():
    assert await RedisLimiter(None, 0, "x:").count("user:1") is None


async def test_unreachable_redis_falls_back_to_this_process_and_says_so(caplog):
    nowhere = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        limiter = RedisLimiter(nowhere, 3, "x:")
        with caplog.at_level(logging.WARNING, logger="calsvc.ratelimit"):
            verdicts = [await limiter.count("user:1") for _ in range(5)]
        assert [v.allowed for v in verdicts] == [True, True, True, False, False]
        assert limiter.down
        warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(warnings) == 1  # once per outage, not per request
    finally:
        await nowhere.aclose()
