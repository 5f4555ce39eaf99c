"""`kind: metric` rules: thresholds, for/keep_firing_for, hysteresis, staleness, windows."""

from __future__ import annotations

import json

import pytest

from warden.collector.records import MetricSample
from warden.collector.rules import metric as metric_mod
from warden.collector.rules.metric import MetricRule, parse_metric_rule
from warden.collector.rules.model import HostView, ParseContext, Transition, parse_common
from warden.collector.rules.spec import RuleError, Spec, load_yaml

S = 1_000_000_000
M = 60 * S
METRIC = "system_filesystem_used_percent"
HOST = HostView("h1", {"host": "h1", "role": "db"})


def build(body: str, *, metric: str = METRIC) -> MetricRule:
    text = (f"id: r\nkind: metric\nseverity: warning\n"
            f"summary: '{{{{ host }}}}: {{{{ mount }}}} is {{{{ value | percent }}}} full'\n"
            f"metric: {metric}\n{body}")
    spec = Spec(load_yaml(text, "t.yml"), "t.yml", "rule")
    return parse_metric_rule(spec, parse_common(spec, "metric"), ParseContext())


def error(body: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        build(body)
    return info.value


def sample(v: float, t: int, name: str = METRIC, **labels: str) -> MetricSample:
    return MetricSample(name, labels or {"mount": "/"}, v, t)


def feed(rule: MetricRule, v: float, t: int, now: int | None = None, host: HostView = HOST,
         **labels: str) -> list[Transition]:
    return rule.on_metric(host, sample(v, t, rule.metric, **labels), t if now is None else now)


def states(trs: list[Transition]) -> list[str]:
    return [t.state for t in trs]


# --- thresholds --------------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "value", "fires"), [
    (">", 85.0, False), (">", 85.5, True),
    (">=", 85.0, True), (">=", 84.9, False),
    ("<", 85.0, False), ("<", 84.9, True),
    ("<=", 85.0, True), ("<=", 85.1, False),
    ("==", 85.0, True), ("==", 85.1, False),
    ("!=", 85.0, False), ("!=", 85.1, True),
])
def test_threshold_ops(op: str, value: float, fires: bool) -> None:
    rule = build(f"threshold: {{op: '{op}', value: 85}}\n")
    assert states(feed(rule, value, 1 * S)) == (["firing"] if fires else [])


def test_firing_transition_carries_labels_annotations_and_value() -> None:
    rule = build("labels: {team: ops}\nthreshold: {op: '>', value: 85}\n")
    tr, = feed(rule, 90.0, 5 * S, mount="/var")
    assert tr.labels == {"alertname": "r", "severity": "warning", "host": "h1", "team": "ops",
                         "mount": "/var"}
    assert tr.annotations["summary"] == "h1: /var is 90.0 % full"
    assert tr.value == 90.0
    assert tr.at_ns == 5 * S


def test_sample_labels_cannot_override_identity_or_rule_labels() -> None:
    rule = build("labels: {team: ops}\nthreshold: {op: '>', value: 85}\n")
    labels = {"mount": "/", "host": "victim", "alertname": "x", "severity": "info", "team": "evil"}
    tr, = rule.on_metric(HOST, MetricSample(METRIC, labels, 90.0, S), S)
    assert tr.labels == {"alertname": "r", "severity": "warning", "host": "h1", "team": "ops", "mount": "/"}


def test_for_fires_exactly_at_the_boundary() -> None:
    rule = build("threshold: {op: '>', value: 85}\nfor: 5m\n")
    assert states(feed(rule, 90.0, 0)) == ["pending"]
    assert feed(rule, 90.0, 5 * M - 1) == []
    assert rule.tick({"h1": HOST}, 5 * M - 1) == []
    assert states(rule.tick({"h1": HOST}, 5 * M)) == ["firing"]
    assert rule.tick({"h1": HOST}, 5 * M + S) == []


def test_pending_that_clears_resolves_without_having_fired() -> None:
    rule = build("threshold: {op: '>', value: 85}\nfor: 5m\n")
    feed(rule, 90.0, 0)
    tr, = feed(rule, 10.0, M)
    assert (tr.state, tr.was_firing) == ("resolved", False)


def test_hysteresis_holds_until_the_clear_value_is_crossed() -> None:
    rule = build("threshold: {op: '>', value: 85, clear: 80}\n")
    assert feed(rule, 82.0, 1 * S, mount="/a") == []  # below value: never starts
    assert states(feed(rule, 85.5, 2 * S)) == ["firing"]
    assert feed(rule, 82.0, 3 * S) == []  # between clear and value: still holds
    assert feed(rule, 80.5, 4 * S) == []
    tr, = feed(rule, 79.0, 5 * S)
    assert (tr.state, tr.was_firing, tr.value) == ("resolved", True, 79.0)
    assert feed(rule, 82.0, 6 * S) == []  # cleared: value applies again


