"""paginate(): the key a cursor continues after, one item past the page asked for, the next
cursor made from the page's last item, and invalid cursors refused at `query.cursor`."""
from __future__ import annotations

import datetime as dt

import pytest

from calsvc import errors
from calsvc.web import codec
from calsvc.web.pages import paginate

ITEMS = list(range(1, 8))  # a collection ordered by itself: its key is the item


def collection(asked: list[tuple[object, int]]):
    async def fetch(after: int, size: int) -> list[int]:
        asked.append((after, size))
        return [i for i in ITEMS if i > after][:size]
    return fetch


async def test_pages_walk_the_collection_once_each():
    asked: list[tuple[object, int]] = []
    pages, cursor = [], None
    while True:
        page, cursor = await paginate(cursor, 3, collection(asked), lambda i: [i], first=0)
        pages.append(page)
        if cursor is None:
            break
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]
    assert asked == [(0, 4), (3, 4), (6, 4)]  # `first` without a cursor; one past the page


async def test_a_page_that_ends_the_collection_has_no_next_cursor():
    assert await paginate(None, 7, collection([]), lambda i: [i], first=0) == (ITEMS, None)
    assert await paginate(None, 6, collection([]), lambda i: [i], first=0) == (
        ITEMS[:6], codec.encode_cursor([6]))
    assert await paginate(codec.encode_cursor([7]), 3, collection([]), lambda i: [i]) == ([], None)


async def test_an_empty_cursor_is_no_cursor():
    asked: list[tuple[object, int]] = []
    await paginate("", 3, collection(asked), lambda i: [i], first=0)
    assert asked == [(0, 4)]


async def test_the_key_is_one_value_their_tuple_or_what_read_makes():
    asked: list[tuple[object, int]] = []

    async def fetch(after: object, size: int) -> list[int]:
        asked.append((after, size))
        return []

    await paginate(codec.encode_cursor([5]), 10, fetch, lambda i: [i])
    await paginate(codec.encode_cursor(["ann", 5]), 10, fetch, lambda i: [i], shape=(str, int))
    await paginate(codec.encode_cursor(["2026-03-01T09:00:00+01:00", 5]), 10, fetch, lambda i: [i],
                   shape=(str, int), read=lambda stamp, n: (dt.datetime.fromisoformat(stamp), n))
    assert [after for after, _ in asked] == [
        5, ("ann", 5), (dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC), 5)]


@pytest.mark.parametrize("cursor,shape", [
    ("not a cursor", (int,)),
    (codec.encode_cursor(["ann", 5]), (int,)),                       # another collection's
    (codec.encode_cursor(["yesterday", 5]), (str, int)),              # read() refuses it
])
async def test_an_invalid_cursor_is_a_422_at_query_cursor_and_fetches_nothing(cursor, shape):
    asked: list[tuple[object, int]] = []
    with pytest.raises(errors.Validation) as info:
        await paginate(cursor, 3, collection(asked), lambda i: [i], shape=shape,
                       read=lambda stamp, n: (dt.datetime.fromisoformat(stamp), n))
    assert [e["loc"] for e in info.value.errors] == [["query", "cursor"]]
    assert info.value.errors[0]["msg"] == "cursor must be a next_cursor of this collection, as it came"
    assert asked == []
