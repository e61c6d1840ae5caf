"""Wire formats: Accept negotiation with q-values and the x-msgpack alias,
body decoding, opaque cursors, and the `loc` of validation errors."""
from __future__ import annotations

import base64
import typing

import msgpack
import msgspec
import orjson
import pytest
from multidict import MultiDict, MultiDictProxy

from calsvc import errors
from calsvc.web import codec, endpoints, messages, schemas
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
    # The API reads JSON or msgpack; a body in anything else is a 415.
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
                        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
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


# -- messages in plain words ------------------------------------------------------------------

EVENT = {"title": "Standup", "start_time": "2026-12-01T09:00:00+01:00", "end_time": "2026-12-01T09:15:00+01:00"}
USER = {"username": "alice", "email": "alice@example.com", "password": "x" * 8}
TIME = "an RFC 3339 time with an offset, such as 2026-12-01T09:00:00+01:00"


def refusal(value, kind, prefix=("body",)):
    with pytest.raises(errors.Validation) as info:
        codec.convert(value, kind, prefix)
    (error,) = info.value.errors
    assert info.value.detail == error["msg"]
    return error["loc"], error["msg"], error["type"]


@pytest.mark.parametrize("value,kind,loc,msg", [
    # an enum lists its values, in the order the type gives them
    ({"role": "admin"}, schemas.RoleIn, ["body", "role"], 'role must be one of owner, editor, viewer, not "admin"'),
    ({"users": [{"user_id": 2, "role": "owner"}]}, schemas.ShareIn, ["body", "users", 0, "role"],
     'users[0].role must be one of editor, viewer, not "owner"'),
    (EVENT | {"recurrence": {"pattern": {"frequency": "weekly", "by_weekday": ["MO", "Tu"]}}}, schemas.EventIn,
     ["body", "recurrence", "pattern", "by_weekday", 1],
     'recurrence.pattern.by_weekday[1] must be one of MO, TU, WE, TH, FR, SA, SU, not "Tu"'),
    ({"role": None}, schemas.RoleIn, ["body", "role"], "role must be one of owner, editor, viewer, not null"),
    ({}, schemas.RoleIn, ["body", "role"], "role is required (one of owner, editor, viewer)"),
    ({"op": "move", "id": 1}, schemas.Operation, ["body", "op"],
     'op must be one of create, update, delete, share, unshare, not "move"'),
    ({"id": 1}, schemas.Operation, ["body", "op"], "op is required (one of create, update, delete, share, unshare)"),
    # a pattern says the shape its description gives
    (USER | {"email": "alice.example.com"}, schemas.RegisterRequest, ["body", "email"],
     "email must be an email address (name@example.com)"),
    (USER | {"username": "al ice"}, schemas.RegisterRequest, ["body", "username"],
     "username must be 3-32 characters of A-Z a-z 0-9 _ . -"),
    ({"op": "delete", "id": "a"}, schemas.Operation, ["body", "id"],
     'id must be "$" followed by the ref of an earlier create'),
    # lengths and ranges say the bound
    (USER | {"username": "al"}, schemas.RegisterRequest, ["body", "username"],
     "username must be at least 3 characters long"),
    (USER | {"password": "short"}, schemas.RegisterRequest, ["body", "password"],
     "password must be at least 8 characters long"),
    (EVENT | {"title": ""}, schemas.EventIn, ["body", "title"], "title must not be empty"),
    (EVENT | {"title": "t" * 201}, schemas.EventIn, ["body", "title"], "title must be at most 200 characters long"),
    ({"events": []}, schemas.BatchIn, ["body", "events"], "events must have at least 1 item"),
    (EVENT | {"recurrence": {"pattern": {"frequency": "weekly", "by_weekday": ["MO"] * 8}}}, schemas.EventIn,
     ["body", "recurrence", "pattern", "by_weekday"], "recurrence.pattern.by_weekday must have at most 7 items"),
    (EVENT | {"recurrence": {"pattern": {"frequency": "daily", "interval": 0}}}, schemas.EventIn,
     ["body", "recurrence", "pattern", "interval"], "recurrence.pattern.interval must be at least 1"),
    (EVENT | {"recurrence": {"pattern": {"frequency": "monthly", "by_month_day": [32]}}}, schemas.EventIn,
     ["body", "recurrence", "pattern", "by_month_day", 0], "recurrence.pattern.by_month_day[0] must be at most 31"),
    # a wrong type says the type wanted in JSON terms
    (EVENT | {"title": 5}, schemas.EventIn, ["body", "title"], "title must be a string, not an integer"),
    (EVENT | {"all_day": "yes"}, schemas.EventIn, ["body", "all_day"], "all_day must be true or false, not a string"),
    (EVENT | {"recurrence": []}, schemas.EventIn, ["body", "recurrence"],
     "recurrence must be an object or null, not an array"),
    ({"events": {}}, schemas.BatchIn, ["body", "events"], "events must be an array, not an object"),
    ({"user_id": True, "role": "editor"}, schemas.ShareIn, ["body", "user_id"],
     "user_id must be an integer or null, not a boolean"),
    ({"op": "delete", "id": 1.5}, schemas.Operation, ["body", "id"],
     'id must be an integer or "$" followed by the ref of an earlier create, not a floating-point number'),
    ([], schemas.EventIn, ["body"], "the body must be an object, not an array"),
    (EVENT | {"start_time": 1764576000}, schemas.EventIn, ["body", "start_time"], f"start_time must be {TIME}, not an integer"),
    (EVENT | {"start_time": "tomorrow"}, schemas.EventIn, ["body", "start_time"], f"start_time must be {TIME}"),
    (EVENT | {"end_time": "2026-12-01T09:15:00"}, schemas.EventIn, ["body", "end_time"],
     "end_time needs an offset (Z or +hh:mm), such as 2026-12-01T09:00:00+01:00"),
    ({"recurrence": {"exdates": ["2026-12-08"]}}, schemas.EventPatch, ["body", "recurrence", "exdates", 0],
     f"recurrence.exdates[0] must be {TIME}"),
    # a missing member is named with its path
    ({"title": "t", "end_time": EVENT["end_time"]}, schemas.EventIn, ["body", "start_time"], "start_time is required"),
    (EVENT | {"recurrence": {"pattern": {}}}, schemas.EventIn, ["body", "recurrence", "pattern", "frequency"],
     "recurrence.pattern.frequency is required (one of daily, weekly, monthly, yearly)"),
    # a member name that is not a string (msgpack maps may have any keys)
    ({1: "editor"}, schemas.RoleIn, ["body"], "the body has a member whose name is not a string; member names are strings"),
    ({"role": "viewer", "x": "a\x00b"}, schemas.RoleIn, ["body", "x"], "x must not contain the NUL character (U+0000)"),
])
def test_messages_name_the_field_and_what_is_allowed(value, kind, loc, msg):
    got_loc, got_msg, _ = refusal(value, kind)
    assert (got_loc, got_msg) == (loc, msg)


