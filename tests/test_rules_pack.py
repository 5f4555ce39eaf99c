"""The default rule pack (rules/*.yml): its unit tests (rules/tests/*.yml), `rules check`, and a
replay of a real attacked sshd log (the loghub OpenSSH sample) through the real parser and engine.

The corpus replay checks ssh_brute_force against an independent count made from the raw lines with
a plain regex: the addresses with five or more `Failed password` lines within 60 s."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from warden.agent.logparse import LineParser
from warden.collector import cli
from warden.collector.records import Event
from warden.collector.rules.engine import RuleEngine
from warden.collector.rules.loader import load_rules
from warden.collector.rules.spec import load_yaml
from warden.collector.rules.testing import run_file
from warden.collector.translate import Limits, batch_from_proto
from warden.v1 import collector_pb2

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
RULE_TESTS = sorted((RULES / "tests").glob("*.yml"))
CORPUS = ROOT.parent / "shared" / "corpus" / "loghub"
OPENSSH = CORPUS / "OpenSSH_2k.log"
S = 1_000_000_000
TICK = 10 * S  # the collector's evaluation interval
HOST = "labsz"
# The sample has no year; the parser guesses the most recent past one (2025, a Wednesday Dec 10).
PARSE_NOW = datetime(2026, 8, 1, tzinfo=UTC)


# --- the unit tests of the pack ----------------------------------------------------------------


def test_every_rule_file_has_a_test_file() -> None:
    rule_files = sorted(p.name for p in RULES.glob("*.yml"))
    assert rule_files and [p.name for p in RULE_TESTS] == rule_files
    for path in RULE_TESTS:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
        assert [(path.parent / f).resolve() for f in doc["rule_files"]] == [(RULES / path.name).resolve()]


def test_every_rule_is_tested_firing_and_not_firing() -> None:
    """Each rule of the pack has a check where it fires and one where it must stay quiet."""
    ids = {r.common.id for r in load_rules(RULES).rules}
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
        for t in doc["tests"]:
            for check in t.get("alerts", []):
                (fires if check.get("firing") else quiet).add(check["alertname"])
    assert len(ids) == 37
    assert ids - fires == set(), "rules never seen firing"
    assert ids - quiet == set(), "rules never checked quiet"


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_rule_unit_tests(path: Path) -> None:
    results = run_file(path)
    assert results, f"{path.name} has no tests"
    failed = [r for r in results if not r.ok]
    report = "\n".join(f"FAIL {r.name}\n" + "\n".join(f"    {f}" for f in r.failures) for r in failed)
    assert not failed, f"{len(failed)} of {len(results)} tests failed in {path.name}:\n{report}"


def test_cli_rules_test_runs_the_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "test", *map(str, RULE_TESTS)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert re.search(r"^(\d+)/\1 tests passed$", out, re.M), out


# --- rules check ---------------------------------------------------------------------------------


def test_rules_check_accepts_the_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "check", str(RULES)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "OK: 37 rules (19 event, 5 metric, 13 state) in 7 file(s)"


def test_rules_check_reports_a_broken_copy_with_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for p in RULES.glob("*.yml"):
        shutil.copy(p, tmp_path / p.name)
    disk = tmp_path / "disk.yml"  # a typo in an optional field
    lines = disk.read_text(encoding="utf-8").splitlines(keepends=True)
    typo = next(i for i, line in enumerate(lines) if "Above 95 %" in line)
    lines[typo] = lines[typo].replace("description:", "descripton:")
    disk.write_text("".join(lines), encoding="utf-8")
    logins = tmp_path / "logins.yml"  # a value that does not parse
    lines = logins.read_text(encoding="utf-8").splitlines(keepends=True)
    window = next(i for i, line in enumerate(lines) if "window: 60s" in line)
    lines[window] = lines[window].replace("window: 60s", "window: 60 seconds")
    logins.write_text("".join(lines), encoding="utf-8")

    assert cli.main(["rules", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (f"{disk}:{typo + 1}: rule disk_space_critical: unknown field 'descripton' "
            f"(did you mean 'description'?)") in err
    assert f"{logins}:{window + 1}: rule ssh_brute_force.count: window: invalid duration '60 seconds'" in err
    assert err.rstrip().endswith("2 error(s)")


# --- the loghub OpenSSH corpus through the real parser and engine ------------------------------------

# sshd's line for a failed password, also inside rsyslog's "message repeated N times: [ ... ]".
FAILED = re.compile(r"(?P<ts>\w{3} +\d+ \d\d:\d\d:\d\d) \S+ sshd\[\d+\]: "
                    r"(?:message repeated (?P<n>\d+) times: \[ ?)?"
                    r"Failed password for (?:invalid user )?.* from (?P<ip>\S+) port \d+ ssh2\]?")
INVALID = re.compile(r"(?P<ts>\w{3} +\d+ \d\d:\d\d:\d\d) \S+ sshd\[\d+\]: Invalid user .* from (?P<ip>\S+)")
# Appended to the replay: one mistyped password, then the right one, from an address the sample
# never shows (its last line is at 11:04:..).
EXTRA = [
    b"Dec 10 11:10:00 LabSZ sshd[31000]: Failed password for fztu from 198.51.100.200 port 50000 ssh2",
    b"Dec 10 11:10:04 LabSZ sshd[31000]: Accepted password for fztu from 198.51.100.200 port 50000 ssh2",
]
FRESH = "198.51.100.200"


def _seconds(ts: str) -> float:
    return datetime.strptime("2025 " + " ".join(ts.split()), "%Y %b %d %H:%M:%S").timestamp()


def _bursts(times: dict[str, list[float]], threshold: int, window: float) -> set[str]:
    """Addresses with `threshold` occurrences spanning less than `window` seconds."""
    out = set()
    for ip, ts in times.items():
        ts = sorted(ts)
        if any(ts[i + threshold - 1] - ts[i] < window for i in range(len(ts) - threshold + 1)):
            out.add(ip)
    return out


def _corpus_lines() -> list[bytes]:
    if not OPENSSH.exists():
        pytest.skip(f"loghub corpus not found at {OPENSSH}")
    return OPENSSH.read_bytes().split(b"\r\n") + EXTRA  # CRLF, no final newline (SOURCE.md)


def _failures(lines: list[bytes], weighted: bool) -> dict[str, list[float]]:
    """sshd password failures per address: one per line, or with rsyslog's repeats expanded."""
    out: dict[str, list[float]] = defaultdict(list)
    for line in lines:
        m = FAILED.fullmatch(line.decode())
        if m:
            n = int(m["n"]) if weighted and m["n"] else 1
            out[m["ip"]] += [_seconds(m["ts"])] * n
    return out


