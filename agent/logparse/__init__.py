"""Log line parsing: raw lines -> typed, normalized events.

    parser = LineParser("/var/log/auth.log")
    record = parser.parse(b"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root from ...")

Every call returns exactly one event record. A line no parser recognises becomes `log.line`
(severity info, or the line's own syslog severity) with its header fields and `message`, so rules
can still match anything. Bytes are decoded as UTF-8 with replacement and NULs are dropped
(both counted in `stats` and flagged on the record); everything is cut to the collector's limits
(raw 16 KiB with `truncated=true`, field strings 1 KiB), so the collector never refuses a record.

Dispatch is by program name (`sshd`, `sudo`, `useradd`, `kernel`, `systemd`, ...), then by the
message's first word, so a line meets one or two precompiled, anchored regexes at most.
Modules: `timestamps` (time formats, zone), `syslog` (header), `auth`, `accounts`, `system`
(message parsers; their docstrings list the kinds and fields).
"""

from __future__ import annotations

import math
import re
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from warden.agent.logparse import accounts, auth, system
from warden.agent.logparse.syslog import (
    FACILITIES,
    RFC3164_HEADER,
    Fields,
    Handler,
    Header,
    Parsed,
    parse_header,
    split_program,
)
from warden.agent.logparse.timestamps import Clock, local_zone, zone_name
from warden.agent.wire import VARINT1, varint
from warden.v1 import records_pb2

__all__ = ["MAX_FIELD_BYTES", "MAX_FIELDS", "MAX_RAW_BYTES", "LineParser", "ParseStats"]

# The collector's defaults (collector/translate.py Limits): a record beyond them is refused.
MAX_RAW_BYTES = 16 * 1024
MAX_FIELD_BYTES = 1024
MAX_FIELDS = 64
# Longer messages skip the typed parsers (no real auth or kernel line is this long) and ship generic.
MAX_TYPED_CHARS = 64 * 1024
# The collector refuses times more than 1 h ahead of its clock; a line claiming to be further
# ahead than this (a wrong clock, a bad year guess) is stamped with the receive time instead.
_FUTURE_SLACK_NS = 300 * 10**9
_INT64 = 2**63
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_DISPATCH: dict[str, Handler] = {**accounts.HANDLERS, **auth.HANDLERS, **system.HANDLERS}
_REPEATED = re.compile(r"message repeated ([0-9]{1,9}) times: \[ ?(.*)\]\Z", re.ASCII | re.DOTALL)
# Syslog severity (PRI & 7) -> event severity.
_SYSLOG_SEVERITY = ("critical", "critical", "critical", "error", "warning", "notice", "info", "debug")
_SEVERITY = {name: records_pb2.Severity.Value("SEVERITY_" + name.upper())
             for name in ("debug", "info", "notice", "warning", "error", "critical")}
_FROM_STRING = records_pb2.Record.FromString
# encode()'s extra limits: (max raw bytes, time for out-of-range times, latest time accepted).
Fit = tuple[int, int, int]


