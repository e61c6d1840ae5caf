"""A small server-sent-events reader for the tests (what an EventSource does with the bytes)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

STREAM = "/api/notifications/stream"


@dataclasses.dataclass
class Message:
    id: str | None
    event: str
    data: str

    @property
    def item(self) -> dict[str, Any]:
        return json.loads(self.data)


class Reader:
    """Reads messages (and counts comment lines) from an aiohttp client response."""

    def __init__(self, response) -> None:
        self.response = response
        self.comments: list[str] = []
        self.retry: int | None = None

    async def next(self, timeout: float = 5.0) -> Message | None:
        """The next message; None when the stream ends. TimeoutError after `timeout` seconds."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Message | None:
        fields: dict[str, list[str]] = {}
        while True:
            raw = await self.response.content.readline()
            if not raw:
                return None
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if "data" in fields:
                    return Message(fields.get("id", [None])[-1], fields.get("event", ["message"])[-1],
                                   "\n".join(fields["data"]))
                fields = {}
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "retry":
                self.retry = int(value)
            else:
                fields.setdefault(name, []).append(value)

    async def take(self, n: int, timeout: float = 5.0) -> list[Message]:
        out = []
        for _ in range(n):
            message = await self.next(timeout)
            assert message is not None, f"the stream ended after {len(out)} of {n} messages"
            out.append(message)
        return out

    async def silent(self, seconds: float) -> None:
        """Assert that no message comes within `seconds`."""
        try:
            message = await self.next(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")


@contextlib.asynccontextmanager
async def subscribe(client, headers=None, **params) -> AsyncIterator[Reader]:
    """A reader of the client's event stream (asserts the 200), closed when the block ends."""
    resp = await client.get(STREAM, headers=headers or {}, params=params)
    assert resp.status == 200, await resp.text()
    try:
        yield Reader(resp)
    finally:
        resp.close()
