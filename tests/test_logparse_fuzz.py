"""The parsers on hostile input: any bytes, mutated corpus lines, syslog-shaped lines with random
fields, and journal entries of any shape each give exactly one event record that the collector's
own translation accepts, without an exception and in bounded time."""

from __future__ import annotations

import os
import random
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_logparse import ACCOUNT_CASES, AUTH_CASES, CORPUS, GENERIC_CASES, SYSTEM_CASES
from warden.agent.logparse import MAX_FIELD_BYTES, MAX_FIELDS, MAX_RAW_BYTES, LineParser
from warden.agent.logparse.timestamps import RFC3164, Clock
from warden.collector.translate import Limits, batch_from_proto
from warden.v1 import collector_pb2, records_pb2

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NOW_NS = int(NOW.timestamp()) * 10**9
# The collector's grammar (collector/translate.py), restated so a drift there is noticed here.
KIND = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*\Z")
KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.]*\Z")

CORPUS_LINES = [line for name in ("OpenSSH_2k.log", "Linux_2k.log")
                for line in (CORPUS / name).read_bytes().split(b"\r\n")]
CASE_LINES = [line.encode() for line, _, _ in AUTH_CASES + ACCOUNT_CASES + SYSTEM_CASES] + \
    [line.encode() for line in GENERIC_CASES]
SEEDS = CORPUS_LINES[::7] + CASE_LINES
MESSAGES = [line.split(b": ", 1)[-1] for line in SEEDS]
PROGRAMS = ["sshd", "sshd-session", "sudo", "su", "login", "-- root", "gdm-password]", "sshd(pam_unix)",
            "su(pam_unix)", "useradd", "usermod", "userdel", "groupadd", "gpasswd", "passwd", "chage",
            "kernel", "systemd", "systemd-logind", "systemd-oomd", "syslogd 1.4.1", "rsyslogd", "logrotate",
            "klogind", "ftpd", "CRON", "init", "shutdown", "x"]
# Pieces the parsers look for: separators, anchors and bytes that break decoding.
TOKENS = [b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"[", b"]", b": ", b" from ", b" port ", b"(", b")",
          b"'", b"\"", b"=", b" ; ", b"COMMAND=", b" [preauth]", b"<34>1 ", b"9" * 25, b"\n", b"\r", b" ",
          b"\t", "\u00e9\u4e2d\U0001f600".encode(), b"pam_unix(sshd:auth): ", b"message repeated 3 times: [ ",
          b"uid=", b"user ", b"invalid user ", b"Dec 31 23:59:59 ", b"2026-13-45T99:99:99Z "]

# WARDEN_FUZZ_EXAMPLES=20000 for a long run by hand; CI keeps the default.
EXAMPLES = int(os.environ.get("WARDEN_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(recs: list[records_pb2.Record], now_ns: int = NOW_NS) -> None:
    for rec in recs:
        assert rec.WhichOneof("kind") == "event"
        ev = rec.event
        assert KIND.match(ev.kind), ev.kind
        assert 0 < ev.time_unix_nano <= now_ns + 300 * 10**9
        assert len(ev.raw.encode()) <= MAX_RAW_BYTES and len(ev.source.encode()) <= MAX_FIELD_BYTES
        assert len(ev.fields) <= MAX_FIELDS
        for key, value in ev.fields.items():
            assert KEY.match(key), key
            which = value.WhichOneof("kind")
            assert which is not None
            if which == "string_value":
                assert len(value.string_value.encode()) <= MAX_FIELD_BYTES
    # The collector's own translation is the final word (it raises Refused on any violation).
    for i in range(0, len(recs), 5000):
        chunk = recs[i:i + 5000]
        batch = collector_pb2.Batch(first_seq=1, last_seq=len(chunk), records=chunk)
        batch_from_proto(batch, "host", "spool", Limits(), now_ns)


def make_parser() -> LineParser:
    return LineParser("/var/log/auth.log", tz=ZoneInfo("Europe/Berlin"), now=lambda: NOW)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    line = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("insert", "delete", "replace", "duplicate", "truncate")))
        pos = draw(st.integers(0, len(line)))
        if op == "insert":
            line[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del line[pos:pos + draw(st.integers(1, 16))]
        elif op == "replace" and pos < len(line):
            line[pos] = draw(st.integers(0, 255))
        elif op == "duplicate":
            end = min(len(line), pos + draw(st.integers(1, 64)))
            line[pos:pos] = line[pos:end] * draw(st.integers(1, 50))
        else:
            del line[pos:]
    return bytes(line)


@st.composite
def syslog_lines(draw: st.DrawFn) -> bytes:
    """A well-formed header (one of the formats) in front of a known message whose words are
    partly replaced by arbitrary text, so the typed parsers see hostile field values."""
    header = draw(st.sampled_from((
        b"Mar  1 10:00:00 host ", b"Feb 29 23:59:59 host ", b"Dec 31 23:59:59 host ",
        b"<38>Jan  1 00:00:00 host ", b"2026-02-28T23:59:59.123456789+01:00 host ", b"")))
    program = draw(st.sampled_from(PROGRAMS)).encode()
    pid = draw(st.sampled_from((b"", b"[1]", b"[99999999999999999999999]", b"[x]")))
    words = draw(st.sampled_from(MESSAGES)).split(b" ")
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, max(0, len(words) - 1)))
        text = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
        if words:
            words[i] = text
    return header + program + pid + b": " + b" ".join(words)