def test_hysteresis_for_a_lower_bound() -> None:
    rule = build("threshold: {op: '<', value: 10, clear: 15}\n")
    assert states(feed(rule, 9.0, S)) == ["firing"]
    assert feed(rule, 14.0, 2 * S) == []
    assert states(feed(rule, 15.0, 3 * S)) == ["resolved"]  # 15 < 15 is false


def test_keep_firing_for() -> None:
    rule = build("threshold: {op: '>', value: 85}\nkeep_firing_for: 2m\n")
    feed(rule, 90.0, 0)
    assert feed(rule, 10.0, M) == []  # stays firing
    assert rule.tick({"h1": HOST}, 2 * M - 1) == []
    tr, = rule.tick({"h1": HOST}, 2 * M)  # 2m after the last time it held
    assert (tr.state, tr.was_firing) == ("resolved", True)


def test_keep_firing_for_restarts_when_it_holds_again() -> None:
    rule = build("threshold: {op: '>', value: 85}\nkeep_firing_for: 2m\n")
    feed(rule, 90.0, 0)
    feed(rule, 10.0, M)
    assert feed(rule, 90.0, 2 * M) == []  # still the same firing alert
    assert rule.tick({"h1": HOST}, 4 * M - 1) == []
    feed(rule, 10.0, 4 * M - 1)
    assert states(rule.tick({"h1": HOST}, 4 * M)) == ["resolved"]


def test_a_silent_series_goes_stale_and_resolves() -> None:
    rule = build("threshold: {op: '>', value: 85}\nstale_after: 10m\n")
    feed(rule, 90.0, 0, now=0)
    assert rule.tick({"h1": HOST}, 10 * M) == []
    tr, = rule.tick({"h1": HOST}, 10 * M + 1)
    assert (tr.state, tr.was_firing) == ("resolved", True)


def test_staleness_follows_arrival_not_sample_time() -> None:
    rule = build("threshold: {op: '>', value: 85}\nstale_after: 10m\n")
    feed(rule, 90.0, 0, now=0)
    feed(rule, 90.0, S, now=9 * M)  # a late delivery is still news
    assert rule.tick({"h1": HOST}, 15 * M) == []
    assert states(rule.tick({"h1": HOST}, 19 * M + 1)) == ["resolved"]


def test_series_are_separate_alerts() -> None:
    rule = build("threshold: {op: '>', value: 85}\n")
    a, = feed(rule, 90.0, S, mount="/a")
    b, = feed(rule, 95.0, S, mount="/b")
    assert a.fingerprint != b.fingerprint
    other = HostView("h2", {"host": "h2"})
    c, = feed(rule, 95.0, S, host=other, mount="/b")
    assert c.labels["host"] == "h2" and c.fingerprint != b.fingerprint
    tr, = feed(rule, 10.0, 2 * S, mount="/a")
    assert tr.fingerprint == a.fingerprint and tr.state == "resolved"


def test_non_finite_and_other_metrics_are_ignored() -> None:
    rule = build("threshold: {op: '!=', value: 1}\n")
    assert feed(rule, float("nan"), S) == []
    assert rule.on_metric(HOST, sample(5.0, S, name="other"), S) == []


# --- select and scope --------------------------------------------------------------------------


def test_select_matchers() -> None:
    rule = build("select: {mount: {not: {startswith: /snap}}, fstype: {not: {in: [tmpfs]}}}\n"
                 "threshold: {op: '>', value: 85}\n")
    assert feed(rule, 99.0, S, mount="/snap/core/1", fstype="squashfs") == []
    assert feed(rule, 99.0, S, mount="/run", fstype="tmpfs") == []
    assert states(feed(rule, 99.0, S, mount="/", fstype="ext4")) == ["firing"]


def test_scope_limits_hosts_and_leaving_it_resolves() -> None:
    rule = build("scope: {role: db}\nthreshold: {op: '>', value: 85}\n")
    web = HostView("w1", {"host": "w1", "role": "web"})
    assert feed(rule, 99.0, S, host=web) == []
    assert states(feed(rule, 99.0, S)) == ["firing"]
    moved = HostView("h1", {"host": "h1", "role": "web"})
    assert states(rule.tick({"h1": moved}, 2 * S)) == ["resolved"]
    assert feed(rule, 99.0, 3 * S, host=moved) == []


# --- out of order ----------------------------------------------------------------------------


def test_value_ignores_samples_older_than_the_newest() -> None:
    rule = build("threshold: {op: '>', value: 85}\n")
    assert states(feed(rule, 90.0, 100 * S)) == ["firing"]
    assert feed(rule, 10.0, 50 * S, now=101 * S) == []  # late and older: not the current value
    assert states(feed(rule, 10.0, 101 * S)) == ["resolved"]


