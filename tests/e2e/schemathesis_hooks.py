"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/e2e/test_schemathesis.py: the msgpack
codec, so requests can be sent and answers checked in the API's second media type too."""
from __future__ import annotations

import os
from typing import Any

import msgpack
import requests
import schemathesis

INT_RANGE = (-(2**63), 2**64)


def fit(value: Any) -> Any:
    """msgpack has no integers beyond 64 bits: those go as floats (out of every range still)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not INT_RANGE[0] <= value < INT_RANGE[1]:
        return float(value)
    if isinstance(value, dict):
        return {key: fit(item) for key, item in value.items()}
    if isinstance(value, list):
        return [fit(item) for item in value]
    return value


@schemathesis.serializer("application/msgpack")
def pack(ctx: Any, value: Any) -> bytes:
    return msgpack.packb(fit(value))


@schemathesis.deserializer("application/msgpack")
def unpack(ctx: Any, response: Any) -> Any:
    return msgpack.unpackb(response.content, raw=False)


def login(username: str) -> str:
    """An access token of `username` (CALSVC_TEST_FUZZ_BASE, CALSVC_TEST_FUZZ_PASSWORD from the test)."""
    response = requests.post(os.environ["CALSVC_TEST_FUZZ_BASE"] + "/api/auth/login", timeout=10,
                             json={"username": username, "password": os.environ["CALSVC_TEST_FUZZ_PASSWORD"]})
    response.raise_for_status()
    return response.json()["access_token"]


class Bearer:
    username = "fuzzer"

    def get(self, case: Any, context: Any) -> str:
        return login(self.username)

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# A 401 is never retried with a new token: the fuzzer's token must stay good all along.
@schemathesis.auth(retry_on=[]).skip_for(path="/api/auth/logout")
class FuzzerAuth(Bearer):
    """Every operation runs as the fuzzer, who owns events shared with others (the test seeds them)."""


@schemathesis.auth(refresh_interval=None, retry_on=[]).apply_to(path="/api/auth/logout")
class LogoutAuth(Bearer):
    """Logout revokes the token it is sent with: each call gets a fresh one of its own user."""
    username = "leaver"
