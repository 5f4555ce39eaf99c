"""Log line parsers: timestamps, headers, each message parser on real lines, the journal, and
every line of the loghub corpus checked against loghub's own structured templates.

Lines come from the loghub corpus where it has them; the others are in the exact formats the
daemons print (shadow-utils, sudo, systemd and kernel sources), most seen verbatim in public
bug reports and forum posts."""

from __future__ import annotations

import calendar
import csv
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from warden.agent import records
from warden.agent.logparse import MAX_FIELD_BYTES, MAX_RAW_BYTES, LineParser
from warden.agent.logparse.timestamps import Clock, local_zone, zone_name
from warden.collector.translate import Limits, batch_from_proto
from warden.v1 import collector_pb2, records_pb2

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "loghub"
JOURNAL = ROOT / "tests" / "fixtures" / "logs" / "journal-debian12-systemd252.jsonl"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SEVERITY_NAMES = {v.number: v.name.removeprefix("SEVERITY_").lower()
                  for v in records_pb2.Severity.DESCRIPTOR.values}


def parser(now: datetime = NOW, tz: Any = UTC, source: str = "/var/log/auth.log") -> LineParser:
    return LineParser(source, tz=tz, now=lambda: now)


def fields(ev: records_pb2.Event) -> dict[str, Any]:
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in ev.fields.items()}


def parse(line: str | bytes, **kw: Any) -> records_pb2.Event:
    p = parser(**kw)
    rec = p.parse(line.encode() if isinstance(line, str) else line)
    assert rec.WhichOneof("kind") == "event"
    return rec.event


def ns(dt: datetime) -> int:
    return calendar.timegm(dt.utctimetuple()) * 10**9 + dt.microsecond * 1000


def accepted(recs: list[records_pb2.Record], now: datetime = NOW) -> None:
    """The collector's own translation accepts every record (it raises Refused otherwise)."""
    batch = collector_pb2.Batch(first_seq=1, last_seq=len(recs), records=recs)
    batch_from_proto(batch, "host", "spool", Limits(), ns(now))


# ---------------------------------------------------------------- timestamps


def test_rfc3164_uses_the_current_year_and_the_zone() -> None:
    ev = parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
               now=datetime(2026, 7, 1, tzinfo=UTC))
    assert ev.time_unix_nano == ns(datetime(2026, 6, 14, 15, 16, 1, tzinfo=UTC))
    berlin = ZoneInfo("Europe/Berlin")
    summer = parse("Jul  1 12:00:00 h app: x", tz=berlin, now=datetime(2026, 8, 1, tzinfo=berlin))
    winter = parse("Jan  1 12:00:00 h app: x", tz=berlin, now=datetime(2026, 8, 1, tzinfo=berlin))
    assert summer.time_unix_nano == ns(datetime(2026, 7, 1, 10, tzinfo=UTC))  # CEST, +2
    assert winter.time_unix_nano == ns(datetime(2026, 1, 1, 11, tzinfo=UTC))  # CET, +1
    assert fields(summer)["tz"] == "Europe/Berlin"


def test_rfc3164_year_inference_across_new_year() -> None:
    new_year = datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC)
    p = parser(now=new_year)
    dec = p.parse(b"Dec 31 23:59:59 h sshd[1]: x").event
    jan = p.parse(b"Jan  1 00:00:10 h sshd[1]: x").event
    assert dec.time_unix_nano == ns(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert jan.time_unix_nano == ns(datetime(2027, 1, 1, 0, 0, 10, tzinfo=UTC))
    # A rotated file spanning New Year, read days later: each line lands in its own year.
    later = parser(now=datetime(2027, 1, 5, tzinfo=UTC))
    years = [datetime.fromtimestamp(later.parse(line).event.time_unix_nano / 1e9, UTC).year
             for line in (b"Dec 30 10:00:00 h a: x", b"Dec 31 23:00:00 h a: x", b"Jan  2 01:00:00 h a: x")]
    assert years == [2026, 2026, 2027]
    # A month far ahead of now's is last year's; the loghub OpenSSH sample (Dec) read in March.
    ev = parse("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186")
    assert ev.time_unix_nano == ns(datetime(2025, 12, 10, 6, 55, 46, tzinfo=UTC))


def test_rfc3164_feb_29_goes_to_the_last_leap_year() -> None:
    line = "Feb 29 12:00:00 h app: x"
    assert parse(line, now=datetime(2025, 3, 1, tzinfo=UTC)).time_unix_nano == \
        ns(datetime(2024, 2, 29, 12, tzinfo=UTC))
    assert parse(line, now=datetime(2028, 3, 1, tzinfo=UTC)).time_unix_nano == \
        ns(datetime(2028, 2, 29, 12, tzinfo=UTC))
    assert parse(line, now=datetime(2024, 2, 29, 13, tzinfo=UTC)).time_unix_nano == \
        ns(datetime(2024, 2, 29, 12, tzinfo=UTC))


def test_impossible_or_future_times_take_the_receive_time() -> None:
    bad = parse("Feb 30 12:00:00 h app: x")
    assert bad.time_unix_nano == ns(NOW) and fields(bad)["time_adjusted"] is True
    # Up to a day ahead keeps the current year (clock skew), and within 5 minutes the line's time;
    # further ahead would be refused by the collector, so the receive time is used.
    near = parse("Mar  1 12:02:00 h app: x")
    assert near.time_unix_nano == ns(NOW + timedelta(minutes=2)) and "time_adjusted" not in fields(near)
    far = parse("Mar  1 18:00:00 h app: x")
    assert far.time_unix_nano == ns(NOW) and fields(far)["time_adjusted"] is True
    iso_future = parse("2099-01-01T00:00:00Z h app: x")
    assert iso_future.time_unix_nano == ns(NOW) and fields(iso_future)["time_adjusted"] is True


def test_dst_fold_and_gap_match_datetime() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    clock = Clock(berlin)
    for wall in (datetime(2026, 10, 25, 2, 30, 5), datetime(2026, 3, 29, 2, 30, 5),
                 datetime(2026, 3, 29, 3, 0, 0), datetime(2026, 10, 25, 3, 0, 0)):
        expected = round(wall.replace(tzinfo=berlin).timestamp()) * 10**9
        got = clock.local_ns(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second)
        assert got == expected, wall


def test_rfc5424_with_fraction_offset_and_structured_data() -> None:
    # RFC 5424 section 6.5 examples.
    ev = parse("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
               "\ufeff'su root' failed for lonvick on /dev/pts/8")
    assert ev.time_unix_nano == 1065910455003000000
    assert ev.kind == "auth.su"
    assert fields(ev).items() >= {"host": "mymachine.example.com", "program": "su", "facility": "auth",
                                  "msgid": "ID47", "result": "failure", "user": "lonvick",
                                  "run_as": "root"}.items()
    ev = parse("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
               "%% It's time to make the do-nuts.")
    assert ev.time_unix_nano == ns(datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC))
    assert ev.kind == "log.line" and SEVERITY_NAMES[ev.severity] == "notice"
    f = fields(ev)
    assert f["facility"] == "local4" and f["pid"] == 8710
    assert f["message"] == "%% It's time to make the do-nuts."
    ev = parse('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
               '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
               '[examplePriority@32473 class="high"] \ufeffAn application event log entry...')
    f = fields(ev)
    assert f["sd"] == ('[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
                       '[examplePriority@32473 class="high"]')
    assert f["message"] == "An application event log entry..."
    nil = parse("<13>1 - - - - - -")  # every field NILVALUE: receive time, no header fields
    assert nil.time_unix_nano == ns(NOW) and "time_adjusted" not in fields(nil)


