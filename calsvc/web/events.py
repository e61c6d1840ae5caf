"""Handlers of /api/events."""
from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from msgspec.structs import asdict

from calsvc import errors, models
from calsvc.conflicts import Busy
from calsvc.services.events import Occurrence, check_window, occurrences_of, pattern_of
from calsvc.web import codec, keys, schemas


def etag(event: models.Event) -> str:
    return f'"{event.version}"'


def render_event(event: models.Event) -> schemas.Event:
    tz = ZoneInfo(event.timezone)
    rec = None
    if event.rrule is not None:
        pattern = pattern_of(event.rrule)
        rec = schemas.RecurrenceOut(
            rrule=event.rrule, exdates=list(event.exdates), rdates=list(event.rdates),
            pattern=None if pattern is None else schemas.PatternOut(**pattern),
        )
    return schemas.Event(
        id=event.id, title=event.title, description=event.description, location=event.location,
        start_time=event.start_time.astimezone(tz), end_time=event.end_time.astimezone(tz),
        timezone=event.timezone, all_day=event.all_day, recurrence=rec, owner_id=event.owner_id,
        my_role=event.my_role, version=event.version, created_at=event.created_at,
        updated_at=event.updated_at, updated_by=event.updated_by,
    )


def event_response(request: web.Request, event: models.Event, status: int = 200,
                   headers: dict[str, str] | None = None,
                   found: list[Busy] | None = None) -> web.Response:
    body = render_event(event)
    if found is not None:
        body.conflicts = [schemas.ConflictItem(event_id=b.event_id, title=b.title, start_time=b.start,
                                               end_time=b.end) for b in found]
    return codec.respond(request, body, status=status,
                         headers={"ETag": etag(event), "Vary": "Accept", **(headers or {})})


def _fields(body: schemas.EventIn) -> dict[str, Any]:
    fields = asdict(body)
    if body.recurrence is not None:
        rec = asdict(body.recurrence)
        if body.recurrence.pattern is not None:
            rec["pattern"] = asdict(body.recurrence.pattern)
        fields["recurrence"] = rec
    return fields


async def create_event(request: web.Request, user: models.User, body: schemas.EventIn,
                       query: schemas.CreateQuery) -> web.Response:
    strategy = query.on_conflict or body.on_conflict or "reject"
    event, found = await request.app[keys.EVENTS].create(user.id, _fields(body), strategy)
    return event_response(request, event, 201, {"Location": f"/api/events/{event.id}"},
                          found if strategy == "allow" else None)


async def get_event(request: web.Request, user: models.User) -> web.Response:
    event = await request.app[keys.EVENTS].get(user.id, int(request.match_info["id"]))
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
    if query.start is not None and query.end is not None and query.end <= query.start:
        raise errors.Validation.at(("query", "end"), "end must be after start")
    if query.expand:
        if query.start is None or query.end is None:
            raise errors.Validation.at(("query", "start" if query.start is None else "end"),
                                       "expand=true needs both start and end")
        found = await request.app[keys.EVENTS].expand(user.id, query.start, query.end, query.role, query.q)
        return occurrence_page(request, found, query.cursor, query.limit)
    after = None
    if query.cursor:
        stamp, event_id = codec.decode_cursor(query.cursor, (str, int))
        try:
            after = (dt.datetime.fromisoformat(stamp), event_id)
        except ValueError:
            raise errors.Validation.at(("query", "cursor"), "invalid cursor") from None
    events, more = await request.app[keys.EVENTS].list(
        user.id, start=query.start, end=query.end, role=query.role, q=query.q, after=after,
        limit=query.limit)
    cursor = codec.encode_cursor([events[-1].start_time.isoformat(), events[-1].id]) if more else None
    page = schemas.EventPage(items=[render_event(e) for e in events], next_cursor=cursor)
    return codec.respond(request, page)


def render_occurrence(occ: Occurrence) -> schemas.Occurrence:
    return schemas.Occurrence(event_id=occ.event.id, occurrence_start=occ.original_start,
                              start_time=occ.start, end_time=occ.end, title=occ.event.title,
                              is_exception=False, cancelled=False)


def occurrence_page(request: web.Request, found: list[Occurrence], cursor: str | None,
                    limit: int) -> web.Response:
    """One page of occurrences ordered by (start, event id); the cursor names the last one."""
    if cursor:
        stamp, event_id = codec.decode_cursor(cursor, (str, int))
        try:
            last = (dt.datetime.fromisoformat(stamp), event_id)
        except ValueError:
            raise errors.Validation.at(("query", "cursor"), "invalid cursor") from None
        found = [o for o in found if (o.start, o.event.id) > last]
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        next_cursor = codec.encode_cursor([page[-1].start.isoformat(), page[-1].event.id])
    body = schemas.OccurrencePage(items=[render_occurrence(o) for o in page], next_cursor=next_cursor)
    return codec.respond(request, body)


async def list_occurrences(request: web.Request, user: models.User, query: schemas.OccurrencesQuery) -> web.Response:
    service = request.app[keys.EVENTS]
    event = await service.get(user.id, int(request.match_info["id"]))
    check_window(query.start, query.end)
    return occurrence_page(request, occurrences_of(event, query.start, query.end), query.cursor, query.limit)


async def list_conflicts(request: web.Request, user: models.User, query: schemas.WindowQuery) -> web.Response:
    pairs = await request.app[keys.EVENTS].overlapping_pairs(user.id, query.start, query.end)
    if query.cursor:
        stamp, first, second = codec.decode_cursor(query.cursor, (str, int, int))
        try:
            last = (dt.datetime.fromisoformat(stamp), first, second)
        except ValueError:
            raise errors.Validation.at(("query", "cursor"), "invalid cursor") from None
        pairs = [p for p in pairs if (p.start, p.first_id, p.second_id) > last]
    page = pairs[: query.limit]
    cursor = None
    if len(pairs) > query.limit:
        cursor = codec.encode_cursor([page[-1].start.isoformat(), page[-1].first_id, page[-1].second_id])
    items = [schemas.ConflictPair(event_ids=[p.first_id, p.second_id], start=p.start, end=p.end) for p in page]
    return codec.respond(request, schemas.ConflictPage(items=items, next_cursor=cursor))


async def free_busy(request: web.Request, user: models.User, query: schemas.FreeBusyQuery) -> web.Response:
    others = list(dict.fromkeys(int(u) for u in query.users.split(","))) if query.users else [user.id]
    if any(not 1 <= u < 2**63 for u in others):
        raise errors.NotFound("no such user among the people you share events with")
    answer = await request.app[keys.EVENTS].free_busy(user.id, others, query.start, query.end)
    items = [schemas.UserBusy(user_id=uid, busy=[schemas.BusyInterval(start=s, end=e) for s, e in busy])
             for uid, busy in answer]
    return codec.respond(request, schemas.FreeBusyPage(items=items, next_cursor=None))
