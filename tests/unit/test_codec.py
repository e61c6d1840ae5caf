"""Wire formats (SPEC 1): Accept negotiation with q-values and the x-msgpack alias,
body decoding, opaque cursors, and the `loc` of validation errors."""
from __future__ import annotations

import base64

import msgpack
import msgspec
import orjson
import pytest

from calsvc import errors
from calsvc.web import codec, schemas
from calsvc.web.codec import JSON, MSGPACK

# -- negotiation ----------------------------------------------------------------------------


@pytest.mark.parametrize("accept,expected", [
    (None, JSON),
    ("", JSON),
    ("   ", JSON),
    ("*/*", JSON),
    ("application/*", JSON),
    ("application/json", JSON),
    ("application/msgpack", MSGPACK),
    ("application/x-msgpack", MSGPACK),
    ("Application/MsgPack", MSGPACK),
    ("APPLICATION/X-MSGPACK", MSGPACK),
    # ties go to the server's order (JSON first)
    ("application/json, application/msgpack", JSON),
    ("application/msgpack, application/json", JSON),
    # q-values decide
    ("application/json;q=0.5, application/msgpack", MSGPACK),
    ("application/json; q=0.5, application/x-msgpack; q=0.9", MSGPACK),
    ("application/msgpack;q=0.4, application/json;q=0.6", JSON),
    ("application/x-msgpack;q=1.0, application/json;q=0.999", MSGPACK),
    ("application/msgpack;q=0.9, */*;q=0.1", MSGPACK),
    ("application/json;q=0.1, application/*;q=0.8", MSGPACK),
    # the most specific range wins for an offer, even with a lower q
    ("application/*;q=1, application/json;q=0.2", MSGPACK),
    ("*/*;q=0.1, application/json;q=0", MSGPACK),
    # browsers
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
    # a bad q counts as 0; q is clamped to 0..1
    ("application/json;q=abc, application/msgpack;q=0.1", MSGPACK),
    ("application/json;q=7, application/msgpack;q=0.9", JSON),
])
def test_negotiate(accept, expected):
    assert codec.negotiate(accept) == expected


@pytest.mark.parametrize("accept", [
    "text/html",
    "text/*",
    "application/xml",
    "application/json;q=0",
    "application/json;q=0, application/msgpack;q=0",
    "application/x-msgpack;q=0, application/json;q=0.0",
    "*/*;q=0",
    "image/png, text/plain;q=0.5",
])
def test_negotiate_nothing_acceptable(accept):
    assert codec.negotiate(accept) is None


def test_negotiate_with_other_offers():
    assert codec.negotiate("text/plain", ("text/plain",)) == "text/plain"
    assert codec.negotiate("application/json", ("text/plain",)) is None
    assert codec.negotiate(None, ("text/event-stream",)) == "text/event-stream"


# -- decoding bodies ------------------------------------------------------------------------

def test_decode_json_and_msgpack():
    value = {"a": [1, 2, {"b": None}], "s": "é"}
    assert codec.decode(orjson.dumps(value), JSON) == value
    assert codec.decode(msgpack.packb(value), MSGPACK) == value


@pytest.mark.parametrize("media", ["application/merge-patch+json", "application/problem+json",
                                   "application/vnd.foo+json", "text/json"])
def test_other_json_flavours_are_unsupported(media):
    # SPEC 1: JSON or msgpack; anything else with a body is a 415.
    with pytest.raises(errors.UnsupportedMediaType):
        codec.decode(b"{}", media)


@pytest.mark.parametrize("raw,media", [
    (b"{", JSON),
    (b"{'a': 1}", JSON),
    (b"\xff\xfe", JSON),
    (b"\xc1", MSGPACK),          # a byte msgpack never uses
    (b"\x92\x01", MSGPACK),      # an array of 2 with 1 element
    (msgpack.packb(1) + msgpack.packb(2), MSGPACK),  # extra data
])
def test_decode_malformed(raw, media):
    with pytest.raises(errors.Malformed) as info:
        codec.decode(raw, media)
    assert info.value.status == 400
    assert info.value.type == "/problems/malformed"


@pytest.mark.parametrize("media", ["text/plain", "application/xml", "multipart/form-data"])
def test_decode_unsupported_media_type(media):
    with pytest.raises(errors.UnsupportedMediaType) as info:
        codec.decode(b"x", media)
    assert info.value.status == 415
    assert info.value.type == "/problems/unsupported-media-type"


