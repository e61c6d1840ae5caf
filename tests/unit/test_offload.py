"""services.offload: work in a child process, and a child that dies is replaced."""
from __future__ import annotations

import os

import pytest

from calsvc import errors
from calsvc.services.offload import Offload


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
