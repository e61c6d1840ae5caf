"""Conflict checks over HTTP, as a property: the conflicts `POST /api/events` reports (under
`allow`) and the 409 it answers (under `reject`) agree with a brute-force check for random
calendars of single and recurring events in three zones, around the DST changes of spring and
autumn.

The oracle is deliberately naive and shares no code with calsvc: each event is expanded on
its own by walking dateutil's rule from DTSTART as a naive wall-clock time, each occurrence
is then put in the event's zone with fold=0 (PEP 495: a time in a DST gap takes the offset
before the gap, so it moves forward by the gap's length, as RFC 5545 3.3.5 says; an
ambiguous time takes its first instance), and every pair of occurrences is compared as UTC
instants with a strict a.start < b.end and b.start < a.end (back to back is no conflict).

Starts lie on a 15-minute grid within a few weeks, often exactly back to back with another
event, at the instant clocks change or at the wall-clock times of that night, so overlaps,
touching ends, DST gaps and repeated hours come often. Each example also checks every
`allow` create that builds its calendar against the events before it.

Hypothesis drives a synchronous property from a worker thread; each example's requests run
on the test's own event loop (the one the `client` fixture lives on) through
asyncio.run_coroutine_threadsafe. The examples share the test's database, so each one
registers a user of its own: calendars never leak between examples.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule as du
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import assert_problem
from tests.factories import user_with_token

UTC = dt.UTC
ZONES = ("UTC", "Europe/Berlin", "America/New_York")
DAY = dt.timedelta(days=1)
SLOT = dt.timedelta(minutes=15)
# Two stretches of five weeks (Mondays to Sundays), each holding both DST changes of Berlin
# and New York in 2026: 8 and 29 March, 25 October and 1 November.
BASES = (dt.datetime(2026, 3, 2), dt.datetime(2026, 10, 12))
SPAN_DAYS = 35
HORIZON = dt.timedelta(days=731)  # an endless candidate is checked for its first 2 years
# Right at the end of that horizon the contract does not say which occurrences still count
# (2 years of elapsed time or of wall-clock time, an occurrence straddling the end): pairs
# whose calendar occurrence starts this close to it are left out on both sides.
EDGE = dt.timedelta(days=3)
WALK_UNTIL = max(BASES) + (SPAN_DAYS + 3) * DAY + HORIZON + EDGE  # naive: past any occurrence needed


def dst_change(base: dt.datetime, zone: str) -> dt.datetime:
    """The instant (UTC) at which `zone` changes its offset in the stretch from `base`."""
    tz = ZoneInfo(zone)
    first = base.replace(tzinfo=UTC)
    changes = [t for t in (first + k * SLOT for k in range(1, SPAN_DAYS * 96))
               if t.astimezone(tz).utcoffset() != (t - SLOT).astimezone(tz).utcoffset()]
    assert len(changes) == 1, (base, zone, changes)
    return changes[0]


DST_ZONES = ("Europe/Berlin", "America/New_York")
DST_CHANGES = {(base, zone): dst_change(base, zone) for base in BASES for zone in DST_ZONES}


# -- the events ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Spec:
    """An event as sent: its first start (an instant), length, zone and rule. `rule` holds
    the parts other than UNTIL; `until` is UNTIL as an instant, sent as `until_text`."""

    zone: str
    start: dt.datetime  # aware, UTC
    minutes: int
    rule: str | None = None
    until: dt.datetime | None = None
    until_text: str | None = None

    def __repr__(self) -> str:
        local = self.start.astimezone(ZoneInfo(self.zone))
        text = f"Spec({self.zone}, {local.isoformat()} (= {self.start:%Y-%m-%dT%H:%MZ}), {self.minutes} min"
        if self.rule is not None:
            text += f", {self.rrule_text()!r}"
        return text + ")"

    @property
    def duration(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.minutes)

    @property
    def endless(self) -> bool:
        return self.rule is not None and self.until is None and "COUNT=" not in self.rule

    def rrule_text(self) -> str:
        return self.rule if self.until_text is None else f"{self.rule};UNTIL={self.until_text}"

    def body(self, title: str) -> dict[str, Any]:
        tz = ZoneInfo(self.zone)
        body: dict[str, Any] = {
            "title": title, "timezone": self.zone,
            "start_time": self.start.astimezone(tz).isoformat(),
            "end_time": (self.start + self.duration).astimezone(tz).isoformat(),
        }
        if self.rule is not None:
            body["recurrence"] = {"rrule": self.rrule_text()}
        return body


def localise(naive: dt.datetime, tz: ZoneInfo, fold: int = 0) -> dt.datetime:
    """The instant (UTC) of a wall-clock time in `tz`. fold=0: a time in a gap takes the offset
    before the gap, an ambiguous one its first instance (PEP 495)."""
    return naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)


# 15-minute slots of a day: anywhere, or 01:00-04:00 (where clocks change), or 08:00-11:00
SLOTS = st.one_of(st.integers(0, 95), st.integers(4, 15), st.integers(32, 43))
MINUTES = st.one_of(st.integers(1, 16), st.integers(1, 100)).map(lambda n: 15 * n)


@st.composite
def specs(draw, base: dt.datetime, anchors: list[dt.datetime] = ()) -> Spec:
    minutes = draw(MINUTES)
    mode = draw(st.sampled_from(["grid", "grid", "anchor" if anchors else "grid", "change", "night"]))
    if mode == "anchor":
        # exactly back to back with (or starting with) another event's first occurrence
        zone = draw(st.sampled_from(ZONES))
        anchor = draw(st.sampled_from(anchors))
        start = anchor - dt.timedelta(minutes=draw(st.sampled_from([0, minutes])))
    elif mode == "change":
        # shortly before or after the instant a zone's clocks change, often spanning it
        zone = draw(st.sampled_from(DST_ZONES))
        start = DST_CHANGES[base, zone] - draw(st.integers(-4, 8)) * SLOT
        minutes = draw(st.sampled_from([minutes, 15 * draw(st.integers(1, 8))]))
    elif mode == "night":
        # the wall-clock times around the change on that night, or a day or weeks before it
        # (so that a series reaches that night at that time): a start or an occurrence in
        # the gap or the repeated hour
        zone = draw(st.sampled_from(DST_ZONES))
        change = DST_CHANGES[base, zone].astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        night = dt.datetime.combine(change.date(), dt.time(1))
        naive = night - draw(st.sampled_from([0, 0, 1, 2, 7, 14])) * DAY + draw(st.integers(0, 11)) * SLOT
        start = localise(naive, ZoneInfo(zone), fold=draw(st.integers(0, 1)))
    else:
        zone = draw(st.sampled_from(ZONES))
        naive = base + draw(st.integers(0, SPAN_DAYS - 1)) * DAY + draw(SLOTS) * SLOT
        start = localise(naive, ZoneInfo(zone), fold=draw(st.integers(0, 1)))
    tz = ZoneInfo(zone)
    kind = draw(st.sampled_from(["single", "single", "daily", "weekly", "monthly"]))
    if kind == "single":
        return Spec(zone, start, minutes)
    local = start.astimezone(tz).replace(tzinfo=None)
    if kind == "daily":
        parts = ["FREQ=DAILY"]
        interval = draw(st.sampled_from([1, 1, 2, 3, 7]))
    elif kind == "weekly":
        parts = ["FREQ=WEEKLY"]
        interval = draw(st.sampled_from([1, 2, 2, 3]))
    else:
        parts = ["FREQ=MONTHLY"]
        interval = 1
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    if kind == "weekly" and draw(st.booleans()):
        # the first start's own weekday among them: DTSTART in step with the rule (RFC 5545)
        weekdays = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
        days = set(draw(st.lists(st.sampled_from(weekdays), max_size=3))) | {weekdays[local.weekday()]}
        parts.append("BYDAY=" + ",".join(d for d in weekdays if d in days))
    bound = draw(st.sampled_from(["count", "until", "none"]))
    if bound == "count":
        parts.append(f"COUNT={draw(st.integers(1, 10))}")
    spec = Spec(zone, start, minutes, ";".join(parts))
    if bound != "until":
        return spec
    naive_until = local + draw(st.integers(0, 28)) * DAY + draw(st.integers(-8, 8)) * SLOT
    until = localise(naive_until, tz)
    as_local = draw(st.booleans())  # UNTIL without Z: a wall-clock time in the event's zone
    if until < start:  # before the first occurrence: a rule with no occurrence, a 422
        until, as_local = start, False
    text = naive_until.strftime("%Y%m%dT%H%M%S") if as_local else until.strftime("%Y%m%dT%H%M%SZ")
    return dataclasses.replace(spec, until=until, until_text=text)


@st.composite
def scenarios(draw) -> tuple[list[Spec], Spec]:
    base = draw(st.sampled_from(BASES))
    calendar = draw(st.lists(specs(base), min_size=1, max_size=12))
    anchors = [s.start for s in calendar] + [s.start + s.duration for s in calendar]
    return calendar, draw(specs(base, anchors))


# -- the oracle ---------------------------------------------------------------------------

def expand(spec: Spec) -> list[tuple[dt.datetime, dt.datetime]]:
    """Every occurrence [start, end) of the event as UTC instants, walked from DTSTART (for an
    endless rule: far enough past any horizon the test looks at)."""
    if spec.rule is None:
        return [(spec.start, spec.start + spec.duration)]
    tz = ZoneInfo(spec.zone)
    local = spec.start.astimezone(tz).replace(tzinfo=None)
    starts = []
    for value in du.rrulestr(spec.rule, dtstart=local):  # naive wall-clock times
        if value > WALK_UNTIL:
            break
        # DTSTART is the first occurrence, as given (it may be the second of two equal
        # wall-clock times); every other one is its wall-clock time in the zone
        instant = spec.start if value == local else localise(value, tz)
        if spec.until is not None and instant > spec.until:  # UNTIL is inclusive
            continue
        starts.append(instant)
    return [(s, s + spec.duration) for s in starts]


def touched_days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """The UTC dates [start, end) has an instant on."""
    first, last = start.date(), (end - dt.timedelta(microseconds=1)).date()
    return [first + k * DAY for k in range((last - first).days + 1)]


Conflict = tuple[int, dt.datetime, dt.datetime]  # (event id, start, end) as UTC instants


def brute_force(candidate: Spec, calendar: list[tuple[int, Spec, list]]) -> set[Conflict]:
    """Every occurrence in the calendar that overlaps an occurrence of the candidate. An
    endless candidate counts its occurrences that start within 2 years of its start.
    (Two intervals that overlap share an instant, so they touch a common UTC date: only
    occurrences filed under a common date are compared, which keeps this quick.)"""
    mine = expand(candidate)
    if candidate.endless:
        mine = [(s, e) for s, e in mine if s < candidate.start + HORIZON]
    by_day: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = {}
    for s, e in mine:
        for day in touched_days(s, e):
            by_day.setdefault(day, []).append((s, e))
    found = set()
    for event_id, _, occurrences in calendar:
        for s, e in occurrences:
            if any(s < me and ms < e for day in touched_days(s, e) for ms, me in by_day.get(day, ())):
                found.add((event_id, s, e))
    return found


def beyond_edge(candidate: Spec, conflicts: set[Conflict]) -> set[Conflict]:
    """`conflicts` less those near the end of an endless candidate's horizon (see EDGE)."""
    if not candidate.endless:
        return conflicts
    edge = candidate.start + HORIZON - EDGE
    return {c for c in conflicts if c[1] < edge}


