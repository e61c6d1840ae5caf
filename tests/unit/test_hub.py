"""The hub's bookkeeping (notify.hub): which rows each stream gets after its cursor, paging,
the backlog bound. The reads are given as data here; tests/web and tests/e2e run the hub on
the real database."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from calsvc.models import Notification
from calsvc.notify import hub as hub_module
from calsvc.notify.hub import Hub, Stream

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def row(user: int, nid: int) -> Notification:
    return Notification(nid, user, "event.updated", 1, 99, "actor", f"n{nid}", NOW, None)


def stream(user: int, cursor: int | None) -> Stream:
    return Stream(user, uuid.uuid4(), uuid.uuid4(), NOW + dt.timedelta(hours=1), cursor=cursor)


class Table:
    """Notifications by user, read the way db.notifications.notifications_after reads them."""

    def __init__(self, rows: list[Notification]) -> None:
        self.rows = rows
        self.reads: list[dict[int, int]] = []

    async def after(self, cursors: dict[int, int], per_user: int) -> list[Notification]:
        self.reads.append(dict(cursors))
        out = []
        for user, after in cursors.items():
            out += sorted((r for r in self.rows if r.user_id == user and r.id > after), key=lambda r: r.id)[:per_user]
        return out


async def valid(streams):
    return {s.jti for s in streams}


async def drained(s: Stream) -> list[int]:
    batch = await s.next_batch(0.5)
    return [m[0] for m in batch or []]


async def test_each_stream_gets_what_comes_after_its_own_cursor():
    table = Table([row(1, i) for i in (3, 5, 8, 13)] + [row(2, 4)])
    hub = Hub(table.after, valid, lambda n: n.summary)
    early, late, unready, other = stream(1, 0), stream(1, 5), stream(1, None), stream(2, 4)
    for s in (early, late, unready, other):
        hub.add(s)
    hub.start()
    try:
        hub.wake([1, 2, 3])  # 3 has no stream here: ignored
        assert await drained(early) == [3, 5, 8, 13]
        assert await drained(late) == [8, 13]
        assert await drained(other) == []
        assert table.reads[0] == {1: 0, 2: 4}  # the lowest cursor of each user's ready streams
        assert unready._queue == [] and unready.cursor is None
        table.rows.append(row(1, 21))
        hub.wake([1])
        assert await drained(early) == [21] and await drained(late) == [21]
        assert early.cursor == late.cursor == 21
    finally:
        await hub.stop()
    assert early.closed and late.closed and other.closed


async def test_a_long_backlog_is_read_page_by_page(monkeypatch):
    monkeypatch.setattr(hub_module, "PER_USER", 10)
    table = Table([row(1, i) for i in range(1, 36)])
    hub = Hub(table.after, valid, lambda n: n.summary)
    s = stream(1, 0)
    hub.add(s)
    hub.start()
    try:
        hub.wake([1])
        got: list[int] = []
        while len(got) < 35:
            got += await drained(s)
        assert got == list(range(1, 36))
        assert [r[1] for r in table.reads] == [0, 10, 20, 30]
    finally:
        await hub.stop()


async def test_a_stream_that_falls_too_far_behind_is_closed(monkeypatch):
    monkeypatch.setattr(hub_module, "MAX_BACKLOG", 5)
    s = stream(1, 0)
    for i in range(5):
        s.push((i, "event.updated", "{}"))
    assert s.closed is None
    s.push((5, "event.updated", "{}"))
    assert s.closed and "Last-Event-ID" in s.closed
    assert await s.next_batch(0.1) is None


async def test_a_revoked_token_closes_its_streams_only():
    keep, drop = stream(1, 0), stream(1, 0)

    async def only_keep(streams):
        return {keep.jti}

    hub = Hub(Table([]).after, only_keep, lambda n: n.summary)
    hub.add(keep)
    hub.add(drop)
    hub.start()
    try:
        hub.check_tokens([1])
        assert await drop.next_batch(1.0) is None
        assert keep.closed is None and await keep.next_batch(0.05) == []
    finally:
        await hub.stop()


async def test_next_batch_waits_for_a_push():
    s = stream(1, 0)
    waiter = asyncio.create_task(s.next_batch(1.0))
    await asyncio.sleep(0.05)
    s.push((1, "event.updated", "{}"))
    assert await waiter == [(1, "event.updated", "{}")]


async def test_a_replay_that_joins_during_a_read_skips_nothing():
    table = Table([row(1, i) for i in range(1, 11)])
    hub = Hub(table.after, valid, lambda n: n.summary)
    live = stream(1, 8)
    hub.add(live)
    replay = stream(1, 2)
    gate = asyncio.Event()

    async def slow_after(cursors, per_user):
        rows = await table.after(cursors, per_user)
        hub.add(replay)  # joins while the read for the live stream is under way
        hub.wake([1])
        gate.set()
        return rows

    hub._read = slow_after
    hub.start()
    try:
        hub.wake([1])
        await gate.wait()
        assert await drained(live) == [9, 10]
        assert await drained(replay) == list(range(3, 11))
    finally:
        await hub.stop()
