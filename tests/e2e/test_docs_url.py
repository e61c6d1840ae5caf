"""A started server tells where its docs are, and sends a browser there from `/`."""
from __future__ import annotations

import socket
import urllib.request

import pytest

from calsvc.__main__ import docs_url

pytestmark = pytest.mark.e2e


def test_the_start_log_names_the_docs_and_slash_leads_there(start_server, server_env):
    server = start_server(**server_env)
    server.wait_ready()
    first = server.log().splitlines()[:5]
    assert any(f"{server.base}/docs" in line for line in first), first
    with urllib.request.urlopen(server.base + "/", timeout=5) as resp:  # follows the redirect
        assert resp.status == 200 and resp.url == f"{server.base}/docs"
        assert "swagger-ui" in resp.read().decode().lower()
    assert server.stop() == 0


@pytest.mark.parametrize("family,host,shown", [
    (socket.AF_INET, "0.0.0.0", "127.0.0.1"),
    (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
    (socket.AF_INET6, "::", "[::1]"),
])
def test_the_docs_url_is_one_a_browser_can_open(family, host, shown):
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        assert docs_url(sock) == f"http://{shown}:{sock.getsockname()[1]}/docs"
