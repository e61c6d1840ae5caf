"""Writes postman_collection.json (Postman Collection v2.1): every route of the API, as one flow
that runs from an empty database (two new users each run, so it can be run again), with a
realistic body, `pm.test` checks and the variables later requests need.

`/api/auth/*` is rate limited per client (20 a minute by default): the flow logs each user in
once, refreshes once and reuses the tokens, so that two runs in a row stay within the limit
(AUTH_CALLS_PER_RUN, which tests/e2e/test_postman.py holds it to).

    python tools/postman.py                  # rewrite the JSON (keeps its recorded examples)
    python tools/postman.py --check          # exit 1 if the JSON is not what this script writes
    python tools/postman.py --record URL     # run the flow with newman against a live server
                                             # and keep each answer as the request's example

Plain Python (standard library only): the requests, their scripts and the folder order live
here; the JSON is what users import. tests/e2e/test_postman.py runs it with newman and checks
that it covers every operation of /openapi.json."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "postman_collection.json"
NEWMAN = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "newman"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
COLLECTION_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "calsvc/postman_collection.json"))

PASSWORD = "correct horse battery staple"
AUTH_CALLS_PER_RUN = 10  # requests to /api/auth/* in one run: two runs within the default limit
# A window holding the whole flow (December 2026; Europe/Berlin is at +01:00 then).
DEC_START, DEC_END = "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"


def var(name: str) -> str:
    """A variable written bare in a JSON body (a number): `{"user_id": {{otherUserId}}}`."""
    return f"@@{name}@@"


def js(text: str) -> list[str]:
    return textwrap.dedent(text).strip("\n").splitlines()


# -- test snippets -------------------------------------------------------------------------

class JS(str):
    """Script text; `+` dedents what it appends, so the snippets below and the indented
    literals after them line up in the JSON."""

    def __add__(self, other: str) -> JS:
        text = textwrap.dedent(other).strip("\n")
        return JS(str.__add__(self, text + "\n" if text else ""))


def status(code: int) -> JS:
    return JS(f'pm.test("status is {code}", () => pm.response.to.have.status({code}));\n')


def json_answer(code: int, name: str = "body") -> JS:
    return status(code) + (f"""\
        pm.test("answer is JSON", () => {{
            pm.expect(pm.response.headers.get("Content-Type")).to.include("application/json");
        }});
        const {name} = pm.response.json();
        """)


def problem(code: int, slug: str) -> JS:
    """The checks every error answer gets: status, problem+json, type slug, members of RFC 9457."""
    return status(code) + (f"""\
        pm.test("answer is application/problem+json", () => {{
            pm.expect(pm.response.headers.get("Content-Type")).to.include("application/problem+json");
        }});
        const problem = pm.response.json();
        pm.test("problem is {slug}", () => {{
            pm.expect(problem.type).to.eql("{slug}");
            pm.expect(problem.status).to.eql({code});
            pm.expect(problem.title).to.be.a("string").and.not.empty;
            pm.expect(problem.detail).to.be.a("string");
            pm.expect(problem.errors).to.be.an("array");
        }});
        """)


def is_event(name: str = "event") -> JS:
    return JS() + (f"""\
        pm.test("answer is an event", () => {{
            pm.expect({name}).to.include.keys("id", "title", "start_time", "end_time", "timezone", "recurrence",
                                            "owner_id", "my_role", "version", "created_at", "updated_at", "updated_by");
            pm.expect(pm.response.headers.get("ETag")).to.eql(`"${{{name}.version}}"`);
            pm.expect(pm.response.headers.get("Vary")).to.include("Accept");
            pm.expect({name}.created_at).to.match(/Z$/);
            pm.expect({name}.updated_at).to.match(/Z$/);
        }});
        """)


def keep_planning(source: str) -> JS:
    """After every change of the "Planning" event: its version and ETag, for If-Match and if_version."""
    return JS() + (f"""\
        pm.collectionVariables.set("eventVersion", {source}.version);
        pm.collectionVariables.set("eventEtag", `"${{{source}.version}}"`);
        """)


def is_page(name: str = "page") -> JS:
    return JS() + (f"""\
        pm.test("answer is a page", () => {{
            pm.expect({name}.items).to.be.an("array");
            pm.expect({name}).to.have.property("next_cursor");
        }});
        """)


def new_pair(access: str, refresh: str) -> JS:
    """A token pair unlike the one in the variables `access` and `refresh`, stored there."""
    return JS() + (f"""\
        pm.test("answer is a new pair", () => {{
            pm.expect(pair.token_type).to.eql("bearer");
            pm.expect(pair.refresh_token).to.not.eql(pm.collectionVariables.get("{refresh}"));
            pm.expect(pair.access_token).to.not.eql(pm.collectionVariables.get("{access}"));
        }});
        pm.collectionVariables.set("{access}", pair.access_token);
        pm.collectionVariables.set("{refresh}", pair.refresh_token);
        """)


# -- the model -----------------------------------------------------------------------------

@dataclass
class Request:
    name: str
    method: str
    path: str                                   # "/api/events/:id": Postman path variables
    tests: str                                  # JavaScript run after the answer
    description: str = ""
    variables: dict[str, str] = field(default_factory=dict)   # path variable -> value
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None                            # JSON body
    form: dict[str, str] | None = None          # application/x-www-form-urlencoded body
    auth: str = "alice"                         # alice (the collection's), bob, old (bob's first token), none
    prerequest: str = ""                        # JavaScript run before the request

    def item_id(self, folder: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"calsvc/postman/{folder}/{self.name}"))


def _url(req: Request) -> dict[str, Any]:
    segments = [s for s in req.path.split("/") if s]
    raw = "{{baseUrl}}/" + "/".join(segments)
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": segments}
    if req.query:
        url["raw"] += "?" + "&".join(f"{k}={v}" for k, v in req.query)
        url["query"] = [{"key": k, "value": v} for k, v in req.query]
    names = [s[1:] for s in segments if s.startswith(":")]
    if names:
        missing = set(names) ^ set(req.variables)
        assert not missing, f"{req.name}: path variables {missing}"
        url["variable"] = [{"key": n, "value": req.variables[n]} for n in names]
    return url


def _raw_json(body: Any) -> str:
    text = json.dumps(body, indent=2, ensure_ascii=False)
    return re.sub(r'"@@(\w+)@@"', r"{{\1}}", text)


BEARERS = {"bob": "{{otherAccessToken}}", "old": "{{oldAccessToken}}"}  # tokens of other users


def _request(req: Request) -> dict[str, Any]:
    headers = [{"key": k, "value": v} for k, v in req.headers.items()]
    out: dict[str, Any] = {"method": req.method}
    if req.auth == "none":
        out["auth"] = {"type": "noauth"}
    elif req.auth in BEARERS:
        out["auth"] = {"type": "bearer",
                       "bearer": [{"key": "token", "value": BEARERS[req.auth], "type": "string"}]}
    else:
        assert req.auth == "alice", req.auth
    if req.body is not None:
        headers.append({"key": "Content-Type", "value": "application/json"})
        out["body"] = {"mode": "raw", "raw": _raw_json(req.body), "options": {"raw": {"language": "json"}}}
    elif req.form is not None:
        headers.append({"key": "Content-Type", "value": "application/x-www-form-urlencoded"})
        out["body"] = {"mode": "urlencoded", "urlencoded": [{"key": k, "value": v} for k, v in req.form.items()]}
    out["header"] = headers
    out["url"] = _url(req)
    if req.description:
        out["description"] = req.description
    return out


def _script(listen: str, text: str) -> dict[str, Any]:
    return {"listen": listen, "script": {"type": "text/javascript", "exec": js(text)}}


# Collection variables come back as strings: ids and versions are compared as numbers.
ID_HELPER = "const id = name => Number(pm.collectionVariables.get(name));\n"


def _item(folder: str, req: Request, examples: dict[str, list[Any]]) -> dict[str, Any]:
    events = []
    if req.prerequest:
        events.append(_script("prerequest", req.prerequest))
    tests = JS() + req.tests
    events.append(_script("test", (ID_HELPER if re.search(r"\bid\(", tests) else "") + tests))
    item_id, request = req.item_id(folder), _request(req)
    # a recorded answer stays; the request it answers is always the current one
    responses = [{**example, "originalRequest": request} for example in examples.get(item_id, [])]
    return {"id": item_id, "name": req.name, "event": events, "request": request, "response": responses}


# -- the flow ------------------------------------------------------------------------------

def event_body(title: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "start_time": start, "end_time": end, **extra}


PLANNING = event_body("Planning", "2026-12-01T10:00:00+01:00", "2026-12-01T11:00:00+01:00",
                      description="Quarterly planning with the team.", location="Room 1",
                      timezone="Europe/Berlin")
STANDUP = event_body("Standup", "2026-12-01T09:00:00+01:00", "2026-12-01T09:15:00+01:00",
                     timezone="Europe/Berlin",
                     recurrence={"rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT=20"})
LUNCH = event_body("Team lunch", "2026-12-02T12:00:00+01:00", "2026-12-02T13:00:00+01:00",
                   location="Canteen", timezone="Europe/Berlin")

AUTH = [
    Request(
        "Register a user", "POST", "/api/auth/register", auth="none",
        description="Creates the first user of this run. The pre-request script makes a `runId`, so "
                    "the usernames and emails are new each run and the collection can be run again "
                    "against the same database.",
        prerequest="""
            // A new suffix for this run's usernames (3-32 of A-Z a-z 0-9 _ . -)
            const runId = Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36);
            pm.collectionVariables.set("runId", runId);
            pm.collectionVariables.set("username", `alice_${runId}`);
            pm.collectionVariables.set("otherUsername", `bob_${runId}`);
            """,
        body={"username": "{{username}}", "email": "{{username}}@example.com", "password": "{{password}}",
              "full_name": "Alice Example"},
        tests=json_answer(201, "user") + """
            pm.test("answer is the user, with no password or hash", () => {
                pm.expect(user.id).to.be.a("number");
                pm.expect(user.username).to.eql(pm.collectionVariables.get("username"));
                pm.expect(user.email).to.eql(`${pm.collectionVariables.get("username")}@example.com`);
                pm.expect(user.full_name).to.eql("Alice Example");
                pm.expect(user.created_at).to.match(/Z$/);
                pm.expect(user).to.not.have.any.keys("password", "password_hash");
            });
            pm.collectionVariables.set("userId", user.id);
            """),
    Request(
        "Register a second user", "POST", "/api/auth/register", auth="none",
        description="Bob, who will share Alice's events.",
        body={"username": "{{otherUsername}}", "email": "{{otherUsername}}@example.com",
              "password": "{{password}}", "full_name": "Bob Example"},
        tests=json_answer(201, "user") + """
            pm.test("answer is the user", () => {
                pm.expect(user.username).to.eql(pm.collectionVariables.get("otherUsername"));
                pm.expect(user.id).to.not.eql(id("userId"));
            });
            pm.collectionVariables.set("otherUserId", user.id);
            """),
    Request(
        "Register a taken username (409)", "POST", "/api/auth/register", auth="none",
        description="Usernames are unique ignoring case: 409 `/problems/duplicate`.",
        body={"username": "ALICE_{{runId}}", "email": "someone.else@example.com", "password": "{{password}}"},
        tests=problem(409, "/problems/duplicate")),
    Request(
        "Log in", "POST", "/api/auth/login", auth="none",
        description="JSON `{username or email, password}`: a token pair. The access token is the "
                    "collection's bearer token (`accessToken`), used by every request after this one "
                    "(log in once, not before each request: `/api/auth/*` is rate limited). A wrong "
                    "password and an unknown user get the same 401.",
        body={"username": "{{username}}", "password": "{{password}}"},
        tests=json_answer(200, "pair") + """
            pm.test("answer is a bearer token pair", () => {
                pm.expect(pair.token_type).to.eql("bearer");
                pm.expect(pair.access_token).to.be.a("string").and.not.empty;
                pm.expect(pair.refresh_token).to.be.a("string").and.not.eql(pair.access_token);
                pm.expect(pair.expires_in).to.be.a("number").and.above(0);
            });
            pm.collectionVariables.set("accessToken", pair.access_token);
            pm.collectionVariables.set("refreshToken", pair.refresh_token);
            """),
    Request(
        "Log in with the OAuth2 password grant", "POST", "/api/auth/login", auth="none",
        description="The same route takes the form-encoded OAuth2 password grant (`grant_type=password`).",
        form={"grant_type": "password", "username": "{{otherUsername}}", "password": "{{password}}"},
        tests=json_answer(200, "pair") + """
            pm.test("answer is a bearer token pair", () => {
                pm.expect(pair.token_type).to.eql("bearer");
                pm.expect(pair.access_token).to.be.a("string").and.not.empty;
            });
            pm.collectionVariables.set("otherAccessToken", pair.access_token);
            pm.collectionVariables.set("otherRefreshToken", pair.refresh_token);
            """),
    Request(
        "Refresh the tokens", "POST", "/api/auth/refresh", auth="none",
        description="Trades the refresh token for a new pair; the old refresh token is used up "
                    "(presenting it again would revoke the whole login).",
        body={"refresh_token": "{{refreshToken}}"},
        tests=json_answer(200, "pair") + new_pair("accessToken", "refreshToken")),
    Request(
        "Who am I", "GET", "/api/auth/me",
        tests=json_answer(200, "me") + """
            pm.test("answer is the logged-in user", () => {
                pm.expect(me.id).to.eql(id("userId"));
                pm.expect(me.username).to.eql(pm.collectionVariables.get("username"));
                pm.expect(me.email).to.eql(`${pm.collectionVariables.get("username")}@example.com`);
            });
            """),
]

USERS = [
    Request(
        "Find users", "GET", "/api/users", query=[("q", "{{otherUsername}}"), ("limit", "10")],
        description="By username prefix, or by whole email, ignoring case; items show `id`, `username`, "
                    "`full_name` only (never an email).",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("finds the second user, and nothing private", () => {
                pm.expect(page.items).to.have.lengthOf(1);
                pm.expect(page.items[0].id).to.eql(id("otherUserId"));
                pm.expect(page.items[0]).to.have.all.keys("id", "username", "full_name");
            });
            """),
    Request(
        "Find a user by email", "GET", "/api/users", query=[("q", "{{otherUsername}}@EXAMPLE.com")],
        description="An email matches only whole (ignoring case).",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("finds the second user by the whole address", () => {
                pm.expect(page.items.map(u => u.id)).to.eql([id("otherUserId")]);
            });
            """),
    Request(
        "Find users by a part of an email", "GET", "/api/users", query=[("q", "{{otherUsername}}@exam")],
        description="A prefix of an email matches nothing: no address can be recovered letter by letter.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("finds nobody", () => pm.expect(page.items).to.eql([]));
            """),
]