def reported(items: list[dict[str, Any]], titles: dict[int, str]) -> set[Conflict]:
    """The server's `conflicts` as a set, checking there is no duplicate and each title."""
    found = set()
    for item in items:
        assert item["title"] == titles.get(item["event_id"]), item
        start = dt.datetime.fromisoformat(item["start_time"]).astimezone(UTC)
        end = dt.datetime.fromisoformat(item["end_time"]).astimezone(UTC)
        found.add((item["event_id"], start, end))
    assert len(found) == len(items), f"an occurrence is listed twice: {items}"
    return found


LISTED = 1000  # conflicts one answer lists at most (docs/api.md)


def agrees(expected: set[Conflict], actual: set[Conflict], listed: int) -> bool:
    """The conflicts answered are exactly those brute force finds, or, when the answer lists
    as many as one answer may, only conflicts brute force finds too (the first ones found)."""
    if listed >= LISTED:
        return listed == LISTED and actual <= expected
    return actual == expected


def explain(expected: set[Conflict], actual: set[Conflict]) -> str:
    def show(items):
        return sorted((i, f"{s:%Y-%m-%dT%H:%MZ}", f"{e:%Y-%m-%dT%H:%MZ}") for i, s, e in items)
    return f"missing (brute force only): {show(expected - actual)}; extra (server only): {show(actual - expected)}"


