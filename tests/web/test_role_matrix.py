"""The role table of docs/api.md (Sharing), every route of one event for its owner, an
editor, a viewer and a stranger: each case on a fresh event (a weekly series shared with the
editor and the viewer)."""
from __future__ import annotations

from tests.expected import ROLE_MATRIX
from tests.factories import STANDUP, people

ROLES = ("owner", "editor", "viewer", "stranger")  # in the order of ROLE_MATRIX's statuses


async def test_every_route_of_an_event_for_every_role(client):
    (owner, oh), (editor, eh), (viewer, vh), (stranger, sh), (other, _) = await people(client, 5)
    headers = dict(zip(ROLES, (oh, eh, vh, sh)))
    ids = {"OTHER": other["id"], "VIEWER": viewer["id"], "EDITOR": editor["id"], "OWNER": owner["id"]}
    failures = []
    for _day, (method, path, body, statuses) in enumerate(ROLE_MATRIX):
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