@pytest.mark.parametrize("value,kind,loc,msg", [
    ({"title": "t", "colour": "red"}, schemas.EventPatch, ["body", "colour"],
     "the body has no member colour; its members are title, description, location, start_time, end_time, timezone, "
     "all_day, recurrence, on_conflict, edit_strategy, base_version, prefer"),
    (EVENT | {"recurrence": {"pattern": {"frequency": "weekly", "by_day": ["MO"]}}}, schemas.EventIn,
     ["body", "recurrence", "pattern", "by_day"],
     "recurrence.pattern has no member by_day; its members are frequency, interval, by_weekday, by_month_day, count, until"),
    ({"users": [{"user_id": 2, "role": "viewer", "notify": True}]}, schemas.ShareIn, ["body", "users", 0, "notify"],
     "users[0] has no member notify; its members are user_id, username, email, role"),
    # the members of the operation its `op` names, not those of every kind of operation
    ({"op": "unshare", "id": 1, "user_id": 2, "role": "viewer"}, schemas.Operation, ["body", "role"],
     "the body has no member role; its members are op, id, user_id"),
    ({"op": "update", "id": 1, "changes": {"foo": 1}}, schemas.Operation, ["body", "changes", "foo"],
     "changes has no member foo; its members are title, description, location, start_time, end_time, timezone, "
     "all_day, recurrence, on_conflict, edit_strategy, base_version, prefer"),
    ({"": 1}, schemas.LogoutRequest, ["body", ""], 'the body has no member ""; its members are refresh_token'),
    ({"x": 1}, endpoints.NoBody, ["body", "x"], "the body has no member x; it takes none"),
])
def test_an_unknown_member_is_named_with_the_members_there_are(value, kind, loc, msg):
    assert refusal(value, kind) == (loc, msg, "unknown_field")


def test_messages_under_a_prefix_name_the_item():
    loc, msg, _ = refusal(EVENT | {"is_recurring": True}, schemas.EventIn, ("body", "events", 3))
    assert loc == ["body", "events", 3, "is_recurring"]
    assert msg.startswith("events[3] has no member is_recurring; its members are title,")
    assert refusal(EVENT | {"title": 7}, schemas.EventIn, ("body", "events", 3))[1] == (
        "events[3].title must be a string, not an integer")
    assert refusal(7, schemas.EventIn, ("body", "events", 3))[:2] == (
        ["body", "events", 3], "events[3] must be an object, not an integer")
    # the batch's problem keeps such a loc (it is under the item already) and says it once
    with pytest.raises(errors.Validation) as info:
        codec.convert({"op": "delete", "id": 1, "soft": True}, schemas.Operation, ("body", "operations", 1))
    problem = errors.TransactionOperation.of(1, info.value)
    assert problem.errors[0]["loc"] == ["body", "operations", 1, "soft"]
    assert problem.detail == "operations[1] has no member soft; its members are op, id, if_version"