@dataclass(slots=True)
class ParseStats:
    """Counters since the parser was made; `invalid_utf8` and `nul_bytes` count lines."""

    lines: int = 0
    invalid_utf8: int = 0
    nul_bytes: int = 0
    truncated: int = 0
    typed: int = 0
    generic: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class LineParser:
    """Parses the lines of one source (a file path, or "journal") into event records."""

    def __init__(self, source: str, tz: tzinfo | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self.source = _clip(_valid(source), MAX_FIELD_BYTES)
        self.tz = tz if tz is not None else local_zone()
        self.tz_name = _clip(zone_name(self.tz), MAX_FIELD_BYTES)
        self._now = now
        self._now_cached: tuple[int, datetime] = (0, datetime(1970, 1, 1, tzinfo=self.tz))
        self._clock = Clock(self.tz)
        # program as written -> (normalized name, legacy PAM module, handler); tags repeat endlessly.
        self._programs: dict[str, tuple[str, str, Handler | None]] = {}
        self._encoder = _Encoder(self.source)
        self.stats = ParseStats()

    # ------------------------------------------------------------ entry points

    def parse(self, line: bytes) -> records_pb2.Record:
        """One raw line (with or without its newline) -> one event record."""
        return _FROM_STRING(self.encode(line))

    def parse_journal(self, entry: Mapping[str, Any]) -> records_pb2.Record:
        """One `journalctl -o json` entry -> one event record, through the same message parsers."""
        return _FROM_STRING(self.encode_journal(entry))

    def encode(self, line: bytes, fit: Fit | None = None) -> bytes:
        """`parse(line)` serialized (what the agent spools), without building the message.

        `fit` = (max_raw_bytes, now_ns, latest_ns): the raw text is cut further to
        max_raw_bytes (with truncated=true) and a time outside (0, latest_ns] becomes now_ns,
        as the logs probe's limits want."""
        stats = self.stats
        stats.lines += 1
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1].isupper() and b"\x00" not in line:
            # The common line, `Jun 14 15:16:01 host prog[pid]: msg` in valid UTF-8, straight to
            # its record: the header's fields come ready-made; anything unusual (a time to
            # adjust, text to cut) goes the general way, through _emit.
            try:
                text = line.decode()
            except UnicodeDecodeError:
                text = ""
            m = RFC3164_HEADER.match(text) if text else None
            if m is not None:
                return self._encode_rfc3164(m, text, line, fit)
        fields: Fields = {"tz": self.tz_name}
        if b"\x00" in line:
            line = line.replace(b"\x00", b"")
            stats.nul_bytes += 1
            fields["nul_bytes"] = True
        try:
            text = line.decode()
            nbytes = len(line)
        except UnicodeDecodeError:
            text = line.decode("utf-8", "replace")
            stats.invalid_utf8 += 1
            fields["invalid_utf8"] = True
            nbytes = -1
        now, now_ns = self._now_ns()
        hdr = parse_header(text, self._clock, now, now_ns)
        if hdr is None:
            typed = system.headerless(text) if text[:1] in ("r", "s") else None
            return self._emit(typed, fields, text, nbytes, None, now_ns, "info", fit)
        _header_fields(fields, hdr)
        severity = _SYSLOG_SEVERITY[hdr.pri & 7] if hdr.pri >= 0 else "info"
        typed = self._dispatch(hdr.message, hdr.program) if hdr.program else None
        if typed is None:
            fields["message"] = hdr.message
        return self._emit(typed, fields, text, nbytes, hdr.time_ns, now_ns, severity, fit)

    def _encode_rfc3164(self, m: re.Match[str], text: str, line: bytes, fit: Fit | None) -> bytes:
        """encode() of a valid UTF-8 line without NULs whose header RFC3164_HEADER matched: the
        same record as the general path (parse_header, _header_fields, _emit) makes."""
        if self._now is None:  # _now_ns(), inline
            now_ns = time.time_ns()
            cached_ns, now = self._now_cached
            if now_ns - cached_ns >= 1_000_000_000:
                now, now_ns = self._now_ns()
        else:
            now, now_ns = self._now_ns()
        ts, host, program, pid_text = m.group(1, 8, 9, 10)
        time_ns = self._clock.rfc3164_text(ts, m, 2, now, now_ns) or 0
        message = text[m.end():]
        typed = self._dispatch(message, program)  # host and program are never empty here
        nbytes = len(line)
        if (0 < time_ns <= now_ns + _FUTURE_SLACK_NS and nbytes <= MAX_RAW_BYTES
                and (fit is None or nbytes <= fit[0] or len(text) <= fit[0] // 4)
                and (typed is None or (len(typed[2]) <= MAX_FIELDS - 4 and "tz" not in typed[2]
                                       and "host" not in typed[2] and "program" not in typed[2]
                                       and "pid" not in typed[2]))):
            # No field to add after the parser's, none of the header's overridden, no cut.
            if fit is not None and time_ns > fit[2]:
                time_ns = fit[1]
            enc = self._encoder
            pre = enc.header(self.tz_name, host, program, pid_text)
            if typed is None:
                self.stats.generic += 1
                return enc.record("log.line", "info", {"message": message}, text, time_ns, raw_bytes=line,
                                  pre=pre)
            self.stats.typed += 1
            return enc.record(typed[0], typed[1], typed[2], text, time_ns, raw_bytes=line, pre=pre)
        fields: Fields = {"tz": self.tz_name, "host": host, "program": program}
        if pid_text is not None:
            fields["pid"] = int(pid_text)
        if typed is None:
            fields["message"] = message
        return self._emit(typed, fields, text, nbytes, time_ns, now_ns, "info", fit)

    def encode_journal(self, entry: Mapping[str, Any], fit: Fit | None = None) -> bytes:
        """`parse_journal(entry)` serialized; `fit` as for encode()."""
        stats = self.stats
        stats.lines += 1
        fields: Fields = {"tz": self.tz_name}
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # journald's form for a message that is not valid UTF-8
            data = bytes(b & 0xFF for b in message if isinstance(b, int))
            if b"\x00" in data:
                data = data.replace(b"\x00", b"")
                stats.nul_bytes += 1
                fields["nul_bytes"] = True
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = data.decode("utf-8", "replace")
                stats.invalid_utf8 += 1
                fields["invalid_utf8"] = True
        else:
            text = _journal_str(message)
            if "\x00" in text:
                text = text.replace("\x00", "")
                stats.nul_bytes += 1
                fields["nul_bytes"] = True
            valid = _valid(text)
            if valid is not text:
                stats.invalid_utf8 += 1
                fields["invalid_utf8"] = True
                text = valid
        _, now_ns = self._now_ns()
        usec = _journal_str(entry.get("__REALTIME_TIMESTAMP"))
        time_ns = int(usec) * 1000 if usec.isascii() and usec.isdigit() and len(usec) <= 16 else None
        program = _valid(_journal_str(entry.get("SYSLOG_IDENTIFIER")) or _journal_str(entry.get("_COMM")))
        pid = _journal_str(entry.get("SYSLOG_PID")) or _journal_str(entry.get("_PID"))
        for key, name in (("_HOSTNAME", "host"), ("_SYSTEMD_UNIT", "systemd_unit")):
            value = _valid(_journal_str(entry.get(key)))
            if value:
                fields[name] = value
        if program:
            fields["program"] = program
        if pid.isascii() and pid.isdigit() and len(pid) <= 18:
            fields["pid"] = int(pid)
        facility = _journal_str(entry.get("SYSLOG_FACILITY"))
        if facility.isascii() and facility.isdigit() and int(facility) < len(FACILITIES):
            fields["facility"] = FACILITIES[int(facility)]
        priority = _journal_str(entry.get("PRIORITY"))
        severity = _SYSLOG_SEVERITY[int(priority)] if priority in ("0", "1", "2", "3", "4", "5", "6", "7") \
            else "info"
        typed = self._dispatch(text, program) if program else None
        if typed is None:
            fields["message"] = text
        return self._emit(typed, fields, text, -1, time_ns, now_ns, severity, fit)

    # ------------------------------------------------------------ internals

    def _now_ns(self) -> tuple[datetime, int]:
        if self._now is None:
            # The datetime only serves the year guess: one per second is plenty.
            now_ns = time.time_ns()
            cached_ns, now = self._now_cached
            if now_ns - cached_ns >= 1_000_000_000:
                now = datetime.fromtimestamp(now_ns / 1e9, self.tz)
                self._now_cached = (now_ns, now)
            return now, now_ns
        now = self._now()
        if now.tzinfo is None:  # an injected naive clock means local time
            now = now.replace(tzinfo=self.tz)
        return now, (now - _EPOCH) // _MICROSECOND * 1000  # exact, unlike float timestamp()

    def _dispatch(self, message: str, program: str) -> Parsed:
        if len(message) > MAX_TYPED_CHARS:
            return None
        entry = self._programs.get(program)
        if entry is None:
            base, module = split_program(program)
            entry = (base, module, _DISPATCH.get(base))
            if len(self._programs) >= 4096:  # tags are few; a flood of garbage ones must not grow this
                self._programs.clear()
            self._programs[program] = entry
        base, module, handler = entry
        repeated = 0
        if message.startswith("message repeated "):  # rsyslog's duplicate suppression; unwrapped once
            m = _REPEATED.match(message)
            if m is None:
                return None
            repeated, message = int(m[1]), m[2]
        typed: Parsed = None
        if module.startswith("pam"):
            typed = auth.pam_legacy(message, base, module)
        elif handler is not None:
            typed = handler(message, base)
        if typed is None and message.startswith("pam_"):
            typed = auth.pam(message, base)
        if typed is not None and repeated:
            typed[2]["repeated"] = repeated
        return typed

    def _emit(self, typed: Parsed, fields: Fields, text: str, nbytes: int, time_ns: int | None,
              now_ns: int, severity: str, fit: Fit | None) -> bytes:
        if typed is None:
            kind = "log.line"
            self.stats.generic += 1
        else:
            kind, severity, extra = typed
            fields.update(extra)
            self.stats.typed += 1
        if time_ns is None:
            time_ns = now_ns
        elif time_ns <= 0 or time_ns > now_ns + _FUTURE_SLACK_NS:
            # The line's own time is unusable (not a date, or implausibly far ahead).
            fields["time_adjusted"] = True
            time_ns = now_ns
        raw = text
        if nbytes < 0 or nbytes > MAX_RAW_BYTES:
            raw = _clip(text, MAX_RAW_BYTES)
            if raw is not text:
                fields["truncated"] = True
                self.stats.truncated += 1
        if fit is None:
            return self._encoder.record(kind, severity, fields, raw, time_ns)
        limit, fit_now_ns, latest_ns = fit
        cut = False
        if len(raw) > limit // 4 and len(data := raw.encode()) > limit:
            raw = data[:limit].decode("utf-8", "ignore")
            cut = True
        if not 0 < time_ns <= latest_ns:
            time_ns = fit_now_ns
        return self._encoder.record(kind, severity, fields, raw, time_ns, cut)


def _header_fields(fields: Fields, hdr: Header) -> None:
    if hdr.host:
        fields["host"] = hdr.host
    if hdr.program:
        fields["program"] = hdr.program
    if hdr.pid is not None:
        fields["pid"] = hdr.pid
    if hdr.pri >= 0:
        fields["facility"] = FACILITIES[hdr.pri >> 3]
    if hdr.msgid:
        fields["msgid"] = hdr.msgid
    if hdr.sd:
        fields["sd"] = hdr.sd


# Protobuf wire format of the records built here (records.proto): Record.event = 3; Event: kind = 1,
# severity = 2, time_unix_nano = 3, fields = 4 (map entries: key = 1, value = 2), raw = 5, source = 6;
# Value: string_value = 1, int_value = 2, double_value = 3, bool_value = 4.
_UINT64 = 1 << 64
_PACK_DOUBLE = struct.Struct("<d").pack
# Map entries kept ready per parser: (key, text) pairs seen often (service names, results, hosts,
# methods, user names) cost one dict lookup; longer texts (messages) rarely repeat. Each cache is
# emptied when full: a few hundred KB per source at most.
_CACHED_TEXT_CHARS = 64
_CACHE_ENTRIES = 1024
_HEADER_ENTRIES = 1024  # (host, program, pid): a pid lasts a few lines


class _Encoder:
    """Event records of one source straight to serialized `warden.v1.Record` bytes: the same
    record as `records.event(...)` would make (a test holds them equal), without building the
    protobuf message and its map first. At 10-15 fields per line, that construction was most of
    the per-line cost; here a field already seen is one dict lookup."""

    __slots__ = ("_bools", "_headers", "_heads", "_ints", "_source", "_texts", "_time", "_time_ns")

    def __init__(self, source: str) -> None:
        data = source.encode()
        self._source = b"\x32" + varint(len(data)) + data if data else b""
        self._heads: dict[tuple[str, str], bytes] = {}  # (kind, severity) -> fields 1 and 2
        self._texts: dict[tuple[str, str], bytes] = {}  # (name, text) -> whole map entry
        self._ints: dict[tuple[str, int], bytes] = {}  # (name, int): pids, ports
        self._bools: dict[tuple[str, bool], bytes] = {}
        self._headers: dict[tuple[str, str, str | None], list[bytes]] = {}  # (host, program, pid) -> entries
        self._time_ns = 0
        self._time = b""  # field 3 of the last time_ns

    def record(self, kind: str, severity: str, fields: Fields, raw: str, time_ns: int,
               truncated: bool = False, raw_bytes: bytes | None = None,
               pre: list[bytes] | None = None) -> bytes:
        """The serialized Record; `truncated` adds truncated=true after the MAX_FIELDS cut;
        `raw_bytes` is `raw` UTF-8 encoded, when the caller has it; `pre` are map entries
        (header()) that go before the fields' (which then must not repeat their keys)."""
        head = self._heads.get((kind, severity)) or self._head(kind, severity)
        if time_ns != self._time_ns:  # lines come in bursts within one second
            self._time_ns = time_ns
            self._time = b"\x18" + varint(time_ns if time_ns > 0 else time_ns + _UINT64) if time_ns else b""
        if len(fields) <= MAX_FIELDS:
            items: Any = fields.items()
            has_truncated = truncated and "truncated" in fields
        else:
            items = list(fields.items())[:MAX_FIELDS]
            has_truncated = truncated and any(key == "truncated" for key, _ in items)
        get, field = self._texts.get, self._field
        try:
            # Texts seen before are one lookup; anything else (and a miss) goes to _field.
            entries = [get(item) or field(item) for item in items]
        except TypeError:  # an unhashable value (not a field type): _field leaves it out
            entries = [field(item) for item in items]
        if truncated and not has_truncated:
            entries.append(self._bool("truncated", True))
        if pre is not None:
            entries[:0] = pre  # (a copy: `pre` itself is left as it is)
        data = raw.encode() if raw_bytes is None else raw_bytes
        n = len(data)
        body = b"".join((head, self._time, *entries,
                         (b"\x2a" + (VARINT1[n] if n < 0x80 else varint(n))) if n else b"", data,
                         self._source))
        n = len(body)
        if n < 0x4000:
            return (b"\x1a" + VARINT1[n] if n < 0x80 else bytes((0x1a, n & 0x7F | 0x80, n >> 7))) + body
        return b"\x1a" + varint(n) + body

    def header(self, tz: str, host: str, program: str, pid: str | None) -> list[bytes]:
        """The map entries tz, host, program (both non-empty) and pid (digits, or None for
        none), as an RFC 3164 header gives them: `pre` for record()."""
        key = (host, program, pid)
        entries = self._headers.get(key)
        if entries is None:
            base = self._headers.get((host, program, ""))  # tz, host and program, for any pid
            if base is None:
                base = [self._text("tz", tz) + self._text("host", host) + self._text("program", program)]
            entries = base if pid is None else [base[0], self._int("pid", int(pid))]
            if len(self._headers) >= _HEADER_ENTRIES:
                self._headers.clear()
            self._headers[key] = entries
            self._headers[(host, program, "")] = base
        return entries

    def _field(self, item: tuple[str, Any]) -> bytes:
        key, value = item
        cls = value.__class__
        if cls is str:
            return self._text(key, value)  # type: ignore[arg-type]
        if cls is bool:
            return self._bools.get(item) or self._bool(key, value)  # type: ignore[arg-type,call-overload]
        if cls is int:
            return self._ints.get(item) or self._int(key, value)  # type: ignore[arg-type,call-overload]
        if cls is float and math.isfinite(value):  # type: ignore[arg-type]
            return self._entry(key, b"\x19" + _PACK_DOUBLE(value))
        return b""  # any other type is left out, as before

    def _head(self, kind: str, severity: str) -> bytes:
        sev = _SEVERITY[severity]  # KeyError for a severity that is not one: a parser bug
        data = kind.encode()
        head = b"\x0a" + varint(len(data)) + data if data else b""
        if sev:
            head += b"\x10" + varint(sev)
        if len(self._heads) >= _CACHE_ENTRIES:
            self._heads.clear()
        self._heads[(kind, severity)] = head
        return head

    @staticmethod
    def _entry(key: str, value: bytes) -> bytes:
        """Map entry `key` -> serialized Value."""
        data = key.encode()
        n, k = len(data), len(value)
        entry = (b"\x0a" + (VARINT1[n] if n < 0x80 else varint(n)) + data + b"\x12"
                 + (VARINT1[k] if k < 0x80 else varint(k)) + value)
        n = len(entry)
        return b"\x22" + (VARINT1[n] if n < 0x80 else varint(n)) + entry

    def _text(self, key: str, text: str) -> bytes:
        clipped = _clip(text, MAX_FIELD_BYTES) if len(text) > MAX_FIELD_BYTES // 4 else text
        data = clipped.encode()
        entry = self._entry(key, b"\x0a" + varint(len(data)) + data)
        if len(text) <= _CACHED_TEXT_CHARS:
            texts = self._texts
            if len(texts) >= _CACHE_ENTRIES:
                texts.clear()
            texts[(key, text)] = entry
        return entry

    def _bool(self, key: str, value: bool) -> bytes:
        entry = self._entry(key, b"\x20\x01" if value else b"\x20\x00")
        if len(self._bools) >= _CACHE_ENTRIES:
            self._bools.clear()
        self._bools[(key, value)] = entry
        return entry

    def _int(self, key: str, value: int) -> bytes:
        if -_INT64 <= value < _INT64:
            entry = self._entry(key, b"\x10" + varint(value if value >= 0 else value + _UINT64))
        else:  # beyond int64: as text
            data = str(value).encode()
            entry = self._entry(key, b"\x0a" + varint(len(data)) + data)
        ints = self._ints
        if len(ints) >= _CACHE_ENTRIES:
            ints.clear()
        ints[(key, value)] = entry
        return entry


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes on a character boundary (the same object when
    it already fits)."""
    if len(text) <= limit // 4:
        return text
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _valid(text: str) -> str:
    """`text` with lone surrogates (from JSON `\\ud800` or surrogateescape paths) replaced, so
    protobuf can encode it; the same object when it is already valid."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text


def _journal_str(value: object) -> str:
    """A journal field as text: fields repeated in one entry come as a list; binary ones as a
    list of byte values."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, str):
            return first
        if isinstance(first, int):
            return bytes(b & 0xFF for b in value if isinstance(b, int)).decode("utf-8", "replace")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""
