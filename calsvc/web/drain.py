"""Draining: what a process does between SIGTERM and closing its port.

For `server.drain_seconds` it goes on accepting and serving, but tells whoever sends to it to
go elsewhere: `/readyz` answers 503 (a balancer that checks it marks the process down) and
every answer closes its connection (a kept-alive client or balancer opens its next one to
another process). Only then does the port close; a balancer that has not noticed by then
would meet a refused connection, which is why the period must outlast its detection time.
"""

from __future__ import annotations

from aiohttp import web

from calsvc.web import keys


class Drain:
    """Whether this process is draining: set once, by the signal handler, never cleared."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = False

    def begin(self) -> None:
        self.started = True


async def close_when_draining(request: web.Request, response: web.StreamResponse) -> None:
    """During the drain, an answer carries `Connection: close` and its connection closes after it."""
    if request.app[keys.DRAIN].started:
        response.force_close()
        # aiohttp writes its own Connection header before this hook runs: without this one the
        # connection would close unannounced, and a peer reusing it would lose its request
        response.headers["Connection"] = "close"
