"""Handlers of an event's history (SPEC 7): versions, changelog, diff (JSON or the page)."""
from __future__ import annotations

import base64
import difflib
import hashlib
import html
from typing import Any

import msgspec
import orjson
from aiohttp import web

from calsvc import models
from calsvc.services.history import FIELDS, Diff, Entry, Version
from calsvc.web import codec, keys, schemas
from calsvc.web.routing import path_int
from calsvc.web.events import current_shown, event_response, expected_versions


def _event_id(request: web.Request) -> int:
    return path_int(request, "id")


def _after(cursor: str | None) -> int:
    return codec.decode_cursor(cursor, (int,))[0] if cursor else 0


def _actor(user_id: int, username: str) -> schemas.Actor:
    return schemas.Actor(id=user_id, username=username)


def render_version(v: Version) -> schemas.VersionItem:
    return schemas.VersionItem(version=v.version, kind=v.kind, at=v.at, actor=_actor(v.actor_id, v.actor_username),
                               changed_fields=v.changed_fields)


def render_entry(e: Entry) -> schemas.ChangelogItem:
    item = schemas.ChangelogItem(at=e.at, actor=_actor(e.actor_id, e.actor_username), action=e.action,
                                 changes=[schemas.FieldChange(**c) for c in e.changes])
    if e.version is not None:
        item.version = e.version
    if e.user_id is not None:
        item.user = _actor(e.user_id, e.username or "")
    return item


async def history(request: web.Request, user: models.User, query: schemas.PageQuery) -> web.Response:
    found = await request.app[keys.HISTORY].history(user.id, _event_id(request), _after(query.cursor),
                                                     query.limit + 1)
    cursor = codec.encode_cursor([found[query.limit - 1].version]) if len(found) > query.limit else None
    page = schemas.VersionPage(items=[render_version(v) for v in found[: query.limit]], next_cursor=cursor)
    return codec.respond(request, page)


async def version(request: web.Request, user: models.User) -> web.Response:
    v = await request.app[keys.HISTORY].version(user.id, _event_id(request), path_int(request, "version"))
    body = schemas.VersionDetail(version=v.version, kind=v.kind, at=v.at, actor=_actor(v.actor_id, v.actor_username),
                                 changed_fields=v.changed_fields,
                                 snapshot=msgspec.convert(v.snapshot, schemas.Snapshot))
    return codec.respond(request, body)


async def changelog(request: web.Request, user: models.User, query: schemas.PageQuery) -> web.Response:
    found = await request.app[keys.HISTORY].changelog(user.id, _event_id(request), _after(query.cursor),
                                                       query.limit + 1)
    cursor = codec.encode_cursor([found[query.limit - 1].seq]) if len(found) > query.limit else None
    page = schemas.ChangelogPage(items=[render_entry(e) for e in found[: query.limit]], next_cursor=cursor)
    return codec.respond(request, page)


async def diff(request: web.Request, user: models.User, query: schemas.DiffQuery) -> web.Response:
    found = await request.app[keys.HISTORY].diff(user.id, _event_id(request), path_int(request, "v1"), path_int(request, "v2"))
    wants_html = query.format == "html" or (query.format is None and request.get(keys.MEDIA) == codec.HTML)
    if wants_html:
        return web.Response(text=diff_page(_event_id(request), found), content_type=codec.HTML,
                            headers={"Content-Security-Policy": _PAGE_POLICY})
    if query.format == "json" or request.get(keys.MEDIA) == codec.HTML:  # ?format=json: JSON, whatever Accept says
        request[keys.MEDIA] = codec.JSON
    body = schemas.DiffOut(from_version=found.from_version, to_version=found.to_version,
                           changes=[schemas.FieldChange(**c) for c in found.changes],
                           description_diff=found.description_diff)
    return codec.respond(request, body)


