"""The docs pages in a real browser that cannot reach the network: what a person sees at
`/`, `/docs` and `/redoc` on a machine with no internet (tests/browser.py)."""
from __future__ import annotations

from urllib.parse import urlsplit

from tests.browser import OFFLINE, browser_page, skip_without_browser

skip_without_browser()


async def test_docs_pages_render_offline(client, tmp_path):
    base = str(client.make_url("/")).rstrip("/")
    async with browser_page(tmp_path / "profile", OFFLINE) as tools:
        await tools.open(base + "/")  # the redirect to Swagger UI
        assert await tools.evaluate("location.pathname") == "/docs"
        swagger = await tools.wait_until(
            "document.querySelectorAll('.opblock').length > 20 && document.querySelector('.info .title').innerText")
        await tools.open(base + "/redoc")
        # ReDoc has read /openapi.json and drawn the reference: its title and an operation
        redoc = await tools.wait_until(
            "document.querySelector('.api-info h1') && document.body.innerText.includes('Log out')"
            " && document.querySelector('.api-info h1').innerText")
        requested = tools.requested_urls()
    assert swagger.startswith("calsvc") and redoc.startswith("calsvc")
    hosts = {urlsplit(url).netloc for url in requested if not url.startswith(("data:", "blob:"))}
    assert hosts == {urlsplit(base).netloc}, requested
