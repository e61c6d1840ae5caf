"""services.offload: work in a child process, and a child that dies is replaced."""
from __future__ import annotations

import asyncio
import os

import pytest

from calsvc import errors
from calsvc.services.offload import MAX_WAITING, Offload


def pid_and_square(n: int) -> tuple[int, int]:
    return os.getpid(), n * n


def die(_: int) -> None:
    os._exit(3)


async def test_work_runs_in_one_child_and_a_dead_one_is_replaced():
    offload = Offload()
    try:
        first, square = await offload.run(pid_and_square, 12)
        assert square == 144 and first != os.getpid()
        assert (await offload.run(pid_and_square, 3))[0] == first  # kept for the next call
        with pytest.raises(errors.Unavailable):
            await offload.run(die, 0)
        again, square = await offload.run(pid_and_square, 5)
        assert square == 25 and again not in (first, os.getpid())
    finally:
        offload.close()


async def test_turns_are_one_at_a_time_and_few_may_wait():
    offload = Offload()
    order: list[int] = []
    release = asyncio.Event()

    async def work(n: int) -> None:
        async with offload.turn():
            order.append(n)
            await release.wait()

    first = asyncio.create_task(work(0))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(work(n)) for n in range(1, MAX_WAITING + 1)]
    await asyncio.sleep(0)
    with pytest.raises(errors.Unavailable):
        async with offload.turn():
            pass
    assert order == [0]
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == list(range(MAX_WAITING + 1))