def test_iso8601_nanoseconds_offsets_and_local_time() -> None:
    ev = parse("2026-02-28T23:59:59.123456789+01:00 host prog[1]: hello")
    assert ev.time_unix_nano == ns(datetime(2026, 2, 28, 22, 59, 59, tzinfo=UTC)) + 123456789
    assert fields(ev).items() >= {"host": "host", "program": "prog", "pid": 1, "message": "hello"}.items()
    assert parse("2026-02-28T12:00:00+0530 h p: x").time_unix_nano == \
        ns(datetime(2026, 2, 28, 6, 30, tzinfo=UTC))
    berlin = ZoneInfo("Europe/Berlin")
    local = parse("2026-02-28T12:00:00.5 h p: x", tz=berlin)  # no offset: the host zone applies
    assert local.time_unix_nano == ns(datetime(2026, 2, 28, 11, tzinfo=UTC)) + 500_000_000
    clock = Clock(UTC)
    assert clock.parse_iso8601("2026-01-02T03:04:05.1Z") == \
        ns(datetime(2026, 1, 2, 3, 4, 5, 100000, tzinfo=UTC))
    assert clock.parse_iso8601("2026-13-02T03:04:05Z") is None
    assert clock.parse_iso8601("2026-01-02T03:04:05Zjunk") is None


def test_default_zone_is_the_hosts_and_is_recorded() -> None:
    p = LineParser("journal")
    assert p.tz_name == zone_name(local_zone())
    ev = p.parse(b"Jun 14 15:16:01 combo app: x").event
    assert fields(ev)["tz"] == p.tz_name
    assert abs(datetime.now(UTC).timestamp() - ev.time_unix_nano / 1e9) < 366 * 86400


# ---------------------------------------------------------------- headers and generic lines


@pytest.mark.parametrize("line, expected", [
    ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
     {"host": "combo", "program": "sshd(pam_unix)", "pid": 19939}),
    ("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2", {"host": "combo", "program": "-- root"}),
    ("Jul 27 14:41:57 combo syslogd 1.4.1: restart.", {"host": "combo", "program": "syslogd 1.4.1"}),
    ("Jul 11 11:33:17 combo gdm-binary[2803]: Couldn't authenticate user", {"program": "gdm-binary"}),
    ("Mar  1 10:00:00 sshd[42]: Server listening on 0.0.0.0 port 22.", {"program": "sshd", "pid": 42}),
    ("<38>Mar  1 10:00:00 web1 cron[7]: hello", {"host": "web1", "program": "cron", "facility": "auth"}),
    ("Mar  1 10:00:00 web1 gdm-password][2416]: pam_unix(gdm-password:auth): authentication failure; "
     "logname= uid=0 euid=0 tty=/dev/tty1 ruser= rhost=  user=alice",
     {"program": "gdm-password]", "pid": 2416}),
])
def test_syslog_headers(line: str, expected: dict[str, Any]) -> None:
    assert fields(parse(line)).items() >= expected.items()


def test_unrecognised_lines_are_generic_with_header_fields() -> None:
    ev = parse("Jun 20 04:44:39 combo snmpd[2318]: Received SNMP packet(s) from 67.170.148.126 ")
    assert ev.kind == "log.line" and SEVERITY_NAMES[ev.severity] == "info"
    assert fields(ev) == {"tz": "UTC", "host": "combo", "program": "snmpd", "pid": 2318,
                          "message": "Received SNMP packet(s) from 67.170.148.126 "}
    assert ev.raw == "Jun 20 04:44:39 combo snmpd[2318]: Received SNMP packet(s) from 67.170.148.126 "
    assert ev.source == "/var/log/auth.log"
    bare = parse(b"no header at all\r\n")
    assert bare.kind == "log.line" and bare.raw == "no header at all" and fields(bare) == {"tz": "UTC"}
    assert bare.time_unix_nano == ns(NOW)
    pri = parse("<11>Mar  1 10:00:00 h app: disk on fire")
    assert SEVERITY_NAMES[pri.severity] == "error"  # PRI severity 3 = err


def test_repeated_messages_are_unwrapped_once() -> None:
    inner = "Failed password for root from 192.0.2.1 port 22 ssh2"
    ev = parse(E + "sshd[1]: message repeated 3 times: [ " + inner + "]")
    assert ev.kind == "auth.login" and fields(ev)["repeated"] == 3
    nested = "message repeated 2 times: [ " * 2000 + inner + "]" * 2000  # 60 KB: typed path, no recursion
    assert parse(E + "sshd[1]: " + nested).kind == "log.line"


def test_records_equal_the_agent_builder_and_pass_the_collector() -> None:
    """The fast builder makes exactly what `records.event` would."""
    p = parser()
    recs = [p.parse(line) for line in (
        b"Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
        b"Jun 20 04:44:39 combo snmpd[2318]: Received SNMP packet(s) from 67.170.148.126 ",
        b"no header \xff\x00")]
    for rec in recs:
        ev = rec.event
        assert rec == records.event(ev.kind, SEVERITY_NAMES[ev.severity], fields(ev), ev.raw, ev.source,
                                    ev.time_unix_nano)
    accepted(recs)


