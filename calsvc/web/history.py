"""Handlers of an event's history: its versions, the changelog of content and access changes,
the diff of two versions (JSON or the page), and rollback to a version."""

from __future__ import annotations

from urllib.parse import urlencode

import msgspec
from aiohttp import web

from calsvc import models
from calsvc.links import LINK
from calsvc.services.history import Entry, Version
from calsvc.web import codec, diff_page, keys, schemas
from calsvc.web.endpoints import access_claims, path_int
from calsvc.web.event_input import expected_versions, read_on_conflict
from calsvc.web.events import current_shown, event_response, listed_conflicts
from calsvc.web.pages import paginate


def _event_id(request: web.Request) -> int:
    return path_int(request, "id")


def _actor(user_id: int, username: str) -> schemas.Actor:
    return schemas.Actor(id=user_id, username=username)


def render_version(v: Version) -> schemas.VersionItem:
    return schemas.VersionItem(
        version=v.version,
        kind=v.kind,
        at=v.at,
        actor=_actor(v.actor_id, v.actor_username),
        changed_fields=v.changed_fields,
    )


def render_entry(e: Entry) -> schemas.ChangelogItem:
    item = schemas.ChangelogItem(
        at=e.at,
        actor=_actor(e.actor_id, e.actor_username),
        action=e.action,
        changes=[schemas.FieldChange(**c) for c in e.changes],
    )
    if e.version is not None:
        item.version = e.version
    if e.user_id is not None:
        item.user = _actor(e.user_id, e.username or "")
    return item


async def history(request: web.Request, user: models.User, query: schemas.PageQuery) -> web.Response:
    versions, cursor = await paginate(
        query.cursor,
        query.limit,
        lambda after, size: request.app[keys.HISTORY].history(user.id, _event_id(request), after, size),
        lambda v: [v.version],
        first=0,
    )
    page = schemas.VersionPage(items=[render_version(v) for v in versions], next_cursor=cursor)
    return codec.respond(request, page)


async def version(request: web.Request, user: models.User) -> web.Response:
    v = await request.app[keys.HISTORY].version(user.id, _event_id(request), path_int(request, "version"))
    body = schemas.VersionDetail(
        version=v.version,
        kind=v.kind,
        at=v.at,
        actor=_actor(v.actor_id, v.actor_username),
        changed_fields=v.changed_fields,
        snapshot=msgspec.convert(v.snapshot, schemas.Snapshot),
    )
    return codec.respond(request, body)


async def changelog(request: web.Request, user: models.User, query: schemas.PageQuery) -> web.Response:
    entries, cursor = await paginate(
        query.cursor,
        query.limit,
        lambda after, size: request.app[keys.HISTORY].changelog(user.id, _event_id(request), after, size),
        lambda e: [e.seq],
        first=0,
    )
    page = schemas.ChangelogPage(items=[render_entry(e) for e in entries], next_cursor=cursor)
    return codec.respond(request, page)


def _html_url(request: web.Request) -> str:
    """A signed link to this diff's page for the caller's login (calsvc.links)."""
    claims = access_claims(request)
    params, _ = request.app[keys.LINKS].sign(request.path, claims.user_id, claims.family_id)
    return f"{request.path}?{urlencode({'format': 'html', **params})}"


async def diff(request: web.Request, user: models.User, query: schemas.DiffQuery) -> web.Response:
    found = await request.app[keys.HISTORY].diff(
        user.id, _event_id(request), path_int(request, "v1"), path_int(request, "v2")
    )
    wants_html = query.format == "html" or (query.format is None and request.get(keys.MEDIA) == codec.HTML)
    # a signed link opens the page alone: it is never traded for JSON carrying a fresh link
    if wants_html or access_claims(request).typ == LINK:
        return web.Response(
            text=diff_page.render(_event_id(request), found),
            content_type=codec.HTML,
            headers={"Content-Security-Policy": diff_page.POLICY},
        )
    if query.format == "json" or request.get(keys.MEDIA) == codec.HTML:  # ?format=json: JSON, whatever Accept says
        request[keys.MEDIA] = codec.JSON
    body = schemas.DiffOut(
        from_version=found.from_version,
        to_version=found.to_version,
        changes=[schemas.FieldChange(**c) for c in found.changes],
        description_diff=found.description_diff,
        html_url=_html_url(request),
    )
    return codec.respond(request, body)


async def rollback(
    request: web.Request, user: models.User, body: schemas.RollbackIn, query: schemas.CreateQuery
) -> web.Response:
    on_conflict = read_on_conflict(query, body)
    with current_shown():
        event, conflicts = await request.app[keys.EVENTS].rollback(
            user.id,
            _event_id(request),
            path_int(request, "version"),
            expected=expected_versions(request),
            on_conflict=on_conflict,
        )
    return event_response(request, event, conflicts=listed_conflicts(conflicts, on_conflict))
