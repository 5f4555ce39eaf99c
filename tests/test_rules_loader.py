"""Loading rule files (every author error as file:line), the `rules test` runner and its series
notation, and the engine's robustness: a rule that raises, a reload, a restart (snapshot/restore)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from warden.collector import cli
from warden.collector.records import Event, InventorySection
from warden.collector.rules.engine import RuleEngine
from warden.collector.rules.loader import RuleErrors, RuleSet, check, load_rules
from warden.collector.rules.matchers import FieldMatch
from warden.collector.rules.model import RuleCommon, Template, Transition
from warden.collector.rules.spec import RuleError
from warden.collector.rules.testing import expand_values, run_file

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
S = 1_000_000_000
T0 = 1_767_607_200 * S  # 2026-01-05T10:00:00Z, a Monday


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors(*paths: Path) -> list[str]:
    ruleset, errs = check(list(paths))
    assert ruleset is None and errs, "expected the rules to be refused"
    return [str(e) for e in errs]


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return 1 + next(i for i, line in enumerate(lines) if needle in line)


GOOD_RULE = """
    rules:
      - id: {rid}
        kind: event
        severity: warning
        summary: "{{{{ host }}}}: {{{{ user }}}} logged in"
        match: {{kind: auth.login, fields: {{result: success}}}}
