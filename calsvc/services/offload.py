"""A process of its own for CPU work of seconds (the check of a batch of hundreds of series).

Threads suit work of tens of milliseconds (checking one recurrence, one conflict check), but a
thread that computes for seconds takes the interpreter lock from the event loop every time the
loop has waited for the network, so every other request of the process slows down with it
(bench/README.md: GET one event during a batch of 500 daily series). Such work runs in a child
process instead, started on first use (spawned: the parent has threads and a running loop, which
a fork would copy half-way) and kept for the next; its arguments and answer travel pickled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
from collections.abc import AsyncIterator, Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from calsvc import errors

T = TypeVar("T")


MAX_WAITING = 4  # requests waiting for their turn at the child, past which one gets a 503


class Offload:
    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._turns = asyncio.Semaphore(1)  # the child does one thing at a time
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The child's next turn, to be waited for before the work takes any connection or
        lock (a request queued behind others holds nothing meanwhile); errors.Unavailable when
        MAX_WAITING requests are waiting already."""
        if self._waiting >= MAX_WAITING:
            raise errors.Unavailable("too many large batches are being checked; try again shortly")
        self._waiting += 1
        try:
            await self._turns.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._turns.release()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the child process (a module-level function; arguments and result
        picklable). errors.Unavailable when the child died meanwhile (a new one is started
        for the next call)."""
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = None
            raise errors.Unavailable("the process that checks large batches stopped; try again") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
