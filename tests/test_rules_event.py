"""The `event` rule kind: matching, count / sequence / first_seen correlations, schedules,
labels, lifecycle, persistence and every author error with its file:line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from warden.collector.records import Event
from warden.collector.rules import event as event_mod
from warden.collector.rules.calendar import DEFAULT_CALENDARS, Calendar
from warden.collector.rules.event import EventRule, parse_event_rule
from warden.collector.rules.model import HostView, ParseContext, Transition, parse_common
from warden.collector.rules.spec import RuleError, Spec, load_yaml

S = 1_000_000_000
MIN = 60 * S
DAY = 86400 * S
T0 = 1_709_546_400 * S  # 2024-03-04T10:00:00Z, a Monday
NOW = 1_800_000_000 * S  # the collector's clock: unrelated to the hosts' clocks


def make_rule(text: str, calendars: dict[str, Any] | None = None) -> EventRule:
    doc = load_yaml(text, "r.yml")
    spec = Spec(doc, "r.yml", "rule")
    common = parse_common(spec, "event")
    rule = parse_event_rule(spec, common, ParseContext(calendars or {}))
    spec.done()
    return rule


def rule_error(text: str, calendars: dict[str, Any] | None = None) -> str:
    with pytest.raises(RuleError) as exc:
        make_rule(text, calendars)
    return str(exc.value)


def host(name: str = "web1", tz: str = "", **labels: str) -> HostView:
    return HostView(name, {"host": name, **labels}, timezone=tz)


def ev(t: int, kind: str = "auth.login", severity: str = "warning", raw: str = "",
       source: str = "/var/log/auth.log", **fields: Any) -> Event:
    return Event(kind, severity, t, dict(fields), raw, source)


def fail(t: int, ip: str = "203.0.113.9", user: str = "root", **extra: Any) -> Event:
    return ev(t, result="failure", service="sshd", user=user, src_ip=ip, **extra)


def ok(t: int, ip: str = "203.0.113.9", user: str = "alice") -> Event:
    return ev(t, severity="notice", result="success", service="sshd", user=user, src_ip=ip)


def feed(rule: EventRule, events: list[Event], h: HostView | None = None, now: int = NOW) -> list[Transition]:
    h = h or host()
    out: list[Transition] = []
    for e in events:
        out += rule.on_event(h, e, now)
    return out


def states(transitions: list[Transition]) -> list[str]:
    return [t.state for t in transitions]


def utc(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()) * S


BRUTE = """
id: ssh_brute_force
kind: event
severity: critical
summary: "{{ host }}: {{ count }} failed SSH logins from {{ src_ip }} in 60s"
match:
  kind: auth.login
  fields: {result: failure, service: sshd, pam_module: {exists: false}}
