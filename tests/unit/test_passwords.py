"""Password hashing: bcrypt over a base64 SHA-256 pre-hash, so every character of a
long password counts; run off the event loop; unknown users cost a check too."""
from __future__ import annotations

import asyncio
import threading

import bcrypt
import pytest

from calsvc import passwords
from calsvc.passwords import Hasher, check_sync, hash_sync

ROUNDS = 4


def test_hash_is_bcrypt_with_the_rounds_and_a_fresh_salt():
    a = hash_sync("correct horse battery", ROUNDS)
    b = hash_sync("correct horse battery", ROUNDS)
    assert a.startswith("$2b$04$") and len(a) == 60
    assert a != b
    assert "correct horse" not in a


def test_check_right_and_wrong():
    hashed = hash_sync("correct horse battery", ROUNDS).encode()
    assert check_sync("correct horse battery", hashed) is True
    assert check_sync("correct horse batterY", hashed) is False
    assert check_sync("", hashed) is False


@pytest.mark.parametrize("base", [
    "a" * 100,                 # 100 ASCII bytes
    "é" * 60,                  # 120 UTF-8 bytes, 60 characters
    "p" * 127,
])
def test_long_passwords_differing_in_the_last_character_differ(base):
    assert len(base.encode()) > 72
    one, other = base + "1", base + "2"
    hashed = hash_sync(one, ROUNDS).encode()
    assert check_sync(one, hashed) is True
    assert check_sync(other, hashed) is False


def test_long_passwords_sharing_the_first_72_bytes_would_collide_in_plain_bcrypt():
    """Why the pre-hash is there: plain bcrypt only ever sees the first 72 bytes."""
    one, other = "x" * 72 + "1", "x" * 72 + "2"
    plain = bcrypt.hashpw(one.encode()[:72], bcrypt.gensalt(ROUNDS))
    assert bcrypt.checkpw(other.encode()[:72], plain)  # what truncation would give
    hashed = hash_sync(one, ROUNDS).encode()
    assert check_sync(other, hashed) is False


def test_prehash_is_44_ascii_bytes_whatever_the_length():
    for password in ("", "short", "x" * 10_000, "密码" * 500, "\x00nul"):
        pre = passwords._prehash(password)
        assert len(pre) == 44 and pre.isascii()


def test_nul_bytes_count():
    hashed = hash_sync("abc\x00def-ghi", ROUNDS).encode()
    assert check_sync("abc\x00def-ghi", hashed) is True
    assert check_sync("abc\x00xyz-ghi", hashed) is False
    assert check_sync("abc", hashed) is False


@pytest.mark.parametrize("stored", [b"", b"not a hash", b"$2b$04$short", b"$1$md5$whatever"])
def test_malformed_stored_hash_never_matches(stored):
    assert check_sync("anything", stored) is False


async def test_hasher_works_off_the_event_loop(monkeypatch):
    threads = []
    real = passwords.hash_sync

    def spy(password, rounds):
        threads.append(threading.current_thread())
        return real(password, rounds)

    monkeypatch.setattr(passwords, "hash_sync", spy)
    hasher = Hasher(ROUNDS)
    hashed = await hasher.hash("correct horse battery")
    assert threads and threads[0] is not threading.main_thread()
    assert hashed.startswith("$2b$04$")
    assert await hasher.check("correct horse battery", hashed.encode()) is True
    assert await hasher.check("wrong password!", hashed.encode()) is False


async def test_hasher_calls_run_concurrently():
    hasher = Hasher(ROUNDS)
    hashes = await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(8)))
    assert len(set(hashes)) == 8
    results = await asyncio.gather(*(hasher.check(f"password-{i}", h.encode()) for i, h in enumerate(hashes)))
    assert results == [True] * 8


@pytest.mark.parametrize("rounds", [4, 5])
async def test_check_unknown_is_false_and_costs_a_real_check(rounds):
    hasher = Hasher(rounds)
    assert await hasher.check_unknown("correct horse battery") is False
    assert await hasher.check_unknown("calsvc-timing-equaliser") is False  # even the dummy's own password
    # The dummy it checks against has the configured cost, so the time matches a real login.
    assert hasher._dummy is not None and hasher._dummy.startswith(f"$2b$0{rounds}$".encode())
