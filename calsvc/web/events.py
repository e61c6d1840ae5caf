"""Handlers of /api/events."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web

from calsvc import errors, models
from calsvc.conflicts import Busy
from calsvc.occurrences import (
    EARLIEST,
    LATEST,
    Occurrence,
    check_bounds,
    check_window,
    occurrences_of,
    order_key,
    pattern_of,
)
from calsvc.snapshots import PLAIN
from calsvc.web import codec, keys, schemas
from calsvc.web.endpoints import path_int
from calsvc.web.event_input import (
    check_same_on_conflict,
    expected_versions,
    read_changes,
    read_merge,
    read_new_event,
    read_on_conflict,
)
from calsvc.web.idempotency import Answer, idempotent
from calsvc.web.pages import paginate


def etag(event: models.Event) -> str:
    return f'"{event.version}"'


def conflict_items(conflicts: list[Busy]) -> list[schemas.ConflictItem]:
    return [
        schemas.ConflictItem(event_id=b.event_id, title=b.title, start_time=b.start, end_time=b.end) for b in conflicts
    ]


def listed_conflicts(conflicts: list[Busy], on_conflict: str) -> list[Busy] | None:
    """The conflicts an answer lists: a write's under `allow`, none otherwise."""
    return conflicts if on_conflict == "allow" else None


def render_event(event: models.Event, conflicts: list[Busy] | None = None) -> schemas.Event:
    """The event as answered; with `conflicts` (a write under `allow`), those it has."""
    tz = ZoneInfo(event.timezone)
    rec = None
    if event.rrule is not None:
        pattern = pattern_of(event.rrule)
        rec = schemas.RecurrenceOut(
            rrule=event.rrule,
            exdates=list(event.exdates),
            rdates=list(event.rdates),
            pattern=None if pattern is None else schemas.PatternOut(**pattern),
        )
    if not event.my_role:
        raise AssertionError("an event read without a reader (a calendar candidate) is never answered")
    body = schemas.Event(
        id=event.id,
        **{f: getattr(event, f) for f in PLAIN},
        start_time=event.start_time.astimezone(tz),
        end_time=event.end_time.astimezone(tz),
        recurrence=rec,
        owner_id=event.owner_id,
        my_role=event.my_role,
        version=event.version,
        created_at=event.created_at,
        updated_at=event.updated_at,
        updated_by=event.updated_by,
    )
    if conflicts is not None:
        body.conflicts = conflict_items(conflicts)
    return body


def event_response(
    request: web.Request,
    event: models.Event,
    status: int = 200,
    headers: dict[str, str] | None = None,
    conflicts: list[Busy] | None = None,
) -> web.Response:
    return codec.respond(
        request,
        render_event(event, conflicts),
        status=status,
        headers={"ETag": etag(event), "Vary": "Accept", **(headers or {})},
    )


def _event_id(request: web.Request) -> int:
    return path_int(request, "id")


@contextlib.contextmanager
def current_shown() -> Iterator[None]:
    """A 412 (or an operation of a transaction that failed with one) carries the event as it
    is now (`current`), rendered like any answer."""
    try:
        yield
    except errors.Problem as exc:
        current = exc.extra.get("current")
        if isinstance(current, models.Event):
            exc.extra["current"] = msgspec.to_builtins(render_event(current))
            exc.headers["ETag"] = etag(current)
        raise


# -- handlers ----------------------------------------------------------------------------


async def create_event(
    request: web.Request, user: models.User, body: schemas.EventIn, query: schemas.CreateQuery
) -> web.Response:
    on_conflict = read_on_conflict(query, body)

    def answer(result: tuple[models.Event, list[Busy]]) -> Answer:
        event, conflicts = result
        return (
            201,
            render_event(event, listed_conflicts(conflicts, on_conflict)),
            {"Location": f"/api/events/{event.id}", "ETag": etag(event), "Vary": "Accept"},
        )

    return await idempotent(
        request,
        user,
        body,
        query,
        lambda record: request.app[keys.EVENTS].create(user.id, read_new_event(body), on_conflict, record),
        answer,
    )


