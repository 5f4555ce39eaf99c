"""Rule unit tests, in the spirit of `promtool test rules`: `warden-collector rules test FILE`.

A test file names rule files and lists tests; each test feeds series, events and register
sections to a fresh engine on a simulated clock and states which alerts fire when:

    rule_files: [../logins.yml]          # relative to this file
    evaluation_interval: 10s             # how often the engine ticks (default 10s)
    tests:
      - name: brute force from one address
        start: 2026-01-05T10:00:00Z       # default: Monday 2026-01-05 10:00 UTC
        hosts: {web1: {labels: {room: A}, tz: Europe/Paris}}
        input_series:
          - series: 'system_filesystem_used_percent{host="web1",mount="/"}'
            values: "80 86x10"            # a, axN (N more copies), a+bxN / a-bxN, _ (no sample)
            interval: 1m                  # default: evaluation_interval
        input_events:
          - {at: 5s, host: web1, kind: auth.login, fields: {result: failure, src_ip: 203.0.113.7},
             repeat: 5, every: 2s, clock_offset: 0s}   # clock_offset: the host's clock skew
        input_inventory:
          - {at: 0s, host: web1, section: updates, data: {...}}
        alerts:
          - at: 20s
            alertname: ssh_brute_force
            firing:                       # exactly these alerts of that rule fire at `at`
              - labels: {src_ip: 203.0.113.7}          # a subset of the alert's labels
                summary: "..."                          # optional: exact rendered summary

Hosts send nothing but what the test gives: a host is "seen" when one of its inputs arrives.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.collector.records import Event, InventorySection, MetricSample
from warden.collector.rules.engine import RuleEngine
from warden.collector.rules.loader import RuleErrors, load_rules
from warden.collector.rules.spec import RuleError, Spec, load_yaml, parse_duration

DEFAULT_START = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)  # a Monday, in working hours
NS = 1_000_000_000
_SERIES = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*\Z", re.DOTALL)
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|\Z)')
_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE = re.compile(rf"(_|[-+]?{_NUM})(?:([+-])({_NUM}))?(?:x(\d+))?\Z")


@dataclass
class TestResult:
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def expand_values(text: str) -> list[float | None]:
    """promtool's series notation: `1 2 3`, `5x3` (5 5 5 5), `1+2x3` (1 3 5 7), `_` no sample."""
    out: list[float | None] = []
    for tok in text.split():
        m = _VALUE.fullmatch(tok)
        if not m:
            raise ValueError(f"bad value {tok!r} (use a, axN, a+bxN, a-bxN or _)")
        start, sign, step, times = m.groups()
        if sign and times is None:
            raise ValueError(f"bad value {tok!r}: a step needs a count, e.g. {start}{sign}{step}x10")
        n = int(times) if times else 0
        if start == "_":
            if sign:
                raise ValueError(f"bad value {tok!r}: _ takes no step")
            out += [None] * (n + 1)
            continue
        a = float(start)
        d = float(step) * (1 if sign == "+" else -1) if sign else 0.0
        out += [a + d * i for i in range(n + 1)]
    return out


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    m = _SERIES.fullmatch(text)
    if not m:
        raise ValueError(f"bad series {text!r}: use name{{label=\"value\",...}}")
    labels: dict[str, str] = {}
    body = m.group(2) or ""
    pos = 0
    while pos < len(body.strip()):
        lm = _LABEL.match(body, pos)
        if not lm:
            raise ValueError(f"bad labels in {text!r} near {body[pos:pos + 20]!r}")
        labels[lm.group(1)] = lm.group(2).encode().decode("unicode_escape")
        pos = lm.end()
    return m.group(1), labels


def _time(spec: Spec, key: str) -> int:
    return int(spec.duration(key) * NS)


def run_file(path: Path) -> list[TestResult]:
    """Run every test of one test file. Problems with the file itself raise RuleError."""
    doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
    top = Spec(doc, str(path), "test file")
    files = [(path.parent / f).resolve() for f in top.str_list("rule_files")]
    interval = int(top.duration("evaluation_interval", 10.0) * NS)
    if interval <= 0:
        raise top.error("evaluation_interval must be positive", "evaluation_interval")
    tests = top.items("tests")
    top.done()
    try:
        load_rules(files)  # also when there are no tests: a missing rule file is an error
    except RuleErrors as exc:
        raise RuleError(f"rule files do not load:\n{exc}", str(path), top.line_of("rule_files")) from None
    results = []
    for t in tests:
        try:
            ruleset = load_rules(files)  # fresh rule objects (state) for every test
        except RuleErrors as exc:
            raise RuleError(f"rule files do not load:\n{exc}", str(path), top.line_of("rule_files")) from None
        results.append(_run_test(t, ruleset, interval))
    return results


