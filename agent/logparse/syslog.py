"""Syslog headers: RFC 3164 (`Jun 14 15:16:01 host prog[pid]: msg`, optionally `<PRI>`-prefixed),
ISO 8601 files (rsyslog's high-precision format, `journalctl -o short-iso`) and RFC 5424
(`<34>1 2003-10-11T22:14:15.003Z host app procid msgid [sd] msg`).

The header is found with anchored fixed-width matches and bounded `find`s, so a hostile or
1 MB line costs no more than a normal one. Also home of the small types the message parsers share.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from warden.agent.logparse.timestamps import ISO8601, RFC3164, Clock

__all__ = ["FACILITIES", "RFC3164_HEADER", "Fields", "Handler", "Header", "Parsed", "num", "parse_header",
           "split_program"]

FieldValue = str | int | float | bool
Fields = dict[str, FieldValue]
# What a message parser returns: (kind, severity, fields), or None for "not mine".
Parsed = tuple[str, str, Fields] | None
# A message parser: (message, normalized program name) -> Parsed.
Handler = Callable[[str, str], Parsed]

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")

_MAX_HOST = 255   # DNS name limit; a longer first token is not a host
_MAX_TAG = 64     # RFC 3164 says 32; real tags (`sshd(pam_unix)[19939]`, `syslogd 1.4.1`) run longer
_MAX_SD = 16 * 1024  # beyond this, structured data is left in the message (it is capped anyway)
_MAX_INT_DIGITS = 18  # stays inside int64 (protobuf) and far from Python's int() digit limit
# The common shape `host prog[pid]: ` in one match; anything else (no host, `-- root`,
# `syslogd 1.4.1`, `gdm-password][2416]`) takes the general path in _host_tag.
_HOST_TAG_PATTERN = r"([^ \[]{0,254}[^ \[:]) ([^\s\[\]:]{1,64})(?:\[([0-9]{1,18})\])?: "
_HOST_TAG = re.compile(_HOST_TAG_PATTERN, re.ASCII)
# The whole common RFC 3164 header in one match: group 1 the time, 2-7 its parts (as RFC3164's
# 1-6), 8 host, 9 tag, 10 pid.
RFC3164_HEADER = re.compile("(" + RFC3164.pattern + ") " + _HOST_TAG_PATTERN, re.ASCII)
# RFC 5424 STRUCTURED-DATA: `[id k="v" ...]...`, values with \" \\ \] escapes. The alternatives
# start with different characters, so a failed match gives up in linear time.
_SD = re.compile(r'(?:\[[^\]"]*(?:"(?:[^"\\]|\\.)*"[^\]"]*)*\])+', re.ASCII | re.DOTALL)


_new_header = tuple.__new__  # builds a Header at C speed (NamedTuple's own __new__ is Python code)


class Header(NamedTuple):
    time_ns: int | None       # None: no timestamp (RFC 5424 `-`); 0: one that is not a date (Feb 30)
    host: str
    program: str              # the tag's name as written: `sshd`, `sshd(pam_unix)`, `syslogd 1.4.1`
    pid: int | None           # numeric pids only
    message: str
    pri: int                  # -1 when the line had no <PRI>
    msgid: str                # RFC 5424 only
    sd: str                   # RFC 5424 structured data, verbatim


def num(text: str) -> int | str:
    """A digit string as int, unless too long for int64 (then kept as text)."""
    return int(text) if len(text) <= _MAX_INT_DIGITS else text


def _pid(text: str) -> int | None:
    return int(text) if 0 < len(text) <= _MAX_INT_DIGITS and text.isascii() and text.isdigit() else None


def split_program(program: str) -> tuple[str, str]:
    """`sshd(pam_unix)` -> ("sshd", "pam_unix"); `syslogd 1.4.1` -> ("syslogd", "");
    `gdm-password]` (a gdm quirk) -> ("gdm-password", ""); names are lower-cased for dispatch."""
    module = ""
    i = program.find("(")
    if i > 0 and program.endswith(")"):
        module = program[i + 1:-1]
        program = program[:i]
    i = program.find(" ")
    if i > 0:
        program = program[:i]
    return program.rstrip("]:").lower(), module


def parse_header(text: str, clock: Clock, now: datetime, now_ns: int) -> Header | None:
    """The syslog header of `text`, or None when the line does not start with one."""
    pri = -1
    pos = 0
    if text.startswith("<"):
        end = text.find(">", 1, 5)
        if end > 1 and text[1:end].isascii() and text[1:end].isdigit() and int(text[1:end]) < 192:
            pri = int(text[1:end])
            pos = end + 1
            if text.startswith("1 ", pos):
                return _rfc5424(text, pos + 2, pri, clock)
    c = text[pos:pos + 1]
    if "A" <= c <= "Z":
        m = RFC3164_HEADER.match(text, pos)
        if m is not None:
            ts, host, tag, pid = m.group(1, 8, 9, 10)
            return _new_header(Header, (clock.rfc3164_text(ts, m, 2, now, now_ns) or 0, host, tag,
                                        None if pid is None else int(pid), text[m.end():], pri, "", ""))
        m = RFC3164.match(text, pos)
        if m is None:
            return None
        time_ns = clock.rfc3164(m, now, now_ns) or 0
    elif "0" <= c <= "9":
        m = ISO8601.match(text, pos)
        if m is None:
            return None
        time_ns = clock.iso8601(m) or 0
    else:
        return None
    pos = m.end()
    if not text.startswith(" ", pos):
        if pos == len(text):
            return Header(time_ns, "", "", None, "", pri, "", "")
        return None
    m = _HOST_TAG.match(text, pos + 1)
    if m is not None:
        pid = m[3]
        return _new_header(Header, (time_ns, m[1], m[2], None if pid is None else int(pid),
                                    text[m.end():], pri, "", ""))
    return _host_tag(text, pos + 1, time_ns, pri)


def _host_tag(text: str, pos: int, time_ns: int | None, pri: int) -> Header:
    host = ""
    sp = text.find(" ", pos, pos + _MAX_HOST + 1)
    first = text[pos:sp] if sp >= 0 else text[pos:pos + _MAX_HOST + 1]
    # A first token that looks like a tag means the sender left the host out.
    if first and not first.endswith(":") and "[" not in first and (sp >= 0 or len(text) - pos <= _MAX_HOST):
        host = first
        pos = sp + 1 if sp >= 0 else len(text)
    stop = min(len(text), pos + 8)
    while pos < stop and text[pos] == " ":  # `combo  -- root[2421]:` has two
        pos += 1
    colon = text.find(": ", pos, pos + _MAX_TAG + 2)
    if colon < 0:
        if text.endswith(":") and 0 < len(text) - pos <= _MAX_TAG + 1:
            colon = len(text) - 1
        else:
            return Header(time_ns, host, "", None, text[pos:], pri, "", "")
    tag = text[pos:colon]
    message = text[colon + 2:]
    pid = None
    b = tag.find("[")
    if b > 0 and tag.endswith("]"):
        pid = _pid(tag[b + 1:-1])
        tag = tag[:b]
    return Header(time_ns, host, tag, pid, message, pri, "", "")


def _rfc5424(text: str, pos: int, pri: int, clock: Clock) -> Header | None:
    # VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
    parts = text[pos:pos + 4 * 256 + 128 + 5].split(" ", 5)
    if len(parts) < 6:
        parts = text[pos:].split(" ", 5)
        if len(parts) < 5:
            return None
        parts.append("")
    ts, host, app, procid, msgid = parts[:5]
    rest_at = pos + sum(len(p) + 1 for p in parts[:5])
    time_ns = None if ts == "-" else clock.parse_iso8601(ts) or 0
    rest = text[rest_at:]
    sd = ""
    if rest.startswith("-"):
        message = rest[2:] if rest.startswith("- ") else rest[1:]
    elif rest.startswith("["):
        m = _SD.match(rest, 0, _MAX_SD)
        if m is None:  # malformed structured data: keep it all as the message
            message = rest
        else:
            sd = m[0]
            message = rest[m.end() + 1:] if rest.startswith(" ", m.end()) else rest[m.end():]
    else:
        message = rest
    if message.startswith("\ufeff"):  # RFC 5424 marks UTF-8 messages with a BOM
        message = message[1:]
    return Header(time_ns, "" if host == "-" else host, "" if app == "-" else app, _pid(procid), message, pri,
                  "" if msgid == "-" else msgid, sd)