EVENTS = [
    Request(
        "Create an event", "POST", "/api/events",
        description="201 with `Location` and `ETag`; the caller owns it. Times carry an offset; the "
                    "answer writes them in the event's `timezone`.",
        body=PLANNING,
        tests=json_answer(201, "event") + is_event() + """
            pm.test("the caller owns version 1", () => {
                pm.expect(event.title).to.eql("Planning");
                pm.expect(event.owner_id).to.eql(id("userId"));
                pm.expect(event.my_role).to.eql("owner");
                pm.expect(event.version).to.eql(1);
                pm.expect(event.start_time).to.eql("2026-12-01T10:00:00+01:00");
                pm.expect(event.recurrence).to.eql(null);
            });
            pm.test("Location names the event", () => {
                pm.expect(pm.response.headers.get("Location")).to.eql(`/api/events/${event.id}`);
            });
            pm.collectionVariables.set("eventId", event.id);
            """ + keep_planning("event")),
    Request(
        "Create a recurring event", "POST", "/api/events",
        description="`recurrence.rrule` is an RFC 5545 RRULE (or a structured `pattern`); the answer "
                    "holds the normalised rule and its pattern. The series keeps 09:00 Berlin time.",
        body=STANDUP,
        tests=json_answer(201, "event") + is_event() + """
            pm.test("the rule is normalised, with its pattern", () => {
                pm.expect(event.recurrence.rrule).to.eql("FREQ=WEEKLY;COUNT=20;BYDAY=MO,TU,WE,TH,FR");
                pm.expect(event.recurrence.pattern.frequency).to.eql("weekly");
                pm.expect(event.recurrence.pattern.by_weekday).to.eql(["MO", "TU", "WE", "TH", "FR"]);
                pm.expect(event.recurrence.pattern.count).to.eql(20);
            });
            pm.collectionVariables.set("seriesId", event.id);
            """),
    Request(
        "Create an event with an Idempotency-Key", "POST", "/api/events",
        headers={"Idempotency-Key": "lunch-{{runId}}"},
        description="A retry with the same key and body answers the first answer instead of writing twice.",
        body=LUNCH,
        tests=json_answer(201, "event") + is_event() + """
            pm.test("written", () => pm.expect(pm.response.headers.get("Idempotent-Replayed")).to.not.eql("true"));
            pm.collectionVariables.set("lunchEventId", event.id);
            """),
    Request(
        "Retry with the same Idempotency-Key", "POST", "/api/events",
        headers={"Idempotency-Key": "lunch-{{runId}}"},
        description="The same key and body: the first answer again, with `Idempotent-Replayed: true`; "
                    "nothing is written.",
        body=LUNCH,
        tests=json_answer(201, "event") + """
            pm.test("replayed, same event", () => {
                pm.expect(pm.response.headers.get("Idempotent-Replayed")).to.eql("true");
                pm.expect(event.id).to.eql(id("lunchEventId"));
                pm.expect(event.version).to.eql(1);
                pm.expect(pm.response.headers.get("Location")).to.eql(`/api/events/${event.id}`);
            });
            """),
    Request(
        "Create an overlapping event (409)", "POST", "/api/events",
        description="Double-booking is refused by default (`on_conflict=reject`): 409 "
                    "`/problems/scheduling-conflict` listing the `conflicts`; nothing is written.",
        body=event_body("Budget review", "2026-12-01T10:30:00+01:00", "2026-12-01T11:30:00+01:00"),
        tests=problem(409, "/problems/scheduling-conflict") + """
            pm.test("conflicts name the Planning event", () => {
                const ids = problem.conflicts.map(c => c.event_id);
                pm.expect(ids).to.include(id("eventId"));
                pm.expect(problem.conflicts[0]).to.include.keys("event_id", "title", "start_time", "end_time");
            });
            """),
    Request(
        "Create an event without a time offset (422)", "POST", "/api/events",
        description="Times need an offset (`+01:00` or `Z`).",
        body=event_body("Coffee", "2026-12-01T15:00:00", "2026-12-01T15:30:00"),
        tests=problem(422, "/problems/validation") + """
            pm.test("the error names body.start_time", () => {
                pm.expect(problem.errors[0].loc).to.eql(["body", "start_time"]);
            });
            """),
    Request(
        "List events", "GET", "/api/events",
        query=[("start", DEC_START), ("end", DEC_END), ("limit", "50")],
        description="Events with an occurrence in the window, by `(start_time, id)`; `next_cursor` "
                    "is the `cursor` of the next page (null on the last).",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("lists the events created", () => {
                const ids = page.items.map(e => e.id);
                pm.expect(ids).to.include.members([id("eventId"),
                                                   id("seriesId"),
                                                   id("lunchEventId")]);
                const starts = page.items.map(e => Date.parse(e.start_time));
                pm.expect(starts).to.eql([...starts].sort((a, b) => a - b));
            });
            """),
    Request(
        "List occurrences in a window (expand=true)", "GET", "/api/events",
        query=[("start", "2026-12-01T00:00:00Z"), ("end", "2026-12-03T00:00:00Z"), ("expand", "true")],
        description="With `expand=true` the items are occurrences, series expanded.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("two days of standups, planning and lunch", () => {
                const series = page.items.filter(o => o.event_id === id("seriesId"));
                pm.expect(series.map(o => o.start_time)).to.eql(["2026-12-01T09:00:00+01:00",
                                                                 "2026-12-02T09:00:00+01:00"]);
                pm.expect(page.items).to.have.lengthOf(4);
                pm.expect(page.items[0]).to.include.keys("event_id", "occurrence_start", "start_time", "end_time",
                                                          "title", "is_exception", "cancelled");
            });
            """),
    Request(
        "Search events", "GET", "/api/events", query=[("q", "plan")],
        description="`q` matches title and description, ignoring case.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("finds Planning only", () => {
                pm.expect(page.items.map(e => e.title)).to.eql(["Planning"]);
            });
            """),
    Request(
        "List events without a token (401)", "GET", "/api/events", auth="none",
        description="Every `/api` route but register, login and refresh needs `Authorization: Bearer`.",
        tests=problem(401, "/problems/unauthorized") + """
            pm.test("WWW-Authenticate: Bearer", () => {
                pm.expect(pm.response.headers.get("WWW-Authenticate")).to.match(/^Bearer/);
            });
            """),
    Request(
        "Get an event", "GET", "/api/events/:id", variables={"id": "{{eventId}}"},
        description='`ETag: "<version>"`, for `If-None-Match` and `If-Match`.',
        tests=json_answer(200, "event") + is_event() + """
            pm.test("the Planning event", () => {
                pm.expect(event.id).to.eql(id("eventId"));
                pm.expect(event.location).to.eql("Room 1");
                pm.expect(event.timezone).to.eql("Europe/Berlin");
            });
            """),
    Request(
        "Get an event if changed (304)", "GET", "/api/events/:id", variables={"id": "{{eventId}}"},
        headers={"If-None-Match": "{{eventEtag}}"},
        description="`If-None-Match` with the current ETag: 304, no body.",
        tests=status(304) + """
            pm.test("no body", () => pm.expect(pm.response.text()).to.eql(""));
            """),
    Request(
        "Replace an event (If-Match)", "PUT", "/api/events/:id", variables={"id": "{{eventId}}"},
        headers={"If-Match": "{{eventEtag}}"},
        description="`If-Match` with the ETag read: written only if nobody changed the event since "
                    "(else 412). PUT and PATCH both apply the fields given.",
        body={**PLANNING, "description": "Quarterly planning: budget, hiring, roadmap."},
        tests=json_answer(200, "event") + is_event() + """
            pm.test("version 2 with the new description", () => {
                pm.expect(event.version).to.eql(2);
                pm.expect(event.description).to.eql("Quarterly planning: budget, hiring, roadmap.");
                pm.expect(event.updated_by).to.eql(id("userId"));
            });
            pm.collectionVariables.set("mergeBaseVersion", event.version);
            """ + keep_planning("event")),
    Request(
        "Change an event (PATCH, If-Match)", "PATCH", "/api/events/:id", variables={"id": "{{eventId}}"},
        headers={"If-Match": "{{eventEtag}}"},
        description="Only the fields given change.",
        body={"title": "Planning (Q1 budget)"},
        tests=json_answer(200, "event") + is_event() + """
            pm.test("title changed, the rest kept", () => {
                pm.expect(event.title).to.eql("Planning (Q1 budget)");
                pm.expect(event.location).to.eql("Room 1");
                pm.expect(event.version).to.eql(id("eventVersion") + 1);
            });
            """ + keep_planning("event")),
    Request(
        "Change an event with a stale If-Match (412)", "PATCH", "/api/events/:id",
        variables={"id": "{{eventId}}"}, headers={"If-Match": '"1"'},
        description="Based on version 1, which is no longer current: 412 "
                    "`/problems/precondition-failed`, with the event as it is now in `current`.",
        body={"title": "Planning (stale)"},
        tests=problem(412, "/problems/precondition-failed") + """
            pm.test("current is the event as it is now", () => {
                pm.expect(problem.current.id).to.eql(id("eventId"));
                pm.expect(problem.current.version).to.eql(id("eventVersion"));
                pm.expect(problem.current.title).to.eql("Planning (Q1 budget)");
            });
            """),
    Request(
        "Merge a concurrent edit", "PATCH", "/api/events/:id", variables={"id": "{{eventId}}"},
        query=[("edit_strategy", "merge"), ("base_version", "{{mergeBaseVersion}}")],
        description="`edit_strategy=merge` with the version the edit started from: fields changed "
                    "by others since then are kept (a field changed on both sides is a 409 "
                    "`/problems/edit-conflict` unless `prefer=mine|theirs`).",
        body={"location": "Room 4"},
        tests=json_answer(200, "event") + is_event() + """
            pm.test("both edits survive", () => {
                pm.expect(event.location).to.eql("Room 4");
                pm.expect(event.title).to.eql("Planning (Q1 budget)");
            });
            """ + keep_planning("event")),
    Request(
        "Delete an event", "DELETE", "/api/events/:id", variables={"id": "{{lunchEventId}}"},
        description="Owner only; a soft delete (a version of kind `deleted`; a rollback restores it).",
        tests=status(204)),
    Request(
        "Get a deleted event (404)", "GET", "/api/events/:id", variables={"id": "{{lunchEventId}}"},
        tests=problem(404, "/problems/not-found")),
]

OCCURRENCES = [
    Request(
        "List the occurrences of a series", "GET", "/api/events/:id/occurrences",
        variables={"id": "{{seriesId}}"},
        query=[("start", "2026-12-01T00:00:00Z"), ("end", "2026-12-08T00:00:00Z")],
        description="`start` and `end` are required. The test script keeps two occurrences' "
                    "`occurrence_start` (percent-encoded: it goes in the path) for the requests after it.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("five weekday standups", () => {
                pm.expect(page.items.map(o => o.start_time)).to.eql([
                    "2026-12-01T09:00:00+01:00", "2026-12-02T09:00:00+01:00", "2026-12-03T09:00:00+01:00",
                    "2026-12-04T09:00:00+01:00", "2026-12-07T09:00:00+01:00"]);
                pm.expect(page.items.every(o => !o.is_exception && !o.cancelled)).to.be.true;
            });
            // path segments: "+" must be sent as %2B
            pm.collectionVariables.set("occurrenceStart", encodeURIComponent(page.items[1].occurrence_start));
            pm.collectionVariables.set("cancelledOccurrenceStart", encodeURIComponent(page.items[2].occurrence_start));
            """),
    Request(
        "Move one occurrence", "PUT", "/api/events/:id/occurrences/:occurrence_start",
        variables={"id": "{{seriesId}}", "occurrence_start": "{{occurrenceStart}}"},
        description="Changes one occurrence (times, title, description, location), stored as an "
                    "exception of the series and conflict-checked.",
        body={"start_time": "2026-12-02T09:30:00+01:00", "end_time": "2026-12-02T09:45:00+01:00",
              "title": "Standup (late start)"},
        tests=json_answer(200, "occurrence") + """
            pm.test("the occurrence, moved", () => {
                pm.expect(occurrence.event_id).to.eql(id("seriesId"));
                pm.expect(occurrence.occurrence_start).to.eql("2026-12-02T09:00:00+01:00");
                pm.expect(occurrence.start_time).to.eql("2026-12-02T09:30:00+01:00");
                pm.expect(occurrence.title).to.eql("Standup (late start)");
                pm.expect(occurrence.is_exception).to.be.true;
                pm.expect(occurrence.cancelled).to.be.false;
            });
            """),
    Request(
        "Cancel one occurrence", "DELETE", "/api/events/:id/occurrences/:occurrence_start",
        variables={"id": "{{seriesId}}", "occurrence_start": "{{cancelledOccurrenceStart}}"},
        tests=status(204)),
    Request(
        "List the occurrences again", "GET", "/api/events/:id/occurrences",
        variables={"id": "{{seriesId}}"},
        query=[("start", "2026-12-01T00:00:00Z"), ("end", "2026-12-08T00:00:00Z")],
        description="The moved occurrence shows its new time; the cancelled one is listed as cancelled.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("one moved, one cancelled", () => {
                pm.expect(page.items).to.have.lengthOf(5);
                const moved = page.items.find(o => o.occurrence_start === "2026-12-02T09:00:00+01:00");
                pm.expect(moved.start_time).to.eql("2026-12-02T09:30:00+01:00");
                pm.expect(moved.is_exception).to.be.true;
                const cancelled = page.items.find(o => o.occurrence_start === "2026-12-03T09:00:00+01:00");
                pm.expect(cancelled.cancelled).to.be.true;
            });
            """),
]

SHARING = [
    Request(
        "Share an event", "POST", "/api/events/:id/share", variables={"id": "{{eventId}}"},
        description="Owner only. `users`: by `user_id`, `username` or `email`, each with `role` "
                    "`editor` or `viewer`. Answers the permission list, owner included.",
        body={"users": [{"user_id": var("otherUserId"), "role": "editor"}]},
        tests=json_answer(200, "page") + is_page() + """
            pm.test("the owner and the new editor", () => {
                const roles = Object.fromEntries(page.items.map(p => [p.user_id, p.role]));
                pm.expect(roles[id("userId")]).to.eql("owner");
                pm.expect(roles[id("otherUserId")]).to.eql("editor");
                pm.expect(page.items[0]).to.include.keys("user_id", "username", "role", "granted_by", "granted_at");
            });
            """),
    Request(
        "Share a series by username", "POST", "/api/events/:id/share", variables={"id": "{{seriesId}}"},
        description="One user object may be the whole body.",
        body={"username": "{{otherUsername}}", "role": "viewer"},
        tests=json_answer(200, "page") + """
            pm.test("the second user is a viewer", () => {
                const mine = page.items.find(p => p.user_id === id("otherUserId"));
                pm.expect(mine.role).to.eql("viewer");
                pm.expect(mine.granted_by).to.eql(id("userId"));
            });
            """),
    Request(
        "List permissions (as the editor)", "GET", "/api/events/:id/permissions",
        variables={"id": "{{eventId}}"}, auth="bob",
        description="Anyone with access may read who else has it.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("owner and editor", () => {
                pm.expect(page.items.map(p => p.role).sort()).to.eql(["editor", "owner"]);
            });
            """),
    Request(
        "Change an event as the editor", "PATCH", "/api/events/:id", variables={"id": "{{eventId}}"},
        auth="bob",
        description="Editors change events; the owner hears of it (see Notifications).",
        body={"description": "Quarterly planning: budget, hiring, roadmap. Bring numbers."},
        tests=json_answer(200, "event") + is_event() + """
            pm.test("changed by the editor", () => {
                pm.expect(event.my_role).to.eql("editor");
                pm.expect(event.updated_by).to.eql(id("otherUserId"));
                pm.expect(event.owner_id).to.eql(id("userId"));
            });
            """ + keep_planning("event")),
    Request(
        "Delete an event as the editor (403)", "DELETE", "/api/events/:id", variables={"id": "{{eventId}}"},
        auth="bob",
        description="Only the owner deletes: 403 `/problems/forbidden`.",
        tests=problem(403, "/problems/forbidden")),
    Request(
        "Change a role", "PUT", "/api/events/:id/permissions/:user_id",
        variables={"id": "{{seriesId}}", "user_id": "{{otherUserId}}"},
        description="Owner only; `owner` would transfer ownership.",
        body={"role": "editor"},
        tests=json_answer(200, "page") + """
            pm.test("now an editor", () => {
                const theirs = page.items.find(p => p.user_id === id("otherUserId"));
                pm.expect(theirs.role).to.eql("editor");
            });
            """),
    Request(
        "Revoke access", "DELETE", "/api/events/:id/permissions/:user_id",
        variables={"id": "{{seriesId}}", "user_id": "{{otherUserId}}"},
        description="The owner revokes anyone else; an editor or viewer may only remove themselves (leave).",
        tests=status(204)),
    Request(
        "Get an event without access (404)", "GET", "/api/events/:id", variables={"id": "{{seriesId}}"},
        auth="bob",
        description="An event the caller cannot see answers exactly like one that does not exist.",
        tests=problem(404, "/problems/not-found")),
]

