"""Pages of a collection: the cursor read into the key to continue after, one item more
than the page fetched to know whether another follows, and the next page's cursor made
from the last item's key. Every paged route goes through `paginate`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from calsvc.web.codec import decode_cursor, encode_cursor, invalid_cursor

T = TypeVar("T")


async def paginate(
    cursor: str | None,
    limit: int,
    fetch: Callable[[Any, int], Awaitable[list[T]]],
    key: Callable[[T], list[Any]],
    *,
    shape: tuple[type, ...] = (int,),
    read: Callable[..., Any] | None = None,
    first: Any = None,
) -> tuple[list[T], str | None]:
    """The page of at most `limit` items and the cursor of the next (None on the last page).

    `fetch(after, limit + 1)` answers up to that many items of the collection, in its order,
    after the key `after`: `first` without a cursor, else the cursor's values (of the types
    in `shape`) made into a key by `read(*values)` (a ValueError there: the cursor is
    invalid) or, without `read`, the value itself (one) or their tuple (several). `key(item)`
    is the values an item's cursor holds. A cursor that is not one of this collection is a
    422 at `query.cursor`."""
    after = first
    if cursor:
        values = decode_cursor(cursor, shape)
        try:
            after = read(*values) if read is not None else values[0] if len(values) == 1 else tuple(values)
        except ValueError:
            raise invalid_cursor() from None
    found = await fetch(after, limit + 1)
    page = found[:limit]
    return page, encode_cursor(key(page[-1])) if len(found) > limit else None
