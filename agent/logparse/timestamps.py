"""Log timestamps -> Unix nanoseconds: RFC 3164 (no year), RFC 5424 / ISO 8601 (fractions to
the nanosecond, `Z` or numeric offsets), in the host's time zone when the text carries none.

`Clock` holds the only state: the zone, and a cache of its UTC offset per local hour (a zoneinfo
lookup costs ~1 µs, the cache makes a conversion integer arithmetic). Year inference for RFC 3164
is relative to the caller's `now`, so tests can pin it.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Clock", "ISO8601", "RFC3164", "local_zone", "zone_name"]

_NS = 1_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# A local time more than this far ahead of `now` is last year's (`Dec 31` read on Jan 1); a
# little future is tolerated because remote hosts' clocks and zones are never exact.
_YEAR_AHEAD_NS = 86_400 * _NS

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

# `Jun 14 15:16:01` (day space-padded or not), optional fraction as some daemons add.
# Fixed-width pieces only: nothing here can backtrack more than a character.
RFC3164 = re.compile(r"([A-Z][a-z]{2}) {1,2}([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?",
                     re.ASCII)
# RFC 5424 TIMESTAMP and rsyslog/journalctl ISO 8601: `2003-10-11T22:14:15.003Z`,
# `2024-03-01T10:00:00.123456789+01:00`, `...+0100`, or no offset (local time).
ISO8601 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]{1,9})[0-9]*)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?", re.ASCII)


def local_zone() -> tzinfo:
    """The host's zone with its DST rules: $TZ, else the /etc/localtime link or file, else the
    current fixed offset (datetime.astimezone) as a last resort."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    localtime = Path("/etc/localtime")
    try:
        target = str(localtime.resolve())
        if "/zoneinfo/" in target:
            return ZoneInfo(target.split("/zoneinfo/", 1)[1])
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    try:
        with localtime.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        pass
    tz = datetime.now().astimezone().tzinfo
    assert tz is not None
    return tz


def zone_name(tz: tzinfo) -> str:
    """What the `tz` field records: the IANA key when there is one, else the zone's own name."""
    key = getattr(tz, "key", None)
    if isinstance(key, str) and key:
        return key
    return tz.tzname(None) or str(tz)