CONFLICTS = [
    Request(
        "Create an overlapping event anyway (on_conflict=allow)", "POST", "/api/events",
        query=[("on_conflict", "allow")],
        description="Written, and the answer lists the `conflicts`.",
        body=event_body("Customer call", "2026-12-01T10:45:00+01:00", "2026-12-01T11:15:00+01:00",
                        timezone="Europe/Berlin"),
        tests=json_answer(201, "event") + is_event() + """
            pm.test("written, conflicts listed", () => {
                pm.expect(event.conflicts.map(c => c.event_id)).to.eql([id("eventId")]);
            });
            pm.collectionVariables.set("callEventId", event.id);
            """),
    Request(
        "Create an event in the next free slot (on_conflict=shift)", "POST", "/api/events",
        query=[("on_conflict", "shift")],
        description="Moved to the earliest free slot of the same length at or after the requested start.",
        body=event_body("Focus time", "2026-12-01T10:00:00+01:00", "2026-12-01T11:00:00+01:00",
                        timezone="Europe/Berlin"),
        tests=json_answer(201, "event") + is_event() + """
            pm.test("shifted past the planning and the call", () => {
                pm.expect(event.start_time).to.eql("2026-12-01T11:15:00+01:00");
                pm.expect(event.end_time).to.eql("2026-12-01T12:15:00+01:00");
            });
            """),
    Request(
        "List conflicts", "GET", "/api/events/conflicts",
        query=[("start", "2026-12-01T00:00:00Z"), ("end", "2026-12-02T00:00:00Z")],
        description="Overlapping pairs in the caller's calendar; `start`/`end` of an item are the overlap.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("planning overlaps the call", () => {
                const ids = [id("eventId"), id("callEventId")];
                pm.expect(page.items).to.deep.include({event_ids: ids, start: "2026-12-01T09:45:00Z",
                                                       end: "2026-12-01T10:00:00Z"});
            });
            """),
    Request(
        "Free/busy of the caller", "GET", "/api/freebusy",
        query=[("start", "2026-12-01T00:00:00Z"), ("end", "2026-12-02T00:00:00Z")],
        description="Busy intervals, merged (touching ones join), in UTC.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("standup, then planning, call and focus time merged", () => {
                pm.expect(page.items).to.have.lengthOf(1);
                pm.expect(page.items[0].user_id).to.eql(id("userId"));
                pm.expect(page.items[0].busy).to.eql([
                    {start: "2026-12-01T08:00:00Z", end: "2026-12-01T08:15:00Z"},
                    {start: "2026-12-01T09:00:00Z", end: "2026-12-01T11:15:00Z"}]);
            });
            """),
    Request(
        "Free/busy of people who shared with you", "GET", "/api/freebusy",
        query=[("start", "2026-12-01T00:00:00Z"), ("end", "2026-12-02T00:00:00Z"),
               ("users", "{{otherUserId}},{{userId}}")],
        auth="bob",
        description="`users`: yourself and people who gave you access to an event they own (anyone "
                    "else: 404), in the order given. Here the editor asks: the owner shared with them. "
                    "The editor's calendar holds the events shared with them.",
        tests=json_answer(200, "page") + """
            pm.test("one item per user, in order", () => {
                pm.expect(page.items.map(i => i.user_id)).to.eql([id("otherUserId"), id("userId")]);
                pm.expect(page.items[0].busy).to.eql([{start: "2026-12-01T09:00:00Z", end: "2026-12-01T10:00:00Z"}]);
                pm.expect(page.items[1].busy).to.eql([
                    {start: "2026-12-01T08:00:00Z", end: "2026-12-01T08:15:00Z"},
                    {start: "2026-12-01T09:00:00Z", end: "2026-12-01T11:15:00Z"}]);
            });
            """),
]

