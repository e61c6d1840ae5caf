"""Time zones: the IANA names events may use, looked up once."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from calsvc import errors


def zone(name: str, loc: tuple[str, ...] = ("body", "timezone")) -> ZoneInfo:
    """The IANA zone `name`; errors.Validation at `loc` when there is none. Only the names of
    the time zone database: not the files beside them (`localtime`, `posixrules`, `posix/...`,
    `right/...`), which mean what the host says."""
    try:
        if name not in _iana_names():
            raise ValueError(name)
        return known_zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise errors.Validation.at(loc, f"{name!r} is not an IANA time zone (like Europe/Berlin)") from None


@functools.cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime"}  # Debian links it into the database folder


@functools.lru_cache(maxsize=1024)
def known_zone(name: str) -> ZoneInfo:
    """The zone of a name already checked by `zone` (a stored event's)."""
    if name != name.strip() or "\x00" in name:
        raise ValueError(name)
    return ZoneInfo(name)
