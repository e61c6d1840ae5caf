"""Validation messages in plain words, made from msgspec's errors and the type being checked.

A message names the field (its path: `recurrence.pattern.interval`, `events[3].title`) and says
what is allowed: an unknown member lists the members there are, an enum lists its values, a
pattern gives the shape its description states, a length or range gives the bound, a wrong type
names the JSON type wanted. An error this module does not know keeps msgspec's words, after the
field's name."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Union

import msgspec

from calsvc import errors

Loc = list[str | int]

EXAMPLE_TIME = "2026-12-01T09:00:00+01:00"
_TIME = f"an RFC 3339 time with an offset, such as {EXAMPLE_TIME}"
_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a floating-point number",
    "bool": "true or false",
    "null": "null",
    "object": "an object",
    "array": "an array",
    "bytes": "binary data",
    "datetime": _TIME,
    "date": "a date (YYYY-MM-DD)",
    "time": "a time of day",
}
_WHERE = re.compile(r"(.*) - at (`key` in )?`\$((?:\.[A-Za-z0-9_$-]+|\[\d+\]|\[\.\.\.\])*)`", re.S)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_$-]{1,100}")


# -- naming ---------------------------------------------------------------------------------


def label(loc: Iterable[str | int]) -> str:
    """`["body", "events", 3, "title"]` as `events[3].title`; `the body` (`the query string`)
    for the whole of it."""
    where, *path = list(loc)
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{name(part)}" if text else name(part))
    if text:
        return text
    return {"query": "the query string", "path": "the path"}.get(str(where), "the body")


def name(member: str) -> str:
    """A member's name as a message quotes it: as it is when plain, else as a JSON string."""
    return member if _PLAIN_NAME.fullmatch(member) else json.dumps(member[:100] + ("..." if len(member) > 100 else ""))


def _listed(values: Iterable[Any]) -> str:
    return ", ".join(v if isinstance(v, str) else json.dumps(v) for v in values)


# -- the type at a place ----------------------------------------------------------------------

Candidate = tuple[Any, tuple[Any, ...]]  # (a type, the Meta objects annotating it)


def _flat(kind: Any, metas: tuple[Any, ...] = ()) -> list[Candidate]:
    """The alternatives `kind` allows: unions opened, Annotated unwrapped, UNSET dropped."""
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(kind)
        return _flat(base, metas + tuple(m for m in extra if isinstance(m, msgspec.Meta)))
    if origin is Union or origin is types.UnionType:
        return [c for arg in typing.get_args(kind) for c in _flat(arg, metas)]
    if kind is msgspec.UnsetType:
        return []
    return [(kind, metas)]


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _by_tag(found: list[Candidate], value: Any) -> list[Candidate]:
    """Of tagged Structs, the one the value's tag names (when it names one)."""
    if not isinstance(value, dict):
        return found
    chosen = [
        (k, m)
        for k, m in found
        if _is_struct(k)
        and k.__struct_config__.tag_field is not None
        and value.get(k.__struct_config__.tag_field) == k.__struct_config__.tag
    ]
    return chosen or found


def candidates(kind: Any, path: Loc, value: Any = None) -> list[Candidate]:
    """The types the value at `path` (names and indexes below the root) may have; the value
    checked picks among tagged Structs. Empty when the path leaves the known types."""
    found = _by_tag(_flat(kind), value)
    for step in path:
        value = typing.cast(Any, value)[step] if isinstance(value, (dict, list)) and _has(value, step) else None
        following: list[Candidate] = []
        for current, _ in found:
            origin = typing.get_origin(current)
            if isinstance(step, int):
                if origin in (list, tuple, set, frozenset) and typing.get_args(current):
                    following += _flat(typing.get_args(current)[0])
            elif _is_struct(current):
                config = current.__struct_config__
                if step == config.tag_field:
                    following.append((Literal[config.tag], ()))
                following += [
                    c for f in msgspec.structs.fields(current) if f.encode_name == step for c in _flat(f.type)
                ]
        found = _by_tag(following, value)
    return found


def _shown(value: Any, path: Loc) -> str:
    """The value at `path` as JSON, cut at 100 characters, when it is a scalar (for "must be
    one of ..., not ...")."""
    for step in path:
        if not isinstance(value, (dict, list)) or not _has(value, step):
            return "this value"
        value = value[step]  # type: ignore[index]
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return "this value"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 100 else text[:100] + "..."


def _has(value: dict | list, step: str | int) -> bool:
    if isinstance(value, dict):
        return step in value
    return isinstance(step, int) and 0 <= step < len(value)


def members(found: list[Candidate]) -> list[str]:
    """The member names the Structs among `found` define (a tag first)."""
    names: dict[str, None] = {}
    for kind, _ in found:
        if _is_struct(kind):
            if kind.__struct_config__.tag_field is not None:
                names[kind.__struct_config__.tag_field] = None
            names.update((f.encode_name, None) for f in msgspec.structs.fields(kind))
    return list(names)


def _enum_values(found: list[Candidate]) -> list[Any]:
    values: dict[Any, None] = {}
    for kind, _ in found:
        if typing.get_origin(kind) is Literal:
            values.update((v, None) for v in typing.get_args(kind))
    return list(values)


def _shape(found: list[Candidate]) -> str | None:
    """What a pattern wants, from the description of the Meta that holds it (up to a `;`)."""
    for _, metas in found:
        for meta in metas:
            if meta.pattern is not None and meta.description:
                return meta.description.split(";")[0].strip()
    return None


def _wanted(expected: str, found: list[Candidate]) -> str:
    """msgspec's `str | null` in words, a string said more exactly where the type says more."""
    values = _enum_values(found)
    shape = _shape(found)
    words = []
    for part in expected.split(" | "):
        if part == "str" and values:
            words.append(f"one of {_listed(values)}")
        elif part == "str" and shape:
            words.append(shape)
        else:
            words.append(_TYPE_WORDS.get(part, part))
    return " or ".join(words)


