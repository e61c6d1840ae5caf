"""The diff's `html_url`: a signed link to its page that works with no Authorization header
for 15 minutes, refuses an altered, foreign or expired link in plain words, and still checks
the login and the user's access when it is opened."""
from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import msgpack

from calsvc.links import LinkSigner
from calsvc.web import keys
from calsvc.web.middlewares import redact
from tests.conftest import SECRET, assert_problem
from tests.factories import create_event, people, user_with_token


async def edit(client, headers, event_id, **changes) -> None:
    resp = await client.patch(f"/api/events/{event_id}", json=changes, headers=headers)
    assert resp.status == 200, await resp.text()


async def diff_link(client, headers, event_id, v1=1, v2=2) -> str:
    resp = await client.get(f"/api/events/{event_id}/diff/{v1}/{v2}", headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["html_url"]


def with_params(url: str, **changes: str) -> str:
    """`url` with some query parameters changed (None: removed)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?{urlencode({k: v for k, v in query.items() if v is not None})}"


async def test_the_link_opens_the_page_without_a_header(client):
    user, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, title="Planning")
    await edit(client, headers, event["id"], title="Planning (moved)")
    url = await diff_link(client, headers, event["id"])
    parts = urlsplit(url)
    assert parts.path == f"/api/events/{event['id']}/diff/1/2" and not parts.netloc  # relative, like Location
    query = parse_qs(parts.query)
    assert set(query) == {"format", "user", "login", "expires", "signature"} and query["format"] == ["html"]
    assert query["user"] == [str(user["id"])]
    assert 14 * 60 < int(query["expires"][0]) - time.time() <= 15 * 60

    resp = await client.get(url)  # no Authorization
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "Planning (moved)" in page and f"<strong>{user['username']}</strong>" in page
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Referrer-Policy"] == "no-referrer"
    # msgpack carries it too
    resp = await client.get(f"/api/events/{event['id']}/diff/1/2", headers={**headers, "Accept": "application/msgpack"})
    assert msgpack.unpackb(await resp.read())["html_url"].startswith(parts.path + "?format=html&")


async def test_a_link_gives_the_page_alone_never_json_or_a_fresh_link(client):
    _, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    await edit(client, headers, event["id"], title="Other")
    url = await diff_link(client, headers, event["id"])
    for changed, accept in ((with_params(url, format="json"), "application/json"), (url, "application/json")):
        resp = await client.get(changed, headers={"Accept": accept})
        assert resp.status == 200 and resp.content_type == "text/html", await resp.text()
        assert "html_url" not in await resp.text()


async def test_an_altered_or_foreign_link_is_refused_in_plain_words(client):
    (a, ah), (b, bh) = await people(client, 2)
    _, event = await create_event(client, ah, title="Mine")
    await edit(client, ah, event["id"], title="Still mine")
    url = await diff_link(client, ah, event["id"])
    params = parse_qs(urlsplit(url).query)
    other_versions = url.replace("/diff/1/2?", "/diff/2/1?")
    other = await create_event(client, bh, title="Theirs")
    other_event = url.replace(f"/events/{event['id']}/", f"/events/{other[1]['id']}/")
    foreign = LinkSigner(SECRET.replace("x", "y"))
    foreign_params, _ = foreign.sign(urlsplit(url).path, a["id"], uuid.UUID(params["login"][0]))
    for altered in (
        with_params(url, user=str(b["id"])),
        with_params(url, expires=str(int(params["expires"][0]) + 3600)),
        with_params(url, login="0" * 32),
        with_params(url, signature=params["signature"][0][:-2] + "AA"),
        with_params(url, signature="x" * 43),
        other_versions,
        other_event,
        with_params(url, **foreign_params),
    ):
        problem = await assert_problem(await client.get(altered), 401, "unauthorized")
        assert "this link is not valid: it was changed" in problem["detail"], (altered, problem)
    problem = await assert_problem(await client.get(with_params(url, login=None)), 401, "unauthorized")
    assert problem["detail"] == "this link is incomplete (it lacks login): copy the whole html_url"
    problem = await assert_problem(await client.get(with_params(url, signature=None)), 401, "unauthorized")
    assert problem["detail"] == "missing bearer token"  # without its signature it is no link at all
    # a link is for the diff: another route does not take one
    resp = await client.get(f"/api/events/{event['id']}?" + urlsplit(url).query)
    await assert_problem(resp, 401, "unauthorized")


async def test_an_expired_link_says_so(client):
    user, tokens, headers = await user_with_token(client)
    _, event = await create_event(client, headers)
    await edit(client, headers, event["id"], title="Later")
    app = client.server.app
    claims = app[keys.TOKENS].decode(tokens["access_token"], "access")
    path = f"/api/events/{event['id']}/diff/1/2"
    params, expires = app[keys.LINKS].sign(path, user["id"], claims.family_id, now=time.time() - 15 * 60 - 1)
    problem = await assert_problem(await client.get(f"{path}?{urlencode(params)}"), 401, "unauthorized")
    assert problem["detail"].startswith(f"this link expired at {expires:%Y-%m-%d %H:%M:%S} UTC (links last 15 minutes)")
    params, _ = app[keys.LINKS].sign(path, user["id"], claims.family_id, now=time.time() - 15 * 60 + 5)
    assert (await client.get(f"{path}?{urlencode(params)}")).status == 200  # not yet


async def test_the_link_checks_access_and_login_when_opened(client):
    (owner, oh), (viewer, vh) = await people(client, 2)
    _, event = await create_event(client, oh)
    eid = event["id"]
    await edit(client, oh, eid, title="Moved")
    resp = await client.post(f"/api/events/{eid}/share", headers=oh, json={"user_id": viewer["id"], "role": "viewer"})
    assert resp.status == 200
    url = await diff_link(client, vh, eid)
    assert (await client.get(url)).status == 200
    resp = await client.delete(f"/api/events/{eid}/permissions/{viewer['id']}", headers=oh)
    assert resp.status == 204
    await assert_problem(await client.get(url), 404, "not-found")  # access ended: as if there were no event

    url = await diff_link(client, oh, eid)
    assert (await client.get(url)).status == 200
    assert (await client.post("/api/auth/logout", headers=oh)).status == 204
    problem = await assert_problem(await client.get(url), 401, "unauthorized")  # that login has ended
    assert problem["detail"] == "token revoked"


async def test_the_access_log_hides_the_signature():
    line = redact("/api/events/1/diff/1/2?format=html&user=3&login=ab&expires=9&signature=SECRETSIG")
    assert "SECRETSIG" not in line and "signature=[redacted]" in line and "format=html" in line