def test_bad_bytes_are_counted_flagged_and_limited() -> None:
    p = parser()
    nul = p.parse(b"Mar  1 10:00:00 h sshd[1]: Invalid user ro\x00ot from 192.0.2.1 port 22\n").event
    assert nul.kind == "auth.invalid_user" and fields(nul)["user"] == "root" and fields(nul)["nul_bytes"]
    bad = p.parse(b"Mar  1 10:00:00 h sshd[1]: Invalid user \xff\xfe from 192.0.2.1 port 22").event
    assert fields(bad)["user"] == "\ufffd\ufffd" and fields(bad)["invalid_utf8"] is True
    huge = p.parse(b"Mar  1 10:00:00 h app[1]: " + b"x" * 1_000_000).event
    assert len(huge.raw.encode()) <= MAX_RAW_BYTES and fields(huge)["truncated"] is True
    assert len(fields(huge)["message"].encode()) <= MAX_FIELD_BYTES
    # Invalid bytes become 3-byte U+FFFD: a 10 KB line of them is 30 KB of UTF-8, still cut.
    garbage = p.parse(b"\xff" * 10_000).event
    assert len(garbage.raw.encode()) <= MAX_RAW_BYTES and fields(garbage)["truncated"] is True
    long_user = p.parse(b"Mar  1 10:00:00 h sshd[1]: Invalid user " + "\u00e9".encode() * 3000
                        + b" from 192.0.2.1").event
    assert len(fields(long_user)["user"].encode()) <= MAX_FIELD_BYTES
    digits = p.parse(b"Mar  1 10:00:00 h sshd[" + b"9" * 30 + b"]: Failed password for root from 192.0.2.1 "
                     b"port " + b"9" * 5000 + b" ssh2").event
    assert digits.kind == "auth.login" and "pid" not in fields(digits)
    assert fields(digits)["src_port"] == "9" * MAX_FIELD_BYTES  # beyond int64: kept as (clipped) text
    assert p.stats.as_dict() == {"lines": 6, "invalid_utf8": 2, "nul_bytes": 1, "truncated": 2,
                                 "typed": 4, "generic": 2}
    accepted([p.parse(b"\xff" * 10_000), p.parse(b"x" * 100_000), p.parse(b"")])


# ---------------------------------------------------------------- message parsers

E = "Mar  1 10:00:00 host "  # header for lines written from the daemons' formats

