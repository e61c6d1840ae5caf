"""Debian's chromium, headless, driven over the DevTools protocol: what the browser tests
(the diff page, the docs pages, EventSource) use to see the service as a person's browser does.

Without chromium those tests are skipped, unless CALSVC_TEST_REQUIRE_BROWSER=1 (.ci/run installs
chromium and sets it), where a missing browser fails them."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("CALSVC_TEST_REQUIRE_BROWSER") == "1"
# Every host name but the loopback address fails to resolve: a page that needs the network is
# seen as it is offline.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def skip_without_browser() -> None:
    """Skip the calling test module when chromium is missing and not required."""
    if BROWSER is None and not REQUIRED:
        pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


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

    async def evaluate(self, expression: str, await_promise: bool = False):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=await_promise)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_until(self, expression: str, timeout: float = 20.0, every: float = 0.1):
        """The value of `expression` once it is truthy; AssertionError after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            assert asyncio.get_running_loop().time() < deadline, f"never true: {expression}"
            await asyncio.sleep(every)

    async def open(self, url: str) -> None:
        """Navigate to `url` and wait for its load event."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        await self.call("Page.navigate", url=url)
        await self.wait_for("Page.loadEventFired")

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since Network.enable."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]


async def open_browser(profile: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    assert BROWSER is not None, "chromium is required here (CALSVC_TEST_REQUIRE_BROWSER=1)"
    process = subprocess.Popen(
        [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1200,1000", *flags,
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    for _ in range(300):
        if port_file.exists() and port_file.read_text().strip():
            return process, port_file.read_text().split()[0]
        await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("chromium did not start")


@contextlib.asynccontextmanager
async def browser_page(profile: Path, *flags: str) -> AsyncIterator[DevTools]:
    """A started chromium's one page, with the Page, Network and Runtime domains on; the
    browser is ended on the way out."""
    process, port = await open_browser(profile, *flags)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                [page] = [t for t in await answer.json() if t["type"] == "page"]
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.call("Network.enable")
                await tools.call("Page.enable")
                await tools.call("Runtime.enable")
                yield tools
    finally:
        process.kill()
        process.wait()