async def create_batch(
    request: web.Request, user: models.User, body: schemas.BatchIn, query: schemas.CreateQuery
) -> web.Response:
    on_conflict = read_on_conflict(query, body)
    items: list[dict[str, Any] | errors.Problem] = []
    for index, raw in enumerate(body.events):
        try:
            item = codec.convert(raw, schemas.EventIn, ("body", "events", index))
            check_same_on_conflict(item.on_conflict, on_conflict, ("body", "events", index, "on_conflict"))
            items.append(read_new_event(item))
        except errors.Problem as exc:
            items.append(exc)

    def answer(results: list[Any]) -> Answer:
        if body.atomic:
            return (
                201,
                schemas.BatchCreated(
                    items=[render_event(e, listed_conflicts(conflicts, on_conflict)) for e, conflicts in results]
                ),
                {},
            )
        out = []
        for index, result in enumerate(results):
            if isinstance(result, errors.Problem):
                problem = result.body()
                problem["errors"] = errors.BatchItem.of(index, result).errors
                # the problem's body as it is, with the members of its kind (a 409's conflicts)
                out.append(schemas.BatchResult(index=index, status=result.status, error=cast(Any, problem)))
            else:
                event, conflicts = result
                out.append(
                    schemas.BatchResult(
                        index=index, status=201, event=render_event(event, listed_conflicts(conflicts, on_conflict))
                    )
                )
        return 207, schemas.BatchResults(results=out), {}

    return await idempotent(
        request,
        user,
        body,
        query,
        lambda record: request.app[keys.BATCH].create_many(user.id, items, on_conflict, body.atomic, record),
        answer,
    )


async def update_event(
    request: web.Request, user: models.User, body: schemas.EventPatch, query: schemas.UpdateQuery
) -> web.Response:
    on_conflict = read_on_conflict(query, body)
    with current_shown():
        event, conflicts = await request.app[keys.EVENTS].update(
            user.id,
            _event_id(request),
            read_changes(body),
            expected=expected_versions(request),
            on_conflict=on_conflict,
            merge=read_merge(query, body),
        )
    return event_response(request, event, conflicts=listed_conflicts(conflicts, on_conflict))


async def delete_event(request: web.Request, user: models.User) -> web.Response:
    with current_shown():
        await request.app[keys.EVENTS].delete(user.id, _event_id(request), expected=expected_versions(request))
    return web.Response(status=204)


def _occurrence_start(request: web.Request) -> dt.datetime:
    text = request.match_info["occurrence_start"].replace(" ", "+")
    if text[-1:] == "z":  # RFC 3339 allows a lowercase Z
        text = text[:-1] + "Z"
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.utcoffset() is None:
        raise errors.Validation.at(
            ("path", "occurrence_start"), "occurrence_start must be an RFC 3339 time with an offset (percent-encoded)"
        )
    if not EARLIEST <= value < LATEST:  # no event has occurrences there
        raise errors.NotFound("no occurrence of this event starts at that time")
    return value


async def change_occurrence(
    request: web.Request, user: models.User, body: schemas.OccurrencePatch, query: schemas.OccurrenceQuery
) -> web.Response:
    on_conflict = read_on_conflict(query, body)
    with current_shown():
        event, occ, conflicts = await request.app[keys.EVENTS].change_occurrence(
            user.id,
            _event_id(request),
            _occurrence_start(request),
            read_changes(body),
            expected=expected_versions(request),
            on_conflict=on_conflict,
        )
    value = render_occurrence(occ, listed_conflicts(conflicts, on_conflict))
    return codec.respond(request, value, headers={"ETag": etag(event), "Vary": "Accept"})


async def cancel_occurrence(request: web.Request, user: models.User) -> web.Response:
    with current_shown():
        await request.app[keys.EVENTS].cancel_occurrence(
            user.id, _event_id(request), _occurrence_start(request), expected=expected_versions(request)
        )
    return web.Response(status=204)


async def get_event(request: web.Request, user: models.User) -> web.Response:
    event = await request.app[keys.EVENTS].get(user.id, _event_id(request))
    tag = etag(event)
    if _none_match(request.headers.get("If-None-Match"), tag):
        return web.Response(status=304, headers={"ETag": tag, "Vary": "Accept"})
    return event_response(request, event)