AUTH_CASES: list[tuple[str, str, dict[str, Any]]] = [
    # sshd, from the loghub OpenSSH sample
    ("Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
     "auth.login", {"result": "success", "user": "fztu", "src_ip": "119.137.62.142", "src_port": 49116,
                    "method": "password", "service": "sshd", "invalid_user": False}),
    ("Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 "
     "port 38926 ssh2", "auth.login",
     {"result": "failure", "user": "webmaster", "invalid_user": True, "reason": "invalid_user"}),
    ("Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for root from 52.80.34.196 port 36060 ssh2",
     "auth.login", {"result": "failure", "user": "root", "reason": "wrong_password", "method": "password"}),
    ("Dec 10 10:00:00 LabSZ sshd[25000]: Failed none for invalid user 0 from 112.95.230.3 port 45378 ssh2",
     "auth.login", {"method": "none", "user": "0", "invalid_user": True}),
    ("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
     "auth.invalid_user", {"user": "webmaster", "src_ip": "173.234.31.186", "service": "sshd"}),
    ("Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com "
     "[173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!", "auth.break_in_attempt",
     {"src_ip": "173.234.31.186", "hostname": "ns.marryaldkfaczcz.com", "check": "reverse_mapping"}),
    ("Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
     "tty=ssh ruser= rhost=173.234.31.186  user=root", "auth.login",
     {"result": "failure", "user": "root", "src_ip": "173.234.31.186", "service": "sshd",
      "pam_module": "pam_unix", "method": "password", "tty": "ssh", "uid": 0}),
    ("Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
     "auth.invalid_user", {"service": "sshd", "pam_module": "pam_unix"}),
    ("Dec 10 07:02:47 LabSZ sshd[24203]: Received disconnect from 103.99.0.122: 11: Bye Bye [preauth]",
     "auth.disconnect", {"src_ip": "103.99.0.122", "code": 11, "detail": "Bye Bye", "preauth": True}),
    ("Dec 10 07:28:03 LabSZ sshd[24245]: error: Received disconnect from 195.154.37.122: 3: "
     "com.jcraft.jsch.JSchException: Auth fail [preauth]", "auth.disconnect",
     {"code": 3, "detail": "com.jcraft.jsch.JSchException: Auth fail"}),
    ("Dec 10 07:08:30 LabSZ sshd[24208]: Connection closed by 212.47.254.145 [preauth]",
     "auth.disconnect", {"reason": "connection_closed", "src_ip": "212.47.254.145", "preauth": True}),
    ("Dec 10 07:13:43 LabSZ sshd[24227]: Did not receive identification string from 187.141.143.180",
     "auth.disconnect", {"reason": "no_identification", "src_ip": "187.141.143.180"}),
    ("Dec 10 09:12:35 LabSZ sshd[24490]: Disconnecting: Too many authentication failures for root [preauth]",
     "auth.too_many_failures", {"user": "root"}),
    ("Dec 10 08:30:00 LabSZ sshd[24400]: PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh "
     "ruser= rhost=183.62.140.253  user=root", "auth.too_many_failures",
     {"count": 5, "user": "root", "src_ip": "183.62.140.253"}),
    ("Dec 10 09:32:20 LabSZ sshd[24680]: pam_unix(sshd:session): session opened for user fztu by (uid=0)",
     "auth.session_opened", {"user": "fztu", "by_uid": 0, "service": "sshd"}),
    ("Dec 10 09:32:20 LabSZ sshd[24680]: pam_unix(sshd:session): session closed for user fztu",
     "auth.session_closed", {"user": "fztu"}),
    ("Dec 10 11:03:44 LabSZ sshd[25455]: message repeated 2 times: [ Failed password for root from "
     "183.62.140.253 port 38680]", "auth.login",
     {"result": "failure", "user": "root", "src_port": 38680, "repeated": 2}),
    # sshd, current OpenSSH formats
    (E + "sshd[5]: Accepted publickey for deploy from 2001:db8::7 port 40022 ssh2: ED25519 SHA256:abcDEF0123",
     "auth.login", {"method": "publickey", "src_ip": "2001:db8::7", "key_type": "ED25519",
                    "fingerprint": "SHA256:abcDEF0123"}),
    (E + "sshd-session[5]: Failed keyboard-interactive/pam for alice from 192.0.2.5 port 2 ssh2",
     "auth.login", {"method": "keyboard-interactive", "reason": "auth_failed", "service": "sshd"}),
    (E + "sshd[5]: Invalid user admin from 192.0.2.9 port 50000", "auth.invalid_user",
     {"user": "admin", "src_port": 50000}),
    (E + "sshd[5]: Connection closed by invalid user admin 192.0.2.9 port 50000 [preauth]", "auth.disconnect",
     {"user": "admin", "invalid_user": True, "src_ip": "192.0.2.9", "src_port": 50000}),
    (E + "sshd[5]: Disconnected from authenticating user root 192.0.2.9 port 4 [preauth]", "auth.disconnect",
     {"user": "root", "invalid_user": False, "reason": "disconnected", "preauth": True}),
    (E + "sshd[5]: Received disconnect from 192.0.2.9 port 4:11: Bye Bye [preauth]", "auth.disconnect",
     {"src_port": 4, "code": 11}),
    (E + "sshd[5]: error: maximum authentication attempts exceeded for invalid user ftp from 192.0.2.9 "
     "port 4 ssh2 [preauth]", "auth.too_many_failures", {"user": "ftp", "invalid_user": True, "src_port": 4}),
    (E + "sshd[5]: Disconnecting authenticating user root 192.0.2.9 port 4: Too many authentication "
     "failures [preauth]", "auth.too_many_failures", {"user": "root", "src_ip": "192.0.2.9"}),
    (E + "sshd[5]: Address 192.0.2.9 maps to evil.example, but this does not map back to the address - "
     "POSSIBLE BREAK-IN ATTEMPT!", "auth.break_in_attempt",
     {"check": "address_mismatch", "src_ip": "192.0.2.9", "hostname": "evil.example"}),
    (E + "sshd[5]: User bob from 192.0.2.9 not allowed because not listed in AllowUsers", "auth.login",
     {"result": "failure", "reason": "not_allowed", "user": "bob"}),
    # A user name cannot move the address: the daemon's suffix is matched from the end.
    (E + "sshd[5]: Failed password for invalid user x from 6.6.6.6 port 1 from 192.0.2.9 port 22 ssh2",
     "auth.login", {"user": "x from 6.6.6.6 port 1", "src_ip": "192.0.2.9", "src_port": 22}),
    # Linux sample (loghub): old Red Hat `prog(pam_unix)` tags
    ("Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 "
     "tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root", "auth.login",
     {"src_host": "220-135-151-1.hinet-ip.hinet.net", "user": "root", "service": "sshd"}),
    ("Jul  7 08:06:15 combo login(pam_unix)[2421]: session opened for user root by LOGIN(uid=0)",
     "auth.session_opened", {"user": "root", "by_user": "LOGIN", "by_uid": 0, "service": "login"}),
    ("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2", "auth.login",
     {"result": "success", "user": "root", "tty": "tty2", "service": "login"}),
    ("Jul 11 11:33:13 combo gdm(pam_unix)[2803]: authentication failure; logname= uid=0 euid=0 tty=:0 "
     "ruser= rhost= ", "auth.login", {"service": "gdm", "tty": ":0", "result": "failure"}),
    ("Jul 11 11:33:17 combo gdm-binary[2803]: Couldn't authenticate user", "auth.login",
     {"service": "gdm", "result": "failure"}),
    ("Jun 18 02:08:10 combo su(pam_unix)[31791]: session opened for user cyrus by (uid=0)",
     "auth.session_opened", {"user": "cyrus", "service": "su"}),
    ("Jun 30 20:53:04 combo klogind[19272]: Authentication failed from 163.27.187.39 (163.27.187.39): "
     "Permission denied in replay cache code ", "auth.login",
     {"service": "klogind", "method": "kerberos", "src_ip": "163.27.187.39"}),
    ("Jul 10 00:00:00 combo ftpd[1]: ANONYMOUS FTP LOGIN FROM 84.102.20.2,  (anonymous)", "auth.login",
     {"result": "success", "user": "anonymous", "service": "ftpd", "src_ip": "84.102.20.2"}),
    # sudo
    (E + "sudo:    good : TTY=pts/4 ; PWD=/home/good ; USER=root ; COMMAND=/bin/cat /etc/shadow",
     "auth.sudo", {"user": "good", "tty": "pts/4", "pwd": "/home/good", "run_as": "root",
                   "command": "/bin/cat /etc/shadow", "result": "success", "service": "sudo"}),
    (E + "sudo:  alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
     "COMMAND=/usr/bin/id", "auth.sudo", {"result": "failure", "reason": "wrong_password", "attempts": 3}),
    (E + "sudo:      bob : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash",
     "auth.sudo", {"user": "bob", "result": "failure", "reason": "not_in_sudoers"}),
    (E + "sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh -c echo a ; echo b", "auth.sudo",
     {"command": "/bin/sh -c echo a ; echo b"}),
    (E + "sudo: pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 "
     "ruser=alice rhost=  user=alice", "auth.sudo", {"user": "alice", "result": "failure"}),
    (E + "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
     "auth.session_opened",
     {"user": "root", "uid": 0, "by_user": "alice", "by_uid": 1000, "service": "sudo"}),
    # su
    (E + "su[7]: (to root) alice on pts/0", "auth.su",
     {"user": "alice", "run_as": "root", "tty": "pts/0", "result": "success"}),
    (E + "su[7]: FAILED SU (to root) alice on pts/0", "auth.su", {"result": "failure", "user": "alice"}),
    (E + "su[7]: pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=pts/0 "
     "ruser=alice rhost=  user=root", "auth.su", {"user": "alice", "run_as": "root", "result": "failure"}),
    (E + "su: pam_unix(su-l:session): session opened for user good by root(uid=0)", "auth.session_opened",
     {"user": "good", "by_user": "root", "service": "su"}),
    (E + "su[7]: Successful su for root by alice", "auth.su", {"result": "success", "run_as": "root"}),
    # login, gdm
    (E + "login[9]: FAILED LOGIN (1) on '/dev/tty1' FOR 'UNKNOWN', User not known to the underlying "
     "authentication module", "auth.login", {"result": "failure", "user": "UNKNOWN", "tty": "/dev/tty1"}),
    (E + "login[9]: pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=tty1 "
     "ruser= rhost=  user=root", "auth.login", {"service": "login", "user": "root"}),
    (E + "gdm-password][2416]: pam_unix(gdm-password:session): session opened for user alice(uid=1000) by "
     "(uid=0)", "auth.session_opened", {"service": "gdm", "user": "alice"}),
    # any program's PAM lines
    (E + "CRON[77]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
     "auth.session_opened", {"service": "cron", "user": "root"}),
]