count: {threshold: 5, window: 60s, by: [src_ip]}
"""


def distinct(threshold: int) -> str:
    return BRUTE.replace("by: [src_ip]", "by: [src_ip], distinct: user").replace("threshold: 5",
                                                                               f"threshold: {threshold}")


def plain(match: str) -> EventRule:
    return make_rule(f"id: r\nkind: event\nseverity: warning\nsummary: s\nmatch: {match}\n")


# --- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("match", "hit", "miss"), [
    ("{kind: auth.login}", ev(T0), ev(T0, kind="auth.sudo")),
    ("{kind: [auth.su, auth.sudo]}", ev(T0, kind="auth.su"), ev(T0, kind="auth.login")),
    ("{kind: {startswith: account.}}", ev(T0, kind="account.user_added"), ev(T0, kind="auth.login")),
    ("{kind: {regex: 'auth\\.(su|sudo)'}}", ev(T0, kind="auth.sudo"), ev(T0, kind="auth.sudoers")),
    ("{fields: {user: root}}", ev(T0, user="root"), ev(T0, user="rooty")),
    ("{fields: {user: {equals: root}}}", ev(T0, user="root"), ev(T0)),
    ("{fields: {user: {not_equals: root}}}", ev(T0, user="bob"), ev(T0, user="root")),
    ("{fields: {service: {in: [sshd, login]}}}", ev(T0, service="login"), ev(T0, service="sudo")),
    ("{fields: {service: {not_in: [sshd]}}}", ev(T0, service="su"), ev(T0, service="sshd")),
    ("{fields: {tty: {startswith: pts/}}}", ev(T0, tty="pts/0"), ev(T0, tty="tty1")),
    ("{fields: {user: {endswith: [adm, admin]}}}", ev(T0, user="sysadmin"), ev(T0, user="admins")),
    ("{fields: {user: {contains: oo}}}", ev(T0, user="root"), ev(T0, user="alice")),
    ("{fields: {user: {regex: 'adm[0-9]+'}}}", ev(T0, user="adm12"), ev(T0, user="adm12x")),
    ("{fields: {src_ip: {cidr: [10.0.0.0/8, '2001:db8::/32']}}}", ev(T0, src_ip="10.1.2.3"),
     ev(T0, src_ip="11.1.2.3")),
    ("{fields: {src_ip: {cidr: 10.0.0.0/8}}}", ev(T0, src_ip="::ffff:10.0.0.1"), ev(T0, src_host="10.0.0.1")),
    ("{fields: {pam_module: {exists: false}}}", ev(T0, user="x"), ev(T0, pam_module="pam_unix")),
    ("{fields: {src_ip: {exists: true}}}", ev(T0, src_ip="1.2.3.4"), ev(T0, src_host="a.example")),
    ("{fields: {count: {gt: 3}}}", ev(T0, count=4), ev(T0, count=3)),
    ("{fields: {count: {gte: 3}}}", ev(T0, count=3), ev(T0, count=2)),
    ("{fields: {count: {lt: 3}}}", ev(T0, count=2.5), ev(T0, count="many")),
    ("{fields: {count: {lte: 3}}}", ev(T0, count=3), ev(T0)),
    ("{fields: {user: {not: {in: [backup, nagios]}}}}", ev(T0, user="eve"), ev(T0, user="nagios")),
    ("{fields: {invalid_user: true}}", ev(T0, invalid_user=True), ev(T0, invalid_user=False)),
    ("{fields: {src_port: 22}}", ev(T0, src_port=22), ev(T0, src_port=2222)),
    ("{fields: {src_port: '22'}}", ev(T0, src_port=22), ev(T0, src_port=2222)),
    ("{fields: {invalid_user: 'true'}}", ev(T0, invalid_user=True), ev(T0, invalid_user="True")),
    ("{fields: {user: root, service: sshd}}", ev(T0, user="root", service="sshd"), ev(T0, user="root")),
    ("{event_severity: {in: [warning, error]}}", ev(T0, severity="error"), ev(T0, severity="notice")),
    ("{event_severity: warning}", ev(T0), ev(T0, severity="info")),
    ("{source: {startswith: /var/log/}}", ev(T0), ev(T0, source="journald")),
    ("{raw: {contains: Accepted}}", ev(T0, raw="Accepted password for x"), ev(T0, raw="Failed password")),
    ("{kind: auth.login, fields: {result: failure, user: root}}", ev(T0, result="failure", user="root"),
     ev(T0, result="failure", user="bob")),
])
def test_every_matcher_form_through_a_rule(match: str, hit: Event, miss: Event) -> None:
    assert states(plain(match).on_event(host(), hit, NOW)) == ["firing"]
    assert plain(match).on_event(host(), miss, NOW) == []


def test_event_kinds_lets_the_engine_route() -> None:
    assert plain("{kind: auth.login}").event_kinds == frozenset({"auth.login"})
    assert plain("{kind: [auth.su, auth.sudo]}").event_kinds == frozenset({"auth.su", "auth.sudo"})
    assert plain("{kind: {startswith: auth.}}").event_kinds is None
    assert plain("{fields: {user: root}}").event_kinds is None
    r = plain("{kind: auth.login}")
    assert r.metric_names == frozenset() and r.sections == frozenset()
    assert r.on_metric(host(), None, NOW) == []  # type: ignore[arg-type]


# --- plain rules: group_by, templates, lifecycle, scope ----------------------------------------


ADMIN = """
id: admin_added
kind: event
severity: warning
summary: "{{ user }} became admin on {{ host }} ({{ kind }}, {{ count }} event)"
match: {kind: register.admin_added}
group_by: [user]
keep_firing_for: 5m
"""


def test_group_by_fields_become_labels_and_separate_alerts() -> None:
    r = make_rule(ADMIN)
    a = r.on_event(host(), ev(T0, kind="register.admin_added", user="alice"), NOW)
    b = r.on_event(host(), ev(T0, kind="register.admin_added", user="bob"), NOW)
    assert states(a) == states(b) == ["firing"]
    assert a[0].labels == {"alertname": "admin_added", "severity": "warning", "host": "web1", "user": "alice"}
    assert b[0].labels["user"] == "bob" and a[0].fingerprint != b[0].fingerprint
    assert a[0].annotations["summary"] == "alice became admin on web1 (register.admin_added, 1 event)"
    assert a[0].value == 1.0
    # the same user again keeps the same alert firing: no second "firing"
    assert r.on_event(host(), ev(T0 + S, kind="register.admin_added", user="alice"), NOW + S) == []


def test_a_plain_rule_keeps_the_events_own_count_field() -> None:
    r = make_rule(ADMIN.replace("kind: register.admin_added", "kind: auth.too_many_failures"))
    out = r.on_event(host(), ev(T0, kind="auth.too_many_failures", user="bob", count=6), NOW)
    assert out[0].annotations["summary"] == "bob became admin on web1 (auth.too_many_failures, 6 event)"


def test_without_group_by_all_events_of_a_host_are_one_alert() -> None:
    r = make_rule(ADMIN.replace("group_by: [user]\n", ""))
    a = r.on_event(host(), ev(T0, kind="register.admin_added", user="alice"), NOW)
    assert "user" not in a[0].labels
    assert r.on_event(host(), ev(T0, kind="register.admin_added", user="bob"), NOW) == []
    assert states(r.on_event(host("db1"), ev(T0, kind="register.admin_added", user="bob"), NOW)) == ["firing"]


def test_keep_firing_for_resolves_on_tick_after_the_last_trigger() -> None:
    r = make_rule(ADMIN)
    e = ev(T0, kind="register.admin_added", user="alice")
    r.on_event(host(), e, NOW)
    assert r.tick({}, NOW + 5 * MIN - 1) == []
    r.on_event(host(), e, NOW + 4 * MIN)  # a new trigger extends the hold
    assert r.tick({}, NOW + 9 * MIN - 1) == []
    res = r.tick({}, NOW + 9 * MIN)
    assert states(res) == ["resolved"] and res[0].was_firing
    assert states(r.on_event(host(), e, NOW + 10 * MIN)) == ["firing"]  # a new alert


def test_default_keep_firing_for_is_15_minutes() -> None:
    r = plain("{kind: system.boot}")
    r.on_event(host(), ev(T0, kind="system.boot"), NOW)
    assert r.tick({}, NOW + 15 * MIN - 1) == []
    assert states(r.tick({}, NOW + 15 * MIN)) == ["resolved"]


def test_scope_limits_the_hosts() -> None:
    r = make_rule(ADMIN + "scope: {env: prod}\n")
    e = ev(T0, kind="register.admin_added", user="alice")
    assert r.on_event(host(env="dev"), e, NOW) == []
    assert r.on_event(host(), e, NOW) == []
    assert states(r.on_event(host(env="prod"), e, NOW)) == ["firing"]


# --- count -------------------------------------------------------------------------------------


def test_count_exactly_threshold_fires_one_less_does_not() -> None:
    r = make_rule(BRUTE)
    assert feed(r, [fail(T0 + i * S) for i in range(4)]) == []
    out = feed(r, [fail(T0 + 4 * S)])
    assert states(out) == ["firing"]
    assert out[0].labels == {"alertname": "ssh_brute_force", "severity": "critical", "host": "web1",
                             "src_ip": "203.0.113.9"}
    assert out[0].annotations["summary"] == "web1: 5 failed SSH logins from 203.0.113.9 in 60s"
    assert out[0].value == 5.0
    # the window is not reset, but the alert is not fired twice
    assert feed(r, [fail(T0 + 5 * S)]) == []


def test_count_ignores_pam_duplicates_and_other_events() -> None:
    r = make_rule(BRUTE)
    noise = [fail(T0, pam_module="pam_unix")] * 10 + [ok(T0)] * 10
    noise.append(ev(T0, kind="auth.sudo", result="failure"))
    assert feed(r, noise + [fail(T0 + i * S) for i in range(4)]) == []


def test_count_window_edge_is_exclusive() -> None:
    two = make_rule(BRUTE.replace("threshold: 5", "threshold: 2"))
    # exactly `window` apart: not in the same window
    assert feed(two, [fail(T0), fail(T0 + 60 * S)]) == []
    # 1 ns less: in the same window
    two = make_rule(BRUTE.replace("threshold: 2", "threshold: 2").replace("threshold: 5", "threshold: 2"))
    assert states(feed(two, [fail(T0), fail(T0 + 60 * S - 1)])) == ["firing"]


def test_count_slides() -> None:
    r = make_rule(BRUTE)
    # 4 early, then the window slides past the first two: 3 + 1 = 4 → nothing; one more → 5
    assert feed(r, [fail(T0 + i * 10 * S) for i in range(4)]) == []  # 0 10 20 30
    assert feed(r, [fail(T0 + 75 * S)]) == []  # window (15, 75]: 20 30 75
    assert feed(r, [fail(T0 + 76 * S)]) == []  # 20 30 75 76
    assert states(feed(r, [fail(T0 + 79 * S)])) == ["firing"]  # 20 30 75 76 79


def test_count_groups_by_field_and_host() -> None:
    r = make_rule(BRUTE)
    assert feed(r, [fail(T0 + i * S, ip="198.51.100.1") for i in range(4)]) == []
    assert feed(r, [fail(T0 + 5 * S, ip="198.51.100.2")]) == []
    assert feed(r, [fail(T0 + 6 * S, ip="198.51.100.1")], h=host("db1")) == []
    out = feed(r, [fail(T0 + 7 * S, ip="198.51.100.1")])
    assert states(out) == ["firing"] and out[0].labels["src_ip"] == "198.51.100.1"


def test_count_by_missing_field_groups_under_an_empty_value() -> None:
    r = make_rule(BRUTE)
    out = feed(r, [ev(T0 + i * S, result="failure", service="sshd", src_host="x.example") for i in range(5)])
    assert states(out) == ["firing"] and "src_ip" not in out[0].labels


def test_count_out_of_order_events_within_the_window() -> None:
    r = make_rule(BRUTE)
    assert feed(r, [fail(T0 + t * S) for t in (50, 30, 10, 40)]) == []
    assert states(feed(r, [fail(T0 + 20 * S)])) == ["firing"]


def test_count_late_event_outside_the_newest_window_is_ignored() -> None:
    r = make_rule(BRUTE.replace("threshold: 5", "threshold: 2"))
    assert feed(r, [fail(T0 + 100 * S), fail(T0 + 40 * S)]) == []  # 100 - 40 = window: ignored
    assert feed(r, [fail(T0 + 10 * S)]) == []
    r = make_rule(BRUTE.replace("threshold: 5", "threshold: 2"))
    assert states(feed(r, [fail(T0 + 100 * S), fail(T0 + 40 * S + 1)])) == ["firing"]


def test_count_late_event_can_complete_a_window_after_pruning() -> None:
    r = make_rule(BRUTE)
    assert feed(r, [fail(T0 + t * S) for t in (0, 10, 20, 30, 65)]) == []  # 0 drops out at 65
    assert states(feed(r, [fail(T0 + 8 * S)])) == ["firing"]  # 8 10 20 30 65: span 57s


def test_count_uses_the_hosts_clock_for_windows_and_the_collectors_for_alerts() -> None:
    r = make_rule(BRUTE.replace("severity: critical", "severity: critical\nkeep_firing_for: 2m"))
    ahead = NOW + 3600 * S  # the host's clock is one hour ahead of the collector's
    out = []
    for i in range(5):
        out += r.on_event(host(), fail(ahead + i * 20 * S), NOW + i * S)  # 80s of host time
    assert out == []  # 0 20 40 60 80: never 5 within 60s of host time, whatever the collector says
    r = make_rule(BRUTE.replace("severity: critical", "severity: critical\nkeep_firing_for: 2m"))
    for i in range(5):
        out += r.on_event(host(), fail(ahead + i * S), NOW + i * 30 * S)  # slow delivery, 5s of host time
    assert states(out) == ["firing"] and out[0].at_ns == NOW + 120 * S
    assert r.tick({}, NOW + 240 * S - 1) == []
    assert states(r.tick({}, NOW + 240 * S)) == ["resolved"]


def test_count_distinct_values() -> None:
    r = make_rule(distinct(3).replace("{{ count }}", "{{ count | int }}"))
    assert feed(r, [fail(T0 + i * S, user=u) for i, u in enumerate(["a", "a", "a", "b", "b", "a"])]) == []
    assert feed(r, [ev(T0 + 7 * S, result="failure", service="sshd", src_ip="203.0.113.9")]) == []  # no user
    out = feed(r, [fail(T0 + 8 * S, user="c")])
    assert states(out) == ["firing"] and out[0].value == 3.0
    assert out[0].annotations["summary"].startswith("web1: 3 failed")


def test_count_distinct_window_slides() -> None:
    r = make_rule(distinct(3))
    assert feed(r, [fail(T0, user="a"), fail(T0 + 30 * S, user="b"), fail(T0 + 60 * S, user="c")]) == []
    assert feed(r, [fail(T0 + 61 * S, user="c")]) == []  # a left the window: b c
    assert states(feed(r, [fail(T0 + 62 * S, user="a")])) == ["firing"]  # b c a


def test_count_distinct_out_of_order_and_too_late() -> None:
    r = make_rule(distinct(3))
    assert feed(r, [fail(T0 + 100 * S, user="a"), fail(T0 + 40 * S, user="b")]) == []  # b too late
    assert feed(r, [fail(T0 + 70 * S, user="c")]) == []
    assert states(feed(r, [fail(T0 + 41 * S, user="d")])) == ["firing"]


def test_count_distinct_late_value_leaves_the_window_in_time() -> None:
    r = make_rule(distinct(3))
    assert feed(r, [fail(T0 + 50 * S, user="a"), fail(T0 + 10 * S, user="b")]) == []  # b late, in
    assert feed(r, [fail(T0 + 71 * S, user="c")]) == []  # b (10s) is now out: a c
    assert states(feed(r, [fail(T0 + 72 * S, user="d")])) == ["firing"]  # a c d


def test_count_window_is_capped_but_still_fires() -> None:
    r = make_rule(BRUTE.replace("threshold: 5", "threshold: 200").replace("window: 60s", "window: 1h"))
    out = feed(r, [fail(T0 + i * S) for i in range(2100)])
    assert states(out) == ["firing"] and out[0].value == 200.0
    g = next(iter(r._groups.values()))
    assert len(g.times) == 2000 and g.times[0] == T0 + 100 * S  # 10 × threshold, the newest kept
    feed(r, [fail(T0 + 500 * S + 1)])  # a late event into a full window: kept in order
    assert len(g.times) == 2000 and list(g.times) == sorted(g.times) and g.times[0] == T0 + 101 * S
    assert T0 + 500 * S + 1 in g.times


def test_group_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_mod, "MAX_GROUPS", 2)
    r = make_rule(BRUTE.replace("threshold: 5", "threshold: 2"))
    feed(r, [fail(T0, ip="a"), fail(T0, ip="b"), fail(T0 + S, ip="a")])  # a is now the most recent
    feed(r, [fail(T0 + 2 * S, ip="c")])  # evicts b, the least recently updated
    assert len(r._groups) == 2
    assert feed(r, [fail(T0 + 3 * S, ip="b")]) == []  # b starts afresh
    assert states(feed(r, [fail(T0 + 4 * S, ip="c")])) == ["firing"]


def test_tick_drops_idle_windows() -> None:
    r = make_rule(BRUTE)
    feed(r, [fail(T0, ip="a")], now=NOW)
    feed(r, [fail(T0, ip="b")], now=NOW + 60 * S)
    r.tick({}, NOW + 60 * S + event_mod.IDLE_GRACE_NS)
    assert len(r._groups) == 2
    r.tick({}, NOW + 60 * S + event_mod.IDLE_GRACE_NS + 1)
    assert [k[1] for k in r._groups] == ["b"]


# --- sequence ----------------------------------------------------------------------------------


SEQ = """
id: ssh_success_after_failures
kind: event
severity: critical
summary: "{{ user }} logged in from {{ src_ip }} after {{ count }} events"
match: {kind: auth.login, fields: {service: sshd}}
sequence:
  by: [src_ip]
  within: 10m
  steps:
    - match: {fields: {result: failure, pam_module: {exists: false}}}
      count: 3
    - match: {fields: {result: success}}
