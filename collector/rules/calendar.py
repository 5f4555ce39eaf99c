"""Working-hours calendars: when is a moment "inside" office hours for a rule's `when:`?

    calendars:
      office:
        timezone: Europe/Paris        # or `host` (default): the host's own zone
        days: [mon-fri]               # mon..sun, single days or ranges
        hours: ["08:00-12:30", "13:30-19:00"]   # [start, end) in local wall-clock time
        holidays: [2025-12-25, 2026-01-01]      # local dates in the calendar's zone

Hours are local wall-clock times, so DST changes need no special handling: 09:00 is 09:00
whatever the UTC offset that day (zoneinfo does the conversion). A range may not wrap
midnight (`22:00-06:00`): write it as two ranges, `22:00-24:00` and `00:00-06:00`.
Fields left out default to the built-in `working_hours`: Monday to Friday, 09:00-18:00.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from warden.collector.rules.spec import Spec

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
HOST = "host"
_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*\Z", re.ASCII)
_NS = 1_000_000_000


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The tzinfo for an IANA name; "" or an unknown/invalid name is UTC.

    Host zones come from host labels and inventory, i.e. from the hosts: an unusable one
    must not break rule evaluation, so it falls back to UTC instead of raising.
    """
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC


def _check_zone(name: str) -> None:
    if not name:
        raise ValueError("timezone must not be empty (use an IANA name like Europe/Paris, or host)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Europe/Paris, "
                         f"or host)") from None


@dataclass(frozen=True, slots=True)
class Calendar:
    """Working time: `days` (0 = Monday) × `hours` (seconds of the local day, [start, end)),
    minus `holidays` (local dates), in `timezone` ("host" = the host's zone)."""

    name: str
    timezone: str = HOST
    days: frozenset[int] = frozenset(range(5))
    hours: tuple[tuple[int, int], ...] = ((9 * 3600, 18 * 3600),)
    holidays: frozenset[date] = field(default_factory=frozenset)

    def is_working(self, time_ns: int, host_tz: str) -> bool:
        """Is `time_ns` (Unix ns) inside working time?

        `host_tz` is the host's IANA zone, used when the calendar's zone is "host"; "" or an
        unknown name means UTC. A time outside what datetime can represent is not working.
        """
        tz = zone(host_tz if self.timezone == HOST else self.timezone)
        try:
            local = datetime.fromtimestamp(time_ns // _NS, tz)
        except (OverflowError, ValueError, OSError):
            return False
        if local.weekday() not in self.days:
            return False
        if self.holidays and local.date() in self.holidays:
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second
        for start, end in self.hours:  # noqa: SIM110 - a plain loop: on the per-event path
            if start <= second < end:
                return True
        return False


DEFAULT_CALENDARS: MappingProxyType[str, Calendar] = MappingProxyType(
    {"working_hours": Calendar("working_hours")})


def _parse_days(items: list[str]) -> frozenset[int]:
    out: set[int] = set()
    for item in items:
        text = item.strip().lower()
        first, sep, last = text.partition("-")
        if first not in DAYS or (sep and last not in DAYS):
            raise ValueError(f"{item!r} is not a day or a range of days ({', '.join(DAYS)}, e.g. mon-fri)")
        a = DAYS.index(first)
        b = DAYS.index(last) if sep else a
        if b < a:
            raise ValueError(f"day range {item!r} runs backwards: list the days, e.g. [fri, sat, sun, mon]")
        out.update(range(a, b + 1))
    if not out:
        raise ValueError("at least one day is needed")
    return frozenset(out)


def _parse_range(text: str) -> tuple[int, int]:
    m = _HOURS.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a range of hours like 09:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{text!r}: times run from 00:00 to 24:00")
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if end == start:
        raise ValueError(f"{text!r} is empty")
    if end < start:
        raise ValueError(f"{text!r} wraps midnight: write it as two ranges, "
                         f"{text.split('-')[0].strip()}-24:00 and 00:00-{text.split('-')[1].strip()}")
    return start, end


def _parse_hours(value: Any) -> tuple[tuple[int, int], ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ValueError('must be a range like "09:00-18:00" or a non-empty list of them (quoted)')
    return tuple(sorted(_parse_range(i) for i in items))


def _parse_holidays(value: Any) -> frozenset[date]:
    if not isinstance(value, list):
        raise ValueError("must be a list of dates (YYYY-MM-DD)")
    out = set()
    for item in value:
        # YAML reads an unquoted 2025-12-25 as a date already; a datetime has a time: refused.
        if isinstance(item, datetime):
            raise ValueError(f"{item} is a date and time; a holiday is a date (YYYY-MM-DD)")
        if isinstance(item, date):
            out.add(item)
        elif isinstance(item, str):
            try:
                out.add(date.fromisoformat(item.strip()))
            except ValueError:
                raise ValueError(f"{item!r} is not a date (YYYY-MM-DD)") from None
        else:
            raise ValueError(f"{item!r} is not a date (YYYY-MM-DD)")
    return frozenset(out)


def parse_calendar(spec: Spec, name: str) -> Calendar:
    """A calendar from its mapping: timezone, days, hours, holidays (each optional)."""
    default = DEFAULT_CALENDARS["working_hours"]
    tz = spec.str("timezone", HOST)
    if tz != HOST:
        spec.parse("timezone", _check_zone)
    days = spec.parse("days", lambda v: _parse_days(_str_list(v)), default.days)
    hours = spec.parse("hours", _parse_hours, default.hours)
    holidays = spec.parse("holidays", _parse_holidays, frozenset())
    spec.done()
    return Calendar(name, tz, days, hours, holidays)


def _str_list(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError("must be a day, a range (mon-fri) or a list of them")
    return items


__all__ = ["DAYS", "DEFAULT_CALENDARS", "Calendar", "parse_calendar", "zone"]