BULK = [
    Request(
        "Create events in a batch", "POST", "/api/events/batch",
        headers={"Idempotency-Key": "workshop-{{runId}}"},
        description="Up to 500 events, all or nothing (`atomic`, the default): 201 with the events in "
                    "request order.",
        body={"events": [
            event_body("Workshop, day 1", "2026-12-08T13:00:00+01:00", "2026-12-08T17:00:00+01:00",
                       timezone="Europe/Berlin", location="Lab"),
            event_body("Workshop, day 2", "2026-12-09T13:00:00+01:00", "2026-12-09T17:00:00+01:00",
                       timezone="Europe/Berlin", location="Lab"),
        ]},
        tests=json_answer(201, "batch") + """
            pm.test("both written, in request order", () => {
                pm.expect(batch.items.map(e => e.title)).to.eql(["Workshop, day 1", "Workshop, day 2"]);
                pm.expect(batch.items.every(e => e.version === 1 && e.my_role === "owner")).to.be.true;
            });
            """),
    Request(
        "Create events item by item (atomic: false)", "POST", "/api/events/batch",
        description="207: each item gets the status it would get alone; the ones that pass are written.",
        body={"atomic": False, "events": [
            event_body("1:1 with Sam", "2026-12-08T10:00:00+01:00", "2026-12-08T10:30:00+01:00",
                       timezone="Europe/Berlin"),
            event_body("Vendor demo", "2026-12-01T10:15:00+01:00", "2026-12-01T10:45:00+01:00",
                       timezone="Europe/Berlin"),
        ]},
        tests=json_answer(207, "batch") + """
            pm.test("the first written, the second in conflict", () => {
                pm.expect(batch.results.map(r => r.status)).to.eql([201, 409]);
                pm.expect(batch.results[0].event.title).to.eql("1:1 with Sam");
                pm.expect(batch.results[1].error.type).to.eql("/problems/scheduling-conflict");
                pm.expect(batch.results[1].index).to.eql(1);
            });
            """),
    Request(
        "Create a batch whose items overlap (409)", "POST", "/api/events/batch",
        description="Items of one batch conflict with each other too; nothing is written and the "
                    "problem names the failing item (`index`, `errors[].loc`).",
        body={"events": [
            event_body("Offsite prep", "2026-12-14T10:00:00+01:00", "2026-12-14T11:00:00+01:00"),
            event_body("Offsite prep (again)", "2026-12-14T10:30:00+01:00", "2026-12-14T11:30:00+01:00"),
        ]},
        tests=problem(409, "/problems/batch-item") + """
            pm.test("item 1 conflicts with item 0", () => {
                pm.expect(problem.index).to.eql(1);
                pm.expect(problem.errors[0].loc.slice(0, 3)).to.eql(["body", "events", 1]);
                pm.expect(problem.conflicts[0].event_id).to.eql(-1);
            });
            """),
    Request(
        "Run a transaction", "POST", "/api/transactions",
        description="Up to 100 operations in one database transaction: all or none. `ref` names a "
                    "created event for later operations (`\"$offsite\"`); `if_version` guards an update.",
        body={"operations": [
            {"op": "create", "ref": "offsite",
             "event": event_body("Team offsite", "2026-12-10T10:00:00+01:00", "2026-12-10T17:00:00+01:00",
                                 timezone="Europe/Berlin")},
            {"op": "update", "id": "$offsite", "changes": {"location": "Lakeside hotel"}},
            {"op": "share", "id": "$offsite", "users": [{"username": "{{otherUsername}}", "role": "viewer"}]},
            {"op": "update", "id": var("eventId"), "if_version": var("eventVersion"),
             "changes": {"description": "Agenda: budget, hiring, roadmap, offsite."}},
        ]},
        tests=json_answer(200, "tx") + """
            pm.test("every operation done", () => {
                pm.expect(tx.results.map(r => r.status)).to.eql([201, 200, 200, 200]);
                pm.expect(tx.results[1].event.location).to.eql("Lakeside hotel");
                pm.expect(tx.results[3].event.description).to.eql("Agenda: budget, hiring, roadmap, offsite.");
            });
            pm.collectionVariables.set("offsiteEventId", tx.results[0].event.id);
            """ + keep_planning("tx.results[3].event")),
    Request(
        "Run a transaction: unshare and delete", "POST", "/api/transactions",
        body={"operations": [
            {"op": "unshare", "id": var("offsiteEventId"), "user_id": var("otherUserId")},
            {"op": "delete", "id": var("offsiteEventId"), "if_version": 2},
        ]},
        tests=json_answer(200, "tx") + """
            pm.test("both done", () => pm.expect(tx.results.map(r => r.status)).to.eql([204, 204]));
            """),
    Request(
        "Run a transaction with a stale if_version (412)", "POST", "/api/transactions",
        description="The first failing operation ends it and nothing is written: "
                    "`/problems/transaction-operation` with its status and `index`.",
        body={"operations": [
            {"op": "create", "event": event_body("Never written", "2026-12-15T09:00:00Z", "2026-12-15T10:00:00Z")},
            {"op": "update", "id": var("eventId"), "if_version": 1, "changes": {"title": "Stale"}},
        ]},
        tests=problem(412, "/problems/transaction-operation") + """
            pm.test("operation 1 failed, with the event as it is", () => {
                pm.expect(problem.index).to.eql(1);
                pm.expect(problem.errors[0].loc.slice(0, 3)).to.eql(["body", "operations", 1]);
                pm.expect(problem.current.version).to.eql(id("eventVersion"));
            });
            """),
]

