"""The diff page: two versions of an event side by side, as HTML for a browser. Pure: it
touches neither HTTP nor the database."""

from __future__ import annotations

import base64
import difflib
import hashlib
import html
from typing import Any

import orjson

from calsvc.services.history import Diff, Version
from calsvc.snapshots import FIELDS

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
# The page's Content-Security-Policy: its own style sheet and nothing else, in no frame.
POLICY = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
    + "'; frame-ancestors 'none'"
)

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
    return (
        f"version {v.version}: {html.escape(v.kind.replace('_', ' '))} by "
        f"<strong>{html.escape(v.actor_username)}</strong> at {v.at:%Y-%m-%d %H:%M:%S} UTC"
    )


def render(event_id: int, found: Diff) -> str:
    """The two versions side by side, changed fields highlighted, the description's line
    diff in colour, who made each and when. Every value is escaped (it is user content)."""
    old, new = found.old, found.new
    assert old.snapshot is not None and new.snapshot is not None
    changed = {c["field"] for c in found.changes}
    rows = []
    for field in FIELDS:
        mark = ' class="changed"' if field in changed else ""
        rows.append(
            f'<tr{mark}><th class="field" scope="row">{html.escape(_LABELS.get(field, field))}</th>'
            f'<td class="old">{html.escape(_show(old.snapshot[field]))}</td>'
            f'<td class="new">{html.escape(_show(new.snapshot[field]))}</td></tr>'
        )
    if "deleted" in changed:
        rows.insert(
            0,
            '<tr class="changed"><th class="field" scope="row">deleted</th>'
            f'<td class="old">{_show(old.kind == "deleted")}</td>'
            f'<td class="new">{_show(new.kind == "deleted")}</td></tr>',
        )
    before, after = old.snapshot["description"], new.snapshot["description"]
    if before == after:
        description = '<p class="none">The description did not change.</p>'
    else:
        # difflib escapes the text it puts in the table (&, <, >)
        description = difflib.HtmlDiff(wrapcolumn=80).make_table(
            before.splitlines(), after.splitlines(), f"version {old.version}", f"version {new.version}"
        )
    count = len(found.changes)
    title = f"Event {event_id}: version {old.version} → version {new.version}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(new.snapshot["title"])}</h1>
<p class="meta">{html.escape(title)} · {count} field{"" if count == 1 else "s"} changed</p>
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