# -- the property -------------------------------------------------------------------------

async def count_events(client, headers) -> int:
    resp = await client.get("/api/events", params={"limit": "500"}, headers=headers)
    assert resp.status == 200, await resp.text()
    return len((await resp.json())["items"])


async def check_scenario(client, calendar: list[Spec], candidate: Spec) -> list[str]:
    """Runs one example; returns labels for hypothesis' statistics."""
    _, _, headers = await user_with_token(client)
    labels: list[str] = []
    made: list[tuple[int, Spec, list]] = []
    titles: dict[int, str] = {}

    async def create(spec: Spec, title: str, strategy: str):
        return await client.post("/api/events", params={"on_conflict": strategy}, json=spec.body(title),
                                 headers=headers)

    def add(created: dict[str, Any], spec: Spec) -> None:
        made.append((created["id"], spec, expand(spec)))
        titles[created["id"]] = created["title"]

    # The calendar, written under `allow` (its events may overlap): each answer lists what
    # the event met among the ones before it.
    for n, spec in enumerate(calendar):
        resp = await create(spec, f"event {n}", "allow")
        assert resp.status == 201, (spec, await resp.text())
        created = await resp.json()
        expected = beyond_edge(spec, brute_force(spec, made))
        actual = beyond_edge(spec, reported(created["conflicts"], titles))
        assert agrees(expected, actual, len(created["conflicts"])), (
            f"creating {spec} after {made_specs(made)}: {explain(expected, actual)}")
        add(created, spec)

    # `reject`: a 409 listing the same conflicts exactly when there are any, and then nothing
    # is written; else the event is written.
    expected = brute_force(candidate, made)
    resp = await create(candidate, "candidate", "reject")
    # (only conflicts near the end of an endless candidate's horizon: either answer will do)
    edge_only = bool(expected) and not beyond_edge(candidate, expected)
    if expected and not (edge_only and resp.status == 201):
        labels.append("reject: 409")
        assert resp.status == 409, (f"rejecting {candidate} in {made_specs(made)}: {resp.status}, not 409: "
                                    f"{explain(expected, set())}")
        problem = await assert_problem(resp, 409, "scheduling-conflict")
        actual = reported(problem["conflicts"], titles)
        assert agrees(beyond_edge(candidate, expected), beyond_edge(candidate, actual), len(problem["conflicts"])), (
            f"rejecting {candidate} in {made_specs(made)}: {explain(expected, actual)}")
        assert await count_events(client, headers) == len(made)
    else:
        labels.append("reject: 201")
        assert resp.status == 201, f"{candidate} in {made_specs(made)} has no conflict: {await resp.text()}"
        created = await resp.json()
        assert not created.get("conflicts"), created
        add(created, candidate)
        assert await count_events(client, headers) == len(made)

    # `allow`: written, with the conflicts listed (after a 201 under `reject`, the candidate
    # now meets its own copy).
    expected = beyond_edge(candidate, brute_force(candidate, made))
    resp = await create(candidate, "candidate", "allow")
    assert resp.status == 201, await resp.text()
    listed = (await resp.json())["conflicts"]
    actual = beyond_edge(candidate, reported(listed, titles))
    assert agrees(expected, actual, len(listed)), f"allowing {candidate} in {made_specs(made)}: {explain(expected, actual)}"
    labels.append("allow: conflicts" if expected else "allow: none")
    return labels


def made_specs(made: list[tuple[int, Spec, list]]) -> str:
    return "[" + ", ".join(f"#{event_id}: {spec!r}" for event_id, spec, _ in made) + "]"


async def test_reported_conflicts_agree_with_brute_force(client):
    loop = asyncio.get_running_loop()

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(scenario=scenarios())
    def conflicts_agree(scenario):
        calendar, candidate = scenario
        future = asyncio.run_coroutine_threadsafe(check_scenario(client, calendar, candidate), loop)
        for label in future.result(timeout=120):
            event(label)

    # Hypothesis runs synchronously: in a worker thread, so this loop stays free to serve
    # the requests each example sends to it.
    await asyncio.to_thread(conflicts_agree)