def test_windows_sort_late_samples() -> None:
    # 100 @0s, 130 @120s, then 5 @60s arrives late: in time order there is a reset at 60s,
    # so the increase is 5 + 125 = 130 (rate 1.083/s); appended at the end it would be 35.
    rule = build("function: rate\nwindow: 10m\nthreshold: {op: '>', value: 1}\n", metric="net_bytes_total")
    assert feed(rule, 100.0, 0) == []
    assert feed(rule, 130.0, 120 * S) == []  # rate 0.25
    tr, = feed(rule, 5.0, 60 * S, now=121 * S)
    assert tr.state == "firing"
    assert tr.value == pytest.approx(130 / 120)


def test_samples_before_the_window_are_dropped() -> None:
    rule = build("function: delta\nwindow: 5m\nthreshold: {op: '>', value: 50}\n", metric="queue_len")
    feed(rule, 10.0, 0)
    feed(rule, 20.0, 10 * M)  # alone in its window: nothing to compare, no verdict
    assert feed(rule, 100.0, 1 * M, now=10 * M) == []  # before 10m-5m: ignored
    tr, = feed(rule, 80.0, 11 * M)
    assert tr.state == "firing" and tr.value == 60.0  # 80 - 20


# --- window functions --------------------------------------------------------------------------


def test_rate_handles_a_counter_reset() -> None:
    rule = build("function: rate\nwindow: 10m\nthreshold: {op: '>', value: 0.5}\n", metric="c_total")
    for t, v in ((0, 100.0), (60, 130.0), (120, 10.0)):  # +30 (0.5/s), then a reset: +10
        assert feed(rule, v, t * S) == []
    tr, = feed(rule, 70.0, 180 * S)  # +60: 100 over 180s (without reset handling: -30)
    assert tr.state == "firing"
    assert tr.value == pytest.approx(100 / 180)


def test_increase_over_the_window() -> None:
    rule = build("function: increase\nwindow: 5m\nthreshold: {op: '>=', value: 30}\n", metric="c_total")
    assert feed(rule, 0.0, 0) == []
    assert feed(rule, 20.0, 2 * M) == []  # +20
    tr, = feed(rule, 30.0, 4 * M)  # +30 in the window [-1m, 4m]
    assert (tr.state, tr.value) == ("firing", 30.0)
    tr, = feed(rule, 35.0, 7 * M)  # window [2m, 7m]: 20 -> 35
    assert (tr.state, tr.value) == ("resolved", 15.0)


def test_a_single_sample_window_leaves_the_alert_alone() -> None:
    rule = build("function: increase\nwindow: 1m\nthreshold: {op: '>', value: 5}\n", metric="c_total")
    feed(rule, 0.0, 0)
    assert states(feed(rule, 10.0, 30 * S)) == ["firing"]
    assert feed(rule, 10.0, 5 * M) == []  # alone in its window: no verdict, still firing


def test_days_to_full_on_a_growing_series() -> None:
    rule = build("function: days_to_full\nwindow: 2d\nfull_at: 100\nthreshold: {op: '<', value: 9.99}\n")
    out: list[Transition] = []
    for hour in range(25):  # 40 % growing 5 % a day: at hour 24, 45 %, full in 11 days
        out += feed(rule, 40.0 + 5.0 * hour / 24, hour * 3600 * S)
    assert out == []
    for hour in range(25, 49):  # at hour 48, 50 %: 10 days
        out += feed(rule, 40.0 + 5.0 * hour / 24, hour * 3600 * S)
    assert out == []  # 10 days
    tr, = feed(rule, 40.0 + 5.0 * 49 / 24, 49 * 3600 * S)
    assert tr.state == "firing"
    assert tr.value == pytest.approx((100 - (40 + 5 * 49 / 24)) / 5)


def test_days_to_full_does_not_hold_for_a_shrinking_series() -> None:
    rule = build("function: days_to_full\nwindow: 1d\nthreshold: {op: '<', value: 1000}\n")
    for hour in range(10):
        assert feed(rule, 90.0 - hour, hour * 3600 * S) == []
    rule2 = build("function: days_to_full\nwindow: 2h\nthreshold: {op: '<', value: 1000}\n")
    feed(rule2, 50.0, 0)
    assert states(feed(rule2, 60.0, 3600 * S)) == ["firing"]
    tr, = feed(rule2, 55.0, 3 * 3600 * S)  # window [1h, 3h]: 60 -> 55, shrinking
    assert (tr.state, tr.was_firing) == ("resolved", True)