def _run_test(t: Spec, ruleset: Any, interval: int) -> TestResult:
    name = t.str("name")
    start_text = t.get("start", (str, dt.datetime), None)
    if isinstance(start_text, dt.datetime):
        start = start_text if start_text.tzinfo else start_text.replace(tzinfo=dt.UTC)
    elif start_text:
        try:
            start = dt.datetime.fromisoformat(start_text.replace("Z", "+00:00"))
        except ValueError:
            raise t.error(f"test {name}: start {start_text!r} is not an ISO 8601 time", "start") from None
    else:
        start = DEFAULT_START
    t0 = int(start.timestamp()) * NS
    engine = RuleEngine(ruleset)
    hosts = t.sub("hosts", None)
    if hosts is not None:
        for hid in list(hosts.data):
            h = hosts.sub(hid)
            labels = h.str_map("labels", {})
            tz = h.str("tz", "")
            if tz:
                labels["tz"] = tz
            h.done()
            engine.upsert_host(hid, labels)

    inputs: list[tuple[int, int, str, Any]] = []  # (time, order, host, record)
    order = 0
    for s in t.items("input_series", []):
        metric, labels = s.parse("series", parse_series)
        host = labels.pop("host", "")
        if not host:
            raise s.error("series needs a host label, e.g. name{host=\"web1\"}", "series")
        values = s.parse("values", lambda v: expand_values(str(v)))
        step = int(s.duration("interval", interval / NS) * NS)
        offset = int(s.duration("at", 0) * NS)
        s.done()
        for i, v in enumerate(values):
            if v is not None:
                at = t0 + offset + i * step
                inputs.append((at, order, host, MetricSample(metric, dict(labels), v, at)))
                order += 1
    for e in t.items("input_events", []):
        at = t0 + _time(e, "at")
        host = e.str("host")
        kind = e.str("kind")
        fields = e.get("fields", dict, {})
        for k, v in fields.items():
            if not isinstance(v, str | int | float | bool):
                raise e.error(f"event field {k} must be a scalar", "fields")
        severity = e.str("severity", "info")
        raw = e.str("raw", "")
        source = e.str("source", "test")
        repeat = e.int("repeat", 1, minimum=1)
        every = int(e.duration("every", 1.0) * NS)
        skew = e.parse("clock_offset", _signed_duration, 0)
        e.done()
        for i in range(repeat):
            when = at + i * every
            inputs.append((when, order, host, Event(kind, severity, when + skew, dict(fields), raw, source)))
            order += 1
    for inv in t.items("input_inventory", []):
        at = t0 + _time(inv, "at")
        host = inv.str("host")
        section = inv.str("section")
        data = inv.get("data", dict)
        inv.done()
        inputs.append((at, order, host, InventorySection(section, at, _plain(data))))
        order += 1
    checks = []
    for c in t.items("alerts", []):
        at = t0 + _time(c, "at")
        alertname = c.str("alertname")
        if alertname not in ruleset.by_id():
            raise c.error(f"test {name}: no rule {alertname!r} in the rule files", "alertname")
        expected = []
        for x in c.items("firing", []):
            expected.append((x.str_map("labels", {}), x.str("summary", None), x.str("description", None)))
            x.done()
        c.done()
        checks.append((at, alertname, expected))
    t.done()

    inputs.sort(key=lambda x: (x[0], x[1]))
    checks.sort(key=lambda x: x[0])
    firing: dict[str, Any] = {}  # fingerprint -> transition (state firing)
    result = TestResult(name)

    def apply(transitions: list[Any]) -> None:
        for tr in transitions:
            if tr.state == "firing":
                firing[tr.fingerprint] = tr
            elif tr.state == "resolved":
                firing.pop(tr.fingerprint, None)

    end = max([x[0] for x in inputs] + [c[0] for c in checks] + [t0])
    i = 0
    now = t0
    next_tick = t0
    ci = 0
    while now <= end:
        # inputs up to the next tick, each at its own time
        while i < len(inputs) and inputs[i][0] <= next_tick:
            at, _, host, rec = inputs[i]
            apply(engine.process(host, [rec], at))
            i += 1
        now = next_tick
        apply(engine.tick(now))
        while ci < len(checks) and checks[ci][0] <= now:
            at, alertname, expected = checks[ci]
            _compare(result, at - t0, alertname, expected,
                     [tr for tr in firing.values() if tr.rule_id == alertname])
            ci += 1
        next_tick = now + interval
        if ci < len(checks) and now < checks[ci][0] < next_tick:
            next_tick = checks[ci][0]  # evaluate exactly at the check's time too
    for rid, n in engine.errors.items():
        result.failures.append(f"rule {rid} raised {n} error(s): {engine.last_error.get(rid)}")
    return result


def _compare(result: TestResult, offset_ns: int, alertname: str, expected: list[Any], got: list[Any]) -> None:
    remaining = list(got)
    where = f"at {_fmt(offset_ns)} {alertname}"
    for labels, summary, description in expected:
        match = next((g for g in remaining if all(g.labels.get(k) == v for k, v in labels.items())), None)
        if match is None:
            result.failures.append(f"{where}: expected firing {labels or '{}'}, firing: "
                                   f"{[_short(g.labels) for g in got] or 'none'}")
            continue
        remaining.remove(match)
        if summary is not None and match.annotations.get("summary") != summary:
            result.failures.append(f"{where}: summary {match.annotations.get('summary')!r} != {summary!r}")
        if description is not None and match.annotations.get("description") != description:
            result.failures.append(f"{where}: description {match.annotations.get('description')!r} "
                                   f"!= {description!r}")
    for g in remaining:
        result.failures.append(f"{where}: unexpected firing alert {_short(g.labels)}")


def _short(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in ("alertname", "severity")}


def _fmt(ns: int) -> str:
    s = ns // NS
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _signed_duration(v: Any) -> int:
    if isinstance(v, str) and v.strip().startswith("-"):
        return -int(parse_duration(v.strip()[1:]) * NS)
    return int(parse_duration(v) * NS)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v
