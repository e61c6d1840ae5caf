"""`calsvc serve` as an operator runs it: embedded database, workers, refusals, shutdown."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import aiohttp
import psutil
import pytest

from tests.e2e.conftest import base_env
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e


async def register_login_me(base: str, username: str) -> dict:
    async with aiohttp.ClientSession(base) as http:
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        async with http.post("/api/auth/register", json=body) as resp:
            assert resp.status == 201, await resp.text()
        tokens = await login_tokens(http, username)
        async with http.get("/api/auth/me", headers=bearer(tokens)) as resp:
            assert resp.status == 200
            me = await resp.json()
        assert me["username"] == username
        return tokens


async def login_tokens(http: aiohttp.ClientSession, username: str) -> dict:
    async with http.post("/api/auth/login", json={"username": username, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_embedded_database_from_nothing_then_reused(start_server, tmp_path):
    # No database configured: serve starts an embedded PostgreSQL in the data folder.
    server = start_server()
    server.wait_ready()
    tokens = await register_login_me(server.base, "embedded_alice")
    assert server.stop() == 0
    data = tmp_path / ".calsvc"
    assert (data / "postgres" / "PG_VERSION").exists()
    assert not (data / "postgres" / "postmaster.pid").exists(), "embedded PostgreSQL left running"
    log = server.log()
    assert PASSWORD not in log and tokens["access_token"] not in log and tokens["refresh_token"] not in log

    # The next start reuses the same database: the user is still there.
    again = start_server()
    again.wait_ready()
    async with aiohttp.ClientSession(again.base) as http:
        await login_tokens(http, "embedded_alice")
    assert again.stop() == 0


async def test_two_workers_share_the_port(start_server, server_env):
    server = start_server("--workers", "2", **server_env)
    server.wait_ready()
    children = psutil.Process(server.process.pid).children()
    assert len(children) == 2
    tokens = await register_login_me(server.base, "worker_bob")
    async with aiohttp.ClientSession(server.base) as http:
        for _ in range(20):
            async with http.get("/api/auth/me", headers=bearer(tokens)) as resp:
                assert resp.status == 200
        async with http.post("/api/auth/logout", headers=bearer(tokens)) as resp:
            assert resp.status == 204
        # Revoked in every worker at once: whichever process answers refuses it.
        for _ in range(20):
            async with http.get("/api/auth/me", headers=bearer(tokens)) as resp:
                assert resp.status == 401
    assert server.stop() == 0
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)


def test_production_without_secret_refuses_to_start(tmp_path, server_env):
    env = base_env(CALSVC_SERVER_ENV="production", CALSVC_DATABASE_URL=server_env["CALSVC_DATABASE_URL"])
    result = subprocess.run([sys.executable, "-m", "calsvc", "serve", "--port", "1"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "CALSVC_AUTH_SECRET" in result.stderr
    assert not (tmp_path / ".calsvc" / "secret").exists()


def test_migrate_command_then_serve_without_auto_migrate(tmp_path, start_server):
    from tests.conftest import admin_execute, db_url

    name = f"calsvc_test_migrate_{uuid.uuid4().hex[:12]}"  # its own, whatever else runs beside it
    admin_execute(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    try:
        env = base_env(CALSVC_DATABASE_URL=db_url(name), CALSVC_DATABASE_AUTO_MIGRATE="false")
        refused = subprocess.run([sys.executable, "-m", "calsvc", "serve", "--port", "1"], cwd=tmp_path,
                                 env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "pending migration" in refused.stderr
        done = subprocess.run([sys.executable, "-m", "calsvc", "migrate"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        server = start_server(CALSVC_DATABASE_URL=db_url(name), CALSVC_DATABASE_AUTO_MIGRATE="false")
        server.wait_ready()
        assert server.stop() == 0
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_refused_at_once(tmp_path, server_env, workers):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "calsvc", "serve", "--port", str(port), "--workers", workers],
            cwd=tmp_path, env=base_env(**server_env), capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr


def test_a_client_leaving_mid_body_is_not_a_server_error(start_server, server_env):
    """A client that closes its connection halfway through a body (a load tool stopping) is
    answered as a bad request, not logged as an unhandled error with a traceback."""
    import socket

    server = start_server(**server_env)
    server.wait_ready()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"username\": ")
            time.sleep(0.2)
    deadline = time.monotonic() + 5
    while server.log().count("POST /api/auth/register 400") < 3:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    assert "unhandled error" not in server.log() and "Traceback" not in server.log(), server.log()
