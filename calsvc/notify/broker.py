"""Wake-ups between processes: PostgreSQL LISTEN/NOTIFY by default, Redis pub/sub
when Redis is configured. A wake-up says only whose notifications to read again ("n:1,2,3",
or "n:*" for everyone) or whose streams' tokens to check again ("r:7"); the notifications
themselves are always read from the database, so a lost wake-up costs time (the hub's
periodic heal), never a notification, and a repeated one costs nothing.

Each process keeps one listening connection of its own (never a pooled one: returning it to
the pool would UNLISTEN), in a loop that reconnects by itself; after every (re)connect all
local streams are read again and their tokens checked, which heals whatever was sent while
it was not listening."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from calsvc.db.tx import Tx
from calsvc.notify.hub import HEAL_EVERY, Hub

log = logging.getLogger(__name__)

CHANNEL = "calsvc"
PING_EVERY = 10.0  # seconds between liveness checks of the listening connection
STEADY = 1.0  # seconds a connection must have lasted for the backoff to start over
# (a server that drops every connection at once is not hammered)
MAX_BACKOFF = 5.0


class Broker:
    """What the services and the hub need from a broker; see PgBroker and RedisBroker."""

    pg_channel: str | None = None  # NOTIFY this channel inside the writing transaction

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.connected = False
        self._since = 0.0  # when the listener last connected (monotonic)
        self._task: asyncio.Task[None] | None = None

    def handle(self, message: str) -> None:
        kind, _, rest = message.partition(":")
        try:
            if kind == "n":
                if rest == "*":
                    self.hub.wake_all()
                else:
                    self.hub.wake(int(u) for u in rest.split(",") if u)
            elif kind == "r":
                self.hub.check_tokens([int(rest)])
        except ValueError:
            log.warning("ignored a malformed wake-up: %.80r", message)

    def after_commit(self, users: list[int]) -> None:
        """The transaction that wrote notifications for `users` has committed."""

    async def revoked(self, tx: Tx, user_id: int) -> None:
        """A session of `user_id` is being revoked in `tx`: once it commits, every process
        checks the tokens of that user's streams."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()  # returns only by raising
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected or backoff >= MAX_BACKOFF:
                    log.warning(
                        "%s: listening failed (%s: %s); reconnecting", type(self).__name__, type(exc).__name__, exc
                    )
            if self.connected and time.monotonic() - self._since >= STEADY:
                backoff = 0.1  # it listened a while: a new outage starts from the shortest wait
            self.connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _listening(self) -> None:
        if not self.connected:
            log.info("%s: listening for wake-ups", type(self).__name__)
        self.connected = True
        self._since = time.monotonic()
        # whatever was announced while nobody here listened: notifications, and revocations
        self.hub.wake_all()
        self.hub.check_tokens()


LISTENER_NAME = "calsvc-listener"  # its application_name in pg_stat_activity


class PgBroker(Broker):
    pg_channel = CHANNEL

    def __init__(self, hub: Hub, dsn: str, connect_timeout: float) -> None:
        super().__init__(hub)
        self._dsn = dsn
        self._timeout = connect_timeout

    async def revoked(self, tx: Tx, user_id: int) -> None:
        await tx.conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"r:{user_id}")

    async def _listen(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, timeout=self._timeout, server_settings={"application_name": LISTENER_NAME}
        )
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANNEL, lambda _c, _pid, _channel, payload: self.handle(payload))
            self._listening()
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), PING_EVERY)
                except TimeoutError:
                    # a connection to a host that vanished only fails when used
                    await conn.execute("SELECT 1", timeout=self._timeout)
            raise ConnectionError("the listening connection was closed")
        finally:
            conn.terminate()


class RedisBroker(Broker):
    def __init__(self, hub: Hub, redis: Any, channel: str = CHANNEL) -> None:
        super().__init__(hub)
        self.redis = redis
        self.channel = channel
        self._publish_failing = False

    def after_commit(self, users: list[int]) -> None:
        text = ",".join(map(str, users))
        self._spawn(f"n:{text}" if len(text) <= 7900 else "n:*", users)

    async def revoked(self, tx: Tx, user_id: int) -> None:
        tx.call_after(lambda: self._spawn(f"r:{user_id}", None, check=[user_id]))

    def _spawn(self, message: str, users: list[int] | None, check: list[int] | None = None) -> None:
        task = asyncio.create_task(self._publish(message, users, check))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _publish(self, message: str, users: list[int] | None, check: list[int] | None) -> None:
        try:
            await self.redis.publish(self.channel, message)
            if self._publish_failing:
                log.info("RedisBroker: publishing works again")
            self._publish_failing = False
        except Exception as exc:
            if not self._publish_failing:
                log.warning(
                    "RedisBroker: cannot publish (%s: %s); other processes heal from the database within %.0f s",
                    type(exc).__name__,
                    exc,
                    HEAL_EVERY,
                )
            self._publish_failing = True
            # this process's own streams need not wait for the heal
            if users is not None:
                self.hub.wake(users)
            if check is not None:
                self.hub.check_tokens(check)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self._listening()
            while True:
                message = await pubsub.get_message(timeout=PING_EVERY)
                if message is None:
                    await pubsub.ping()  # a dead connection fails here
                elif message.get("type") == "message":
                    data = message["data"]
                    self.handle(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


_background: set[asyncio.Task[Any]] = set()  # publishes in flight (kept from the collector)