def _none_match(header: str | None, tag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110 13.1.2): `W/"3"` matches `"3"`; `*` matches all."""
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or tag in tags


async def list_events(request: web.Request, user: models.User, query: schemas.EventsQuery) -> web.Response:
    check_bounds(start=query.start, end=query.end)
    if query.start is not None and query.end is not None and query.end <= query.start:
        raise errors.Validation.at(("query", "end"), "end must be after start")
    if query.expand:
        if query.start is None or query.end is None:
            raise errors.Validation.at(
                ("query", "start" if query.start is None else "end"), "expand=true needs both start and end"
            )
        found = await request.app[keys.EVENTS].expand(user.id, query.start, query.end, query.role, query.q)
        return await occurrence_page(request, found, query.cursor, query.limit)

    async def fetch(after: tuple[dt.datetime, int] | None, size: int) -> list[models.Event]:
        events, more = await request.app[keys.EVENTS].page(
            user.id, start=query.start, end=query.end, role=query.role, q=query.q, after=after, limit=query.limit
        )
        # the service answers a page and whether more follow: its last event stands in for
        # the one past the page
        return [*events, events[-1]] if more else events

    events, cursor = await paginate(
        query.cursor,
        query.limit,
        fetch,
        lambda e: [e.start_time.isoformat(), e.id],
        shape=(str, int),
        read=lambda stamp, event_id: (dt.datetime.fromisoformat(stamp), event_id),
    )
    page = schemas.EventPage(items=[render_event(e) for e in events], next_cursor=cursor)
    return codec.respond(request, page)


def render_occurrence(occ: Occurrence, conflicts: list[Busy] | None = None) -> schemas.Occurrence:
    """The occurrence as answered; with `conflicts` (a change under `allow`), those it has."""
    body = schemas.Occurrence(
        event_id=occ.event_id,
        occurrence_start=occ.original_start,
        start_time=occ.start,
        end_time=occ.end,
        title=occ.title,
        is_exception=occ.is_exception,
        cancelled=occ.cancelled,
    )
    if conflicts is not None:
        body.conflicts = conflict_items(conflicts)
    return body


def _aware(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.utcoffset() is None:
        raise ValueError(text)
    return value.astimezone(dt.UTC)


async def occurrence_page(
    request: web.Request, found: list[Occurrence], cursor: str | None, limit: int
) -> web.Response:
    """One page of occurrences in `order_key` order (start, event id, original start); the
    cursor names the last one."""

    async def fetch(last: tuple[dt.datetime, int, dt.datetime] | None, size: int) -> list[Occurrence]:
        return [o for o in found if last is None or order_key(o) > last][:size]

    page, next_cursor = await paginate(
        cursor,
        limit,
        fetch,
        lambda o: [o.start.isoformat(), o.event_id, o.original_start.isoformat()],
        shape=(str, int, str),
        read=lambda stamp, event_id, original: (_aware(stamp), event_id, _aware(original)),
    )
    body = schemas.OccurrencePage(items=[render_occurrence(o) for o in page], next_cursor=next_cursor)
    return codec.respond(request, body)


async def list_occurrences(request: web.Request, user: models.User, query: schemas.OccurrencesQuery) -> web.Response:
    service = request.app[keys.EVENTS]
    event = await service.get(user.id, _event_id(request))
    check_window(query.start, query.end)
    return await occurrence_page(request, occurrences_of(event, query.start, query.end), query.cursor, query.limit)


def _pair_key(stamp: str, first: int, second: int, until: str) -> tuple[dt.datetime, int, int, dt.datetime]:
    """The key of a conflicts cursor: pairs are unique by (start, ids, end), their order. A
    cursor whose times do not parse gets a shorter message than other collections give."""
    try:
        return _aware(stamp), first, second, _aware(until)
    except ValueError:
        raise errors.Validation.at(("query", "cursor"), "invalid cursor") from None


async def list_conflicts(request: web.Request, user: models.User, query: schemas.WindowQuery) -> web.Response:
    page, cursor = await paginate(
        query.cursor,
        query.limit,
        lambda last, size: request.app[keys.EVENTS].overlapping_pairs(user.id, query.start, query.end, last, size),
        lambda p: [p.start.isoformat(), p.first_id, p.second_id, p.end.isoformat()],
        shape=(str, int, int, str),
        read=_pair_key,
    )
    items = [schemas.ConflictPair(event_ids=[p.first_id, p.second_id], start=p.start, end=p.end) for p in page]
    return codec.respond(request, schemas.ConflictPage(items=items, next_cursor=cursor))


async def free_busy(request: web.Request, user: models.User, query: schemas.FreeBusyQuery) -> web.Response:
    others = list(dict.fromkeys(int(u) for u in query.users.split(","))) if query.users else [user.id]
    if any(not 1 <= u < 2**63 for u in others):
        raise errors.NotFound("no such user among the people you share events with")
    answer = await request.app[keys.EVENTS].free_busy(user.id, others, query.start, query.end)
    items = [
        schemas.UserBusy(user_id=uid, busy=[schemas.BusyInterval(start=s, end=e) for s, e in busy])
        for uid, busy in answer
    ]
    return codec.respond(request, schemas.FreeBusyPage(items=items, next_cursor=None))