ACCOUNT_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("Jul 25 16:05:06 lj useradd[3426]: new group: name=oldboy999, GID=1004", "account.group_added",
     {"group": "oldboy999", "gid": 1004, "tool": "useradd"}),
    ("Jul 25 16:05:06 lj useradd[3426]: new user: name=oldboy999, UID=1003, GID=1004, home=/home/oldboy999, "
     "shell=/bin/bash, from=/dev/pts/0", "account.user_added",
     {"user": "oldboy999", "uid": 1003, "gid": 1004, "home": "/home/oldboy999", "shell": "/bin/bash",
      "tty": "/dev/pts/0"}),
    ("Oct  3 10:00:03 web1 usermod[901]: add 'backdoor' to group 'sudo'", "account.group_member_added",
     {"user": "backdoor", "group": "sudo", "admin_group": True}),
    (E + "useradd[3]: add 'bob' to shadow group 'users'", "account.group_member_added",
     {"shadow": True, "admin_group": False}),
    ("Jul 10 00:14:17 localhost userdel[2393]: delete user 'kali'", "account.user_deleted", {"user": "kali"}),
    ("Jul 10 00:14:17 localhost userdel[2393]: removed group 'kali' owned by 'kali'", "account.group_deleted",
     {"group": "kali", "owner": "kali"}),
    ("May 26 09:12:23 webserver userdel[2579]: delete 'myuser' from group 'sudo'",
     "account.group_member_removed", {"user": "myuser", "group": "sudo"}),
    ("Jul 25 15:56:21 lj usermod[3371]: change user 'oldboy888' shell from '/bin/bash' to '/sbin/nologin'",
     "account.user_changed", {"user": "oldboy888", "attribute": "shell", "old": "/bin/bash",
                              "new": "/sbin/nologin"}),
    (E + "usermod[4]: change user 'bob' UID from '1005' to '0'", "account.user_changed",
     {"attribute": "uid", "new": "0"}),
    (E + "usermod[4]: change user name 'bob' to 'rob'", "account.user_changed",
     {"attribute": "name", "old": "bob", "new": "rob"}),
    (E + "usermod[4]: lock user 'bob' password", "account.user_changed", {"new": "locked"}),
    (E + "groupadd[5]: group added to /etc/group: name=devs, GID=1002", "account.group_added",
     {"group": "devs", "gid": 1002, "file": "/etc/group"}),
    (E + "groupdel[5]: group 'devs' removed from /etc/group", "account.group_deleted",
     {"group": "devs", "file": "/etc/group"}),
    (E + "groupmod[5]: group changed in /etc/group (group devs/1002, new name: developers)",
     "account.group_changed", {"group": "devs"}),
    ("Jul 25 15:04:36 lj passwd: pam_unix(passwd:chauthtok): password changed for oldboy",
     "account.password_changed", {"user": "oldboy", "service": "passwd"}),
    (E + "passwd[6]: password for 'bob' changed by 'root'", "account.password_changed",
     {"user": "bob", "by": "root"}),
    (E + "chage[6]: changed password expiry for bob", "account.password_expiry_changed", {"user": "bob"}),
    (E + "gpasswd[1]: user bob removed by root from group sudo",
     "account.group_member_removed", {"user": "bob", "group": "sudo", "by": "root"}),
    (E + "gpasswd[1]: user bob added by root to group wheel", "account.group_member_added",
     {"admin_group": True, "by": "root"}),
    (E + "chsh[1]: changed user 'bob' shell to '/bin/zsh'", "account.user_changed", {"attribute": "shell"}),
    # sudoers edits, seen through sudo's command log
    (E + "sudo:     root : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/usr/sbin/visudo",
     "account.sudoers_edited", {"path": "/etc/sudoers", "user": "root"}),
    (E + "sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
     "COMMAND=sudoedit /etc/sudoers.d/90-alice",
     "account.sudoers_edited", {"path": "/etc/sudoers.d/90-alice"}),
    (E + "sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/tee -a /etc/sudoers",
     "account.sudoers_edited", {"path": "/etc/sudoers"}),
    (E + "sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/cat /etc/sudoers",
     "auth.sudo", {}),
    (E + "sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/sbin/visudo -c", "auth.sudo", {}),
]

