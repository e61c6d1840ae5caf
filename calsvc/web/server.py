"""The HTTP server: aiohttp's, with a deadline on a request's headers, and the loop that runs
it in a worker process.

aiohttp closes a kept-alive connection that stays idle, but a client that sends a header
byte now and then is never idle and would hold its connection for as long as it likes. The
protocol here gives each request `header_timeout` seconds to complete its headers, counted
from the connection's opening, or, on a kept-alive connection, from the first byte of the
request (never from before the previous answer is done: a client waiting for an answer is
not slow). A body that stalls is `codec.read_body`'s business: only the reader knows when
the application is waiting for bytes and when it is the one that stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import signal
import socket
from typing import Any

import orjson
from aiohttp import web
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler

from calsvc import errors
from calsvc.web.drain import Drain

log = logging.getLogger("calsvc.web")

KEEPALIVE_TIMEOUT = 75.0  # seconds an idle kept-alive connection stays open (aiohttp's default)
LINGER = 2.0  # seconds a timed-out connection still reads (and drops) after its 408
BUSY_RECHECK = 1.0  # seconds between looks at an expired header clock while an answer is under way
# (so a request begun during an answer gets its time from up to 1 s after it)


def timeout_response(header_timeout: float) -> bytes:
    """The whole 408 written to a connection whose request's headers did not arrive in time:
    a problem like every other error, closing the connection."""
    body = orjson.dumps(
        errors.RequestTimeout(f"the request's headers were not complete within {header_timeout:g} s").body()
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


class SlowHeadersProtocol(RequestHandler):
    """aiohttp's request handler with a deadline on each request's headers.

    It relies on three things aiohttp's own keep-alive check relies on: `_request_count`
    grows when the parser completes a request, the request's body reader is the last of
    `_messages`, and `_waiter` is pending exactly while the connection waits for a request
    (no answer under way, so one can be written)."""

    __slots__ = (
        "_header_timeout",
        "_header_deadline",
        "_header_handle",
        "_header_bytes",
        "_body",
        "_clock_count",
        "_clock_waits",
    )

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline = 0.0  # 0: no request's headers are being waited for
        self._header_handle: asyncio.TimerHandle | None = None
        self._header_bytes = False  # some of the awaited request has arrived
        self._body = EMPTY_PAYLOAD  # the body of the last request parsed
        self._clock_count = 0  # _request_count when the clock started
        self._clock_waits = False  # the clock found an answer under way: restart it once idle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_header_clock()

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            if self._messages:
                self._body = self._messages[-1][1]
            self._header_bytes = False
            self._stop_header_clock()
        elif data and self._body.is_eof():  # not the body of the last request: a new request
            self._header_bytes = True
            if not self._header_deadline:
                self._start_header_clock()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def _start_header_clock(self) -> None:
        self._header_deadline = self._loop.time() + self._header_timeout
        self._clock_count = self._request_count
        self._clock_waits = False
        if self._header_handle is None:
            self._header_handle = self._loop.call_at(self._header_deadline, self._check_headers)

    def _stop_header_clock(self) -> None:
        self._header_deadline = 0.0
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None

    def _check_headers(self) -> None:
        self._header_handle = None
        deadline = self._header_deadline
        if not deadline or self.transport is None or self._force_close or self._close:
            return
        now = self._loop.time()
        if now < deadline:  # the clock was restarted after this check was scheduled
            self._header_handle = self._loop.call_at(deadline, self._check_headers)
            return
        if self._request_count != self._clock_count:  # parsed elsewhere (bytes held during an upgrade)
            self._stop_header_clock()
            return
        waiter = self._waiter
        if waiter is None or waiter.done():  # an answer is under way: look again in a moment
            self._clock_waits = True
            self._header_handle = self._loop.call_at(now + BUSY_RECHECK, self._check_headers)
            return
        if self._clock_waits:  # the next request began during the answer: its time starts now
            self._start_header_clock()
            return
        self._header_deadline = 0.0
        if not self._header_bytes:  # nothing was asked: nothing to answer
            self.force_close()
            return
        log.info("408 to %s: request headers not complete within %g s", self.peername, self._header_timeout)
        transport = self.transport
        self.close()  # no further request on this connection: what else arrives is dropped
        transport.write(timeout_response(self._header_timeout))
        if transport.can_write_eof():
            # Closed for writing only, for a moment: closing the socket while the client is
            # still sending would reset the connection, which can destroy the answer in flight.
            transport.write_eof()
            self._loop.call_later(LINGER, transport.close)
        else:
            transport.close()


class SlowHeadersServer(web.Server):
    """aiohttp's server (the protocol factory) making SlowHeadersProtocol connections."""

    def __init__(self, handler: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.header_timeout = header_timeout

    @classmethod
    def like(cls, plain: web.Server, header_timeout: float) -> SlowHeadersServer:
        """The same server as `plain` (the application's handler, request factory and protocol
        arguments), making SlowHeadersProtocol connections."""
        return cls(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            header_timeout=header_timeout,
            **plain._kwargs,
        )

    def __call__(self) -> SlowHeadersProtocol:
        return SlowHeadersProtocol(self, loop=self._loop, header_timeout=self.header_timeout, **self._kwargs)


class AppRunner(web.AppRunner):
    """aiohttp's AppRunner serving the application through SlowHeadersServer."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the application
        return SlowHeadersServer.like(plain, self._header_timeout)


async def _serve(runner: AppRunner, sock: socket.socket, drain: Drain, drain_seconds: float) -> None:
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        await _until_stopped(drain, drain_seconds)
    finally:
        # stops accepting, ends the streams (on_shutdown), waits up to shutdown_timeout for
        # the requests in flight, closes idle connections, then the application's cleanup
        await runner.cleanup()


async def _until_stopped(drain: Drain, drain_seconds: float) -> None:
    """Until SIGINT, or SIGTERM and `drain_seconds` of draining after it (web/drain.py). A
    second signal ends the drain at once. The handlers stay for the rest of the shutdown,
    so a signal then changes nothing."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_sigterm() -> None:
        if drain.started:
            stop.set()
            return
        log.info("SIGTERM: draining for %g s (/readyz answers 503), then stopping", drain_seconds)
        drain.begin()
        loop.call_later(drain_seconds, stop.set)

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    loop.add_signal_handler(signal.SIGINT, stop.set)  # Ctrl-C: no balancer to wait for
    await stop.wait()


def run(
    app: web.Application,
    sock: socket.socket,
    *,
    header_timeout: float,
    drain: Drain,
    drain_seconds: float,
    **kwargs: Any,
) -> None:
    """Serve `app` on `sock` until SIGINT, or SIGTERM and a drain, then shut down as
    web.run_app does (the application's cleanup, then every task left cancelled), with
    SlowHeadersServer."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = AppRunner(app, keepalive_timeout=KEEPALIVE_TIMEOUT, header_timeout=header_timeout, **kwargs)
    main = loop.create_task(_serve(runner, sock, drain, drain_seconds))
    try:
        loop.run_until_complete(main)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