def test_encode_both_formats_with_times_as_strings():
    import datetime as dt
    user = schemas.User(id=1, username="u", email="u@example.com", full_name=None,
                        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    as_json = orjson.loads(codec.encode(user, JSON))
    as_msgpack = msgpack.unpackb(codec.encode(user, MSGPACK))
    assert as_json == as_msgpack
    assert as_json["created_at"] == "2026-01-02T03:04:05Z"


# -- cursors --------------------------------------------------------------------------------

@pytest.mark.parametrize("values,shape", [
    (["alice", 3], (str, int)),
    (["", 0], (str, int)),
    (["ünïcödé/+=?&", 2**53], (str, int)),
    (["2026-01-01T00:00:00Z", 17], (str, int)),
    ([1, 2, 3], (int, int, int)),
])
def test_cursor_round_trip(values, shape):
    cursor = codec.encode_cursor(values)
    assert isinstance(cursor, str)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor  # URL safe, unpadded
    assert codec.decode_cursor(cursor, shape) == values


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "",
    "!!!",
    "not a cursor",
    "é",
    b64(b"not json"),
    b64(b'{"a": 1}'),            # not a list
    b64(b'"alice"'),
    b64(b'["alice"]'),           # too short
    b64(b'["alice", 1, 2]'),     # too long
    b64(b'[1, "alice"]'),        # wrong types
    b64(b'["alice", "1"]'),
    b64(b'["alice", 1.5]'),
    b64(b'["alice", true]'),     # a bool is not an int
    b64(b'["alice", null]'),
    codec.encode_cursor(["alice", 1])[:-2],  # truncated
])
def test_invalid_cursor_is_a_validation_error_at_query_cursor(cursor):
    with pytest.raises(errors.Validation) as info:
        codec.decode_cursor(cursor, (str, int))
    problem = info.value
    assert problem.status == 422
    assert problem.type == "/problems/validation"
    assert [e["loc"] for e in problem.errors] == [["query", "cursor"]]


# -- validation locations -------------------------------------------------------------------

class Item(msgspec.Struct):
    name: str
    count: int = 0


class Nested(msgspec.Struct):
    items: list[Item]
    tags: dict[str, int] = {}


def loc_of(value, kind, prefix=("body",)):
    with pytest.raises(errors.Validation) as info:
        codec.convert(value, kind, prefix)
    problem = info.value
    assert problem.status == 422
    assert problem.type == "/problems/validation"
    assert len(problem.errors) == 1
    error = problem.errors[0]
    assert set(error) == {"loc", "msg", "type"}
    assert error["msg"]
    return error["loc"], error["type"]


def test_missing_field_loc():
    assert loc_of({"email": "a@b.co", "password": "x" * 8}, schemas.RegisterRequest) == (
        ["body", "username"], "missing")
    assert loc_of({"username": "abc", "password": "x" * 8}, schemas.RegisterRequest) == (
        ["body", "email"], "missing")
    assert loc_of({"username": "abc", "email": "a@b.co"}, schemas.RegisterRequest) == (
        ["body", "password"], "missing")


def test_wrong_type_loc():
    assert loc_of({"username": 5, "email": "a@b.co", "password": "x" * 8}, schemas.RegisterRequest) == (
        ["body", "username"], "type_error")
    assert loc_of({"username": "abc", "email": "a@b.co", "password": "x" * 8, "full_name": 3},
                  schemas.RegisterRequest) == (["body", "full_name"], "type_error")


def test_whole_body_of_the_wrong_type_is_at_body():
    assert loc_of([], schemas.RegisterRequest) == (["body"], "type_error")
    assert loc_of("text", schemas.RegisterRequest) == (["body"], "type_error")


@pytest.mark.parametrize("username", ["ab", "a" * 33, "has space", "semi;colon", "ünï"])
def test_constraint_violation_loc(username):
    loc, _ = loc_of({"username": username, "email": "a@b.co", "password": "x" * 8},
                    schemas.RegisterRequest)
    assert loc == ["body", "username"]


def test_nested_loc_has_indexes_and_names():
    assert loc_of({"items": [{"name": "a"}, {"name": 1}]}, Nested)[0] == ["body", "items", 1, "name"]
    assert loc_of({"items": [{"name": "a"}, {}]}, Nested) == (["body", "items", 1, "name"], "missing")
    assert loc_of({"items": [{"name": "a", "count": "x"}]}, Nested)[0] == ["body", "items", 0, "count"]
    assert loc_of({"items": [], "tags": {"a": "x"}}, Nested)[0][:2] == ["body", "tags"]


def test_other_prefix():
    assert loc_of({"items": 5}, Nested, ("body", "operations", 3))[0] == ["body", "operations", 3, "items"]


def test_convert_strict_refuses_strings_for_numbers():
    loc, kind = loc_of({"items": [{"name": "a", "count": "5"}]}, Nested)
    assert loc == ["body", "items", 0, "count"] and kind == "type_error"


def test_convert_query_parses_numbers_and_names_query_loc():
    q = codec.convert_query({"q": "al", "limit": "25"}, schemas.UsersQuery)
    assert (q.q, q.limit, q.cursor) == ("al", 25, None)
    assert codec.convert_query({}, schemas.UsersQuery).limit == 50
    for bad in ("0", "501", "-1", "abc", "1.5", ""):
        with pytest.raises(errors.Validation) as info:
            codec.convert_query({"limit": bad}, schemas.UsersQuery)
        assert [e["loc"] for e in info.value.errors] == [["query", "limit"]], bad
    assert codec.convert_query({"limit": "500"}, schemas.UsersQuery).limit == 500