SYSTEM_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("Dec 08 19:14:32 ns3159483 systemd[1]: robonomics.service: Main process exited, code=exited, "
     "status=1/FAILURE", "system.service_failed",
     {"unit": "robonomics.service", "phase": "exit", "code": "exited", "status": "1/FAILURE",
      "exit_status": 1}),
    ("Dec 08 19:14:32 ns3159483 systemd[1]: robonomics.service: Failed with result 'exit-code'.",
     "system.service_failed", {"unit": "robonomics.service", "phase": "result", "result": "exit-code"}),
    ("Jul 05 10:01:42 dbUbuntu systemd[1]: Failed to start dnsmasq - A lightweight DHCP and caching DNS "
     "server.", "system.service_failed",
     {"phase": "start", "unit": "dnsmasq", "description": "A lightweight DHCP and caching DNS server"}),
    ("Oct 29 11:36:47 hp-dl360g9-12 systemd[1]: Failed to start Samba SMB Daemon.", "system.service_failed",
     {"phase": "start", "description": "Samba SMB Daemon"}),
    ("Sep 12 21:37:07 cherry systemd[1]: kea-dhcp4-server.service: Control process exited, code=exited "
     "status=203", "system.service_failed", {"process": "control", "status": "203", "exit_status": 203}),
    ("Dec 23 15:05:34 fes-U36SG systemd[1]: influxdb.service: Unit entered failed state.",
     "system.service_failed", {"phase": "result"}),
    ("Dec 23 15:05:34 fes-U36SG systemd[1]: influxdb.service: Start request repeated too quickly.",
     "system.service_failed", {"phase": "start_limit"}),
    (E + "systemd[1]: anemone.service: A process of this unit has been killed by the OOM killer.",
     "system.oom_kill", {"phase": "unit", "unit": "anemone.service"}),
    ("Aug 11 09:15:29 slryzen kernel: Out of memory: Killed process 2309 (wireplumber) total-vm:401348kB, "
     "anon-rss:1536kB, file-rss:6144kB, shmem-rss:0kB, UID:1000 pgtables:136kB oom_score_adj:200",
     "system.oom_kill", {"phase": "killed", "pid": 2309, "process": "wireplumber", "cgroup": False}),
    ("Aug 11 09:18:04 slryzen kernel: claude invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|"
     "__GFP_COMP), order=0, oom_score_adj=0", "system.oom_kill", {"phase": "invoked", "process": "claude"}),
    ("Aug 11 09:18:11 slryzen kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=user.slice,"
     "mems_allowed=0,global_oom,task_memcg=/user.slice,task=claude,pid=4242,uid=1000", "system.oom_kill",
     {"phase": "details", "process": "claude", "pid": 4242, "uid": 1000, "constraint": "CONSTRAINT_NONE"}),
    (E + "kernel: [ 812.1] oom_reaper: reaped process 4242 (claude), now anon-rss:0kB, file-rss:0kB",
     "system.oom_kill", {"phase": "reaped", "pid": 4242}),
    ("Mar 10 22:02:34 monster kernel: Out of Memory: Killed process 475 (identd).", "system.oom_kill",
     {"pid": 475, "process": "identd"}),
    (E + "kernel: Memory cgroup out of memory: Killed process 99 (java) total-vm:1kB", "system.oom_kill",
     {"cgroup": True, "process": "java"}),
    ("Apr  5 12:01:23 serverwuss kernel: [ 4754.368566] pan[7253]: segfault at 8 ip 000000000048120f sp "
     "00007fff0fb361d0 error 4 in pan[400000+1fb000]", "system.segfault",
     {"process": "pan", "pid": 7253, "address": "8", "ip": "000000000048120f", "error": "4",
      "object": "pan"}),
    ("Apr  5 12:23:39 serverwuss kernel: [ 6089.911802] pan[8423] general protection ip:7fd565c807b0 "
     "sp:7fff714c4ce8 error:0 in libc-2.9.so[7fd565c00000+168000]", "system.segfault",
     {"fault": "general_protection", "pid": 8423, "object": "libc-2.9.so"}),
    (E + "kernel: [ 1.760576] blk_update_request: I/O error, dev sda, sector 0 op 0x1:(WRITE) flags 0x800 "
     "phys_seg 1 prio class 0", "kernel.io_error", {"device": "sda", "sector": 0, "op": "WRITE"}),
    (E + "kernel: Buffer I/O error on dev nvme0n1p2, logical block 1, lost async page write",
     "kernel.io_error", {"device": "nvme0n1p2", "block": 1}),
    (E + "kernel: [ 9692.841970][   C87] blk_update_request: I/O error, dev sda, sector 59046400 op "
     "0x1:(WRITE) flags 0x8004000 phys_seg 4 prio class 0", "kernel.io_error", {"sector": 59046400}),
    (E + "kernel: end_request: I/O error, dev hda, sector 1234", "kernel.io_error", {"device": "hda"}),
    (E + "kernel: print_req_error: I/O error, dev sdc, sector 2048", "kernel.io_error",
     {"device": "sdc", "sector": 2048}),
    (E + "kernel: blk_update_request: critical medium error, dev sdb, sector 8", "kernel.io_error",
     {"device": "sdb"}),
    (E + "kernel: EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory "
     "lblock 0", "kernel.fs_error", {"fs": "ext4", "device": "sda1", "level": "error"}),
    (E + "kernel: EXT4-fs (sda): I/O error while writing superblock", "kernel.fs_error",
     {"fs": "ext4", "device": "sda"}),
    (E + "kernel: XFS (dm-0): Corruption detected. Unmount and run xfs_repair", "kernel.fs_error",
     {"fs": "xfs", "device": "dm-0"}),
    (E + "kernel: EXT3-fs error (device hda1): ext3_journal_start_sb: Detected aborted journal",
     "kernel.fs_error", {"fs": "ext3"}),
    (E + "kernel: EXT4-fs (sda1): Remounting filesystem read-only", "kernel.fs_error", {"device": "sda1"}),
    (E + "kernel: sd 0:0:0:0: [sda] tag#0 FAILED Result: hostbyte=DID_ERROR driverbyte=DRIVER_OK cmd_age=0s",
     "kernel.disk_error", {"device": "sda"}),
    (E + "kernel: ata1.00: failed command: READ FPDMA QUEUED", "kernel.disk_error", {"device": "ata1.00"}),
    (E + "kernel: nvme nvme0: controller is down; will reset: CSTS=0x3, PCI_STATUS=0x10", "kernel.disk_error",
     {"device": "nvme0"}),
    ("Jul 27 14:41:57 combo kernel: Linux version 2.6.5-1.358 (bhcompile@bugs.build.redhat.com) (gcc version "
     "3.3.3 20040412 (Red Hat Linux 3.3.3-7)) #1 Sat May 8 09:04:50 EDT 2004", "system.boot",
     {"kernel_version": "2.6.5-1.358"}),
    (E + "kernel: reboot: Restarting system", "system.shutdown", {"action": "reboot"}),
    (E + "kernel: reboot: Power down", "system.shutdown", {"action": "poweroff"}),
    (E + "systemd-logind[512]: System is rebooting.", "system.shutdown", {"action": "reboot"}),
    (E + "systemd-logind[512]: System is powering down.", "system.shutdown", {"action": "poweroff"}),
    (E + "systemd[1]: Shutting down.", "system.shutdown", {"action": "shutdown"}),
    (E + "shutdown[3000]: shutting down for system reboot", "system.shutdown", {"action": "reboot"}),
    (E + "systemd-shutdownd[800]: Shutting down at Sun 2026-03-01 10:05:00 UTC (poweroff)...",
     "system.shutdown", {"action": "poweroff"}),
    ("reboot   system boot  6.1.0-18-amd64   Fri Mar  1 08:00   still running", "system.boot",
     {"kernel_version": "6.1.0-18-amd64"}),
    ("Jul 27 14:41:57 combo syslogd 1.4.1: restart.", "system.syslog_restart", {"daemon": "syslogd"}),
    (E + 'rsyslogd: [origin software="rsyslogd" swVersion="8.2302.0" x-pid="512" '
     'x-info="https://www.rsyslog.com"] start', "system.syslog_restart", {"daemon": "rsyslogd"}),
    ("Jun 19 04:09:02 combo logrotate: ALERT exited abnormally with [1]", "system.service_failed",
     {"unit": "logrotate", "exit_status": 1}),
]

GENERIC_CASES = [
    "Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster [preauth]",
    E + "systemd[1]: nginx.service: Main process exited, code=exited, status=0/SUCCESS",
    E + "kernel: EXT4-fs (sda1): mounted filesystem with ordered data mode. Opts: errors=remount-ro",
    E + "kernel: ata1: SATA link up 6.0 Gbps (SStatus 133 SControl 300)",
    E + "sudo: unable to resolve host web1: Name or service not known",
    E + "useradd[1]: something new",
    E + "sshd[1]: Server listening on 0.0.0.0 port 22.",
    E + "kernel: zoom zoom: Killed process tree",
]


@pytest.mark.parametrize("line, kind, expected", AUTH_CASES + ACCOUNT_CASES + SYSTEM_CASES)
def test_typed_lines(line: str, kind: str, expected: dict[str, Any]) -> None:
    ev = parse(line)
    assert ev.kind == kind, (line, ev.kind, fields(ev))
    got = fields(ev)
    assert {k: got.get(k) for k in expected} == expected
    assert "message" not in got  # typed events keep the text in raw only
    assert ev.raw == line


@pytest.mark.parametrize("line", GENERIC_CASES)
def test_lines_that_stay_generic(line: str) -> None:
    assert parse(line).kind == "log.line"


def test_severities() -> None:
    sev = {line: SEVERITY_NAMES[parse(line).severity] for line, _, _ in AUTH_CASES + SYSTEM_CASES}
    assert sev[AUTH_CASES[0][0]] == "notice"   # accepted login
    assert sev[AUTH_CASES[1][0]] == "warning"  # failed login
    assert sev[SYSTEM_CASES[0][0]] == "error"  # unit failed
    assert sev[E + "kernel: EXT4-fs (sda1): Remounting filesystem read-only"] == "critical"


# ---------------------------------------------------------------- journal