async def rollback(request: web.Request, user: models.User, body: schemas.RollbackIn,
                   query: schemas.CreateQuery) -> web.Response:
    strategy = query.on_conflict or body.on_conflict or "reject"
    with current_shown():
        event, found = await request.app[keys.EVENTS].rollback(
            user.id, _event_id(request), path_int(request, "version"),
            expected=expected_versions(request), on_conflict=strategy)
    return event_response(request, event, found=found if strategy == "allow" else None)


# -- the page ------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d2329; background: #fff; }
h1 { font-size: 1.35rem; margin: 0 0 .25rem; }
p.meta { color: #555; margin: 0 0 1.5rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2rem; table-layout: fixed; }
th, td { border: 1px solid #d0d7de; padding: .45rem .6rem; vertical-align: top; text-align: left;
         overflow-wrap: anywhere; white-space: pre-wrap; }
thead th { background: #f3f5f7; }
th.field { width: 9rem; background: #fafbfc; font-weight: 600; }
tr.changed td { background: #fff8c5; }
tr.changed th.field::after { content: " \\25CF"; color: #bf8700; }
tr.changed td.old { background: #ffebe9; color: #82071e; }
tr.changed td.new { background: #dafbe1; color: #0a5b1e; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table.diff { font: 13px/1.4 ui-monospace, monospace; table-layout: auto; border: 1px solid #d0d7de; }
table.diff td { white-space: pre-wrap; border: none; padding: .1rem .4rem; width: 50%; }
table.diff th { background: #f3f5f7; border: none; border-bottom: 1px solid #d0d7de; }
table.diff .diff_next { display: none; }
table.diff td.diff_header { width: 2.5rem; color: #777; text-align: right; background: #fafbfc; }
.diff_add { background: #dafbe1; } .diff_chg { background: #fff8c5; } .diff_sub { background: #ffebe9; }
p.none { color: #555; font-style: italic; }
"""
_PAGE_POLICY = ("default-src 'none'; style-src 'sha256-"
                + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode() + "'; frame-ancestors 'none'")

_LABELS = {"start_time": "start", "end_time": "end", "all_day": "all day"}


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value == []:
        return "none"
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _who(v: Version) -> str:
    return (f"version {v.version}: {html.escape(v.kind.replace('_', ' '))} by "
            f"<strong>{html.escape(v.actor_username)}</strong> at {v.at:%Y-%m-%d %H:%M:%S} UTC")


def diff_page(event_id: int, found: Diff) -> str:
    """The two versions side by side, changed fields highlighted, the description's line
    diff in colour, who made each and when. Every value is escaped (it is user content)."""
    old, new = found.old, found.new
    assert old.snapshot is not None and new.snapshot is not None
    changed = {c["field"] for c in found.changes}
    rows = []
    for field in FIELDS:
        mark = ' class="changed"' if field in changed else ""
        rows.append(f'<tr{mark}><th class="field" scope="row">{html.escape(_LABELS.get(field, field))}</th>'
                    f'<td class="old">{html.escape(_show(old.snapshot[field]))}</td>'
                    f'<td class="new">{html.escape(_show(new.snapshot[field]))}</td></tr>')
    if "deleted" in changed:
        rows.insert(0, '<tr class="changed"><th class="field" scope="row">deleted</th>'
                       f'<td class="old">{_show(old.kind == "deleted")}</td>'
                       f'<td class="new">{_show(new.kind == "deleted")}</td></tr>')
    before, after = old.snapshot["description"], new.snapshot["description"]
    if before == after:
        description = '<p class="none">The description did not change.</p>'
    else:
        # difflib escapes the text it puts in the table (&, <, >)
        description = difflib.HtmlDiff(wrapcolumn=80).make_table(
            before.splitlines(), after.splitlines(), f"version {old.version}", f"version {new.version}")
    count = len(found.changes)
    title = f"Event {event_id}: version {old.version} → version {new.version}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(new.snapshot["title"])}</h1>
<p class="meta">{html.escape(title)} · {count} field{'' if count == 1 else 's'} changed</p>
<table>
<thead><tr><th class="field">field</th><th>{_who(old)}</th><th>{_who(new)}</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<h2>Description, line by line</h2>
{description}
</body></html>
"""
