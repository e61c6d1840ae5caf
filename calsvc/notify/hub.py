"""The streams of this process and what wakes them.

Every stream has a cursor: the id of the last notification it was given. A wake-up for a
user (from the broker, or the periodic heal) puts the user on the due list; one dispatcher
task reads, for all due users at once, each user's notifications after the lowest cursor of
their streams (one query), and hands each stream the rows after its own cursor, in id
order. Ids reach each user in commit order (migration 0007), so a stream that has had id N
has had everything of its user up to N: no gap, no duplicate, whatever wake-ups were lost
or repeated. A stream that falls too far behind (its client does not read) is closed rather
than allowed to grow; its client reconnects with Last-Event-ID and replays from the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from calsvc.models import Notification

log = logging.getLogger(__name__)

PER_USER = 200  # rows per user per read; more are read in the next round
USERS_PER_READ = 1000  # users per query
MAX_BACKLOG = 1000  # messages waiting for one stream; past this the stream is closed
SWEEP_EVERY = 1.0  # seconds: streams whose client has gone are closed (their slot freed)
HEAL_EVERY = 5.0  # seconds: every stream's user is read again (a lost wake-up heals)
RECHECK_EVERY = 15.0  # seconds: every stream's token is checked again (revoked: closed)

Message = tuple[int, str, str]  # id, kind, JSON item


@dataclasses.dataclass(eq=False)
class Stream:
    """One subscriber connection of a user, authenticated by one access token."""

    user_id: int
    jti: uuid.UUID
    family_id: uuid.UUID
    expires_at: dt.datetime
    cursor: int | None = None  # None until the stream knows where it starts
    closed: str | None = None  # why it ended
    gone: Callable[[], bool] = lambda: False  # whether its client has disconnected
    _queue: list[Message] = dataclasses.field(default_factory=list)
    _ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def push(self, message: Message) -> None:
        if self.closed:
            return
        if len(self._queue) >= MAX_BACKLOG:
            self.close("too far behind; reconnect with Last-Event-ID")
            return
        self._queue.append(message)
        self._ready.set()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self._ready.set()

    async def next_batch(self, timeout: float | None) -> list[Message] | None:
        """What is waiting (at once, if anything is); None when the stream is closed;
        [] after `timeout` seconds with nothing."""
        if not self._queue and not self.closed:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        if self.closed:
            return None
        self._ready.clear()
        batch, self._queue = self._queue, []
        return batch


Reader = Callable[[dict[int, int], int], Awaitable[list[Notification]]]
Checker = Callable[[list[Stream]], Awaitable[set[uuid.UUID]]]


class Hub:
    def __init__(self, read: Reader, still_valid: Checker, render: Callable[[Notification], str]) -> None:
        self._read = read
        self._still_valid = still_valid
        self._render = render
        self._streams: dict[int, set[Stream]] = {}
        self._due: set[int] = set()
        self._recheck: set[int] = set()
        self._signal = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.closing = False

    def __len__(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._dispatch()), asyncio.create_task(self._tick())]

    async def stop(self) -> None:
        self.close_all("the server is shutting down")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close_all(self, reason: str) -> None:
        self.closing = True
        for streams in list(self._streams.values()):
            for stream in list(streams):
                stream.close(reason)

    def count(self, user_id: int) -> int:
        """Open streams of the user in this process."""
        return len(self._streams.get(user_id, ()))

    def add(self, stream: Stream) -> None:
        self._streams.setdefault(stream.user_id, set()).add(stream)

    def discard(self, stream: Stream) -> None:
        streams = self._streams.get(stream.user_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams[stream.user_id]

    def wake(self, users: Iterable[int]) -> None:
        """Read these users' notifications again (those with a stream here)."""
        self._due.update(u for u in users if u in self._streams)
        if self._due:
            self._signal.set()

    def wake_all(self) -> None:
        self.wake(list(self._streams))

    def check_tokens(self, users: Iterable[int] | None = None) -> None:
        """Check the tokens of these users' streams (all, for None) again, soon."""
        self._recheck.update(self._streams if users is None else (u for u in users if u in self._streams))
        if self._recheck:
            self._signal.set()

    # -- the dispatcher -------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            await self._signal.wait()
            self._signal.clear()
            if self._recheck:
                users, self._recheck = self._recheck, set()
                if not await self._guard(self._check(users)):
                    self._recheck |= users
            if self._due:
                users, self._due = self._due, set()
                if not await self._guard(self._deliver(users)):
                    self._due |= users

    async def _guard(self, work: Awaitable[None]) -> bool:
        """Whether `work` succeeded; if not (the database is down, say), try again in a while."""
        try:
            await work
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("notification streams could not be served; retrying in 1 s", exc_info=True)
            await asyncio.sleep(1.0)
            self._signal.set()
            return False

    async def _deliver(self, users: set[int]) -> None:
        cursors = {}
        for user in users:
            starts = [s.cursor for s in self._streams.get(user, ()) if s.cursor is not None and not s.closed]
            if starts:
                cursors[user] = min(starts)
        pending = list(cursors)
        for first in range(0, len(pending), USERS_PER_READ):
            chunk = {u: cursors[u] for u in pending[first : first + USERS_PER_READ]}
            rows = await self._read(chunk, PER_USER)
            counts: dict[int, int] = {}
            for row in rows:
                counts[row.user_id] = counts.get(row.user_id, 0) + 1
                message = (row.id, row.kind, self._render(row))
                read_after = chunk[row.user_id]
                for stream in self._streams.get(row.user_id, ()):
                    # only streams this read covers: one that joined meanwhile further back
                    # (a replay) waits for its own read, or it would skip what lies between
                    if stream.cursor is not None and read_after <= stream.cursor < row.id:
                        stream.push(message)
                        stream.cursor = row.id
            more = [u for u, n in counts.items() if n >= PER_USER]
            if more:
                self.wake(more)
            await asyncio.sleep(0)  # let the streams write between chunks

    async def _check(self, users: set[int]) -> None:
        streams = [s for u in users for s in self._streams.get(u, ()) if not s.closed]
        if not streams:
            return
        valid = await self._still_valid(streams)
        for stream in streams:
            if stream.jti not in valid:
                stream.close("the token was revoked")

    def sweep(self) -> None:
        """Close the streams whose client has disconnected. aiohttp does not cancel a handler
        when its client leaves, and a stream with nothing to send would only notice at its
        next write (the heartbeat): until then it would hold one of its user's slots."""
        for streams in list(self._streams.values()):
            for stream in list(streams):
                if stream.gone():
                    stream.close("the client went away")

    async def _tick(self) -> None:
        """Close streams whose client left; heal lost wake-ups; check tokens again now and then."""
        since_heal = since_check = 0.0
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.sweep()
            since_heal += SWEEP_EVERY
            since_check += SWEEP_EVERY
            if since_heal >= HEAL_EVERY:
                since_heal = 0.0
                self.wake_all()
            if since_check >= RECHECK_EVERY:
                since_check = 0.0
                self.check_tokens()