"""


def test_sequence_fires_on_the_success_after_enough_failures() -> None:
    r = make_rule(SEQ)
    assert r.event_kinds == frozenset({"auth.login"})
    assert feed(r, [fail(T0), fail(T0 + MIN), fail(T0 + 2 * MIN)]) == []
    out = feed(r, [ok(T0 + 3 * MIN)])
    assert states(out) == ["firing"]
    assert out[0].labels["src_ip"] == "203.0.113.9"
    assert out[0].annotations["summary"] == "alice logged in from 203.0.113.9 after 4 events"


def test_sequence_needs_every_step_in_order() -> None:
    r = make_rule(SEQ)
    assert feed(r, [fail(T0), fail(T0 + MIN), ok(T0 + 2 * MIN)]) == []  # two failures only
    r = make_rule(SEQ)
    assert feed(r, [ok(T0), fail(T0 + MIN), fail(T0 + 2 * MIN), fail(T0 + 3 * MIN)]) == []  # wrong order
    r = make_rule(SEQ)
    assert feed(r, [fail(T0), fail(T0 + S, ip="x"), fail(T0 + 2 * S), ok(T0 + 3 * S)]) == []  # other ip
    r = make_rule(SEQ)
    assert feed(r, [fail(T0, pam_module="pam_unix")] * 3 + [ok(T0 + S)]) == []  # step filter


def test_sequence_within_is_measured_from_the_first_step_and_exclusive() -> None:
    r = make_rule(SEQ)
    assert feed(r, [fail(T0), fail(T0 + S), fail(T0 + 2 * S), ok(T0 + 10 * MIN)]) == []
    r = make_rule(SEQ)
    assert states(feed(r, [fail(T0), fail(T0 + S), fail(T0 + 2 * S), ok(T0 + 10 * MIN - 1)])) == ["firing"]


def test_sequence_start_slides_to_later_failures() -> None:
    r = make_rule(SEQ)
    events = [fail(T0), fail(T0 + 595 * S), fail(T0 + 596 * S), fail(T0 + 597 * S), ok(T0 + 601 * S)]
    assert states(feed(r, events)) == ["firing"]


def test_sequence_fires_once_per_chain() -> None:
    r = make_rule(SEQ.replace("severity: critical", "severity: critical\nkeep_firing_for: 0"))
    assert states(feed(r, [fail(T0), fail(T0 + S), fail(T0 + 2 * S), ok(T0 + 3 * S)])) == ["firing"]
    assert states(r.tick({}, NOW)) == ["resolved"]
    assert feed(r, [ok(T0 + 4 * S)]) == []  # the failures were used up
    again = [fail(T0 + 5 * S), fail(T0 + 6 * S), fail(T0 + 7 * S), ok(T0 + 8 * S)]
    assert states(feed(r, again)) == ["firing"]


def test_sequence_late_failure_completes_the_chain() -> None:
    r = make_rule(SEQ)
    assert feed(r, [fail(T0), fail(T0 + S), ok(T0 + 3 * S)]) == []
    assert feed(r, [fail(T0 + 4 * S)]) == []  # after the success: no chain
    assert states(feed(r, [fail(T0 + 2 * S)])) == ["firing"]  # late, but before the success


def test_sequence_with_kinds_only_in_steps() -> None:
    r = make_rule("""