HISTORY = [
    Request(
        "List versions", "GET", "/api/events/:id/history", variables={"id": "{{eventId}}"},
        description="Oldest first: who changed what, when.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("created, then updated", () => {
                const versions = page.items.map(v => v.version);
                pm.expect(versions[0]).to.eql(1);
                pm.expect(versions[versions.length - 1]).to.eql(id("eventVersion"));
                pm.expect(page.items[0].kind).to.eql("created");
                pm.expect(page.items[1].kind).to.eql("updated");
                pm.expect(page.items[1].changed_fields).to.eql(["description"]);
                pm.expect(page.items[0].actor.id).to.eql(id("userId"));
            });
            """),
    Request(
        "Get one version", "GET", "/api/events/:id/history/:version",
        variables={"id": "{{eventId}}", "version": "1"},
        tests=json_answer(200, "version") + """
            pm.test("version 1 with its snapshot", () => {
                pm.expect(version.version).to.eql(1);
                pm.expect(version.kind).to.eql("created");
                pm.expect(version.snapshot.title).to.eql("Planning");
                pm.expect(version.snapshot.location).to.eql("Room 1");
            });
            """),
    Request(
        "Changelog", "GET", "/api/events/:id/changelog", variables={"id": "{{eventId}}"},
        description="Versions and changes of access, in the order they happened.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("versions and the share", () => {
                const actions = page.items.map(i => i.action);
                pm.expect(actions[0]).to.eql("created");
                pm.expect(actions).to.include("shared");
                const shared = page.items.find(i => i.action === "shared");
                pm.expect(shared.user.id).to.eql(id("otherUserId"));
                pm.expect(shared.changes).to.eql([{field: "role", old: null, new: "editor"}]);
            });
            """),
    Request(
        "Diff two versions", "GET", "/api/events/:id/diff/:v1/:v2",
        variables={"id": "{{eventId}}", "v1": "1", "v2": "{{eventVersion}}"},
        tests=json_answer(200, "diff") + """
            pm.test("field changes and a description diff", () => {
                pm.expect(diff.from_version).to.eql(1);
                pm.expect(diff.to_version).to.eql(id("eventVersion"));
                const fields = diff.changes.map(c => c.field);
                pm.expect(fields).to.include.members(["title", "description", "location"]);
                pm.expect(diff.changes.find(c => c.field === "title")).to.eql(
                    {field: "title", old: "Planning", new: "Planning (Q1 budget)"});
                pm.expect(diff.description_diff).to.be.an("array").that.is.not.empty;
            });
            pm.test("a signed link to the page", () => {
                pm.expect(diff.html_url).to.match(/^\/api\/events\/\d+\/diff\/1\/\d+\?format=html&/);
            });
            const link = {};
            diff.html_url.split("?")[1].split("&").forEach(pair => {
                const [key, value] = pair.split("=");
                link[key] = decodeURIComponent(value);
            });
            pm.collectionVariables.set("diffLinkUser", link.user);
            pm.collectionVariables.set("diffLinkLogin", link.login);
            pm.collectionVariables.set("diffLinkExpires", link.expires);
            pm.collectionVariables.set("diffLinkSignature", link.signature);
            """),
    Request(
        "Diff two versions as a page", "GET", "/api/events/:id/diff/:v1/:v2",
        variables={"id": "{{eventId}}", "v1": "1", "v2": "{{eventVersion}}"}, query=[("format", "html")],
        description="`?format=html` (or `Accept: text/html`): both versions side by side.",
        tests=status(200) + """
            pm.test("an HTML page", () => {
                pm.expect(pm.response.headers.get("Content-Type")).to.include("text/html");
                const page = pm.response.text();
                pm.expect(page).to.include("<table");
                pm.expect(page).to.include("Planning (Q1 budget)");
            });
            """),
    Request(
        "Open the diff page by its signed link (no header)", "GET", "/api/events/:id/diff/:v1/:v2", auth="none",
        variables={"id": "{{eventId}}", "v1": "1", "v2": "{{eventVersion}}"},
        query=[("format", "html"), ("user", "{{diffLinkUser}}"), ("login", "{{diffLinkLogin}}"),
               ("expires", "{{diffLinkExpires}}"), ("signature", "{{diffLinkSignature}}")],
        description="The diff's `html_url`, as a browser opens it: no `Authorization` header. It lasts 15 "
                    "minutes and while the login it was made in lasts; altered or expired, it is a 401.",
        tests=status(200) + """
            pm.test("the page, with no token sent", () => {
                pm.expect(pm.request.headers.has("Authorization")).to.be.false;
                pm.expect(pm.response.headers.get("Content-Type")).to.include("text/html");
                pm.expect(pm.response.text()).to.include("Planning (Q1 budget)");
            });
            """),
    Request(
        "Roll back to a version (If-Match)", "POST", "/api/events/:id/rollback/:version",
        variables={"id": "{{eventId}}", "version": "1"}, headers={"If-Match": "{{eventEtag}}"},
        description="A new version with version 1's content; history is never rewritten.",
        tests=json_answer(200, "event") + is_event() + """
            pm.test("version 1's content as a new version", () => {
                pm.expect(event.title).to.eql("Planning");
                pm.expect(event.location).to.eql("Room 1");
                pm.expect(event.version).to.eql(id("eventVersion") + 1);
            });
            """ + keep_planning("event")),
    Request(
        "List versions of a deleted event", "GET", "/api/events/:id/history",
        variables={"id": "{{lunchEventId}}"},
        description="After a delete its owner can still read the history (and roll back).",
        tests=json_answer(200, "page") + """
            pm.test("created, then deleted", () => {
                pm.expect(page.items.map(v => v.kind)).to.eql(["created", "deleted"]);
            });
            """),
    Request(
        "Restore a deleted event", "POST", "/api/events/:id/rollback/:version",
        variables={"id": "{{lunchEventId}}", "version": "1"},
        description="Rolling back a deleted event restores it.",
        tests=json_answer(200, "event") + is_event() + """
            pm.test("back, as version 3", () => {
                pm.expect(event.id).to.eql(id("lunchEventId"));
                pm.expect(event.title).to.eql("Team lunch");
                pm.expect(event.version).to.eql(3);
            });
            """),
]

