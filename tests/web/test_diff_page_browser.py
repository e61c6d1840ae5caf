"""The diff page in a real browser (Debian's chromium, headless, tests/browser.py): the page
is fetched from the running app with the bearer token, rendered, and read as a person would
read it: its visible text, which rows stand out, and that none of the user content became
markup or ran. A screenshot is kept next to the test's temporary files."""
from __future__ import annotations

import base64
import json

from tests.browser import browser_page, skip_without_browser
from tests.factories import create_event, user_with_token

skip_without_browser()

EVIL_TITLE = '<script>window.pwned = 1</script>Review & "plan"'


async def test_the_diff_page_reads_well_in_a_browser(client, tmp_path):
    user, tokens, headers = await user_with_token(client)
    _, event = await create_event(client, headers, title="Planning", description="Agenda:\n- budget\n- hiring")
    resp = await client.patch(f"/api/events/{event['id']}", headers=headers, json={
        "title": EVIL_TITLE, "location": "<img src=x onerror=window.pwned=2>",
        "description": "Agenda:\n- budget (Q1)\n- hiring\n- <b>roadmap</b>"})
    assert resp.status == 200
    url = str(client.make_url(f"/api/events/{event['id']}/diff/1/2"))

    async with browser_page(tmp_path / "profile") as tools:
        await tools.call("Network.setExtraHTTPHeaders", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        await tools.open(url)  # the browser's own Accept: the page

        text = await tools.evaluate("document.body.innerText")
        changed = await tools.evaluate(
            "[...document.querySelectorAll('tr.changed')].map(r => [r.cells[0].innerText.replace(/\\W+$/, ''),"
            " getComputedStyle(r.cells[1]).backgroundColor, getComputedStyle(r.cells[2]).backgroundColor])")
        unchanged = await tools.evaluate(
            "[...document.querySelectorAll('tbody tr:not(.changed)')].map(r => "
            "getComputedStyle(r.cells[2]).backgroundColor)")
        ran = await tools.evaluate("[window.pwned, document.scripts.length, document.images.length, "
                                   "document.querySelectorAll('b').length]")
        heading = await tools.evaluate("document.querySelector('h1').innerText")
        shot = await tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    (tmp_path / "diff.png").write_bytes(base64.b64decode(shot["data"]))

    assert heading == EVIL_TITLE  # the title as text, not as markup
    assert f"version 1: created by {user['username']}" in text and f"version 2: updated by {user['username']}" in text
    assert "Planning" in text and "<img src=x onerror=window.pwned=2>" in text
    assert "- <b>roadmap</b>" in text and "- budget (Q1)" in text  # the description's line diff
    assert "3 fields changed" in text
    # exactly the changed fields stand out, old in red and new in green; the rest do not
    assert [name for name, _, _ in changed] == ["title", "description", "location"]
    for _, old, new in changed:
        assert old == "rgb(255, 235, 233)" and new == "rgb(218, 251, 225)", (old, new)
    assert unchanged and all(colour == "rgba(0, 0, 0, 0)" for colour in unchanged)
    assert ran == [None, 0, 0, 0]  # nothing of the user content ran or became an element
    assert not [e for e in tools.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert len(shot["data"]) > 10_000
    json.dumps(changed)  # plain values


async def test_the_html_url_opens_in_a_browser_that_sends_no_header(client, tmp_path):
    user, _, headers = await user_with_token(client)
    _, event = await create_event(client, headers, title="Planning", description="Agenda:\n- budget")
    resp = await client.patch(f"/api/events/{event['id']}", headers=headers,
                              json={"title": "Planning (Q1)", "description": "Agenda:\n- budget (Q1)"})
    assert resp.status == 200
    diff = await (await client.get(f"/api/events/{event['id']}/diff/1/2", headers=headers)).json()
    link = str(client.make_url(diff["html_url"]))

    async with browser_page(tmp_path / "profile") as tools:
        await tools.open(link)  # as a person clicking the link a client shows: no header at all
        heading = await tools.evaluate("document.querySelector('h1').innerText")
        text = await tools.evaluate("document.body.innerText")
        await tools.open(link.replace("/diff/1/2?", "/diff/2/1?"))  # someone edits the link
        refused = await tools.evaluate("document.body.innerText")
        sent = [e["params"]["request"]["headers"] for e in tools.events
                if e.get("method") == "Network.requestWillBeSent"]
    assert heading == "Planning (Q1)"
    assert f"version 2: updated by {user['username']}" in text and "1 field changed" not in text
    assert "2 fields changed" in text and "- budget (Q1)" in text
    assert sent and not any("Authorization" in h for h in sent)
    assert '"status": 401' in refused or '"status":401' in refused, refused
    assert "this link is not valid: it was changed" in refused
