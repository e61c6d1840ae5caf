from tests.factories import user_with_token


async def test_register_login_me(client):
    user, tokens, headers = await user_with_token(client, "smoke")
    resp = await client.get("/api/auth/me", headers=headers)
    assert resp.status == 200
    assert (await resp.json())["username"] == "smoke"
