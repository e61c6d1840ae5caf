"""The diff page in a real browser (Debian's chromium, headless), driven over the DevTools
protocol: the page is fetched from the running app with the bearer token, rendered, and read
as a person would read it: its visible text, which rows stand out, and that none of the user
content became markup or ran. A screenshot is kept next to the test's temporary files.

Without chromium the test is skipped, unless CALSVC_TEST_REQUIRE_BROWSER=1 (set by .ci/run, which
installs it), where a missing browser fails it."""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.factories import create_event, user_with_token

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
if BROWSER is None and os.environ.get("CALSVC_TEST_REQUIRE_BROWSER") != "1":
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

EVIL_TITLE = '<script>window.pwned = 1</script>Review & "plan"'


class DevTools:
    """One page of a headless chromium, spoken to over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    async def call(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 30)
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    async def wait_for(self, method: str) -> dict:
        for seen in self.events:
            if seen.get("method") == method:
                return seen
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 30)
            self.events.append(message)
            if message.get("method") == method:
                return message

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


async def open_browser(profile: Path) -> tuple[subprocess.Popen, str]:
    assert BROWSER is not None, "chromium is required here (CALSVC_TEST_REQUIRE_BROWSER=1)"
    process = subprocess.Popen(
        [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1200,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    for _ in range(300):
        if port_file.exists() and port_file.read_text().strip():
            return process, port_file.read_text().split()[0]
        await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("chromium did not start")


async def test_the_diff_page_reads_well_in_a_browser(client, tmp_path):
    user, tokens, headers = await user_with_token(client)
    _, event = await create_event(client, headers, title="Planning", description="Agenda:\n- budget\n- hiring")
    resp = await client.patch(f"/api/events/{event['id']}", headers=headers, json={
        "title": EVIL_TITLE, "location": "<img src=x onerror=window.pwned=2>",
        "description": "Agenda:\n- budget (Q1)\n- hiring\n- <b>roadmap</b>"})
    assert resp.status == 200
    url = str(client.make_url(f"/api/events/{event['id']}/diff/1/2"))

    process, port = await open_browser(tmp_path / "profile")
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                [page] = [t for t in await answer.json() if t["type"] == "page"]
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.call("Network.enable")
                await tools.call("Network.setExtraHTTPHeaders",
                                 headers={"Authorization": f"Bearer {tokens['access_token']}"})
                await tools.call("Page.enable")
                await tools.call("Page.navigate", url=url)  # the browser's own Accept: the page
                await tools.wait_for("Page.loadEventFired")

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
    finally:
        process.kill()
        process.wait()
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