class Clock:
    """Converts parsed fields to Unix ns in one zone."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        # (y, m, d, hour) -> UTC offset in seconds for that whole local hour, or None when the
        # offset changes inside the hour (a DST switch): those lines take the exact path.
        self._hour_offsets: dict[tuple[int, int, int, int], int | None] = {}
        # RFC 3164 (month, day, hour, minute) -> (year of `now`, this year's start of that minute,
        # the latest earlier year's): a log has many lines per minute, each then costs one lookup.
        self._minutes: dict[tuple[str, ...], tuple[int, int | None, int | None]] = {}
        # RFC 3164 timestamp text -> (year of `now`, this year's instant, the latest earlier year's):
        # lines come in bursts within one second, each then costs one lookup.
        self._seconds: dict[str, tuple[int, int | None, int | None]] = {}

    def local_ns(self, y: int, mo: int, d: int, h: int, mi: int, s: int, frac_ns: int = 0) -> int | None:
        """Local wall time -> Unix ns; None when the date does not exist (Feb 30, bad month).
        In a DST fold the earlier instant is taken, as datetime's fold=0 does."""
        try:
            days = date(y, mo, d).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None
        if h > 23 or mi > 59 or s > 60:
            return None
        key = (y, mo, d, h)
        offsets = self._hour_offsets
        off = offsets.get(key, -1)
        if off == -1:
            off = self._hour_offset(y, mo, d, h)
            if len(offsets) > 4096:  # a long replay of old logs must not grow this without bound
                offsets.clear()
            offsets[key] = off
        if off is None:
            delta = datetime(y, mo, d, h, mi, min(s, 59), tzinfo=self.tz).utcoffset()
            off = int(delta.total_seconds()) if delta is not None else 0
        return ((days * 86_400 + h * 3600 + mi * 60 + s) - off) * _NS + frac_ns

    def _hour_offset(self, y: int, mo: int, d: int, h: int) -> int | None:
        a = datetime(y, mo, d, h, 0, 0, tzinfo=self.tz).utcoffset()
        b = datetime(y, mo, d, h, 59, 59, tzinfo=self.tz).utcoffset()
        if a != b:
            return None
        return int(a.total_seconds()) if a is not None else 0

    def rfc3164(self, m: re.Match[str], now: datetime, now_ns: int) -> int | None:
        """A RFC3164 match -> Unix ns, inferring the year from `now`: the current year unless that
        puts the line more than a day ahead, then the latest earlier year where the date exists
        (so `Dec 31` read on Jan 1 is last year's, and `Feb 29` the last leap year's)."""
        key = m.group(1, 2, 3, 4)
        year = now.year
        cached = self._minutes.get(key)
        if cached is None or cached[0] != year:
            cached = self._minute_bases(key, year)
        _, this_year, earlier = cached
        offset = int(m[5]) * _NS + _frac_ns(m[6])
        if this_year is not None and this_year + offset <= now_ns + _YEAR_AHEAD_NS:
            return this_year + offset
        return None if earlier is None else earlier + offset

    def rfc3164_text(self, ts: str, m: re.Match[str], g: int, now: datetime, now_ns: int) -> int | None:
        """rfc3164() for a match whose groups g..g+5 are RFC3164's, `ts` being their whole text."""
        year = now.year
        cached = self._seconds.get(ts)
        if cached is None or cached[0] != year:
            key = m.group(g, g + 1, g + 2, g + 3)
            bases = self._minutes.get(key)
            if bases is None or bases[0] != year:
                bases = self._minute_bases(key, year)
            _, this_year, earlier = bases
            offset = int(m[g + 4]) * _NS + _frac_ns(m[g + 5])
            cached = (year, None if this_year is None else this_year + offset,
                      None if earlier is None else earlier + offset)
            if len(self._seconds) > 4096:
                self._seconds.clear()
            self._seconds[ts] = cached
        _, this_year, earlier = cached
        if this_year is not None and this_year <= now_ns + _YEAR_AHEAD_NS:
            return this_year
        return earlier

    def _minute_bases(self, key: tuple[str, ...], year: int) -> tuple[int, int | None, int | None]:
        mo = MONTHS.get(key[0])
        if mo is None:
            return (year, None, None)
        d, h, mi = int(key[1]), int(key[2]), int(key[3])
        earlier = None
        for y in range(year - 1, year - 9, -1):  # 8 years always hold a leap year's Feb 29
            earlier = self.local_ns(y, mo, d, h, mi, 0)
            if earlier is not None:
                break
        entry = (year, self.local_ns(year, mo, d, h, mi, 0), earlier)
        if len(self._minutes) > 4096:
            self._minutes.clear()
        self._minutes[key] = entry
        return entry

    def iso8601(self, m: re.Match[str]) -> int | None:
        """An ISO8601 match -> Unix ns; no offset means local time in this clock's zone."""
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
        h, mi, s = int(m[4]), int(m[5]), int(m[6])
        frac = _frac_ns(m[7])
        off = m[8]
        if off is None:
            return self.local_ns(y, mo, d, h, mi, s, frac)
        try:
            days = date(y, mo, d).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None
        if h > 23 or mi > 59 or s > 60:
            return None
        secs = days * 86_400 + h * 3600 + mi * 60 + s
        if off != "Z":
            digits = off[1:].replace(":", "")
            oh, om = int(digits[:2]), int(digits[2:] or 0)
            if oh > 23 or om > 59:
                return None
            delta = oh * 3600 + om * 60
            secs -= delta if off[0] == "+" else -delta
        return secs * _NS + frac

    def parse_iso8601(self, text: str) -> int | None:
        """A whole ISO 8601 string (e.g. an RFC 5424 TIMESTAMP) -> Unix ns, None if it is not one."""
        m = ISO8601.match(text)
        if m is None or m.end() != len(text):
            return None
        return self.iso8601(m)


def _frac_ns(frac: str | None) -> int:
    if not frac:
        return 0
    return int(frac[:9].ljust(9, "0"))
