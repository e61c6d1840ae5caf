"""Authentication over HTTP: register, login (JSON, msgpack, OAuth2 form), token
claims, refresh rotation with reuse detection, typ confusion, forged and expired tokens,
logout, /me."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any

import jwt
import msgpack
import pytest

from tests.conftest import SECRET, assert_problem
from tests.factories import PASSWORD, bearer, connect, login, me_status, refresh, register, user_with_token

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
USER_KEYS = {"id", "username", "email", "full_name", "created_at"}
PAIR_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}



async def assert_unauthorized(resp) -> dict[str, Any]:
    body = await assert_problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer"), resp.headers.get("WWW-Authenticate")
    return body


async def assert_validation(resp, *locs: list) -> dict[str, Any]:
    body = await assert_problem(resp, 422, "validation")
    got = [e["loc"] for e in body["errors"]]
    assert got == list(locs), body
    for error in body["errors"]:
        assert isinstance(error["msg"], str) and error["msg"]
        assert isinstance(error["type"], str) and error["type"]
    return body


def new_user(username: str, **fields: Any) -> dict[str, Any]:
    return {"username": username, "email": f"{username}@example.com", "password": PASSWORD, **fields}


def forge(typ: str = "access", *, user_id: int = 1, family: str | None = None, key: str = SECRET,
          algorithm: str | None = "HS256", exp_in: dt.timedelta = dt.timedelta(minutes=5),
          **override: Any) -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    payload = {"sub": str(user_id), "iat": now, "exp": now + exp_in, "jti": str(uuid.uuid4()),
               "typ": typ, "fid": family or str(uuid.uuid4())}
    payload.update(override)
    payload = {k: v for k, v in payload.items() if v is not None}
    if algorithm == "none":
        return jwt.encode(payload, None, algorithm="none")
    return jwt.encode(payload, key, algorithm=algorithm)


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, SECRET, algorithms=["HS256"])


# -- register -------------------------------------------------------------------------------

async def test_register_answers_201_with_the_user_and_no_hash(client):
    resp = await client.post("/api/auth/register", json=new_user("Alice.Smith-1", full_name="Alice Smith"))
    text = await resp.text()
    assert resp.status == 201, text
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == USER_KEYS
    assert isinstance(body["id"], int)
    assert body["username"] == "Alice.Smith-1"  # case kept
    assert body["email"] == "Alice.Smith-1@example.com"
    assert body["full_name"] == "Alice Smith"
    assert RFC3339_UTC.match(body["created_at"]), body["created_at"]
    created = dt.datetime.fromisoformat(body["created_at"])
    assert abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    for leak in ("$2b$", "$2a$", "hash", PASSWORD):
        assert leak not in text


async def test_register_without_full_name_gives_null(client):
    body = await register(client, "nofullname")
    assert body["full_name"] is None
    assert set(body) == USER_KEYS


async def test_no_hash_in_me_either(client):
    _, _, headers = await user_with_token(client, "meleak")
    resp = await client.get("/api/auth/me", headers=headers)
    text = await resp.text()
    assert resp.status == 200
    assert set(await resp.json()) == USER_KEYS
    for leak in ("$2b$", "hash", PASSWORD):
        assert leak not in text


async def test_ids_are_distinct_integers(client):
    a = await register(client, "first")
    b = await register(client, "second")
    assert isinstance(a["id"], int) and isinstance(b["id"], int) and a["id"] != b["id"]


@pytest.mark.parametrize("first,second", [
    ("Alice", "alice"),
    ("alice", "ALICE"),
    ("Bob.B", "bob.b"),
])
async def test_duplicate_username_ignoring_case_is_409(client, first, second):
    await register(client, first)
    resp = await client.post("/api/auth/register", json={
        "username": second, "email": f"other-{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD})
    body = await assert_problem(resp, 409, "duplicate")
    assert [e["loc"] for e in body["errors"]] == [["body", "username"]]


@pytest.mark.parametrize("first,second", [
    ("Carol@Example.com", "carol@example.COM"),
    ("dave@example.com", "DAVE@EXAMPLE.COM"),
])
async def test_duplicate_email_ignoring_case_is_409(client, first, second):
    await register(client, "carolone", email=first)
    resp = await client.post("/api/auth/register", json={"username": "caroltwo", "email": second,
                                                          "password": PASSWORD})
    body = await assert_problem(resp, 409, "duplicate")
    assert [e["loc"] for e in body["errors"]] == [["body", "email"]]


async def test_duplicate_leaves_no_user_behind(client):
    await register(client, "keeper")
    resp = await client.post("/api/auth/register", json={"username": "KEEPER", "email": "second@example.com",
                                                          "password": "another password"})
    await assert_problem(resp, 409, "duplicate")
    # The original still logs in with its password; the refused one never existed.
    await login(client, "keeper")
    resp = await client.post("/api/auth/login", json={"username": "second@example.com",
                                                       "password": "another password"})
    await assert_unauthorized(resp)
    # And its email is still free.
    await register(client, "third", email="second@example.com")


@pytest.mark.parametrize("username", ["abc", "a" * 32, "A_b.c-9", "...", "___", "UPPER"])
async def test_valid_usernames(client, username):
    resp = await client.post("/api/auth/register", json=new_user(username))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["username"] == username


@pytest.mark.parametrize("username", [
    "ab", "a" * 33, "", "has space", "semi;colon", "at@sign", "slash/", "ünïcode", "tab\tname",
    "percent%", "plus+", "abc\n",
])
async def test_invalid_usernames_are_422(client, username):
    resp = await client.post("/api/auth/register", json={
        "username": username, "email": "someone@example.com", "password": PASSWORD})
    await assert_validation(resp, ["body", "username"])


@pytest.mark.parametrize("password", ["x" * 8, "x" * 128, "é" * 128, "🔑" * 128, "        "])
async def test_valid_passwords_8_to_128_characters(client, password):
    resp = await client.post("/api/auth/register", json=new_user("pw" + uuid.uuid4().hex[:8], password=password))
    assert resp.status == 201, await resp.text()
    user = await resp.json()
    await login(client, user["username"], password)


@pytest.mark.parametrize("password", ["", "x" * 7, "é" * 7, "x" * 129, "é" * 129])
async def test_invalid_password_lengths_are_422(client, password):
    resp = await client.post("/api/auth/register", json=new_user("pwbad", password=password))
    await assert_validation(resp, ["body", "password"])


@pytest.mark.parametrize("email", [
    "not-an-email", "a@b", "@example.com", "user@", "two@@example.com", "sp ace@example.com",
    "user@exa mple.com", "", "x" * 250 + "@example.com", "user@example.com\n", "user@example.com\nx",
])
async def test_invalid_emails_are_422(client, email):
    resp = await client.post("/api/auth/register", json={"username": "emailbad", "email": email,
                                                          "password": PASSWORD})
    await assert_validation(resp, ["body", "email"])


async def test_full_name_over_200_characters_is_422(client):
    resp = await client.post("/api/auth/register", json=new_user("longname", full_name="n" * 201))
    await assert_validation(resp, ["body", "full_name"])


@pytest.mark.parametrize("missing", ["username", "email", "password"])
async def test_missing_fields_are_422(client, missing):
    body = new_user("missingf")
    del body[missing]
    resp = await client.post("/api/auth/register", json=body)
    problem = await assert_validation(resp, ["body", missing])
    assert problem["errors"][0]["type"] == "missing"


async def test_empty_body_is_422_naming_a_required_field(client):
    resp = await client.post("/api/auth/register", data=b"", headers={"Content-Type": "application/json"})
    body = await assert_problem(resp, 422, "validation")
    assert body["errors"][0]["loc"][0] == "body"
    assert body["errors"][0]["loc"][1] in {"username", "email", "password"}


@pytest.mark.parametrize("field,value", [
    ("username", 123),
    ("username", None),
    ("username", ["abc"]),
    ("email", 5),
    ("email", {"a": 1}),
    ("password", 12345678),
    ("password", True),
    ("full_name", 7),
])
async def test_wrong_types_are_422(client, field, value):
    body = new_user("wrongtype")
    body[field] = value
    resp = await client.post("/api/auth/register", json=body)
    problem = await assert_validation(resp, ["body", field])
    assert problem["errors"][0]["type"] == "type_error"


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
async def test_body_that_is_not_an_object_is_422_at_body(client, raw):
    resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": "application/json"})
    await assert_validation(resp, ["body"])


async def test_register_by_msgpack(client):
    for media in ("application/msgpack", "application/x-msgpack"):
        name = f"mp{uuid.uuid4().hex[:6]}"
        resp = await client.post("/api/auth/register", data=msgpack.packb(new_user(name)),
                                 headers={"Content-Type": media})
        assert resp.status == 201, await resp.text()
        assert resp.content_type == "application/json"
        assert (await resp.json())["username"] == name


async def test_register_by_msgpack_validation_error_is_problem_json(client):
    resp = await client.post("/api/auth/register", data=msgpack.packb(new_user("ab")),
                             headers={"Content-Type": "application/msgpack", "Accept": "application/msgpack"})
    await assert_validation(resp, ["body", "username"])


# -- login ----------------------------------------------------------------------------------

def assert_pair(body: dict[str, Any]) -> None:
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["access_token"], str) and isinstance(body["refresh_token"], str)
    assert body["access_token"] != body["refresh_token"]


async def test_login_by_username(client):
    user = await register(client, "loginuser")
    resp = await client.post("/api/auth/login", json={"username": "loginuser", "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert_pair(body)
    me = await client.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.status == 200
    assert await me.json() == user


@pytest.mark.parametrize("field,value", [
    ("username", "LoginCase"),
    ("username", "logincase"),
    ("username", "LOGINCASE"),
    ("username", "LoginCase@Example.com"),   # the username field matches emails too (OAuth2 clients)
    ("email", "logincase@example.com"),
    ("email", "LOGINCASE@EXAMPLE.COM"),
    ("email", "LoginCase"),                  # and the email field matches usernames
])
async def test_login_by_username_or_email_ignoring_case(client, field, value):
    user = await register(client, "LoginCase", email="LoginCase@Example.com")
    resp = await client.post("/api/auth/login", json={field: value, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert_pair(body)
    assert claims(body["access_token"])["sub"] == str(user["id"])


async def test_login_finds_the_right_user_when_one_name_is_anothers_email(client):
    # A username may look like nobody's email, but an email can never be a username: still,
    # two users must never be confused by case-insensitive matching.
    a = await register(client, "twin.one", email="twin.one@example.com")
    b = await register(client, "twin.two", email="TWIN.TWO@example.com")
    for name, user in (("twin.one", a), ("TWIN.ONE@EXAMPLE.COM", a), ("twin.two@example.com", b)):
        tokens = await login(client, name)
        assert claims(tokens["access_token"])["sub"] == str(user["id"])


async def test_password_is_case_sensitive(client):
    await register(client, "casepw")
    resp = await client.post("/api/auth/login", json={"username": "casepw", "password": PASSWORD.upper()})
    await assert_unauthorized(resp)


@pytest.mark.parametrize("form", [
    {"username": "formuser", "password": PASSWORD},
    {"grant_type": "password", "username": "formuser", "password": PASSWORD},
    {"grant_type": "password", "username": "FormUser@example.com", "password": PASSWORD,
     "scope": "", "client_id": "swagger"},
])
async def test_login_by_oauth2_form(client, form):
    user = await register(client, "formuser", email="formuser@example.com")
    resp = await client.post("/api/auth/login", data=form)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert_pair(body)
    assert claims(body["access_token"])["sub"] == str(user["id"])


@pytest.mark.parametrize("grant_type", ["client_credentials", "refresh_token", "PASSWORD", "authorization_code"])
async def test_login_form_with_another_grant_type_is_422(client, grant_type):
    await register(client, "grantuser")
    resp = await client.post("/api/auth/login", data={"grant_type": grant_type, "username": "grantuser",
                                                      "password": PASSWORD})
    await assert_validation(resp, ["body", "grant_type"])


@pytest.mark.parametrize("missing", ["username", "password"])
async def test_login_form_missing_field_is_422(client, missing):
    form = {"grant_type": "password", "username": "someone", "password": PASSWORD}
    del form[missing]
    resp = await client.post("/api/auth/login", data=form)
    await assert_validation(resp, ["body", missing])


async def test_login_form_wrong_password_is_401(client):
    await register(client, "formwrong")
    resp = await client.post("/api/auth/login", data={"username": "formwrong", "password": "nope-nope"})
    await assert_unauthorized(resp)


async def test_wrong_password_and_unknown_user_answer_identically(client):
    await register(client, "realuser")
    wrong = await client.post("/api/auth/login", json={"username": "realuser", "password": "wrong password"})
    unknown = await client.post("/api/auth/login", json={"username": "ghost", "password": "wrong password"})
    unknown_email = await client.post("/api/auth/login",
                                      json={"email": "ghost@example.com", "password": PASSWORD})
    bodies = [await assert_unauthorized(r) for r in (wrong, unknown, unknown_email)]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["errors"] == []
    assert "realuser" not in str(bodies[0]) and "ghost" not in str(bodies[0])
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


async def test_form_and_json_failures_answer_identically(client):
    await register(client, "formjson")
    as_json = await client.post("/api/auth/login", json={"username": "formjson", "password": "wrong password"})
    as_form = await client.post("/api/auth/login", data={"username": "nobody", "password": "wrong password"})
    assert await assert_unauthorized(as_json) == await assert_unauthorized(as_form)


@pytest.mark.parametrize("body,loc", [
    ({"password": PASSWORD}, ["body", "username"]),
    ({"username": "someone"}, ["body", "password"]),
    ({"username": 5, "password": PASSWORD}, ["body", "username"]),
    ({"email": 5, "password": PASSWORD}, ["body", "email"]),
    ({"username": "someone", "password": 12345678}, ["body", "password"]),
    ({"username": "", "password": PASSWORD}, ["body", "username"]),
    ({"username": "someone", "password": ""}, ["body", "password"]),
])
async def test_login_validation_errors(client, body, loc):
    resp = await client.post("/api/auth/login", json=body)
    await assert_validation(resp, loc)


async def test_login_by_msgpack_both_ways(client):
    user = await register(client, "mplogin")
    for media in ("application/msgpack", "application/x-msgpack"):
        resp = await client.post(
            "/api/auth/login", data=msgpack.packb({"username": "mplogin", "password": PASSWORD}),
            headers={"Content-Type": media, "Accept": media})
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/msgpack"
        body = msgpack.unpackb(await resp.read())
        assert_pair(body)
        assert claims(body["access_token"])["sub"] == str(user["id"])


async def test_login_msgpack_body_json_answer(client):
    await register(client, "mpjson")
    resp = await client.post("/api/auth/login", data=msgpack.packb({"username": "mpjson", "password": PASSWORD}),
                             headers={"Content-Type": "application/msgpack"})
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert_pair(await resp.json())


async def test_login_failure_with_msgpack_accept_is_problem_json(client):
    resp = await client.post("/api/auth/login", data=msgpack.packb({"username": "x", "password": "yyyyyyyy"}),
                             headers={"Content-Type": "application/msgpack", "Accept": "application/msgpack"})
    await assert_unauthorized(resp)


# -- the tokens -----------------------------------------------------------------------------

async def test_token_claims(client):
    user = await register(client, "claims")
    before = int(dt.datetime.now(dt.UTC).timestamp())
    tokens = await login(client, "claims")
    after = int(dt.datetime.now(dt.UTC).timestamp())
    access, refresh_ = claims(tokens["access_token"]), claims(tokens["refresh_token"])
    for c in (access, refresh_):
        assert {"sub", "exp", "iat", "jti", "typ"} <= set(c)
        assert c["sub"] == str(user["id"])
        assert before - 1 <= c["iat"] <= after + 1
        uuid.UUID(c["jti"])
    assert access["typ"] == "access"
    assert refresh_["typ"] == "refresh"
    assert access["exp"] - access["iat"] == 900
    assert refresh_["exp"] > access["exp"]
    assert access["jti"] != refresh_["jti"]
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "HS256"


async def test_each_login_issues_new_tokens(client):
    await register(client, "twologins")
    a = await login(client, "twologins")
    b = await login(client, "twologins")
    assert claims(a["access_token"])["jti"] != claims(b["access_token"])["jti"]
    assert a["refresh_token"] != b["refresh_token"]
    assert await me_status(client, a["access_token"]) == 200
    assert await me_status(client, b["access_token"]) == 200


# -- refresh --------------------------------------------------------------------------------

async def test_refresh_gives_a_new_pair_and_uses_up_the_old_refresh_token(client):
    user, tokens, _ = await user_with_token(client, "rotate")
    resp = await refresh(client, tokens["refresh_token"])
    assert resp.status == 200, await resp.text()
    new = await resp.json()
    assert_pair(new)
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    assert claims(new["access_token"])["sub"] == str(user["id"])
    assert await me_status(client, new["access_token"]) == 200
    # The new refresh token works in turn.
    resp = await refresh(client, new["refresh_token"])
    assert resp.status == 200, await resp.text()
    assert_pair(await resp.json())


async def test_reuse_of_a_rotated_refresh_token_revokes_the_family(client):
    _, first, _ = await user_with_token(client, "theft")
    resp = await refresh(client, first["refresh_token"])
    assert resp.status == 200
    second = await resp.json()
    resp = await refresh(client, second["refresh_token"])
    assert resp.status == 200
    third = await resp.json()
    assert await me_status(client, third["access_token"]) == 200

    # The thief (or the victim) presents an old, rotated-out refresh token.
    await assert_unauthorized(await refresh(client, first["refresh_token"]))

    # The whole family is dead: the newest refresh token, and every access token of it.
    await assert_unauthorized(await refresh(client, third["refresh_token"]))
    for access in (first["access_token"], second["access_token"], third["access_token"]):
        resp = await client.get("/api/auth/me", headers=bearer(access))
        await assert_unauthorized(resp)


async def test_reuse_revokes_only_that_login(client):
    await register(client, "twofam")
    stolen = await login(client, "twofam")
    other = await login(client, "twofam")
    resp = await refresh(client, stolen["refresh_token"])
    assert resp.status == 200
    await assert_unauthorized(await refresh(client, stolen["refresh_token"]))
    # The other login of the same user is untouched.
    assert await me_status(client, other["access_token"]) == 200
    resp = await refresh(client, other["refresh_token"])
    assert resp.status == 200, await resp.text()


async def test_concurrent_use_of_one_refresh_token_counts_as_reuse(client):
    _, tokens, _ = await user_with_token(client, "racer")
    a, b = await asyncio.gather(refresh(client, tokens["refresh_token"]), refresh(client, tokens["refresh_token"]))
    statuses = sorted([a.status, b.status])
    assert statuses == [200, 401], statuses
    winner = await (a if a.status == 200 else b).json()
    loser = b if a.status == 200 else a
    await assert_unauthorized(loser)
    # The reuse revoked the family, including the pair the winner got.
    assert await me_status(client, winner["access_token"]) == 401
    await assert_unauthorized(await refresh(client, winner["refresh_token"]))


async def test_access_token_used_as_refresh_token_is_401(client):
    _, tokens, _ = await user_with_token(client, "confuse1")
    await assert_unauthorized(await refresh(client, tokens["access_token"]))
    # And it did not use anything up.
    assert (await refresh(client, tokens["refresh_token"])).status == 200


async def test_refresh_token_used_as_access_token_is_401(client):
    _, tokens, _ = await user_with_token(client, "confuse2")
    resp = await client.get("/api/auth/me", headers=bearer(tokens["refresh_token"]))
    await assert_unauthorized(resp)
    resp = await client.post("/api/auth/logout", headers=bearer(tokens["refresh_token"]))
    await assert_unauthorized(resp)
    assert await me_status(client, tokens["access_token"]) == 200


@pytest.mark.parametrize("token_of", [
    lambda uid, fid: forge("refresh", user_id=uid, family=fid),                     # unknown jti
    lambda uid, fid: forge("refresh", user_id=uid, family=fid, key="k" * 64),       # wrong key
    lambda uid, fid: forge("refresh", user_id=uid, family=fid, algorithm="none"),   # alg none
    lambda uid, fid: forge("refresh", user_id=uid, family=fid, exp_in=dt.timedelta(seconds=-5)),
    lambda uid, fid: forge("id", user_id=uid, family=fid),                          # wrong typ
    lambda uid, fid: "garbage",
])
async def test_refresh_with_forged_tokens_is_401(client, token_of):
    user, tokens, _ = await user_with_token(client, "forgedrefresh")
    fid = claims(tokens["refresh_token"])["fid"]
    await assert_unauthorized(await refresh(client, token_of(user["id"], fid)))
    # The real refresh token is still good.
    assert (await refresh(client, tokens["refresh_token"])).status == 200


async def test_refresh_with_the_jti_of_another_user_is_401(client):
    alice, alice_tokens, _ = await user_with_token(client, "alicer")
    bob, _, _ = await user_with_token(client, "bobr")
    c = claims(alice_tokens["refresh_token"])
    stolen_claims = {**c, "sub": str(bob["id"])}
    token = jwt.encode(stolen_claims, SECRET, algorithm="HS256")
    await assert_unauthorized(await refresh(client, token))


async def test_refresh_of_an_account_an_operator_removed_is_401(client, database_url):
    user, tokens, _ = await user_with_token(client, "removed")
    async with connect(database_url) as conn:
        await conn.execute("UPDATE users SET deleted_at = now() WHERE id = $1", user["id"])
    await assert_unauthorized(await refresh(client, tokens["refresh_token"]))
    assert await me_status(client, tokens["access_token"]) == 401


@pytest.mark.parametrize("body,loc", [
    ({}, ["body", "refresh_token"]),
    ({"refresh_token": 5}, ["body", "refresh_token"]),
    ({"refresh_token": ""}, ["body", "refresh_token"]),
])
async def test_refresh_validation(client, body, loc):
    await assert_validation(await client.post("/api/auth/refresh", json=body), loc)


async def test_refresh_by_msgpack(client):
    _, tokens, _ = await user_with_token(client, "mprefresh")
    resp = await client.post("/api/auth/refresh", data=msgpack.packb({"refresh_token": tokens["refresh_token"]}),
                             headers={"Content-Type": "application/msgpack", "Accept": "application/msgpack"})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/msgpack"
    assert_pair(msgpack.unpackb(await resp.read()))


# -- bad access tokens ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    pytest.param(lambda uid, fid: forge(user_id=uid, family=fid, algorithm="none"), id="alg-none"),
    pytest.param(lambda uid, fid: forge(user_id=uid, family=fid, algorithm="none") + "sig", id="alg-none-sig"),
    pytest.param(lambda uid, fid: forge(user_id=uid, family=fid, key="wrong-key-" + "w" * 54), id="wrong-key"),
    pytest.param(lambda uid, fid: forge(user_id=uid, family=fid, algorithm="HS384",
                                        key=SECRET + "x" * 10), id="other-alg"),
    pytest.param(lambda uid, fid: forge("refresh", user_id=uid, family=fid), id="typ-refresh"),
    pytest.param(lambda uid, fid: forge("id", user_id=uid, family=fid), id="typ-id"),
    pytest.param(lambda uid, fid: forge(None, user_id=uid, family=fid), id="no-typ"),
    pytest.param(lambda uid, fid: forge(user_id=uid, family=fid, exp_in=dt.timedelta(seconds=-1)), id="expired"),
    pytest.param(lambda uid, fid: forge(user_id=uid, family=fid, exp=None), id="no-exp"),
    pytest.param(lambda uid, fid: forge(user_id=uid, family=fid, jti=None), id="no-jti"),
    pytest.param(lambda uid, fid: forge(user_id=uid, family=None), id="unknown-family"),
    pytest.param(lambda uid, fid: forge(user_id=uid + 1000, family=fid), id="other-sub"),
    pytest.param(lambda uid, fid: "garbage", id="garbage"),
    pytest.param(lambda uid, fid: "a.b.c", id="three-parts"),
])
async def test_bad_access_tokens_are_401(client, make):
    user, tokens, _ = await user_with_token(client, "victim")
    fid = claims(tokens["access_token"])["fid"]
    resp = await client.get("/api/auth/me", headers=bearer(make(user["id"], fid)))
    body = await assert_unauthorized(resp)
    assert "Traceback" not in str(body)


async def test_a_forged_token_with_the_real_secret_and_a_live_family_is_accepted(client):
    """The control for the forgeries above: with the right key, typ and family it does work,
    so each of them fails for its own reason."""
    user, tokens, _ = await user_with_token(client, "control")
    fid = claims(tokens["access_token"])["fid"]
    resp = await client.get("/api/auth/me", headers=bearer(forge(user_id=user["id"], family=fid)))
    assert resp.status == 200
    assert (await resp.json())["id"] == user["id"]


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Token abc"},
])
async def test_missing_token_is_401(client, headers):
    resp = await client.get("/api/auth/me", headers=headers)
    await assert_unauthorized(resp)


async def test_bearer_scheme_is_case_insensitive(client):
    _, tokens, _ = await user_with_token(client, "schemecase")
    resp = await client.get("/api/auth/me", headers={"Authorization": f"bearer {tokens['access_token']}"})
    assert resp.status == 200


# -- logout ---------------------------------------------------------------------------------

async def test_logout_kills_the_access_token_and_its_family_at_once(client):
    _, tokens, headers = await user_with_token(client, "leaver")
    resp = await client.post("/api/auth/logout", headers=headers)
    assert resp.status == 204
    assert await resp.read() == b""
    await assert_unauthorized(await client.get("/api/auth/me", headers=headers))
    await assert_unauthorized(await refresh(client, tokens["refresh_token"]))
    # Logging out again with the dead token is a 401.
    await assert_unauthorized(await client.post("/api/auth/logout", headers=headers))


async def test_logout_kills_tokens_refreshed_earlier_in_the_family(client):
    _, first, _ = await user_with_token(client, "leaver2")
    second = await (await refresh(client, first["refresh_token"])).json()
    resp = await client.post("/api/auth/logout", headers=bearer(second["access_token"]))
    assert resp.status == 204
    assert await me_status(client, first["access_token"]) == 401
    await assert_unauthorized(await refresh(client, second["refresh_token"]))


async def test_logout_leaves_other_logins_alone(client):
    await register(client, "multi")
    a = await login(client, "multi")
    b = await login(client, "multi")
    assert (await client.post("/api/auth/logout", headers=bearer(a["access_token"]))).status == 204
    assert await me_status(client, a["access_token"]) == 401
    assert await me_status(client, b["access_token"]) == 200
    assert (await refresh(client, b["refresh_token"])).status == 200


async def test_logout_with_the_refresh_token_of_another_login_kills_that_family_too(client):
    await register(client, "multi2")
    a = await login(client, "multi2")
    b = await login(client, "multi2")
    c = await login(client, "multi2")
    resp = await client.post("/api/auth/logout", headers=bearer(a["access_token"]),
                             json={"refresh_token": b["refresh_token"]})
    assert resp.status == 204
    for dead in (a, b):
        assert await me_status(client, dead["access_token"]) == 401
        await assert_unauthorized(await refresh(client, dead["refresh_token"]))
    assert await me_status(client, c["access_token"]) == 200


async def test_logout_with_another_users_refresh_token_does_not_touch_it(client):
    _, alice, alice_headers = await user_with_token(client, "alicel")
    _, bob, _ = await user_with_token(client, "bobl")
    resp = await client.post("/api/auth/logout", headers=alice_headers, json={"refresh_token": bob["refresh_token"]})
    assert resp.status == 204
    assert await me_status(client, alice["access_token"]) == 401
    assert await me_status(client, bob["access_token"]) == 200
    assert (await refresh(client, bob["refresh_token"])).status == 200


@pytest.mark.parametrize("kwargs", [
    {},
    {"data": b"", "headers": {"Content-Type": "application/json"}},
    {"json": {}},
    {"json": {"refresh_token": None}},
    {"data": msgpack.packb({}), "headers": {"Content-Type": "application/msgpack"}},
])
async def test_logout_with_no_or_empty_body(client, kwargs):
    _, tokens, headers = await user_with_token(client, "nobody" + uuid.uuid4().hex[:6])
    headers = {**headers, **kwargs.pop("headers", {})}
    resp = await client.post("/api/auth/logout", headers=headers, **kwargs)
    assert resp.status == 204, await resp.text()
    assert await me_status(client, tokens["access_token"]) == 401


async def test_logout_needs_a_token(client):
    _, tokens, _ = await user_with_token(client, "anon")
    resp = await client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    await assert_unauthorized(resp)
    assert (await refresh(client, tokens["refresh_token"])).status == 200


async def test_logout_body_validation(client):
    _, _, headers = await user_with_token(client, "logoutval")
    resp = await client.post("/api/auth/logout", headers=headers, json={"refresh_token": 5})
    await assert_validation(resp, ["body", "refresh_token"])


async def test_logout_reaches_every_worker(make_client):
    """Two app instances over one database stand for two workers: a logout in one is seen
    at once by the other, since revocations live in PostgreSQL."""
    one = await make_client()
    two = await make_client()
    _, tokens, headers = await user_with_token(one, "workers")
    assert await me_status(two, tokens["access_token"]) == 200
    assert (await two.post("/api/auth/logout", headers=headers)).status == 204
    assert await me_status(one, tokens["access_token"]) == 401
    await assert_unauthorized(await refresh(one, tokens["refresh_token"]))


# -- me -------------------------------------------------------------------------------------

async def test_me(client):
    user, _, headers = await user_with_token(client, "Me.Myself")
    resp = await client.get("/api/auth/me", headers=headers)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body == user
    assert body["username"] == "Me.Myself"


async def test_me_in_msgpack(client):
    user, _, headers = await user_with_token(client, "mpme")
    for accept in ("application/msgpack", "application/x-msgpack", "application/json;q=0.1, application/msgpack"):
        resp = await client.get("/api/auth/me", headers={**headers, "Accept": accept})
        assert resp.status == 200
        assert resp.content_type == "application/msgpack"
        body = msgpack.unpackb(await resp.read())
        assert body == user  # same shape, created_at still an RFC 3339 string
        assert isinstance(body["created_at"], str) and RFC3339_UTC.match(body["created_at"])


async def test_me_without_token_is_401_even_asking_for_msgpack(client):
    resp = await client.get("/api/auth/me", headers={"Accept": "application/msgpack"})
    await assert_unauthorized(resp)


async def test_me_with_unacceptable_accept_is_406(client):
    _, _, headers = await user_with_token(client, "me406")
    resp = await client.get("/api/auth/me", headers={**headers, "Accept": "text/html"})
    await assert_problem(resp, 406, "not-acceptable")