@SETTINGS
@given(st.binary(max_size=4096))
def test_any_bytes_give_one_accepted_record(line: bytes) -> None:
    p = make_parser()
    check([p.parse(line)])
    assert p.stats.lines == 1 and p.stats.typed + p.stats.generic == 1


@SETTINGS
@given(st.lists(mutated(), min_size=1, max_size=20))
def test_mutated_corpus_lines(lines: list[bytes]) -> None:
    p = make_parser()  # one parser for the batch: its caches see a stream, as in the agent
    check([p.parse(line) for line in lines])
    assert p.stats.lines == len(lines) == p.stats.typed + p.stats.generic


@SETTINGS
@given(st.lists(syslog_lines(), min_size=1, max_size=20))
def test_syslog_shaped_lines_with_hostile_fields(lines: list[bytes]) -> None:
    p = make_parser()
    check([p.parse(line) for line in lines])


JOURNAL_VALUES = (st.text(max_size=64) | st.integers(-2**70, 2**70) | st.none() | st.booleans()
                  | st.lists(st.integers(-5, 300), max_size=32) | st.lists(st.text(max_size=8), max_size=3))
JOURNAL_KEYS = st.sampled_from(("MESSAGE", "__REALTIME_TIMESTAMP", "SYSLOG_IDENTIFIER", "_COMM", "_PID",
                                "SYSLOG_PID", "_HOSTNAME", "PRIORITY", "SYSLOG_FACILITY", "_SYSTEMD_UNIT"))


@SETTINGS
@given(st.dictionaries(JOURNAL_KEYS, JOURNAL_VALUES), st.sampled_from(PROGRAMS), syslog_lines())
def test_journal_entries_of_any_shape(entry: dict[str, Any], program: str, line: bytes) -> None:
    p = make_parser()
    message = line.split(b": ", 1)[-1].decode("utf-8", "surrogateescape")
    typed_entry = {"MESSAGE": message, "SYSLOG_IDENTIFIER": program,
                   "__REALTIME_TIMESTAMP": "1772000000000000"}
    check([p.parse_journal(entry), p.parse_journal(typed_entry)])


ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"),
         ZoneInfo("Asia/Kolkata")]
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2200, 1, 1)),
       st.sampled_from(ZONES), st.integers(1, 12), st.integers(1, 31), st.integers(0, 23),
       st.integers(0, 59), st.integers(0, 59))
def test_rfc3164_year_inference_property(now: datetime, tz: Any, month: int, day: int, hour: int, minute: int,
                                         second: int) -> None:
    """The inferred time is never more than a day ahead of now, shows the line's own wall-clock
    time in the zone, and is the latest such time (no valid later year is skipped)."""
    aware_now = now.replace(tzinfo=tz)
    now_ns = int(aware_now.timestamp()) * 10**9
    clock = Clock(tz)
    m = RFC3164.match(f"{MONTHS[month - 1]} {day:2d} {hour:02d}:{minute:02d}:{second:02d}")
    assert m is not None
    t = clock.rfc3164(m, aware_now, now_ns)
    try:
        datetime(2000, month, day)  # 2000 is a leap year: every date that can exist at all
    except ValueError:
        assert t is None
        return
    assert t is not None and t <= now_ns + 86_400 * 10**9
    local = datetime.fromtimestamp(t // 10**9, tz)
    wall = datetime(local.year, month, day, hour, minute, second, tzinfo=tz)
    if wall.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
        # Not in a DST gap: the line's wall time comes back exactly.
        assert (local.month, local.day, local.hour, local.minute, local.second) == \
            (month, day, hour, minute, second)
    if (month, day) != (2, 29):
        assert now_ns - t <= (366 + 1) * 86_400 * 10**9
    else:
        assert now_ns - t <= (8 * 366 + 1) * 86_400 * 10**9


def test_fuzz_loop_20k_mutations_in_bounded_time() -> None:
    """A plain random loop (no shrinking overhead) over many more inputs than hypothesis runs."""
    rng = random.Random(20260301)
    p = make_parser()
    recs: list[records_pb2.Record] = []
    start = time.monotonic()
    for _ in range(20_000):
        line = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 5)):
            pos = rng.randint(0, len(line))
            r = rng.random()
            if r < 0.4:
                line[pos:pos] = rng.choice(TOKENS) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 8))
            elif r < 0.6:
                del line[pos:pos + rng.randint(1, 16)]
            elif r < 0.8 and pos < len(line):
                line[pos] = rng.randrange(256)
            elif r < 0.95:
                line[pos:pos] = line[pos:pos + rng.randint(1, 32)] * rng.randint(1, 200)
            else:
                del line[pos:]
        recs.append(p.parse(bytes(line)))
    elapsed = time.monotonic() - start
    assert elapsed < 20, elapsed
    assert p.stats.lines == 20_000 == p.stats.typed + p.stats.generic
    assert p.stats.typed > 2_000  # mutations leave many lines recognisable: the typed paths ran
    check(recs)


