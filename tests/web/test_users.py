"""GET /api/users?q=: users by username prefix or by whole email, ignoring case (an email
prefix matches nothing, so no address can be recovered letter by letter), with only id,
username and full_name shown, keyset pagination, and its validation."""
from __future__ import annotations

from typing import Any

import msgpack
import pytest

from tests.conftest import assert_problem
from tests.factories import register, user_with_token

ITEM_KEYS = {"id", "username", "full_name"}



async def assert_validation(resp, loc: list) -> dict[str, Any]:
    body = await assert_problem(resp, 422, "validation")
    assert [e["loc"] for e in body["errors"]] == [loc], body
    return body


async def search(client, headers, **params) -> dict[str, Any]:
    resp = await client.get("/api/users", params={k: str(v) for k, v in params.items()}, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"items", "next_cursor"}
    for item in body["items"]:
        assert set(item) == ITEM_KEYS, item
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [item["username"] for item in body["items"]]


@pytest.fixture
async def searcher(client):
    """The caller: a user whose name and email match none of the prefixes used below."""
    _, _, headers = await user_with_token(client, "zz_searcher")
    return headers


async def test_prefix_of_username_ignoring_case(client, searcher):
    alice = await register(client, "alice", email="a1@mail.test", full_name="Alice A")
    alicia = await register(client, "Alicia", email="a2@mail.test")
    await register(client, "malice", email="a3@mail.test")  # contains, but does not start with, "ali"
    await register(client, "bob", email="b@mail.test")
    for q in ("ali", "ALI", "Ali", "aLiC"):
        body = await search(client, searcher, q=q)
        assert names(body) == ["alice", "Alicia"], q
        assert body["next_cursor"] is None
    body = await search(client, searcher, q="alice")
    assert body["items"] == [{"id": alice["id"], "username": "alice", "full_name": "Alice A"}]
    body = await search(client, searcher, q="alici")
    assert body["items"] == [{"id": alicia["id"], "username": "Alicia", "full_name": None}]


async def test_email_matches_only_whole_ignoring_case(client, searcher):
    carol = await register(client, "carol", email="Sunny.Day@Example.org")
    await register(client, "dave", email="rainy@example.org")
    for q in ("sunny.day@example.ORG", "SUNNY.DAY@EXAMPLE.ORG", "Sunny.Day@Example.org"):
        body = await search(client, searcher, q=q)
        assert body["items"] == [{"id": carol["id"], "username": "carol", "full_name": None}], q
    # A prefix of an email, or a part of it, matches nothing.
    for q in ("sunny", "SUNNY.D", "sunny.day@", "sunny.day@example.or", "example", "unny.day@example.org"):
        assert names(await search(client, searcher, q=q)) == [], q


async def test_no_email_can_be_recovered_letter_by_letter(client, searcher):
    """The attack this rule stops: extend a prefix one character at a time while the search
    finds the victim. Not one prefix short of the whole address finds them."""
    address = "victim.person@corp.example"
    victim = await register(client, "target", email=address)  # no prefix of the address
    for end in range(1, len(address)):
        assert names(await search(client, searcher, q=address[:end])) == [], address[:end]
    assert [i["id"] for i in (await search(client, searcher, q=address))["items"]] == [victim["id"]]


async def test_username_prefix_or_whole_email(client, searcher):
    # "sam" matches samuel and sam.both by username; thomas only by his whole email.
    await register(client, "samuel", email="s1@mail.test")
    await register(client, "thomas", email="sam.t@mail.test")
    await register(client, "sam.both", email="sam.both@mail.test")
    await register(client, "other", email="o@mail.test")
    body = await search(client, searcher, q="sam")
    assert names(body) == ["sam.both", "samuel"]  # ordered by username, ignoring case
    assert names(await search(client, searcher, q="sam.t@mail.test")) == ["thomas"]
    assert names(await search(client, searcher, q="sam.both@mail.test")) == ["sam.both"]


async def test_items_show_only_id_username_full_name(client, searcher):
    user = await register(client, "private", email="secret-address@mail.test", full_name="P. Rivate")
    resp = await client.get("/api/users", params={"q": "priv"}, headers=searcher)
    text = await resp.text()
    assert resp.status == 200
    body = await resp.json()
    assert body["items"] == [{"id": user["id"], "username": "private", "full_name": "P. Rivate"}]
    assert "secret-address" not in text
    assert "created_at" not in text and "hash" not in text and "$2b$" not in text


async def test_the_caller_is_found_too(client):
    me, _, headers = await user_with_token(client, "findme")
    body = await search(client, headers, q="findme")
    assert [i["id"] for i in body["items"]] == [me["id"]]


async def test_empty_q_lists_everyone(client, searcher):
    await register(client, "one", email="1@mail.test")
    await register(client, "Two", email="2@mail.test")
    body = await search(client, searcher)
    assert names(body) == ["one", "Two", "zz_searcher"]
    assert names(await search(client, searcher, q="")) == ["one", "Two", "zz_searcher"]


async def test_no_match_is_an_empty_page(client, searcher):
    body = await search(client, searcher, q="nobody-by-this-name")
    assert body == {"items": [], "next_cursor": None}


# -- LIKE metacharacters are literal --------------------------------------------------------