id: invalid_then_login
kind: event
severity: warning
summary: s
sequence:
  by: [src_ip]
  within: 1m
  steps:
    - {match: {kind: auth.invalid_user}}
    - {match: {kind: auth.login, fields: {result: success}}}
""")
    assert r.event_kinds == frozenset({"auth.invalid_user", "auth.login"})
    assert states(feed(r, [ev(T0, kind="auth.invalid_user", src_ip="1.2.3.4"), ok(T0 + S, ip="1.2.3.4")])) \
        == ["firing"]


# --- first_seen --------------------------------------------------------------------------------


FIRST = """
id: new_login_source
kind: event
severity: warning
summary: "{{ user }} logged in from new address {{ src_ip }} (before: {{ previous_time }})"
match: {kind: auth.login, fields: {result: success}}
first_seen: {by: [user], value: src_ip, baseline: 14d}
"""


def login(day: float, ip: str, user: str = "alice") -> Event:
    return ok(T0 + int(day * DAY), ip=ip, user=user)


def test_first_seen_learns_then_fires_on_new_values() -> None:
    r = make_rule(FIRST)
    assert feed(r, [login(0, "ip1"), login(2, "ip2"), login(10, "ip1"), login(13.9, "ip3")]) == []
    out = feed(r, [login(15, "ip4")])
    assert states(out) == ["firing"]
    assert out[0].labels == {"alertname": "new_login_source", "severity": "warning", "host": "web1",
                             "user": "alice", "src_ip": "ip4"}
    assert out[0].annotations["summary"] == "alice logged in from new address ip4 (before: never)"
    assert feed(r, [login(15.5, "ip1")]) == []  # seen 5.5 days ago
    assert feed(r, [login(15.5, "ip3")]) == []  # recorded while learning
    out = feed(r, [login(16.5, "ip2")])  # last seen 14.5 days ago: new again
    assert states(out) == ["firing"] and "(before: 2024-03-06T10:00:00Z)" in out[0].annotations["summary"]


def test_first_seen_baseline_edges() -> None:
    r = make_rule(FIRST)
    feed(r, [login(0, "ip1")])
    assert feed(r, [ok(T0 + 14 * DAY - 1, ip="ipx")]) == []  # still learning
    assert states(feed(r, [ok(T0 + 14 * DAY, ip="ipy")])) == ["firing"]  # learnt exactly now
    assert states(feed(r, [ok(T0 + 14 * DAY, ip="ip1")])) == ["firing"]  # not seen for exactly 14d
    r = make_rule(FIRST)
    feed(r, [login(0, "ip1"), login(1, "ip2")])
    assert feed(r, [ok(T0 + 15 * DAY - 1, ip="ip2")]) == []  # seen 1 ns under 14d ago


def test_first_seen_groups_are_per_user_and_host() -> None:
    r = make_rule(FIRST)
    feed(r, [login(0, "ip1"), login(0, "ip1", user="bob"), login(10, "ip1", user="bob")])
    assert feed(r, [login(13, "ip9", user="carol")]) == []  # carol's learning starts now
    assert feed(r, [login(15, "ip1", user="bob")]) == []
    assert feed(r, [login(15, "ip1", user="bob")], h=host("db1")) == []  # db1 learns on its own
    assert states(feed(r, [login(15, "ip1", user="carol")])) == []  # carol still learning (day 13 + 2)
    assert states(feed(r, [login(15, "ip9", user="bob")])) == ["firing"]


def test_first_seen_restored_from_a_snapshot_keeps_its_baseline() -> None:
    r = make_rule(FIRST)
    feed(r, [login(0, "ip1"), login(10, "ip2")])
    saved = json.loads(json.dumps(r.snapshot()))
    again = make_rule(FIRST)
    again.restore(saved)
    assert feed(again, [login(15, "ip2")]) == []  # remembered
    assert states(feed(again, [login(15, "ip3")])) == ["firing"]  # no new learning period
    # a different correlation does not take the memory over
    other = make_rule(FIRST.replace("value: src_ip", "value: tty"))
    other.restore(saved)
    assert feed(other, [ev(T0 + 15 * DAY, result="success", user="alice", tty="pts/1")]) == []


def test_first_seen_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_mod, "MAX_VALUES", 2)
    r = make_rule(FIRST)
    feed(r, [login(0, "ip1"), login(1, "ip2"), login(2, "ip3")])  # ip1 evicted
    assert feed(r, [login(15, "ip3")]) == []
    assert states(feed(r, [login(15, "ip1")])) == ["firing"]
    monkeypatch.setattr(event_mod, "MAX_FIRST_SEEN_TOTAL", 3)
    feed(r, [login(16, "ip1", user="bob"), login(16, "ip2", user="bob")])  # alice's group goes
    assert feed(r, [login(16, "ip7")]) == []  # alice learns afresh


# --- when: calendars ---------------------------------------------------------------------------


OUTSIDE = """
id: root_login_off_hours
kind: event
severity: warning
summary: s
match: {kind: auth.login, fields: {result: success}}
when: {outside: working_hours}
"""


def test_when_outside_working_hours_in_the_hosts_zone() -> None:
    paris = host(tz="Europe/Paris")
    # Monday 2024-04-01 (CEST, UTC+2): 08:30 local is outside, 09:30 inside
    assert states(make_rule(OUTSIDE).on_event(paris, ok(utc("2024-04-01T06:30:00")), NOW)) == ["firing"]
    assert make_rule(OUTSIDE).on_event(paris, ok(utc("2024-04-01T07:30:00")), NOW) == []
    # the same instant in UTC (no zone known) is 07:30: outside
    assert states(make_rule(OUTSIDE).on_event(host(), ok(utc("2024-04-01T07:30:00")), NOW)) == ["firing"]
    # a weekend
    assert states(make_rule(OUTSIDE).on_event(paris, ok(utc("2024-04-06T10:00:00")), NOW)) == ["firing"]


def test_when_on_a_dst_day_with_a_custom_calendar() -> None:
    cals = {"all_week": Calendar("all_week", days=frozenset(range(7)))}
    rule_text = OUTSIDE.replace("working_hours", "all_week")
    paris = host(tz="Europe/Paris")
    # 2024-03-31, the spring change: 09:00 local is 07:00 UTC (08:00 UTC the day before)
    def fires(iso: str) -> bool:
        return states(make_rule(rule_text, cals).on_event(paris, ok(utc(iso)), NOW)) == ["firing"]

    assert fires("2024-03-31T06:59:59") is True  # 08:59:59 CEST
    assert fires("2024-03-31T07:00:00") is False  # 09:00:00 CEST
    assert fires("2024-03-30T07:30:00") is True  # 08:30 CET, the day before


def test_when_inside_a_calendar_with_its_own_zone() -> None:
    cals = {**DEFAULT_CALENDARS, "ny": Calendar("ny", timezone="America/New_York")}
    text = OUTSIDE.replace("outside: working_hours", "inside: ny")
    tokyo = host(tz="Asia/Tokyo")
    # 2024-03-11 (EDT, UTC-4): 09:00 in New York is 13:00 UTC, whatever the host's zone
    assert states(make_rule(text, cals).on_event(tokyo, ok(utc("2024-03-11T13:00:00")), NOW)) == ["firing"]
    assert make_rule(text, cals).on_event(tokyo, ok(utc("2024-03-11T12:59:59")), NOW) == []


def test_when_applies_to_counted_events() -> None:
    r = make_rule(BRUTE.replace("threshold: 5", "threshold: 2") + "when: {outside: working_hours}\n")
    assert feed(r, [fail(utc("2024-03-04T08:59:58")), fail(utc("2024-03-04T09:00:00"))]) == []
    assert states(feed(r, [fail(utc("2024-03-04T08:59:59"))])) == ["firing"]


# --- persistence -------------------------------------------------------------------------------


def test_count_window_and_alert_survive_a_snapshot() -> None:
    r = make_rule(BRUTE)
    feed(r, [fail(T0 + i * S) for i in range(4)])
    feed(r, [fail(T0 + i * S, ip="b") for i in range(5)])
    saved = json.loads(json.dumps(r.snapshot()))
    again = make_rule(BRUTE)
    again.restore(saved)
    assert feed(again, [fail(T0 + 5 * S, ip="b")]) == []  # still firing: no new transition
    assert states(feed(again, [fail(T0 + 4 * S)])) == ["firing"]  # the 5th of the restored window


def test_distinct_and_sequence_survive_a_snapshot() -> None:
    text = distinct(2)
    r = make_rule(text)
    feed(r, [fail(T0, user="a")])
    again = make_rule(text)
    again.restore(json.loads(json.dumps(r.snapshot())))
    assert states(feed(again, [fail(T0 + S, user="b")])) == ["firing"]
    r = make_rule(SEQ)
    feed(r, [fail(T0), fail(T0 + S), fail(T0 + 2 * S)])
    again = make_rule(SEQ)
    again.restore(json.loads(json.dumps(r.snapshot())))
    assert states(feed(again, [ok(T0 + 3 * S)])) == ["firing"]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "line", "words"), [
    (BRUTE.replace("count: {threshold", "countt: 1\ncount: {threshold"), 9, "unknown field 'countt'"),
    (BRUTE.replace("window: 60s", "windw: 60s"), 9,
     "rule ssh_brute_force.count: missing required field 'window'"),
    (BRUTE + "sequence: {within: 1m, steps: []}\n", 10,
     "at most one correlation, not both count and sequence"),
    (BRUTE + "first_seen: {value: user, baseline: 1d}\n", 10, "not both count and first_seen"),
    (BRUTE + "when:\n  outside: office_hours\n", 11, "unknown calendar 'office_hours'"),
    (BRUTE + "when: {inside: working_hours, outside: working_hours}\n", 10,
     "exactly one of inside or outside"),
    (BRUTE.replace("window: 60s", "window: 60 seconds"), 9, "window: invalid duration '60 seconds'"),
    (BRUTE.replace("window: 60s", "window: 0"), 9, "window must be longer than 0"),
    (BRUTE + "keep_firing_for: soon\n", 10, "keep_firing_for: invalid duration"),
    (BRUTE.replace("threshold: 5", "threshold: 0"), 9, "threshold must be at least 1"),
    (BRUTE.replace("threshold: 5", "threshold: 2.5"), 9, "threshold must be an integer"),
    (BRUTE.replace("service: sshd", "user: {regex: '(a+)+'}"), 8, "backtrack catastrophically"),
    (BRUTE.replace("service: sshd", "user: {regexp: 'a'}"), 8, "unknown matcher 'regexp'"),
    (BRUTE + "group_by: [user]\n", 10, "group_by is for rules without a correlation; use count.by"),
    (BRUTE.replace("by: [src_ip]", "by: [host]"), 9, "'host' is a label Warden sets"),
    (BRUTE.replace("by: [src_ip]", "by: [src-ip]"), 9, "'src-ip' is not a valid label name"),
    ("\n".join(ln for ln in BRUTE.split("\n") if not ln.startswith(("match:", "  kind:", "  fields:"))), 2,
     "missing required field 'match'"),
    (BRUTE.replace("kind: auth.login", "kind: [auth.login, 3]"), 7,
     "list of kinds must hold non-empty strings"),
    (BRUTE.replace("kind: auth.login", "kin: auth.login"), 7, "unknown field 'kin' (did you mean 'kind'?)"),
    (SEQ.replace("      count: 3\n", "      count: 0\n"), 12, "count must be at least 1"),
    (SEQ.replace("    - match: {fields: {result: success}}\n", ""), 10, "at least two steps"),
    (SEQ.replace("within: 10m", "withn: 10m"), 9,
     "missing required field 'within' (is 'withn' a typo of it?)"),
    (FIRST.replace("baseline: 14d", "baseline: 2x"), 7, "baseline: invalid duration"),
    (FIRST.replace("value: src_ip", "value: user"), 7, "value 'user' is also in by"),
    (FIRST.replace(", baseline: 14d", ""), 7, "missing required field 'baseline'"),
])
def test_errors_have_file_and_line(text: str, line: int, words: str) -> None:
    msg = rule_error(text)
    assert msg.startswith(f"r.yml:{line}: "), msg
    assert words in msg, msg


def test_unknown_field_inside_count_block_points_at_its_line() -> None:
    text = BRUTE.replace("count: {threshold: 5, window: 60s, by: [src_ip]}",
                         "count:\n  threshold: 5\n  window: 60s\n  treshold: 4\n")
    msg = rule_error(text)
    assert msg.startswith("r.yml:12: rule ssh_brute_force.count: unknown field 'treshold'"), msg


def test_unknown_top_level_field() -> None:
    msg = rule_error(BRUTE + "\nkeep_firing: 5m\n")
    assert msg.startswith("r.yml:11: rule ssh_brute_force: unknown field 'keep_firing'"), msg
    assert "keep_firing_for" in msg


def test_calendars_from_the_context_are_known() -> None:
    cals = {"office": Calendar("office")}
    make_rule(BRUTE + "when: {inside: office}\n", cals)
    make_rule(BRUTE + "when: {inside: working_hours}\n", cals)  # the defaults stay known
