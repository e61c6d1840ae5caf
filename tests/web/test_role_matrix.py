"""The role table of docs/api.md (Sharing), every route of one event for its owner, an
editor, a viewer and a stranger: each case on a fresh event (a weekly series shared with the
editor and the viewer)."""
from __future__ import annotations

from tests.web.test_events import STANDUP
from tests.web.test_sharing import people

OCCURRENCE = "2026-12-08T09:00:00%2B01:00"  # the series' second occurrence
ROLES = ("owner", "editor", "viewer", "stranger")

# (method, path under /api/events/{id}, body, statuses for owner, editor, viewer, stranger)
MATRIX = [
    ("GET", "", None, (200, 200, 200, 404)),
    ("GET", "/occurrences?start=2026-12-01T00:00:00Z&end=2027-01-01T00:00:00Z", None, (200, 200, 200, 404)),
    ("GET", "/permissions", None, (200, 200, 200, 404)),
    ("GET", "/history", None, (200, 200, 200, 404)),
    ("GET", "/history/1", None, (200, 200, 200, 404)),
    ("GET", "/changelog", None, (200, 200, 200, 404)),
    ("GET", "/diff/1/1", None, (200, 200, 200, 404)),
    ("PATCH", "", {"title": "changed"}, (200, 200, 403, 404)),
    ("PUT", "", {"location": "elsewhere"}, (200, 200, 403, 404)),
    ("PUT", f"/occurrences/{OCCURRENCE}", {"title": "just this one"}, (200, 200, 403, 404)),
    ("DELETE", f"/occurrences/{OCCURRENCE}", None, (204, 204, 403, 404)),
    ("POST", "/rollback/1", None, (200, 200, 403, 404)),  # version 2 is the title change below
    ("DELETE", "", None, (204, 403, 403, 404)),
    ("POST", "/share", {"user_id": "OTHER", "role": "viewer"}, (200, 403, 403, 404)),
    ("PUT", "/permissions/VIEWER", {"role": "editor"}, (200, 403, 403, 404)),
    ("DELETE", "/permissions/VIEWER", None, (204, 403, 204, 404)),  # the viewer leaves
    ("DELETE", "/permissions/EDITOR", None, (204, 204, 403, 404)),  # the editor leaves
    ("DELETE", "/permissions/OWNER", None, (409, 403, 403, 404)),
]


async def test_every_route_of_an_event_for_every_role(client):
    (owner, oh), (editor, eh), (viewer, vh), (stranger, sh), (other, _) = await people(client, 5)
    headers = dict(zip(ROLES, (oh, eh, vh, sh)))
    ids = {"OTHER": other["id"], "VIEWER": viewer["id"], "EDITOR": editor["id"], "OWNER": owner["id"]}
    failures = []
    for day, (method, path, body, statuses) in enumerate(MATRIX):
        for role, expected in zip(ROLES, statuses):
            resp = await client.post("/api/events?on_conflict=allow", headers=oh, json={
                **STANDUP, "recurrence": {"rrule": "FREQ=WEEKLY;COUNT=5"}})
            event = await resp.json()
            resp = await client.post(f"/api/events/{event['id']}/share", headers=oh, json={"users": [
                {"user_id": editor["id"], "role": "editor"}, {"user_id": viewer["id"], "role": "viewer"}]})
            assert resp.status == 200
            await client.patch(f"/api/events/{event['id']}", headers=oh, json={"title": "v2"})
            for name, value in ids.items():
                path = path.replace(name, str(value))
            if isinstance(body, dict):
                body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
            resp = await client.request(method, f"/api/events/{event['id']}{path}", headers=headers[role],
                                        **({"json": body} if body is not None else {}))
            if resp.status != expected:
                failures.append((method, path, role, expected, resp.status, await resp.text()))
    assert not failures, "\n".join(map(str, failures))