@pytest.mark.parametrize("query,kind,loc,msg", [
    ({"limit": "abc"}, schemas.UsersQuery, ["query", "limit"], "limit must be an integer"),
    ({"limit": "0"}, schemas.UsersQuery, ["query", "limit"], "limit must be at least 1"),
    ({"limit": "501"}, schemas.UsersQuery, ["query", "limit"], "limit must be at most 500"),
    ({"expand": "maybe"}, schemas.EventsQuery, ["query", "expand"], "expand must be true or false"),
    ({"role": "admin"}, schemas.EventsQuery, ["query", "role"], 'role must be one of owner, editor, viewer, not "admin"'),
    ({"start": "2026-12-01"}, schemas.EventsQuery, ["query", "start"], f"start must be {TIME}"),
    ({"cursor": "a b"}, schemas.UsersQuery, ["query", "cursor"],
     "cursor must be the next_cursor of the previous page, as it came"),
    ({"users": "1;2"}, schemas.FreeBusyQuery, ["query", "users"], "users must be comma-separated user ids (at most 50)"),
    ({"start": "2026-12-01T00:00:00Z"}, schemas.OccurrencesQuery, ["query", "end"], "end is required"),
    ({"start_date": "2026-12-01T00:00:00Z"}, schemas.EventsQuery, ["query", "start_date"],
     "start_date is not a query parameter of this route; its parameters are start, end, expand, role, q, limit, cursor"),
    ({"verbose": "1"}, endpoints.NoQuery, ["query", "verbose"],
     "verbose is not a query parameter of this route; it takes none"),
])
def test_query_messages(query, kind, loc, msg):
    with pytest.raises(errors.Validation) as info:
        codec.convert_query(query, kind)
    (error,) = info.value.errors
    assert (error["loc"], error["msg"]) == (loc, msg)


def test_a_query_parameter_given_twice_is_refused():
    query = MultiDictProxy(MultiDict([("q", "al"), ("limit", "1"), ("limit", "1")]))
    with pytest.raises(errors.Validation) as info:
        codec.convert_query(query, schemas.UsersQuery)
    assert info.value.errors == [{"loc": ["query", "limit"], "msg": "limit is given 2 times; give it once",
                                  "type": "value_error"}]
    assert codec.convert_query(MultiDictProxy(MultiDict([("limit", "1")])), schemas.UsersQuery).limit == 1


# -- every request type refuses unknown members -------------------------------------------------

def _request_structs(parts=("body", "form", "query")) -> list[type]:
    """Every Struct a route's body, form or query holds, at any depth."""
    from calsvc.web.routes import ROUTES

    roots = [getattr(r, part) for r in ROUTES for part in parts if getattr(r, part) is not None]
    roots += list(schemas.REFERENCED)
    seen: list[type] = []
    stack: list = roots
    while stack:
        kind = stack.pop()
        for candidate, _ in messages._flat(kind):
            if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                if candidate not in seen:
                    seen.append(candidate)
                    stack.extend(f.type for f in msgspec.structs.fields(candidate))
            else:
                stack.extend(typing.get_args(candidate) if typing.get_origin(candidate) in (list, dict) else ())
    return seen


def test_every_request_type_forbids_unknown_members():
    found = _request_structs()
    assert schemas.PatternIn in found and schemas.ShareUser in found and schemas.UnshareOp in found
    assert [k.__name__ for k in found if not k.__struct_config__.forbid_unknown_fields] == []


def test_every_pattern_of_a_request_type_describes_its_shape():
    """The message of a pattern quotes its description: a pattern without one would say nothing."""
    undescribed = []
    for kind in _request_structs():
        for field in msgspec.structs.fields(kind):
            for _, metas in messages._flat(field.type):
                if any(m.pattern is not None and not m.description for m in metas):
                    undescribed.append(f"{kind.__name__}.{field.name}")
    assert undescribed == []


def test_the_openapi_document_says_no_other_members():
    from calsvc.web import openapi
    from calsvc.web.routes import ROUTES

    document = openapi.build(ROUTES)
    components = document["components"]["schemas"]
    for kind in _request_structs(("body", "form")):  # query parameters are listed one by one
        assert components[kind.__name__].get("additionalProperties") is False, kind.__name__
    # answers may grow members: clients must not be told otherwise
    assert "additionalProperties" not in components["Event"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "422" in operation["responses"], (method, path)  # an unknown query parameter


@pytest.mark.parametrize("text", ["2026", "1700000000", "-1.5e3", " 12 "])
def test_a_number_is_no_time_in_a_query(text):
    """Read loosely, msgspec takes a number for a Unix time (?start=2026 was 1970): a 422."""
    with pytest.raises(errors.Validation) as caught:
        codec.convert_query({"start": text, "end": "2027-01-01T00:00:00Z"}, schemas.OccurrencesQuery)
    assert caught.value.errors[0]["loc"] == ["query", "start"]
    assert "RFC 3339" in caught.value.errors[0]["msg"]