# -- messages ---------------------------------------------------------------------------------

_LENGTH = re.compile(r"Expected `(str|array|object|bytes)` of length (>=|<=|>|<) (\d+)")
_RANGE = re.compile(r"Expected `(int|float)` (>=|<=|>|<) (\S+)")
_TYPE = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_GOT_WORDS = {"bool": "a boolean"}
_UNITS = {"str": "character", "bytes": "byte", "array": "item", "object": "member"}
_BOUND = {">=": "at least", "<=": "at most", ">": "more than", "<": "fewer than"}
_LIMIT = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}


def _unknown(field: str, loc: Loc, found: list[Candidate]) -> str:
    known = members(found)
    if loc[0] == "query":
        return f"{name(field)} is not a query parameter of this route; " + (
            f"its parameters are {_listed(known)}" if known else "it takes none"
        )
    return f"{label(loc)} has no member {name(field)}; " + (
        f"its members are {_listed(known)}" if known else "it takes none"
    )


def _sentence(message: str, loc: Loc, found: list[Candidate], given: str, query: bool) -> tuple[str, str]:
    """(the message, its error type) for msgspec's `message` about the value at `loc` (`given`
    as JSON)."""
    field = label(loc)
    if message == "Invalid RFC3339 encoded datetime":
        return f"{field} must be {_TIME}", "value_error"
    if message == "Expected `datetime` with a timezone component":
        return f"{field} needs an offset (Z or +hh:mm), such as {EXAMPLE_TIME}", "value_error"
    if message.startswith(("Invalid enum value ", "Invalid value ")):
        values = _enum_values(found)
        allowed = f"one of {_listed(values)}" if values else "another value"
        return f"{field} must be {allowed}, not {given}", "value_error"
    if message.startswith("Expected `str` matching regex "):
        shape = _shape(found)
        wanted = shape or f"a string matching {message.removeprefix('Expected `str` matching regex ')}"
        return f"{field} must be {wanted}", "value_error"
    match = _LENGTH.fullmatch(message)
    if match:
        kind, op, bound = match.group(1), match.group(2), int(match.group(3))
        if kind == "str" and op == ">=" and bound == 1:
            return f"{field} must not be empty", "value_error"
        unit = _UNITS[kind] + ("" if bound == 1 else "s")
        verb = "be" if kind in ("str", "bytes") else "have"
        tail = " long" if verb == "be" else ""
        return f"{field} must {verb} {_BOUND[op]} {bound} {unit}{tail}", "value_error"
    match = _RANGE.fullmatch(message)
    if match:
        return f"{field} must be {_LIMIT[match.group(2)]} {match.group(3)}", "value_error"
    match = _TYPE.fullmatch(message)
    if match:
        wanted = _wanted(match.group(1), found)
        got = _GOT_WORDS.get(match.group(2)) or _TYPE_WORDS.get(match.group(2), match.group(2))
        # a query string holds nothing but text: "not a string" would say nothing
        return f"{field} must be {wanted}" + ("" if query else f", not {got}"), "type_error"
    return f"{field}: {message}", "value_error"


def validation_problem(
    exc: msgspec.ValidationError, kind: Any, value: Any, prefix: tuple[str | int, ...]
) -> errors.Validation:
    """The 422 for msgspec's error `exc` about `value` checked against `kind`; `loc` is
    `prefix` followed by the path msgspec gives."""
    text = str(exc)
    message, path, key_of = text, "", False
    where = _WHERE.fullmatch(text)
    if where:
        # `key in`: a member name that is not a string (msgpack allows any)
        message, key_of, path = where.group(1), bool(where.group(2)), where.group(3)
    loc: Loc = list(prefix)
    rel: Loc = [int(index) if index else part for part, index in _PATH_PART.findall(path)]
    loc += rel
    if key_of:
        return key_not_string(loc)
    found = candidates(kind, rel, value)
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message, re.S)
    missing = re.fullmatch(r"Object missing required field `(.*)`", message, re.S)
    if unknown:
        msg, error_type = _unknown(unknown.group(1), loc, found), "unknown_field"
        loc.append(unknown.group(1))
    elif missing:
        loc.append(missing.group(1))
        values = _enum_values(candidates(kind, [*rel, missing.group(1)], value))
        msg = f"{label(loc)} is required" + (f" (one of {_listed(values)})" if values else "")
        error_type = "missing"
    else:
        msg, error_type = _sentence(message, loc, found, _shown(value, rel), prefix[:1] == ("query",))
    return errors.Validation(msg, errors=[{"loc": loc, "msg": msg, "type": error_type}])


def repeated(loc: Loc, times: int) -> errors.Validation:
    """A query or form parameter given more than once (each takes one value)."""
    return errors.Validation.at(loc, f"{label(loc)} is given {times} times; give it once")


def nul(loc: Loc) -> errors.Validation:
    return errors.Validation.at(loc, f"{label(loc)} must not contain the NUL character (U+0000)")


def key_not_string(loc: Loc) -> errors.Validation:
    """A map key that is not a string (msgpack allows any; JSON and every body here do not)."""
    return errors.Validation.at(
        loc, f"{label(loc)} has a member whose name is not a string; member names are strings", "type_error"
    )


def extension_value(loc: Loc) -> errors.Validation:
    return errors.Validation.at(loc, f"{label(loc)} is a msgpack extension value, which no field takes", "type_error")


def too_deep(loc: Loc, depth: int) -> errors.Validation:
    return errors.Validation.at(
        loc, f"{label(loc)} nests objects and arrays more than {depth} deep; no member of any body nests that deep"
    )