class Replay:
    def __init__(self, engine: RuleEngine, events: list[Event]) -> None:
        self.engine = engine
        self.events = events
        self.fired: dict[str, list[dict[str, str]]] = defaultdict(list)


@pytest.fixture(scope="module")
def replay() -> Replay:
    lines = _corpus_lines()
    parser = LineParser("/var/log/auth.log", tz=UTC, now=lambda: PARSE_NOW)
    recs = [parser.parse(line) for line in lines]
    now_ns = int(PARSE_NOW.timestamp()) * S
    batch = batch_from_proto(collector_pb2.Batch(first_seq=1, last_seq=len(recs), records=recs),
                             HOST, "spool-1", Limits(), now_ns)
    events = [r for r in batch.records if isinstance(r, Event)]
    assert len(events) == len(lines)
    events.sort(key=lambda e: e.time_ns)  # stable: lines of one second keep their order

    engine = RuleEngine(load_rules(RULES))
    engine.upsert_host(HOST, {"tz": "UTC"})
    r = Replay(engine, events)

    def record(transitions: list[Any]) -> None:
        for tr in transitions:
            if tr.state == "firing":
                r.fired[tr.rule_id].append(
                    {k: v for k, v in tr.labels.items() if k not in ("alertname", "severity", "host")})

    next_tick = events[0].time_ns
    for ev in events:
        while next_tick <= ev.time_ns:  # the collector ticks as time advances
            record(engine.tick(next_tick))
            next_tick += TICK
        record(engine.process(HOST, [ev], ev.time_ns))  # the agent's clock is the collector's
    record(engine.tick(next_tick))
    return r


def test_corpus_single_failures_are_not_brute_force(replay: Replay) -> None:
    failures = _failures(_corpus_lines(), weighted=False)
    singles = {ip for ip, ts in failures.items() if len(ts) == 1}
    assert FRESH in singles
    assert len(singles) > 1, "the sample itself has addresses with a single failed password"
    flagged = {a["src_ip"] for a in replay.fired["ssh_brute_force"]}
    assert singles & flagged == set()
    # the mistyped password followed by the right one is no guessed password either
    assert all(a.get("src_ip") != FRESH for alerts in replay.fired.values() for a in alerts)


def test_corpus_invalid_user_bursts_match_an_independent_count(replay: Replay) -> None:
    times: dict[str, list[float]] = defaultdict(list)
    for line in _corpus_lines():
        m = INVALID.fullmatch(line.decode())
        if m:
            times[m["ip"]].append(_seconds(m["ts"]))
    expected = _bursts(times, 5, 300.0)
    assert expected
    assert {a["src_ip"] for a in replay.fired["invalid_user_burst"]} == expected


def test_corpus_rules_fired_without_errors(replay: Replay) -> None:
    print(f"\n{len(replay.events)} events replayed; alerts that fired:")
    for rule_id in sorted(replay.fired):
        alerts = replay.fired[rule_id]
        shown = ", ".join(sorted(",".join(f"{k}={v}" for k, v in a.items()) or "-" for a in alerts))
        print(f"  {rule_id}: {len(alerts)}  {shown}")
    assert not replay.engine.errors, dict(replay.engine.last_error)
    assert replay.engine.evaluated == len(replay.events)
    # Only attack rules (and host_silent: the replay has gaps of minutes) fire on this sample.
    assert set(replay.fired) <= {"ssh_brute_force", "invalid_user_burst", "host_silent"}


def test_corpus_brute_force_matches_an_independent_count(replay: Replay) -> None:
    # rsyslog's "message repeated N times: [ Failed password ... ]" counts N (count.weight).
    expected = _bursts(_failures(_corpus_lines(), weighted=True), 5, 60.0)
    assert expected, "the sample holds brute-force attacks"
    flagged = {a["src_ip"] for a in replay.fired["ssh_brute_force"]}
    assert flagged == expected
    assert {"5.36.59.76", "106.5.5.195"} <= flagged  # the two attacks seen only through repeats