def test_journal_entries_go_through_the_same_parsers() -> None:
    entries = [json.loads(line) for line in JOURNAL.read_text().splitlines()]
    p = parser(now=datetime(2026, 12, 1, tzinfo=UTC), source="journal")
    recs = [p.parse_journal(e) for e in entries]
    evs = [r.event for r in recs]
    by_message = {e["MESSAGE"] if isinstance(e["MESSAGE"], str) else "binary": ev
                  for e, ev in zip(entries, evs, strict=True)}
    boot = evs[0]
    assert boot.kind == "system.boot" and fields(boot)["program"] == "kernel"
    assert boot.time_unix_nano == int(entries[0]["__REALTIME_TIMESTAMP"]) * 1000
    assert boot.source == "journal" and fields(boot)["host"] == "vm"
    failed = by_message["Failed password for invalid user admin from 203.0.113.7 port 51234 ssh2"]
    assert failed.kind == "auth.login"
    assert fields(failed).items() >= {"user": "admin", "invalid_user": True}.items()
    sudo = by_message["  deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; "
                      "COMMAND=/usr/bin/systemctl restart nginx"]
    assert sudo.kind == "auth.sudo" and fields(sudo)["command"] == "/usr/bin/systemctl restart nginx"
    binary = by_message["binary"]
    assert binary.kind == "log.line" and binary.raw == "bad utf8 \ufffd\ufffd end"
    assert fields(binary)["invalid_utf8"] is True and SEVERITY_NAMES[binary.severity] == "warning"
    assert Counter(ev.kind for ev in evs) == Counter({
        "log.line": 7, "auth.login": 2, "system.boot": 1, "auth.sudo": 1, "auth.session_opened": 1,
        "auth.invalid_user": 1})
    assert p.stats.lines == len(entries) and p.stats.invalid_utf8 == 1
    accepted(recs, now=datetime(2026, 12, 1, tzinfo=UTC))


def test_journal_entries_of_any_shape_never_fail() -> None:
    p = parser(source="journal")
    for entry in ({}, {"MESSAGE": None}, {"MESSAGE": ["x", 300, -1]}, {"MESSAGE": "a\x00b\ud800"},
                  {"MESSAGE": "Invalid user x from 1.2.3.4", "SYSLOG_IDENTIFIER": ["sshd", "sshd"],
                   "__REALTIME_TIMESTAMP": "99999999999999999999", "PRIORITY": "9", "_PID": "x"}):
        rec = p.parse_journal(entry)
        assert rec.event.kind in ("log.line", "auth.invalid_user")
        accepted([rec])


# ---------------------------------------------------------------- the loghub corpus

Rule = tuple[Callable[[str, str], bool], str, dict[str, Any]]


def _template(pattern: str, component: str | None = None) -> Callable[[str, str], bool]:
    rx = re.compile(pattern)
    return lambda comp, template: (component is None or comp == component) and rx.search(template) is not None


# Every template of each file must meet exactly one rule: the expected kind and key fields.
OPENSSH_RULES: list[Rule] = [
    (_template(r"^Failed password for invalid user "), "auth.login",
     {"result": "failure", "method": "password", "invalid_user": True, "reason": "invalid_user"}),
    (_template(r"^Failed password for <\*> from "), "auth.login",
     {"result": "failure", "method": "password", "invalid_user": False, "reason": "wrong_password"}),
    (_template(r"^Failed none for invalid user "), "auth.login", {"result": "failure", "method": "none"}),
    (_template(r"^Accepted password for "), "auth.login", {"result": "success", "method": "password"}),
    (_template(r"^message repeated <\*> times: \[ Failed password "), "auth.login",
     {"result": "failure", "method": "password"}),
    (_template(r"^reverse mapping checking getaddrinfo .* POSSIBLE BREAK-IN ATTEMPT!$"),
     "auth.break_in_attempt", {"check": "reverse_mapping"}),
    (_template(r"^Invalid user <\*> from <\*>$"), "auth.invalid_user", {"service": "sshd"}),
    (_template(r"^pam_unix\(sshd:auth\): authentication failure;"), "auth.login",
     {"result": "failure", "service": "sshd", "pam_module": "pam_unix"}),
    (_template(r"^pam_unix\(sshd:auth\): check pass; user unknown$"), "auth.invalid_user",
     {"pam_module": "pam_unix"}),
    (_template(r"^pam_unix\(sshd:session\): session opened "), "auth.session_opened", {"service": "sshd"}),
    (_template(r"^pam_unix\(sshd:session\): session closed "), "auth.session_closed", {"service": "sshd"}),
    (_template(r"^(error: )?Received disconnect from .*\[preauth\]$"), "auth.disconnect",
     {"preauth": True, "reason": "client_disconnect"}),
    (_template(r"^Received disconnect from .*: disconnected by user$"), "auth.disconnect",
     {"preauth": False}),
    (_template(r"^Connection closed by <\*> \[preauth\]$"), "auth.disconnect",
     {"reason": "connection_closed", "preauth": True}),
    (_template(r"^Did not receive identification string from "), "auth.disconnect",
     {"reason": "no_identification"}),
    (_template(r"^Disconnecting: Too many authentication failures for "), "auth.too_many_failures", {}),
    (_template(r"^PAM <\*> more authentication failures?;"), "auth.too_many_failures", {"service": "sshd"}),
    (_template(r"^(input_userauth_request: invalid user|PAM service\(sshd\) ignoring max retries|"
               r"fatal: Write failed)"), "log.line", {}),
]

LINUX_RULES: list[Rule] = [
    (_template(r"^authentication failure; .*tty=NODEVssh", "sshd(pam_unix)"), "auth.login",
     {"result": "failure", "service": "sshd", "pam_module": "pam_unix"}),
    (_template(r"^authentication failure; .*tty=:0", "gdm(pam_unix)"), "auth.login",
     {"result": "failure", "service": "gdm"}),
    (_template(r"^check pass; user unknown$"), "auth.invalid_user", {"pam_module": "pam_unix"}),
    (_template(r"^session opened for user <\*> by \(uid=<\*>\)$", "sshd(pam_unix)"), "auth.session_opened",
     {"service": "sshd"}),
    (_template(r"^session opened for user <\*> by \(uid=<\*>\)$", "su(pam_unix)"), "auth.session_opened",
     {"service": "su"}),
    (_template(r"^session opened for user <\*> by LOGIN\(uid=<\*>\)$"), "auth.session_opened",
     {"service": "login"}),
    (_template(r"^session closed for user <\*>$"), "auth.session_closed", {}),
    (_template(r"^ROOT LOGIN ON "), "auth.login", {"result": "success", "user": "root", "service": "login"}),
    (_template(r"^Couldn't authenticate user$"), "auth.login", {"result": "failure", "service": "gdm"}),
    (_template(r"^Authentication failed from <\*> \(<\*>\): ", "klogind"), "auth.login",
     {"result": "failure", "service": "klogind"}),
    (_template(r"^ANONYMOUS FTP LOGIN FROM "), "auth.login", {"result": "success", "service": "ftpd"}),
    (_template(r"^ALERT exited abnormally with \[1\]$", "logrotate"), "system.service_failed",
     {"unit": "logrotate", "exit_status": 1}),
    (_template(r"^restart\.$"), "system.syslog_restart", {}),
    (_template(r"^Linux version ", "kernel"), "system.boot", {}),
]