def test_days_to_full_is_zero_when_already_full() -> None:
    rule = build("function: days_to_full\nwindow: 1h\nfull_at: 50\nthreshold: {op: '<=', value: 0}\n")
    feed(rule, 60.0, 0)
    tr, = feed(rule, 70.0, M)
    assert (tr.state, tr.value) == ("firing", 0.0)


def test_window_thinning_keeps_counter_increases_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metric_mod, "MAX_WINDOW_SAMPLES", 16)
    rule = build("function: increase\nwindow: 1h\nthreshold: {op: '>', value: -1}\n", metric="c_total")
    values = [3.0 if i % 10 == 9 else 10.0 * (i % 10 + 1) for i in range(60)]  # a reset every 10th
    for i, v in enumerate(values):
        feed(rule, v, i * S)
    expected = sum(b - a if b >= a else b for a, b in zip(values, values[1:], strict=False))
    series, = rule._series.values()
    assert len(series.times) <= 16
    (_, track), = rule.lifecycle.active()
    assert track.value == pytest.approx(expected)


def test_series_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metric_mod, "MAX_SERIES", 2)
    rule = build("threshold: {op: '>', value: 85}\n")
    assert len(feed(rule, 90.0, S, mount="/a")) == 1
    assert len(feed(rule, 90.0, S, mount="/b")) == 1
    assert feed(rule, 90.0, S, mount="/c") == []
    assert rule.dropped_series == 1
    assert len(feed(rule, 10.0, 2 * S, mount="/a")) == 1  # known series still work


def test_silent_series_are_forgotten() -> None:
    rule = build("threshold: {op: '>', value: 85}\nstale_after: 1m\n")
    feed(rule, 10.0, 0, mount="/a")
    rule.tick({"h1": HOST}, 30 * S)
    assert len(rule._series) == 1
    rule.tick({"h1": HOST}, 5 * M)
    assert rule._series == {}


def test_snapshot_and_restore_keep_alert_state() -> None:
    body = "threshold: {op: '>', value: 85, clear: 80}\nfor: 1m\n"
    rule = build(body)
    feed(rule, 90.0, 0)
    feed(rule, 90.0, M)
    state = rule.snapshot()
    state = json.loads(json.dumps(state))
    fresh = build(body)
    fresh.restore(state)
    assert feed(fresh, 82.0, 2 * M) == []  # still firing: clear applies, no new pending
    assert states(feed(fresh, 79.0, 3 * M)) == ["resolved"]


def test_properties() -> None:
    rule = build("threshold: {op: '>', value: 85}\n")
    assert rule.metric_names == frozenset({METRIC})
    assert rule.event_kinds == frozenset()
    assert rule.sections == frozenset()


# --- errors ------------------------------------------------------------------------------------


def test_error_unknown_field() -> None:
    e = error("threshold: {op: '>', value: 85}\ntreshold_x: 1\n")
    assert (e.file, e.line) == ("t.yml", 7)
    assert "unknown field 'treshold_x'" in str(e) and str(e).startswith("t.yml:7: ")


def test_error_unknown_threshold_field() -> None:
    e = error("threshold:\n  op: '>'\n  value: 85\n  clearr: 80\n")
    assert e.line == 9 and "clearr" in e.message


def test_error_window_on_value() -> None:
    e = error("threshold: {op: '>', value: 85}\nwindow: 5m\n")
    assert e.line == 7 and "window" in e.message


def test_error_missing_window_for_rate() -> None:
    e = error("function: rate\nthreshold: {op: '>', value: 85}\n")
    assert e.line == 6 and "needs a window" in e.message


def test_error_clear_on_the_wrong_side() -> None:
    e = error("threshold:\n  op: '>'\n  value: 85\n  clear: 90\n")
    assert e.line == 9 and "clear" in e.message
    e = error("threshold:\n  op: '<='\n  value: 10\n  clear: 5\n")
    assert e.line == 9
    e = error("threshold: {op: '==', value: 1, clear: 1}\n")
    assert e.line == 6


def test_error_unknown_op() -> None:
    e = error("threshold:\n  op: '=>'\n  value: 85\n")
    assert e.line == 7 and "op must be one of" in e.message


def test_error_bad_duration() -> None:
    e = error("threshold: {op: '>', value: 85}\nfor: 5 minutes\n")
    assert e.line == 7 and "invalid duration" in e.message
    e = error("function: rate\nwindow: 0\nthreshold: {op: '>', value: 85}\n")
    assert e.line == 7


def test_error_full_at_only_for_days_to_full() -> None:
    e = error("full_at: 90\nthreshold: {op: '>', value: 85}\n")
    assert e.line == 6 and "full_at" in e.message


def test_error_missing_threshold_and_bad_metric_name() -> None:
    assert "threshold" in error("for: 1m\n").message
    with pytest.raises(RuleError, match="not a metric name"):
        build("threshold: {op: '>', value: 1}\n", metric="'bad-name'")