PATHOLOGICAL = [
    # long runs of the separators the typed patterns anchor on, after each message prefix
    prefix + filler * (65_000 // len(filler))
    for prefix in ("sshd[1]: Failed password for invalid user ", "sshd[1]: Invalid user ",
                   "sshd[1]: Connection closed by invalid user ", "sshd[1]: Received disconnect from ",
                   "sshd[1]: User ", "sshd[1]: pam_unix(sshd:session): session opened for user ",
                   "sudo: alice : ", "su[1]: (to root) ", "login[1]: FAILED LOGIN (1) on '",
                   "useradd[1]: new user: ", "kernel: [", "kernel: x[1]: segfault at ", "kernel: traps: ",
                   "kernel: EXT4-fs error (device ", "systemd[1]: Failed to start ",
                   "systemd[1]: x.service: Main process exited, code=exited, status=")
    for filler in (" from x port 1", " ", "a", "(", "[", "'", ": ", " by ", " on ", "=", "x ", "1", "\\\"",
                   " from x not allowed because ", "user x 1.2.3.4 port 1", "(uid=1) by ")
]


def test_pathological_and_huge_lines_finish_quickly() -> None:
    p = make_parser()
    worst = 0.0
    recs = []
    huge = [b"<1>1 - h a - - [" + b'"' * 1_000_000, b"Mar  1 10:00:00 h " + b" " * 1_000_000,
            b"Mar  1 10:00:00 h sshd[1]: Invalid user " + b"a from " * 150_000, b"x" * 1_000_000,
            b"\x00\xff" * 500_000]
    for line in [b"Mar  1 10:00:00 h " + body.encode() for body in PATHOLOGICAL] + huge:
        start = time.perf_counter()
        recs.append(p.parse(line))
        worst = max(worst, time.perf_counter() - start)
    assert worst < 1.0, worst  # linear scans: milliseconds in practice, a second on a loaded CI box
    check(recs)


def test_time_never_runs_ahead_even_when_now_is_odd() -> None:
    """Year guesses and explicit future times never give a time the collector would refuse."""
    for now in (datetime(1971, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
                datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC),
                datetime(2200, 3, 1, tzinfo=UTC) - timedelta(days=1)):
        p = LineParser("x", tz=UTC, now=lambda now=now: now)
        now_ns = int(now.timestamp()) * 10**9
        recs = [p.parse(line) for line in (b"Dec 31 23:59:59 h a: x", b"Jan  1 00:00:00 h a: x",
                                           b"Feb 29 00:00:00 h a: x", b"2199-01-01T00:00:00Z h a: x",
                                           b"1969-12-31T23:59:59Z h a: x")]
        check(recs, now_ns)


def test_source_and_zone_names_are_made_safe() -> None:
    p = LineParser("/var/log/\udcff" + "x" * 5000, tz=UTC, now=lambda: NOW)
    check([p.parse(b"Mar  1 10:00:00 h a: x")])


def test_module_has_no_stray_state_between_parsers() -> None:
    # Two parsers with different clocks do not share year caches.
    a = LineParser("a", tz=UTC, now=lambda: datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))
    b = LineParser("b", tz=UTC, now=lambda: datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    line = b"Dec 31 23:59:00 h a: x"
    assert a.parse(line).event.time_unix_nano != b.parse(line).event.time_unix_nano



# encode() takes a shortcut for the common line (valid UTF-8, no NUL, `Mmm dd hh:mm:ss host
# prog[pid]: `): its records must be the general path's, byte for byte. FITS are the logs
# probe's extra limits (max raw bytes, time for out-of-range times, latest time accepted).
FITS = [None, (16 * 1024, NOW_NS, NOW_NS + 3000 * 10**9), (256, NOW_NS, NOW_NS + 5), (300, 7, 8)]


def _general_path(p: LineParser, line: bytes, fit: Any) -> bytes:
    import warden.agent.logparse as logparse

    saved = logparse.RFC3164_HEADER
    logparse.RFC3164_HEADER = re.compile(r"(?!)")  # never matches: no shortcut
    try:
        return p.encode(line, fit)
    finally:
        logparse.RFC3164_HEADER = saved


def _same_records(lines: list[bytes], tz: Any = None) -> None:
    tz = tz or ZoneInfo("Europe/Berlin")
    for fit in FITS:
        fast = LineParser("/var/log/auth.log", tz=tz, now=lambda: NOW)
        slow = LineParser("/var/log/auth.log", tz=tz, now=lambda: NOW)
        for line in lines:
            a, b = fast.encode(line, fit), _general_path(slow, line, fit)
            assert a == b, (line, fit, records_pb2.Record.FromString(a), records_pb2.Record.FromString(b))
        assert fast.stats == slow.stats


def test_shortcut_records_equal_the_general_path_on_the_corpus() -> None:
    odd = [b"Dec 31 23:59:59 h sshd[1]: x", b"Feb 29 00:00:00 h a: x",
           b"Mar  1 12:04:00 h a[1]: " + b"x" * 20_000,
           b"Mar  1 10:00:00 h kernel: oom_reaper: reaped process 1 (x)",
           b"Mar  1 10:00:00 h kernel[5]: oom_reaper: reaped process 1 (x)"]  # pid in header and message
    _same_records(CORPUS_LINES + CASE_LINES + odd)


@SETTINGS
@given(st.lists(mutated() | syslog_lines(), min_size=1, max_size=20))
def test_shortcut_records_equal_the_general_path(lines: list[bytes]) -> None:
    _same_records(lines)


def test_records_are_what_the_agent_builder_makes() -> None:
    """The wire bytes written directly decode to what `records.event` builds from the same
    (already limited) fields."""
    from warden.agent import records
    from warden.agent.logparse import _Encoder

    rng = random.Random(7)
    values: list[Any] = ["", "x", "sshd", "\u00e9" * 200, 0, 1, -1, 2**63 - 1, -2**63, True, False, 0.0, -2.5,
                         1e300]
    enc = _Encoder("/var/log/auth.log")
    for _ in range(3000):
        fields = {f"k{rng.randrange(40)}": rng.choice(values) for _ in range(rng.randrange(MAX_FIELDS))}
        kind = rng.choice(["auth.login", "log.line", ""])
        severity = rng.choice(["debug", "info", "notice", "warning", "error", "critical"])
        raw, time_ns = rng.choice(["", "a line", "\u00e9" * 3000]), rng.choice([0, 1, NOW_NS])
        want = records.event(kind, severity, fields, raw, "/var/log/auth.log", time_ns)
        assert records_pb2.Record.FromString(enc.record(kind, severity, fields, raw, time_ns)) == want
        want.event.fields["truncated"].bool_value = True
        assert records_pb2.Record.FromString(enc.record(kind, severity, fields, raw, time_ns, True)) == want


def test_rfc3164_second_cache_agrees_with_rfc3164() -> None:
    from warden.agent.logparse.syslog import RFC3164_HEADER

    rng = random.Random(3)
    for tz in ZONES:
        clock, fresh = Clock(tz), Clock(tz)
        for _ in range(2000):
            now = datetime(2026, 1, 1, tzinfo=tz) + timedelta(seconds=rng.randrange(400 * 86_400))
            now_ns = int(now.timestamp()) * 10**9
            ts = f"{MONTHS[rng.randrange(12)]} {rng.randint(1, 31):2d} {rng.randrange(24):02d}:" \
                 f"{rng.randrange(60):02d}:{rng.randrange(61):02d}" + rng.choice(["", ".5", ".123456789"])
            m = RFC3164_HEADER.match(ts + " h a: x")
            assert m is not None and m[1] == ts
            want = fresh.rfc3164(RFC3164.match(ts), now, now_ns)  # type: ignore[arg-type]
            assert clock.rfc3164_text(ts, m, 2, now, now_ns) == want
            assert clock.rfc3164_text(ts, m, 2, now, now_ns) == want  # and from the cache