def _load(name: str) -> tuple[list[bytes], list[dict[str, str]]]:
    lines = (CORPUS / name).read_bytes().split(b"\r\n")  # CRLF, no final newline (SOURCE.md)
    with (CORPUS / f"{name}_structured.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == 2000
    return lines, rows


def _expectation(rules: list[Rule], component: str, template: str) -> tuple[str, dict[str, Any]]:
    hits = [(kind, attrs) for match, kind, attrs in rules if match(component, template)]
    assert len(hits) <= 1, (component, template, hits)
    return hits[0] if hits else ("log.line", {})


def _placeholders(template: str, content: str) -> list[str] | None:
    rx = "^" + re.escape(template.strip()).replace(re.escape("<*>"), "(.*?)") + "$"
    m = re.match(rx, content.strip())
    return list(m.groups()) if m else None


@pytest.mark.parametrize("name, rules, strict", [
    ("OpenSSH_2k.log", OPENSSH_RULES, True),
    ("Linux_2k.log", LINUX_RULES, False),
])
def test_corpus_every_line_typed_or_generic(name: str, rules: list[Rule], strict: bool) -> None:
    lines, rows = _load(name)
    p = parser(now=datetime(2026, 8, 1, tzinfo=UTC), source=str(CORPUS / name))
    recs = [p.parse(line) for line in lines]
    evs = [r.event for r in recs]
    expected_kinds: Counter[str] = Counter()
    for row, line, ev in zip(rows, lines, evs, strict=True):
        comp = row["Component"] if name.startswith("Linux") else "sshd"
        kind, attrs = _expectation(rules, comp, row["EventTemplate"])
        expected_kinds[kind] += 1
        assert ev.kind == kind, (row["LineId"], row["EventTemplate"], ev.kind)
        got = fields(ev)
        assert {k: got.get(k) for k in attrs} == attrs, (row["LineId"], got)
        assert ev.raw == line.decode()
        if kind == "log.line":
            assert got["message"].strip() == row["Content"].strip()
        if strict:  # OpenSSH: every line's header is the sshd one loghub split out
            assert got["host"] == "LabSZ" and got["pid"] == int(row["Pid"])
    # Counts derived from the CSV, per kind and for the headline templates.
    assert Counter(ev.kind for ev in evs) == expected_kinds
    assert p.stats.typed + p.stats.generic == p.stats.lines == len(rows)
    assert p.stats.generic == expected_kinds["log.line"]
    accepted(recs, now=datetime(2026, 8, 1, tzinfo=UTC))


def test_openssh_corpus_values_match_the_templates() -> None:
    """The values loghub's templates cut out (<*>) are the ones the parser reports."""
    lines, rows = _load("OpenSSH_2k.log")
    p = parser(now=datetime(2026, 8, 1, tzinfo=UTC))
    slots = {
        "Failed password for <*> from <*> port <*> ssh2": ("user", "src_ip", "src_port"),
        "Failed password for invalid user <*> from <*> port <*> ssh2": ("user", "src_ip", "src_port"),
        "Accepted password for <*> from <*> port <*> ssh2": ("user", "src_ip", "src_port"),
        "Invalid user <*> from <*>": ("user", "src_ip"),
        "reverse mapping checking getaddrinfo for <*> [<*>] failed - POSSIBLE BREAK-IN ATTEMPT!":
            ("hostname", "src_ip"),
    }
    checked: Counter[str] = Counter()
    for row, line in zip(rows, lines, strict=True):
        names = slots.get(row["EventTemplate"])
        if names is None:
            continue
        values = _placeholders(row["EventTemplate"], row["Content"])
        assert values is not None
        got = fields(p.parse(line).event)
        assert tuple(str(got[n]) for n in names) == tuple(values), row["LineId"]
        checked[row["EventTemplate"]] += 1
    template_counts = Counter(r["EventTemplate"] for r in rows)
    assert checked == Counter({t: template_counts[t] for t in slots})
    # The headline figures of the issue, straight from the CSV.
    failed = sum(n for t, n in template_counts.items() if t.startswith("Failed password for"))
    p2 = parser(now=datetime(2026, 8, 1, tzinfo=UTC))
    evs = [p2.parse(line).event for line in lines]
    sshd_failed_passwords = [e for e in evs if e.kind == "auth.login" and "pam_module" not in fields(e)
                             and fields(e)["result"] == "failure" and fields(e)["method"] == "password"
                             and "repeated" not in fields(e)]
    assert len(sshd_failed_passwords) == failed
    break_ins = sum(n for t, n in template_counts.items() if "POSSIBLE BREAK-IN ATTEMPT" in t)
    assert sum(e.kind == "auth.break_in_attempt" for e in evs) == break_ins
    pam_failures = sum(n for t, n in template_counts.items()
                       if t.startswith("pam_unix(sshd:auth): authentication failure;"))
    pam_events = [e for e in evs if e.kind == "auth.login" and fields(e).get("pam_module") == "pam_unix"]
    assert len(pam_events) == pam_failures


def test_linux_corpus_kinds_by_component() -> None:
    lines, rows = _load("Linux_2k.log")
    p = parser(now=datetime(2026, 8, 1, tzinfo=UTC))
    by_component: dict[str, Counter[str]] = {}
    for row, line in zip(rows, lines, strict=True):
        by_component.setdefault(row["Component"], Counter())[p.parse(line).event.kind] += 1
    components = Counter(r["Component"] for r in rows)
    # Whole components that are typed line for line.
    for comp in ("su(pam_unix)", "sshd(pam_unix)", "logrotate", "login(pam_unix)", "gdm(pam_unix)"):
        assert by_component[comp]["log.line"] == 0 and sum(by_component[comp].values()) == components[comp]
    templates = Counter((r["Component"], r["EventTemplate"]) for r in rows)
    assert by_component["su(pam_unix)"] == Counter({
        "auth.session_opened": templates[("su(pam_unix)", "session opened for user <*> by (uid=<*>)")],
        "auth.session_closed": templates[("su(pam_unix)", "session closed for user <*>")]})
    assert by_component["kernel"]["system.boot"] == 1
    assert by_component["kernel"]["log.line"] == components["kernel"] - 1
    assert by_component["syslogd 1.4.1"]["system.syslog_restart"] == components["syslogd 1.4.1"]