NOTIFICATIONS = [
    Request(
        "List notifications", "GET", "/api/notifications",
        description="Changes others made to the caller's events, newest first, with `unread_count`.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("the editor's change", () => {
                pm.expect(page.unread_count).to.eql(1);
                const item = page.items[0];
                pm.expect(item.kind).to.eql("event.updated");
                pm.expect(item.event_id).to.eql(id("eventId"));
                pm.expect(item.actor.id).to.eql(id("otherUserId"));
                pm.expect(item.summary).to.include(pm.collectionVariables.get("otherUsername"));
                pm.expect(item.read_at).to.eql(null);
            });
            pm.collectionVariables.set("notificationId", page.items[0].id);
            """),
    Request(
        "Mark a notification read", "POST", "/api/notifications/:id/read",
        variables={"id": "{{notificationId}}"},
        tests=json_answer(200, "item") + """
            pm.test("read now", () => {
                pm.expect(item.id).to.eql(id("notificationId"));
                pm.expect(item.read_at).to.be.a("string").and.match(/Z$/);
            });
            """),
    Request(
        "Mark another user's notification read (404)", "POST", "/api/notifications/:id/read",
        variables={"id": "{{notificationId}}"}, auth="bob",
        tests=problem(404, "/problems/not-found")),
    Request(
        "List unread notifications, a page at a time", "GET", "/api/notifications",
        auth="bob", query=[("unread", "true"), ("limit", "2")],
        description="The second user heard of every share, role change and revocation.",
        tests=json_answer(200, "page") + is_page() + """
            pm.test("newest first, more to come", () => {
                pm.expect(page.items).to.have.lengthOf(2);
                pm.expect(page.items[0].id).to.be.above(page.items[1].id);
                pm.expect(page.next_cursor).to.be.a("string");
                pm.expect(page.unread_count).to.be.above(2);
            });
            pm.collectionVariables.set("notificationsCursor", page.next_cursor);
            pm.collectionVariables.set("unreadCount", page.unread_count);
            """),
    Request(
        "List notifications, next page", "GET", "/api/notifications",
        auth="bob", query=[("unread", "true"), ("limit", "50"), ("cursor", "{{notificationsCursor}}")],
        tests=json_answer(200, "page") + is_page() + """
            pm.test("the rest, down to the first share", () => {
                pm.expect(page.items).to.have.lengthOf(id("unreadCount") - 2);
                pm.expect(page.items[page.items.length - 1].kind).to.eql("event.shared");
                pm.expect(page.items[page.items.length - 1].event_id).to.eql(id("eventId"));
                pm.expect(page.next_cursor).to.eql(null);
            });
            """),
    Request(
        "Mark every notification read", "POST", "/api/notifications/read", auth="bob",
        tests=json_answer(200, "answer") + """
            pm.test("counts the ones that were unread", () => pm.expect(answer.updated).to.be.above(2));
            """),
    Request(
        "Open the live stream (HEAD)", "HEAD", "/api/notifications/stream",
        description="`GET` is a server-sent event stream that stays open (newman cannot read it to an "
                    "end; open it in Postman or with `curl -N`). `HEAD` answers what the `GET` begins "
                    "with, after the same checks, and opens no stream.",
        tests=status(200) + """
            pm.test("text/event-stream, not cached", () => {
                pm.expect(pm.response.headers.get("Content-Type")).to.include("text/event-stream");
                pm.expect(pm.response.headers.get("Cache-Control")).to.eql("no-store");
            });
            """),
    Request(
        "Open the live stream with ?access_token= (HEAD)", "HEAD", "/api/notifications/stream", auth="none",
        query=[("access_token", "{{accessToken}}"), ("last_event_id", "{{notificationId}}")],
        description="Browsers' EventSource cannot send headers: this route alone takes the token in the "
                    "query. `last_event_id` (or the `Last-Event-ID` header) replays what came after it.",
        tests=status(200) + """
            pm.test("text/event-stream", () => {
                pm.expect(pm.response.headers.get("Content-Type")).to.include("text/event-stream");
            });
            """),
    Request(
        "Get a stream token", "POST", "/api/notifications/stream-token",
        description="For a browser's EventSource: good only as `?stream_token=` of the stream, for as long "
                    "as the login lasts (not the 15 minutes of an access token); logout ends it.",
        tests=json_answer(200, "answer") + """
            pm.test("a token that lasts as long as the login", () => {
                pm.expect(answer.stream_token).to.be.a("string").and.not.eql(pm.collectionVariables.get("accessToken"));
                const days = (Date.parse(answer.expires_at) - Date.now()) / 86400000;
                pm.expect(days).to.be.within(29, 30.01);
            });
            pm.collectionVariables.set("streamToken", answer.stream_token);
            """),
    Request(
        "Open the live stream with ?stream_token= (HEAD)", "HEAD", "/api/notifications/stream", auth="none",
        query=[("stream_token", "{{streamToken}}"), ("last_event_id", "{{notificationId}}")],
        description="What a browser's EventSource should use: it reconnects by itself with `Last-Event-ID` "
                    "after the access token has expired.",
        tests=status(200) + """
            pm.test("text/event-stream", () => {
                pm.expect(pm.response.headers.get("Content-Type")).to.include("text/event-stream");
            });
            """),
]

OPERATIONS = [
    Request("Liveness", "GET", "/healthz", auth="none",
            tests=json_answer(200, "health") + """
                pm.test("ok", () => pm.expect(health).to.eql({status: "ok"}));
                """),
    Request("Readiness", "GET", "/readyz", auth="none",
            description="200 when the database answers and no migration is pending, else 503.",
            tests=json_answer(200, "ready") + """
                pm.test("ready", () => {
                    pm.expect(ready).to.eql({status: "ready", database: true, pending_migrations: []});
                });
                """),
    Request("Metrics", "GET", "/metrics", auth="none",
            description="Prometheus text of the process that answers.",
            tests=status(200) + """
                pm.test("Prometheus text with the request counter", () => {
                    pm.expect(pm.response.headers.get("Content-Type")).to.include("text/plain");
                    pm.expect(pm.response.text()).to.include("calsvc_http_requests_total");
                });
                """),
    Request("OpenAPI document", "GET", "/openapi.json", auth="none",
            description="OpenAPI 3.1: every route with its schemas.",
            tests=json_answer(200, "doc") + """
                pm.test("OpenAPI 3.1 with the API's paths", () => {
                    pm.expect(doc.openapi).to.eql("3.1.0");
                    pm.expect(doc.paths).to.include.keys("/api/events", "/api/events/{id}", "/api/transactions");
                });
                """),
    Request("API reference (Swagger UI)", "GET", "/docs", auth="none",
            tests=status(200) + """
                pm.test("an HTML page loading /openapi.json", () => {
                    pm.expect(pm.response.headers.get("Content-Type")).to.include("text/html");
                    pm.expect(pm.response.text()).to.include("swagger-ui").and.include("/openapi.json");
                });
                """),
    Request("API reference (ReDoc)", "GET", "/redoc", auth="none",
            tests=status(200) + """
                pm.test("an HTML page loading /openapi.json", () => {
                    pm.expect(pm.response.headers.get("Content-Type")).to.include("text/html");
                    pm.expect(pm.response.text()).to.include("<redoc").and.include("/openapi.json");
                });
                """),
]

PASSWORD_CHANGE = [
    Request(
        "Change the password", "POST", "/api/auth/password", auth="bob",
        description="`{current_password, new_password}`: a new token pair. Every other token of the user "
                    "(every login's refresh and access tokens) and every open event stream stop working "
                    "at once. A wrong `current_password` is a 401 and changes nothing.",
        body={"current_password": "{{password}}", "new_password": "{{password}} (changed)"},
        prerequest="""
            pm.collectionVariables.set("oldAccessToken", pm.collectionVariables.get("otherAccessToken"));
            """,
        tests=json_answer(200, "pair") + new_pair("otherAccessToken", "otherRefreshToken")),
    Request(
        "Use a token from before the change (401)", "GET", "/api/events", auth="old",
        description="The access token the second user had before changing the password stops working.",
        tests=problem(401, "/problems/unauthorized")),
]

LOGOUT = [
    Request(
        "Log out", "POST", "/api/auth/logout",
        description="The access token and its refresh family (and those of the `refresh_token` given) "
                    "stop working at once.",
        body={"refresh_token": "{{refreshToken}}"},
        tests=status(204)),
    Request(
        "List events after logging out (401)", "GET", "/api/events",
        description="The access token of the login that logged out is refused at once (401, with "
                    "`WWW-Authenticate: Bearer`); so is its refresh token.",
        tests=problem(401, "/problems/unauthorized") + """
            pm.test("WWW-Authenticate: Bearer", () => {
                pm.expect(pm.response.headers.get("WWW-Authenticate")).to.match(/^Bearer/);
            });
            """),
]

CLOSE_ACCOUNT = [
    Request(
        "Close the account", "DELETE", "/api/auth/me", auth="bob",
        description="`{password}`: 204. Every token and event stream of the account ends; the events it "
                    "owns are deleted (a version each, their people notified) and it leaves the events "
                    "shared with it; its email and full name are erased and its history shows it as "
                    "`deleted-user-<id>`; its username and email may be registered again. A wrong "
                    "password is a 401 and changes nothing.",
        body={"password": "{{password}} (changed)"},
        tests=status(204)),
    Request(
        "List events after closing the account (401)", "GET", "/api/events", auth="bob",
        tests=problem(401, "/problems/unauthorized")),
]

FOLDERS: list[tuple[str, str, list[Request]]] = [
    ("Auth", "Register two users, log in both ways, refresh, read yourself.", AUTH),
    ("Users", "Find people to share with.", USERS),
    ("Events", "Create, list, read, change (If-Match, merge) and delete events.", EVENTS),
    ("Occurrences", "Expand a series; move or cancel one occurrence.", OCCURRENCES),
    ("Sharing", "Share with roles, change a role, revoke.", SHARING),
    ("Conflicts & free/busy", "`on_conflict` allow and shift, the conflict list, free/busy.", CONFLICTS),
    ("Batch & transactions", "Many events at once; several operations all or nothing.", BULK),
    ("History", "Versions, snapshots, changelog, diffs, rollback and restore.", HISTORY),
    ("Notifications", "What others changed; mark read; the live stream.", NOTIFICATIONS),
    ("Operations", "Health, readiness, metrics and the API reference (no token).", OPERATIONS),
    ("Password", "Change a password: every other token of the user stops working.", PASSWORD_CHANGE),
    ("Log out", "Tokens stop working at once.", LOGOUT),
    ("Close an account", "The second user closes their account; their tokens stop working.", CLOSE_ACCOUNT),
]

VARIABLES = [
    ("baseUrl", "http://127.0.0.1:8080", "where calsvc answers"),
    ("password", PASSWORD, "the password of the users this run registers"),
    ("accessToken", "", "the first user's access token (the collection's bearer token)"),
    ("refreshToken", "", "the first user's refresh token"),
    ("otherAccessToken", "", "the second user's access token"),
    ("otherRefreshToken", "", "the second user's refresh token"),
    ("runId", "", "suffix making this run's usernames new"),
    ("username", "", ""), ("userId", "", ""), ("otherUsername", "", ""), ("otherUserId", "", ""),
    ("eventId", "", "the single event (Planning)"),
    ("eventVersion", "", "its current version"), ("eventEtag", "", "its current ETag"),
    ("mergeBaseVersion", "", "the version a merged edit started from"),
    ("seriesId", "", "the recurring event (Standup)"),
    ("occurrenceStart", "", "an occurrence's original start, percent-encoded"),
    ("cancelledOccurrenceStart", "", ""),
    ("lunchEventId", "", "the event deleted and restored"),
    ("callEventId", "", ""), ("offsiteEventId", "", ""),
    ("notificationId", "", ""), ("notificationsCursor", "", ""), ("unreadCount", "", ""),
    ("diffLinkUser", "", "the parts of a diff's html_url (a signed link)"), ("diffLinkLogin", "", ""),
    ("diffLinkExpires", "", ""), ("diffLinkSignature", "", ""),
    ("streamToken", "", "the first user's token for the event stream"),
    ("oldAccessToken", "", "the second user's access token from before the password change"),
]

DESCRIPTION = """\
calsvc, the collaborative event-scheduling API: every route, as one flow that runs from an empty
database. Each run registers new users (Alice, the collection's bearer token; Bob, who shares her
events, changes his password and closes his account at the end), so it can be run again against
the same server.

