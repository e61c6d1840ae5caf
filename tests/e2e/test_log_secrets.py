"""Passwords, tokens and the signing secret never reach the log (issue 6), even at DEBUG:
a real server goes through every path that handles them (register, both login forms, a
wrong password, a refusal that names the field, refresh, reuse of a rotated refresh token,
the stream's ?access_token= and ?stream_token=, the diff page's signed link, logout, a
password change, closing the account), then the whole log is searched for each secret and
for each token's signature alone."""
from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from tests.conftest import SECRET

pytestmark = pytest.mark.e2e


async def test_no_secret_reaches_the_log(start_server, server_env):
    server = start_server(CALSVC_SERVER_LOG_LEVEL="DEBUG", **server_env)
    server.wait_ready()
    name = f"sly_{uuid.uuid4().hex[:6]}"
    password = f"pw-{uuid.uuid4().hex}"
    wrong = f"wrong-{uuid.uuid4().hex}"
    short = "sh0rt!"
    changed = f"changed-{uuid.uuid4().hex}"
    secrets = [password, wrong, short, SECRET, changed]
    async with aiohttp.ClientSession(server.base) as http:
        async def post(path: str, status: int, **kwargs) -> dict:
            async with http.post(path, **kwargs) as resp:
                assert resp.status == status, await resp.text()
                return await resp.json() if resp.content_type.endswith("json") and status != 204 else {}

        await post("/api/auth/register", 422, json={"username": name, "email": f"{name}@example.com", "password": short})
        await post("/api/auth/register", 201, json={"username": name, "email": f"{name}@example.com",
                                                    "password": password})
        await post("/api/auth/login", 401, json={"username": name, "password": wrong})
        first = await post("/api/auth/login", 200, json={"username": name, "password": password})
        form = await post("/api/auth/login", 200, data={"grant_type": "password", "username": name,
                                                         "password": password})
        rotated = await post("/api/auth/refresh", 200, json={"refresh_token": first["refresh_token"]})
        # the old refresh token again: reuse, the family is revoked
        await post("/api/auth/refresh", 401, json={"refresh_token": first["refresh_token"]})
        for pair in (first, form, rotated):
            secrets += [pair["access_token"], pair["refresh_token"]]
        token = form["access_token"]
        async with http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
        async with http.get("/api/notifications/stream", params={"access_token": token}) as resp:
            assert resp.status == 200
        async with http.get("/api/notifications/stream", params={"access_token": token + "x"}) as resp:
            assert resp.status == 401
        async with http.post("/api/notifications/stream-token", headers={"Authorization": f"Bearer {token}"}) as resp:
            stream_token = (await resp.json())["stream_token"]
        async with http.get("/api/notifications/stream", params={"stream_token": stream_token}) as resp:
            assert resp.status == 200
        async with http.get("/api/notifications/stream", params={"stream_token": stream_token + "x"}) as resp:
            assert resp.status == 401
        secrets.append(stream_token)
        # the diff page's signed link, opened as a browser does (no header)
        mine = {"Authorization": f"Bearer {token}"}
        body = {"title": "Log", "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T10:00:00Z"}
        async with http.post("/api/events", headers=mine, json=body) as resp:
            assert resp.status == 201
            event_id = (await resp.json())["id"]
        async with http.patch(f"/api/events/{event_id}", headers=mine, json={"title": "Log 2"}) as resp:
            assert resp.status == 200
        async with http.get(f"/api/events/{event_id}/diff/1/2", headers=mine) as resp:
            link = (await resp.json())["html_url"]
        async with http.get(link) as resp:
            assert resp.status == 200
        signatures = [link.rsplit("signature=", 1)[1]]
        await post("/api/auth/logout", 204, headers={"Authorization": f"Bearer {token}"},
                   json={"refresh_token": form["refresh_token"]})
        async with http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 401
        # a password change (a wrong current password first), then closing the account
        third = await post("/api/auth/login", 200, json={"username": name, "password": password})
        mine = {"Authorization": f"Bearer {third['access_token']}"}
        await post("/api/auth/password", 401, headers=mine, json={"current_password": wrong, "new_password": changed})
        fourth = await post("/api/auth/password", 200, headers=mine,
                            json={"current_password": password, "new_password": changed})
        mine = {"Authorization": f"Bearer {fourth['access_token']}"}
        async with http.delete("/api/auth/me", headers=mine, json={"password": wrong}) as resp:
            assert resp.status == 401
        async with http.delete("/api/auth/me", headers=mine, json={"password": changed}) as resp:
            assert resp.status == 204
        for pair in (third, fourth):
            secrets += [pair["access_token"], pair["refresh_token"]]
    await asyncio.sleep(0.5)  # the stream's access-log line comes as it ends
    log = server.log()
    # the log saw all of it (the stream's line names its parameter, redacted)
    for line in ("POST /api/auth/login 401", "POST /api/auth/refresh 401", "access_token=[redacted]",
                 "signature=[redacted] 200", "stream_token=[redacted]",
                 "POST /api/auth/logout 204", "POST /api/auth/password 200", "DELETE /api/auth/me 204"):
        assert line in log, line
    # whole secrets, and the signature of every token (the part that makes it usable)
    leaked = [s for s in secrets + signatures if s in log] + [t.rsplit(".", 1)[1] for t in secrets[5:] if t.rsplit(".", 1)[1] in log]
    assert not leaked, f"{len(leaked)} secret(s) in the log"