"""


# --- loading: every problem as file:line ---------------------------------------------------------


def test_invalid_yaml_is_reported_with_file_and_line(tmp_path: Path) -> None:
    indent = write(tmp_path, "indent.yml", """
        rules:
          - id: a
            kind: event
          severity: info
    """)
    unclosed = write(tmp_path, "unclosed.yml", """
        rules: [
          {id: b, kind: event
    """)
    dup = write(tmp_path, "dup.yml", """
        rules:
          - id: c
            kind: event
            severity: info
            severity: warning
    """)
    got = errors(indent, unclosed, dup)
    assert len(got) == 3
    assert any(e.startswith(f"{indent}:4: invalid YAML: expected <block end>") for e in got), got
    assert any(e.startswith(f"{unclosed}:3: invalid YAML: ") for e in got), got
    assert f"{dup}:5: duplicate key 'severity'" in got


def test_unknown_fields_suggest_the_right_name(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yml", """
        rules:
          - id: brute
            kind: event
            severity: critical
            summary: "{{ count }} failures from {{ src_ip }}"
            match: {kind: auth.login, fields: {result: failure}}
            count: {threshold: 5, window: 60s, bye: [src_ip]}
          - id: slow
            kind: event
            severity: info
            summary: "login"
            match: {kind: auth.login}
            keep_firing_fro: 1h
    """)
    top = write(tmp_path, "top.yml", """
        rule:
          - id: x
    """)
    got = errors(path, top)
    by, keep = line_of(path, "bye:"), line_of(path, "keep_firing_fro")
    assert f"{path}:{by}: rule brute.count: unknown field 'bye' (did you mean 'by'?)" in got
    assert (f"{path}:{keep}: rule slow: unknown field 'keep_firing_fro' "
            f"(did you mean 'keep_firing_for'?)") in got
    assert f"{top}:1: file: unknown field 'rule' (did you mean 'rules'?)" in got


def test_a_typo_in_a_required_field_still_names_the_rule_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yml", """
        rules:
          - id: disk
            kind: metric
            severity: warning
            summary: "{{ value }}"
            metric: system_filesystem_used_percent
            treshold: {op: ">", value: 85}
    """)
    (msg,) = errors(path)
    assert msg.startswith(f"{path}:") and "rule disk" in msg and "'threshold'" in msg, msg


def test_unknown_or_missing_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yml", """
        rules:
          - id: a
            kind: metrics
            severity: info
            summary: s
          - id: b
            severity: info
            summary: s
    """)
    got = errors(path)
    assert f"{path}:3: file.rules[0]: kind must be one of metric, event, state, not 'metrics'" in got
    assert f"{path}:6: file.rules[1]: kind must be one of metric, event, state, not None" in got


def test_duplicate_rule_id_across_files_names_the_first_definition(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", """
        rules:
          - id: other
            kind: event
            severity: info
            summary: other
            match: {kind: auth.login}
          - id: login_seen
            kind: event
            severity: info
            summary: first
            match: {kind: auth.login}
    """)
    second = write(tmp_path, "b.yml", GOOD_RULE.format(rid="login_seen"))
    first_line = line_of(first, "id: login_seen")
    got = errors(tmp_path)
    assert got == [f"{second}:2: rule id 'login_seen' is already defined at {first}:{first_line}"]


@pytest.mark.parametrize("pattern", ["(a+)+b", "(a*)*", "(a|a)*", "(ab|a)*c", "(x+x+)+y"])
def test_a_catastrophic_regex_is_refused(tmp_path: Path, pattern: str) -> None:
    path = write(tmp_path, "r.yml", f"""
        rules:
          - id: users
            kind: event
            severity: info
            summary: s
            match:
              kind: auth.login
              fields:
                user: {{regex: '{pattern}'}}
    """)
    (msg,) = errors(path)
    assert msg.startswith(f"{path}:{line_of(path, 'user:')}: rule users.match.fields.user: regex {pattern!r} "
                          f"could backtrack "
                          f"catastrophically"), msg


@pytest.mark.parametrize("pattern", ["adm.*", "(ab|cd)*", "[0-9]{1,3}(?:[.][0-9]{1,3}){3}", "svc-[a-z]+"])
def test_a_linear_regex_is_accepted(tmp_path: Path, pattern: str) -> None:
    path = write(tmp_path, "r.yml", f"""
        rules:
          - id: users
            kind: event
            severity: info
            summary: s
            match: {{kind: auth.login, fields: {{user: {{regex: '{pattern}'}}}}}}
    """)
    assert len(load_rules(path).rules) == 1


def test_duplicate_calendar_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", """
        calendars:
          office: {timezone: Europe/Paris, days: [mon-fri], hours: "08:00-19:00"}
        rules: []
    """)
    b = write(tmp_path, "b.yml", """
        calendars:
          lab: {days: [mon-sat]}
          office: {days: [mon-thu]}
        rules:
          - id: night
            kind: event
            severity: info
            summary: s
            match: {kind: auth.login}
            when: {outside: nightshift}
    """)
    got = errors(tmp_path)
    assert f"{b}:3: calendar 'office' already defined at {a}:2" in got
    unknown = next(e for e in got if "nightshift" in e)
    assert unknown.startswith(f"{b}:10: ") and "known: lab, office, working_hours" in unknown


def test_a_file_that_is_not_utf8_is_refused_and_the_others_still_checked(tmp_path: Path) -> None:
    data = 'rules:\n  - id: cafe\n    summary: "caf\xe9"\n'.encode("latin-1")
    latin1 = write(tmp_path, "a.yml", data)
    bad = write(tmp_path, "b.yml", GOOD_RULE.format(rid="x").replace("severity: warning", "severity: loud"))
    got = errors(tmp_path)
    assert f"{latin1}: not UTF-8 text (invalid continuation byte at byte {data.index(0xE9)})" in got
    assert any(e.startswith(f"{bad}:4: rule x: severity must be one of info, warning, critical") for e in got)


def test_empty_and_comment_only_files_define_nothing(tmp_path: Path) -> None:
    write(tmp_path, "empty.yml", "")
    write(tmp_path, "comments.yaml", "# rules for the lab, later\n")
    write(tmp_path, "good.yml", GOOD_RULE.format(rid="login"))
    write(tmp_path, "notes.txt", "not a rule file")
    (tmp_path / "tests").mkdir()
    write(tmp_path / "tests", "good.yml", "rule_files: [../good.yml]\ntests: []\n")
    rs = load_rules(tmp_path)
    assert [r.common.id for r in rs.rules] == ["login"]
    assert [p.name for p in rs.files] == ["comments.yaml", "empty.yml", "good.yml"]
    assert load_rules(tmp_path / "empty.yml").rules == []
    listing = write(tmp_path, "list.yml", "- id: x\n")
    assert errors(listing) == [
        f"{listing}:1: a rule file is a mapping with `rules:` (and optional `calendars:`)"]


def test_rules_check_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yml", GOOD_RULE.format(rid="login"))
    assert cli.main(["rules", "check", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "OK: 1 rules (1 event) in 1 file(s)"
    assert cli.main(["rules", "check", str(tmp_path / "missing")]) == 1
    assert f"{tmp_path / 'missing'}: no such file or directory" in capsys.readouterr().err


# --- the `rules test` runner ---------------------------------------------------------------------


FAILING_TESTS = f"""
    rule_files: [{RULES / "logins.yml"}]
    tests:
      - name: wrong expectations
        input_events:
          - {{at: 0s, every: 2s, repeat: 5, host: web1, kind: auth.login,
             fields: {{result: failure, user: root, method: password, service: sshd, src_ip: 203.0.113.7}}}}
        alerts:
          - {{at: 5s, alertname: ssh_brute_force, firing: [{{labels: {{src_ip: 203.0.113.7}}}}]}}
          - at: 20s
            alertname: ssh_brute_force
            firing:
              - {{labels: {{src_ip: 203.0.113.9}}}}
          - at: 30s
            alertname: ssh_brute_force
            firing:
              - {{labels: {{src_ip: 203.0.113.7}}, summary: "web1: 4 failed logins"}}
          - {{at: 40s, alertname: ssh_brute_force, firing: []}}
      - name: right expectations
        input_events:
          - {{at: 0s, host: web1, kind: auth.login,
             fields: {{result: success, user: root, method: password, service: sshd, src_ip: 192.0.2.50}}}}
        alerts:
          - {{at: 0s, alertname: root_ssh_login, firing: [{{labels: {{src_ip: 192.0.2.50}}}}]}}
"""


def test_failing_expectations_read_clearly(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yml", FAILING_TESTS)
    wrong, right = run_file(path)
    assert right.ok and right.name == "right expectations"
    assert not wrong.ok
    fired = "{'src_ip': '203.0.113.7', 'host': 'web1'}"
    assert wrong.failures == [
        "at 0m05s ssh_brute_force: expected firing {'src_ip': '203.0.113.7'}, firing: none",
        f"at 0m20s ssh_brute_force: expected firing {{'src_ip': '203.0.113.9'}}, firing: [{fired}]",
        f"at 0m20s ssh_brute_force: unexpected firing alert {fired}",
        "at 0m30s ssh_brute_force: summary 'web1: 5 failed logins from 203.0.113.7 within 60 s' "
        "!= 'web1: 4 failed logins'",
        f"at 0m40s ssh_brute_force: unexpected firing alert {fired}",
    ]


def test_cli_rules_test_fails_with_the_failures_printed(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "t.yml", FAILING_TESTS)
    assert cli.main(["rules", "test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"  FAIL {path}: wrong expectations" in out
    assert f"  PASS {path}: right expectations" in out
    assert "       at 0m05s ssh_brute_force: expected firing {'src_ip': '203.0.113.7'}, firing: none" in out
    assert out.rstrip().endswith("1/2 tests passed, 1 failed")


@pytest.mark.parametrize("good, broken, message", [
    ("alertname: root_ssh_login", "alertname: root_ssh_logn", "no rule 'root_ssh_logn' in the rule files"),
    ("every: 2s", "evry: 2s", "unknown field 'evry' (did you mean 'every'?)"),
    ("at: 0s, host", "at: soon, host", "at: invalid duration 'soon'"),
    ("repeat: 5", "repeat: 0", "repeat must be at least 1"),
])
def test_problems_of_the_test_file_itself_raise_with_file_and_line(tmp_path: Path, good: str, broken: str,
                                                                   message: str) -> None:
    path = write(tmp_path, "t.yml", FAILING_TESTS.replace(good, broken, 1))
    line = line_of(path, broken)
    with pytest.raises(RuleError) as info:
        run_file(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert message in str(info.value)


def test_rule_files_that_do_not_load_are_a_file_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rules = write(tmp_path, "bad.yml", GOOD_RULE.format(rid="Bad-Id"))
    path = write(tmp_path, "t.yml", "rule_files: [bad.yml]\ntests:\n  - name: anything\n")
    with pytest.raises(RuleError) as info:
        run_file(path)
    assert str(info.value).startswith(f"{path}:1: rule files do not load:\n{rules}:2: rule id 'Bad-Id'")
    assert cli.main(["rules", "test", str(path)]) == 1
    assert f"{path}: ERROR {path}:1: rule files do not load:" in capsys.readouterr().err


def test_cli_rules_test_counts_passed_tests_right_beside_a_broken_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = write(tmp_path, "broken.yml", "rule_files: [missing.yml]\ntests:\n  - name: x\n")
    assert cli.main(["rules", "test", str(broken), str(RULES / "tests" / "patches.yml")]) == 1
    out = capsys.readouterr().out
    passed = out.count("  PASS ")
    m = re.search(r"^(\d+)/(\d+) tests passed", out, re.M)
    assert m is not None and int(m[1]) == passed


# --- the series notation ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, values", [
    ("1+2x3", [1.0, 3.0, 5.0, 7.0]),
    ("5x2", [5.0, 5.0, 5.0]),
    ("_x1 3", [None, None, 3.0]),
    ("1 2 3", [1.0, 2.0, 3.0]),
    ("10-2x2", [10.0, 8.0, 6.0]),
    ("-1 +2.5", [-1.0, 2.5]),
    ("0.5x0", [0.5]),
    ("1.5e3 _ 7", [1500.0, None, 7.0]),
    ("  86.4x1\n 80 ", [86.4, 86.4, 80.0]),
    ("", []),
])
def test_expand_values(text: str, values: list[float | None]) -> None:
    assert expand_values(text) == values


@pytest.mark.parametrize("text", ["abc", "x3", "1x", "1+2x", "_+1x2", "5x-1", "1,2", "1+", "1e"])
def test_expand_values_refuses_bad_tokens(text: str) -> None:
    with pytest.raises(ValueError):
        expand_values(text)


def test_expand_values_names_the_bad_token() -> None:
    with pytest.raises(ValueError, match=r"bad value 'abc' \(use a, axN, a\+bxN, a-bxN or _\)"):
        expand_values("1 abc 3")
    with pytest.raises(ValueError, match="_ takes no step"):
        expand_values("_+1x2")


def test_expand_values_negative_exponent() -> None:
    assert expand_values("1e-3 2.5e-1x1") == [0.001, 0.25, 0.25]


# --- the engine: a broken rule, a reload, a restart -----------------------------------------------------


def failure(t: int, ip: str = "203.0.113.7", user: str = "root") -> Event:
    return Event("auth.login", "warning", t, {"result": "failure", "user": user, "method": "password",
                                              "service": "sshd", "src_ip": ip, "src_port": 40022},
                 f"Failed password for {user} from {ip} port 40022 ssh2", "/var/log/auth.log")


def success(t: int, ip: str, user: str) -> Event:
    return Event("auth.login", "notice", t, {"result": "success", "user": user, "method": "publickey",
                                             "service": "sshd", "src_ip": ip, "src_port": 40100},
                 f"Accepted publickey for {user} from {ip} port 40100 ssh2", "/var/log/auth.log")


def states(transitions: list[Transition]) -> list[tuple[str, str, str]]:
    return [(t.rule_id, t.state, t.labels.get("src_ip", "")) for t in transitions]


class Exploding:
    """A rule of a kind with a bug: raises on every event, every tick and on snapshot."""

    def __init__(self) -> None:
        self.common = RuleCommon("exploding", "event", "warning", {}, Template.parse("{{ host }}"),
                                 Template(""), FieldMatch(()))
        self.event_kinds: frozenset[str] | None = frozenset({"auth.login"})
        self.metric_names: frozenset[str] = frozenset()
        self.sections: frozenset[str] = frozenset()

    def on_event(self, host: Any, event: Event, now_ns: int) -> list[Transition]:
        raise RuntimeError(f"cannot handle {event.kind}")

    def on_metric(self, host: Any, sample: Any, now_ns: int) -> list[Transition]:
        return []

    def tick(self, hosts: Any, now_ns: int) -> list[Transition]:
        raise KeyError("tick")

    def snapshot(self) -> dict[str, Any]:
        raise TypeError("not serializable")

    def restore(self, state: dict[str, Any]) -> None:
        raise AssertionError("never called: it has no snapshot")


def test_a_rule_that_raises_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    logins = load_rules(RULES / "logins.yml")
    engine = RuleEngine(RuleSet([Exploding(), *logins.rules], logins.calendars, logins.files))
    out: list[Transition] = []
    for i in range(5):
        out += engine.process("web1", [failure(T0 + i * S)], T0 + i * S)
    assert states(out) == [("ssh_brute_force", "firing", "203.0.113.7")]
    assert engine.errors == {"exploding": 5}
    assert engine.last_error["exploding"] == "RuntimeError: cannot handle auth.login"
    assert sum("rule exploding failed" in r.getMessage() for r in caplog.records) == 1  # logged once per text

    # Its tick raises before the others run: they still advance (keep_firing_for runs out).
    assert states(engine.tick(T0 + 4 * S + 600 * S)) == [("ssh_brute_force", "resolved", "203.0.113.7")]
    assert engine.errors["exploding"] == 6
    assert engine.last_error["exploding"] == "KeyError: 'tick'"
    snap = engine.snapshot()
    assert "exploding" not in snap["rules"] and "ssh_brute_force" in snap["rules"]
    assert engine.errors["exploding"] == 7


def test_replace_rules_keeps_kept_rules_state_and_resolves_removed_rules() -> None:
    engine = RuleEngine(load_rules(RULES / "logins.yml"))
    for i in range(4):
        assert engine.process("web1", [failure(T0 + i * S)], T0 + i * S) == []
    fired = engine.process("web1", [success(T0 + 5 * S, "192.0.2.50", "root")], T0 + 5 * S)
    assert ("root_ssh_login", "firing", "192.0.2.50") in states(fired)

    reloaded = load_rules(RULES / "logins.yml")
    reloaded.rules = [r for r in reloaded.rules if r.common.id == "ssh_brute_force"]
    out = engine.replace_rules(reloaded, T0 + 6 * S)
    assert states(out) == [("root_ssh_login", "resolved", "192.0.2.50")]
    assert out[0].was_firing and out[0].at_ns == T0 + 6 * S and out[0].active_since_ns == T0 + 5 * S
    assert out[0].annotations["summary"] == "web1: root logged in over SSH from 192.0.2.50"
    assert [r.common.id for r in engine.ruleset.rules] == ["ssh_brute_force"]

    # The kept rule still holds the four failures: the fifth fires.
    fired = engine.process("web1", [failure(T0 + 7 * S)], T0 + 7 * S)
    assert states(fired) == [("ssh_brute_force", "firing", "203.0.113.7")]
    assert fired[0].annotations["summary"] == "web1: 5 failed logins from 203.0.113.7 within 60 s"
    # A removed rule gets nothing any more, and nothing raised.
    assert engine.process("web1", [success(T0 + 8 * S, "192.0.2.51", "root")], T0 + 8 * S) == []
    assert not engine.errors

    # (A fresh copy of the rule, without that state, does not.)
    control = load_rules(RULES / "logins.yml")
    control.rules = [r for r in control.rules if r.common.id == "ssh_brute_force"]
    assert RuleEngine(control).process("web1", [failure(T0 + 7 * S)], T0 + 7 * S) == []


UPDATES = {
    "manager": "apt",
    "pending": [{"name": "openssl", "current_version": "3.0.15-1~deb12u1", "new_version": "3.0.16-1~deb12u1",
                 "arch": "amd64", "security": True, "origin": "Debian-Security:12/stable-security"}],
    "pending_count": 1, "security_count": 1, "last_update_unix": 1_767_002_400,
    "running_kernel": "6.1.0-28-amd64", "newest_kernel": "6.1.0-28-amd64", "reboot_required": False,
    "reboot_required_packages": [], "error": "",
}


def test_snapshot_restore_round_trip_through_json() -> None:
    engine = RuleEngine(load_rules(RULES))
    engine.upsert_host("web1", {"tz": "Europe/Paris"})
    engine.process("web1", [InventorySection("updates", T0, UPDATES)], T0)
    for i in range(4):
        engine.process("web1", [failure(T0 + i * S)], T0 + i * S)
    for day in range(3):  # first_seen learns alice's usual address
        t = T0 + day * 86400 * S
        engine.process("web1", [success(t, "198.51.100.10", "alice")], t)
    t1 = T0 + 2 * 86400 * S + 60 * S
    assert states(engine.process("web1", [success(t1, "192.0.2.50", "root")], t1)) == [
        ("root_ssh_login", "firing", "192.0.2.50")]
    snap = json.loads(json.dumps(engine.snapshot()))
    assert snap["version"] == 1 and set(snap["rules"]) == {r.common.id for r in engine.ruleset.rules}

    restored = RuleEngine(load_rules(RULES))
    restored.restore(snap)
    assert json.dumps(restored.snapshot(), sort_keys=True) == json.dumps(snap, sort_keys=True)
    # Hosts are not in the snapshot: the collector knows them from its store.
    restored.upsert_host("web1", {"tz": "Europe/Paris"}, last_seen_ns=t1,
                         inventory={"updates": (T0, UPDATES)})

    # The count window is back (three failures within 60 s of the fourth, in event time).
    fired = restored.process("web1", [failure(T0 + 30 * S)], t1 + S)
    assert states(fired) == [("ssh_brute_force", "firing", "203.0.113.7")]
    # The root login is still firing: it resolves when keep_firing_for (1 h) runs out.
    assert ("root_ssh_login", "resolved", "192.0.2.50") not in states(restored.tick(t1 + 3599 * S))
    assert ("root_ssh_login", "resolved", "192.0.2.50") in states(restored.tick(t1 + 3600 * S))
    # The security update's clock started at T0, before the restart.
    week = T0 + 7 * 86400 * S
    assert [t for t in restored.tick(week - S) if t.rule_id == "security_updates_pending"] == []
    pending = [t for t in restored.tick(week) if t.rule_id == "security_updates_pending"]
    assert [t.state for t in pending] == ["firing"]
    assert pending[0].annotations["summary"] == (
        "web1: 1 security update(s) pending, oldest (openssl) for 7d0h")
    # alice's address is known: learning did not start over (a new one after 14 days fires).
    t2 = T0 + 15 * 86400 * S
    assert states(restored.process("web1", [success(t2, "198.51.100.10", "alice")], t2)) == []
    assert states(restored.process("web1", [success(t2 + S, "203.0.113.99", "alice")], t2 + S)) == [
        ("new_login_source", "firing", "203.0.113.99")]
    assert not restored.errors


def test_restore_ignores_unknown_versions_and_changed_correlations() -> None:
    engine = RuleEngine(load_rules(RULES / "logins.yml"))
    for i in range(4):
        engine.process("web1", [failure(T0 + i * S)], T0 + i * S)
    snap = json.loads(json.dumps(engine.snapshot()))

    other = RuleEngine(load_rules(RULES / "logins.yml"))
    other.restore({**snap, "version": 2})
    assert other.process("web1", [failure(T0 + 4 * S)], T0 + 4 * S) == []

    # The same id with another grouping: its old windows do not apply.
    snap["rules"]["ssh_brute_force"]["shape"] = ["count", ["src_ip", "user"], None]
    changed = RuleEngine(load_rules(RULES / "logins.yml"))
    changed.restore(snap)
    assert changed.process("web1", [failure(T0 + 4 * S)], T0 + 4 * S) == []
    assert not changed.errors


def test_load_errors_are_a_list(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", GOOD_RULE.format(rid="x").replace("kind: event", "kind: evnt"))
    b = write(tmp_path, "b.yml", GOOD_RULE.format(rid="y") + "        for: 5m\n")
    with pytest.raises(RuleErrors) as info:
        load_rules(tmp_path)
    assert [e.file for e in info.value.errors] == [str(a), str(b)]
    assert str(info.value).splitlines() == [str(e) for e in info.value.errors]