Set `baseUrl` (default `http://127.0.0.1:8080`) and run the collection in order (Runner), or from
the command line: `newman run postman_collection.json --env-var baseUrl=http://127.0.0.1:8080`.
The requests store tokens and ids in collection variables for the ones after them: each user logs
in once and Alice refreshes once, so a run makes {calls} requests to `/api/auth/*`, which the
default rate limit allows 20 a minute per client: two runs in a row pass.

Errors are `application/problem+json` (RFC 9457); the error examples (401, 403, 404, 409, 412,
422) check their `type`. The reference is served at `/docs`, `/redoc` and `/openapi.json`.
Generated by `tools/postman.py`.""".format(calls=AUTH_CALLS_PER_RUN)

TEST_ALL = """\
pm.test("X-Request-ID is set", () => pm.response.to.have.header("X-Request-ID"));
"""


def build(examples: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    examples = examples or {}
    folders = []
    for name, description, requests in FOLDERS:
        names = [r.name for r in requests]
        assert len(set(names)) == len(names), f"{name}: request names repeat"
        folders.append({"name": name, "description": description,
                        "item": [_item(name, r, examples) for r in requests]})
    return {
        "info": {"_postman_id": COLLECTION_ID, "name": "calsvc", "description": DESCRIPTION, "schema": SCHEMA},
        "item": folders,
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{accessToken}}", "type": "string"}]},
        "event": [_script("test", TEST_ALL)],
        "variable": [{"key": k, "value": v, "type": "string", **({"description": d} if d else {})}
                     for k, v, d in VARIABLES],
    }


def render(collection: dict[str, Any]) -> str:
    return json.dumps(collection, indent=2, ensure_ascii=False) + "\n"


# -- examples: each request's answer in a real run -------------------------------------------

EXAMPLE_HEADERS = ("Content-Type", "Location", "ETag", "WWW-Authenticate", "Idempotent-Replayed", "Cache-Control")
MAX_TEXT = 1500


def existing_examples(path: Path = OUTPUT) -> dict[str, list[Any]]:
    if not path.exists():
        return {}
    found: dict[str, list[Any]] = {}
    for folder in json.loads(path.read_text())["item"]:
        for item in folder["item"]:
            if item.get("response"):
                found[item["id"]] = item["response"]
    return found


def _shorten(value: Any) -> Any:
    """The OpenAPI document's example keeps its first path (the whole is served at /openapi.json)."""
    if isinstance(value, dict) and "openapi" in value and "paths" in value:
        first = next(iter(value["paths"]))
        return {"openapi": value["openapi"], "info": value["info"],
                "paths": {first: value["paths"][first], "...": "(every other route)"}, "components": "..."}
    return value