async def test_underscore_is_literal(client, searcher):
    await register(client, "a_b_user", email="u1@mail.test")
    await register(client, "axbxuser", email="u2@mail.test")
    assert names(await search(client, searcher, q="a_")) == ["a_b_user"]
    assert names(await search(client, searcher, q="a_b_")) == ["a_b_user"]
    assert names(await search(client, searcher, q="_")) == []  # would match everything as a wildcard


async def test_percent_is_literal(client, searcher):
    await register(client, "pct", email="x%y@mail.test")
    await register(client, "nopct", email="xzy@mail.test")
    assert names(await search(client, searcher, q="x%y@mail.test")) == ["pct"]
    assert names(await search(client, searcher, q="x%")) == []
    assert names(await search(client, searcher, q="%")) == []  # would match everything as a wildcard
    assert names(await search(client, searcher, q="%y")) == []


async def test_backslash_is_literal(client, searcher):
    await register(client, "slashed", email="back\\slash@mail.test")
    await register(client, "plain", email="backslash@mail.test")
    assert names(await search(client, searcher, q="back\\slash@mail.test")) == ["slashed"]
    assert names(await search(client, searcher, q="backslash@mail.test")) == ["plain"]
    assert names(await search(client, searcher, q="\\")) == []


# -- pagination -----------------------------------------------------------------------------

async def test_pages_cover_everyone_once_in_order(client, searcher):
    created = []
    for i in range(11):
        # mixed case, so ordering ignores case
        name = f"Page{i:02d}" if i % 2 else f"page{i:02d}"
        created.append((await register(client, name, email=f"p{i}@mail.test"))["id"])
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        params = {"q": "page", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = await search(client, searcher, **params)
        pages += 1
        assert len(body["items"]) <= 3
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(body["items"]) == 3
        assert pages < 10
    assert pages == 4  # 3 + 3 + 3 + 2
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)) == 11
    assert set(ids) == set(created)
    assert [item["username"].lower() for item in seen] == [f"page{i:02d}" for i in range(11)]


async def test_exact_multiple_of_limit_ends_with_null_cursor(client, searcher):
    for i in range(4):
        await register(client, f"even{i}", email=f"e{i}@mail.test")
    first = await search(client, searcher, q="even", limit=2)
    assert names(first) == ["even0", "even1"] and first["next_cursor"]
    second = await search(client, searcher, q="even", limit=2, cursor=first["next_cursor"])
    assert names(second) == ["even2", "even3"]
    assert second["next_cursor"] is None


async def test_pagination_is_stable_under_inserts(client, searcher):
    for name in ("keyb", "keyd", "keyf", "keyh"):
        await register(client, name, email=f"{name}@mail.test")
    first = await search(client, searcher, q="key", limit=2)
    assert names(first) == ["keyb", "keyd"]
    # Inserted behind the cursor: not seen; ahead of it: seen once.
    await register(client, "keya", email="keya@mail.test")
    await register(client, "keye", email="keye@mail.test")
    rest = []
    cursor = first["next_cursor"]
    while cursor:
        page = await search(client, searcher, q="key", limit=2, cursor=cursor)
        rest.extend(names(page))
        cursor = page["next_cursor"]
    assert rest == ["keye", "keyf", "keyh"]


async def test_default_limit_is_50(client, searcher):
    for i in range(51):
        await register(client, f"many{i:02d}", email=f"m{i}@mail.test")
    body = await search(client, searcher, q="many")
    assert len(body["items"]) == 50
    assert body["next_cursor"]
    last = await search(client, searcher, q="many", cursor=body["next_cursor"])
    assert names(last) == ["many50"]
    assert last["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 500])
async def test_limit_bounds_accepted(client, searcher, limit):
    await register(client, "lim1", email="l1@mail.test")
    await register(client, "lim2", email="l2@mail.test")
    body = await search(client, searcher, q="lim", limit=limit)
    assert len(body["items"]) == min(limit, 2)
    assert (body["next_cursor"] is None) == (limit >= 2)


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "1.5", "", "1e3"])
async def test_bad_limit_is_422_at_query_limit(client, searcher, limit):
    resp = await client.get("/api/users", params={"limit": limit}, headers=searcher)
    await assert_validation(resp, ["query", "limit"])


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJhIjoxfQ", "WyJhIl0", "WyJhIiwiYiJd", "x" * 513])
async def test_invalid_cursor_is_422(client, searcher, cursor):
    resp = await client.get("/api/users", params={"cursor": cursor}, headers=searcher)
    await assert_validation(resp, ["query", "cursor"])


async def test_too_long_q_is_422(client, searcher):
    resp = await client.get("/api/users", params={"q": "q" * 255}, headers=searcher)
    await assert_validation(resp, ["query", "q"])


# -- auth and formats -----------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer garbage"}])
async def test_needs_auth(client, headers):
    resp = await client.get("/api/users", params={"q": "a"}, headers=headers)
    await assert_problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_needs_auth_before_validation(client):
    resp = await client.get("/api/users", params={"limit": "0"})
    await assert_problem(resp, 401, "unauthorized")


async def test_msgpack_answer(client, searcher):
    user = await register(client, "packed", email="pk@mail.test", full_name="Pack Ed")
    resp = await client.get("/api/users", params={"q": "pack"},
                            headers={**searcher, "Accept": "application/msgpack"})
    assert resp.status == 200
    assert resp.content_type == "application/msgpack"
    assert msgpack.unpackb(await resp.read()) == {
        "items": [{"id": user["id"], "username": "packed", "full_name": "Pack Ed"}], "next_cursor": None,
    }