def _example(req: dict[str, Any], execution: dict[str, Any]) -> dict[str, Any]:
    response = execution["response"]
    raw = bytes(response.get("stream", {}).get("data", [])).decode("utf-8", "replace")
    headers = {h["key"].lower(): h for h in response.get("header", [])}
    kept = [{"key": name, "value": headers[name.lower()]["value"]} for name in EXAMPLE_HEADERS
            if name.lower() in headers]
    content_type = headers.get("content-type", {}).get("value", "")
    if "json" in content_type and raw:
        body = json.dumps(_shorten(json.loads(raw)), indent=2, ensure_ascii=False)
        language = "json"
    else:
        body = raw if len(raw) <= MAX_TEXT else raw[:MAX_TEXT] + "\n..."
        language = "html" if "html" in content_type else "text"
    return {"name": f'{response["code"]} {response["status"]}', "originalRequest": req,
            "status": response["status"], "code": response["code"], "_postman_previewlanguage": language,
            "header": kept, "body": body}


def record(base_url: str, newman: Path) -> dict[str, list[Any]]:
    """Runs the flow against a live server; each request's answer becomes its example."""
    collection = build()
    with tempfile.TemporaryDirectory() as tmp:
        source, report = Path(tmp) / "collection.json", Path(tmp) / "report.json"
        source.write_text(render(collection))
        run = subprocess.run([str(newman), "run", str(source), "--env-var", f"baseUrl={base_url}", "--bail",
                              "--reporters", "cli,json", "--reporter-json-export", str(report),
                              "--timeout-request", "10000", "--color", "off"], check=False, text=True)
        if run.returncode:
            sys.exit(f"newman failed ({run.returncode}): no examples recorded")
        executions = json.loads(report.read_text())["run"]["executions"]
    requests = {item["id"]: item["request"] for folder in collection["item"] for item in folder["item"]}
    return {e["item"]["id"]: [_example(requests[e["item"]["id"]], e)] for e in executions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON is not up to date")
    parser.add_argument("--record", metavar="BASE_URL", help="record each request's answer as its example")
    parser.add_argument("--newman", type=Path, default=NEWMAN)
    args = parser.parse_args()
    examples = record(args.record, args.newman) if args.record else existing_examples()
    text = render(build(examples))
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            sys.exit(f"{OUTPUT.name} is not what tools/postman.py writes: run python tools/postman.py")
        return
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
